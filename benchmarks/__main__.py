"""``python -m benchmarks [--quick] [--only NAME ...] [--output PATH]``: run, print and write the results.

Only a full run (every benchmark at full sizes) writes the committed ``benchmarks/RESULTS.md``: a
``--quick``, ``--tiny`` or ``--only`` run would replace its figures with partial or smaller ones, so
it prints its table and writes a report only where ``--output`` says (never over RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import fanout, graph, memory, over_graph, parsing, report, scaling, startup, streaming
from .measure import Outcome
from .server import Servers, pin_client, unpin_client
from .sizes import FULL, QUICK, TINY, Sizes

# Scan-based benchmarks last: they depend on the newest part of the library.
BENCHMARKS = (
    "streaming",
    "parsing",
    "startup",
    "memory",
    "fanout",
    "scaling",
    "graph",
    "over_graph",
)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks against a raw aiohttp + orjson floor on the same server.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes: about a minute")
    size.add_argument("--tiny", action="store_true", help="smoke-test sizes: figures mean nothing")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"the markdown report (default: {DEFAULT_OUTPUT.name} for a full run; a partial run "
        "writes one only here, and never to that file)",
    )
    parser.add_argument("--json", type=Path, help="also write every raw figure as JSON here")
    return parser


async def run_benchmarks(sizes: Sizes, names: Sequence[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with Servers() as servers:
        for name in names:
            print(f"running {name} ({sizes.name})...", file=sys.stderr, flush=True)
            module = {
                "streaming": streaming,
                "parsing": parsing,
                "startup": startup,
                "memory": memory,
                "fanout": fanout,
                "scaling": scaling,
                "graph": graph,
                "over_graph": over_graph,
            }[name]
            outcomes.append(await module.run(sizes, servers))
    return outcomes


def _is_results(path: Path) -> bool:
    return path.resolve() == DEFAULT_OUTPUT


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else TINY if args.tiny else FULL
    names = [name for name in BENCHMARKS if args.only is None or name in args.only]
    full = sizes is FULL and names == list(BENCHMARKS)
    output: Path | None = args.output
    if full and output is None:
        output = DEFAULT_OUTPUT
    if not full and output is not None and _is_results(output):
        parser.error(
            f"{DEFAULT_OUTPUT.name} holds a full run's results: a --quick, --tiny or --only run "
            "writes elsewhere (give another --output, or none to print only)"
        )
    started_at, load_before, clock = report.now(), report.load_average(), time.monotonic()
    cpus = report.affinity()
    placement = pin_client()
    try:
        outcomes = asyncio.run(run_benchmarks(sizes, names))
    finally:
        unpin_client(cpus)
    text = report.render(
        outcomes,
        sizes=sizes,
        command=report.command_line(argv),
        started_at=started_at,
        load_before=load_before,
        load_after=report.load_average(),
        seconds=time.monotonic() - clock,
        placement=placement,
    )
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(
            json.dumps({o.name: dict(o.details) for o in outcomes}, indent=2, default=str),
            encoding="utf-8",
        )
    print(report.table([row for outcome in outcomes for row in outcome.rows]))
    if output is not None:
        print(f"\nwritten to {output}", file=sys.stderr)
    else:
        print(
            f"\na partial run: {DEFAULT_OUTPUT.name} not written (--output PATH writes the report)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
