"""RESULTS.md: the machine, the exact command, and the table (benchmark, library, floor, ratio, bar, met?)."""

from __future__ import annotations

import os
import platform
import sysconfig
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata

from .measure import Outcome, Row
from .sizes import Sizes

NOISE = (
    "These machines have 2 cores, shared with other jobs and noisy: absolute figures move by tens of "
    "percent from one run to the next, so read the ratios, which compare library and floor measured "
    "in the same run, alternately, against the same emulator process."
)


def _versions() -> str:
    names = ("aiohttp", "orjson", "attrs", "cattrs", "anyio", "yarl", "msgraph-sdk", "httpx")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def python_build() -> str:
    """Whether this CPython was built with PGO/LTO: without them calls cost two to three times more."""
    flags = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    optimized = "--enable-optimizations" in flags or "--with-lto" in flags
    return "optimized build (PGO/LTO)" if optimized else "built without PGO/LTO (slower calls)"


def affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return set()


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _met(row: Row) -> str:
    return "—" if row.met is None else ("yes" if row.met else "**no**")


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| benchmark | library | floor | ratio | bar | met? |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        lines.append(
            f"| {row.benchmark} | {row.library} | {row.floor} | {ratio} | {row.bar} | {_met(row)} |"
        )
    return "\n".join(lines)


def render(
    outcomes: Sequence[Outcome],
    *,
    sizes: Sizes,
    command: str,
    started_at: datetime,
    load_before: str,
    load_after: str,
    seconds: float,
    placement: str = "not pinned",
) -> str:
    rows = [row for outcome in outcomes for row in outcome.rows]
    notes = [f"- {row.benchmark}: {row.notes}" for row in rows if row.notes]
    unmet = [row for row in rows if row.met is False]
    parts = [
        "# Benchmark results",
        "",
        "Written by the benchmark run itself; do not edit by hand. Re-run with the command below.",
        "",
        f"- Command: `{command}` (sizes: {sizes.name}; {seconds:.0f} s in all)",
        f"- When: {started_at:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"({platform.python_implementation()}, {python_build()}); {_versions()}",
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_after}",
        f"- Placement: {placement}.",
        f"- {NOISE}",
        "- The floor is raw aiohttp + `orjson.loads` fetching the same pages from the same server and "
        "doing nothing else. The servers are `python -m servicecomms_async.emulator` and, where a "
        "row says so, the replay server `python -m benchmarks.replay` (pre-rendered pages), each in "
        "its own process. Client-cost rows are medians of alternated library/floor pairs, with the "
        "spread (min-max) of the per-pair ratios; client CPU is `time.process_time` of the benchmark "
        "process, which runs no server. A ratio above 1 means the library is slower by that factor.",
        "",
        table(rows),
        "",
    ]
    if unmet:
        parts += ["## Bars not met", ""]
        for row in unmet:
            why = f" {row.why_not_met}" if row.why_not_met else ""
            parts.append(f"- {row.benchmark}: {row.library} vs {row.floor} (bar {row.bar}).{why}")
        parts.append("")
    parts += ["## Notes", "", *notes, ""]
    return "\n".join(parts)


def command_line(argv: Sequence[str]) -> str:
    return " ".join(["python -m benchmarks", *argv])


def now() -> datetime:
    return datetime.now(timezone.utc)
