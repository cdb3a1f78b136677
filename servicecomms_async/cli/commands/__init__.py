"""One module per command family. Importing this package imports rich (through the output
layer), so :mod:`..main` imports it only after checking that rich is there."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TextIO

import anyio

from ..registry import Operation
from . import demo, demo_watch, emulator, report, scan, single, watch


def run(
    args: argparse.Namespace,
    op: Operation | None,
    *,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    """Run the parsed command line; return its exit code."""
    command: str = args.command
    if command == "emulator":
        return emulator.run(args, stdout, stderr)
    if command == "incident-report":
        return anyio.run(report.run, args, stdout, environ, stderr)
    if command == "watch":
        return anyio.run(watch.run, args, stdin, stdout, stderr, environ)
    assert op is not None
    if command == "scan":
        return anyio.run(scan.run, args, op, stdin, stdout, stderr, environ)
    if command == "demo" and args.mode == "watch":
        return anyio.run(demo_watch.run, args, stdout, stderr)
    if command == "demo":
        return anyio.run(demo.run, args, op, stdout, stderr)
    return anyio.run(single.run, args, op, stdout, environ, stderr)
