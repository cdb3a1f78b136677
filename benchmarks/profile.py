"""``python -m benchmarks.profile [--messages N]``: where the library's streaming time goes.

Streams ``N`` messages through ``tenant.messages()`` from an emulator process under pyinstrument (in the
``bench`` extra) and prints the call tree, the first thing to read before a performance change.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import library
from .server import EmulatorProcess, ServerConfig, tenant_ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with EmulatorProcess(ServerConfig(messages_per_tenant=args.messages)) as server:
        tenant = tenant_ids(1)[0]
        asyncio.run(library.stream_messages(server.base_url, tenant))  # warm the server's caches
        profiler = Profiler(interval=0.0005)
        profiler.start()
        result = asyncio.run(library.stream_messages(server.base_url, tenant))
        profiler.stop()
    print(f"{result.items} messages in {result.seconds:.3f} s", file=sys.stderr)
    print(profiler.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
