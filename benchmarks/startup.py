"""6. Import and start-up: ``import servicecomms_async`` against ``import aiohttp``, and the time from a
new session to the first item, each in fresh processes (best of ``startup_runs``, alternating)."""

from __future__ import annotations

import subprocess
import sys

from .measure import Outcome, Row, Timed, best_of_alternating_sync, clock, ratio
from .memory import run_child
from .server import REPO_ROOT, ServerConfig, Servers, python_env
from .sizes import Sizes


def time_import(module: str) -> Timed:
    """Wall seconds of ``python -c "import MODULE"`` (interpreter start-up included)."""
    started = clock()
    subprocess.run(
        [sys.executable, "-c", f"import {module}" if module else "pass"],
        cwd=REPO_ROOT,
        env=python_env(),
        check=True,
    )
    return Timed(clock() - started, 1)


def first_item(mode: str, base_url: str) -> Timed:
    result = run_child("first-item", "--mode", mode, "--base-url", base_url)
    return Timed(float(result["seconds"]), 1)


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    runs = sizes.startup_runs
    bare = min(time_import("").seconds for _ in range(runs))
    lib_import, aiohttp_import = best_of_alternating_sync(
        runs, lambda: time_import("servicecomms_async"), lambda: time_import("aiohttp")
    )
    import_row = Row(
        benchmark='6. `python -c "import servicecomms_async"` vs `import aiohttp` (ms)',
        library=f"{lib_import.seconds * 1000:.0f}",
        floor=f"{aiohttp_import.seconds * 1000:.0f}",
        ratio=ratio(lib_import.seconds, aiohttp_import.seconds),
        bar="— (reported)",
        met=None,
        notes=(
            f"best of {runs}; a bare interpreter takes {bare * 1000:.0f} ms, so the imports "
            f"themselves cost {(lib_import.seconds - bare) * 1000:.0f} vs "
            f"{(aiohttp_import.seconds - bare) * 1000:.0f} ms"
        ),
    )
    base_url = servers.get(ServerConfig())
    lib_first, floor_first = best_of_alternating_sync(
        runs, lambda: first_item("library", base_url), lambda: first_item("floor", base_url)
    )
    first_row = Row(
        benchmark="6. cold session to first current_status item, fresh process (ms)",
        library=f"{lib_first.seconds * 1000:.1f}",
        floor=f"{floor_first.seconds * 1000:.1f}",
        ratio=ratio(lib_first.seconds, floor_first.seconds),
        bar="— (reported)",
        met=None,
        notes=f"best of {runs}; timed after imports: pool, connection, request, converter hooks",
    )
    return Outcome(
        "startup",
        [import_row, first_row],
        {
            "bare_interpreter_s": bare,
            "import_library_s": lib_import.seconds,
            "import_aiohttp_s": aiohttp_import.seconds,
            "first_item_library_s": lib_first.seconds,
            "first_item_floor_s": floor_first.seconds,
        },
    )
