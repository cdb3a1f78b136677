"""Measurements that need a fresh process: ``python -m benchmarks.child COMMAND ...`` prints one JSON line.

* ``stream --mode library|floor --base-url U --tenant T``: stream every message; items and peak RSS.
* ``scan --mode library|floor --base-url U --tenants N --concurrency C``: fan out; items and peak RSS.
* ``first-item --mode library|floor --base-url U --tenant T``: seconds from a new session to the first
  item, in a process that has imported everything but used nothing yet (converter hooks included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections.abc import Sequence
from typing import Any

from .server import tenant_ids


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    Linux: ``VmHWM`` from /proc/self/status. Not ``ru_maxrss``: a child started with fork/vfork + exec
    inherits its parent's peak there, so every child would report the benchmark runner's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # elsewhere: the best there is
    return kib / 1024 if sys.platform != "darwin" else kib / (1024 * 1024)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    # Import only the side measured, so that the floor's process never loads the library.
    if args.mode == "library":
        from . import library as side
    else:
        from . import floor as side  # type: ignore[no-redef]
    if args.command == "stream":
        result = await side.stream_messages(args.base_url, args.tenant)
        return {"items": result.items, "seconds": result.seconds}
    if args.command == "scan":
        tenants = tenant_ids(args.tenants)
        result = await side.scan_current_status(
            args.base_url, tenants, concurrency=args.concurrency
        )
        return {"items": result.items, "seconds": result.seconds}
    return {"seconds": await side.first_item(args.base_url, args.tenant)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    parser.add_argument("command", choices=("stream", "scan", "first-item"))
    parser.add_argument("--mode", choices=("library", "floor"), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--tenant", default=tenant_ids(1)[0])
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = asyncio.run(_run(args))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
