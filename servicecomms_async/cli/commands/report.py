"""``incident-report``: one Graph issue's post-incident review document, as the bytes Graph sends."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import IO, TextIO

import anyio

from ..auth import make_auth, make_session
from ..errors import UsageError


async def run(
    args: argparse.Namespace, stdout: TextIO, environ: Mapping[str, str], stderr: TextIO
) -> int:
    """Write the document to ``--output`` or stdout.

    A document is binary: it is never written to a terminal, and where it goes is settled before the
    request. A file is written only once the whole document has arrived, so a failed download never
    leaves a truncated file (or empties an existing one).
    """
    to_stdout = args.output is None or args.output == "-"
    binary_stdout: IO[bytes] | None = None
    if to_stdout:
        if stdout.isatty():
            raise UsageError(
                "incident-report writes a binary document: give --output FILE or redirect stdout "
                "(refusing to write it to a terminal)"
            )
        binary_stdout = getattr(stdout, "buffer", None)
        if binary_stdout is None:
            raise UsageError("incident-report: this stdout takes text only; give --output FILE")
    auth = make_auth(args, environ, stderr)
    try:
        async with make_session(args, auth) as session:
            document: bytes = await session.graph(args.tenant).incident_report(args.issue_id)
    finally:
        await auth.close()
    if binary_stdout is not None:
        stdout.flush()
        binary_stdout.write(document)
        binary_stdout.flush()
        return 0
    try:
        await anyio.Path(args.output).write_bytes(document)
    except OSError as exc:
        raise UsageError(f"--output: cannot write {args.output}: {exc.strerror or exc}") from None
    return 0
