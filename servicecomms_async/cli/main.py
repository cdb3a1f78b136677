"""The entry point: ``servicecomms`` (``servicecomms_async.cli:main``) and
``python -m servicecomms_async``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

from ..errors import APIStatusError, AuthenticationError, EndpointRetiredError, ServiceCommsError
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, StoppedError, UsageError
from .output.text import printable
from .parser import build_parser
from .selection import resolve_api, retired_hint

NEEDS_RICH = 'the servicecomms command needs the cli extra: pip install "servicecomms-async[cli]"'


@contextlib.contextmanager
def _logging_to(stderr: TextIO, verbosity: int) -> Iterator[None]:
    """``-v``: the library's log on stderr (``-vv``: debug) for this run only."""
    library = logging.getLogger("servicecomms_async")
    azure = logging.getLogger("azure")
    saved = library.level, azure.level
    handler: logging.Handler | None = None
    if verbosity > 0:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        library.addHandler(handler)
        library.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
        # azure-identity's warnings say what each credential of a chain tried and why it failed
        # (DefaultAzureCredential's "Attempted credentials:" list): -v shows them, -vv its info.
        azure.addHandler(handler)
        azure.setLevel(logging.INFO if verbosity > 1 else logging.WARNING)
    else:
        # azure-identity explains a failed credential in multi-line warnings; the error line says it.
        azure.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if handler is not None:
            library.removeHandler(handler)
            azure.removeHandler(handler)
        library.setLevel(saved[0])
        azure.setLevel(saved[1])


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return printable(lines[0]) if lines else ""


def _error_lines(exc: ServiceCommsError, verbosity: int) -> list[str]:
    """A library error as the lines to show: one, except that a credential's failure keeps each
    credential's reason (``DefaultAzureCredential`` tries several) and adds how to authenticate."""
    first = f"{type(exc).__name__}: {_one_line(str(exc))}"
    if not isinstance(exc, AuthenticationError) or isinstance(exc, APIStatusError):
        return [first]
    from .auth import CREDENTIALS_HINT

    reasons = [
        printable(line.strip()) for line in str(exc).strip().splitlines()[1:] if line.strip()
    ]
    return [first, *(f"  {reason}" for reason in reasons), CREDENTIALS_HINT]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    environ = os.environ if environ is None else environ
    if not _have_rich():
        print(f"error: {NEEDS_RICH}", file=stderr)
        return EXIT_USAGE
    op = None
    verbosity = 0
    try:
        args = build_parser(emulator_options=argv[:1] == ["emulator"]).parse_args(argv)
        verbosity = getattr(args, "verbose", 0) + getattr(args, "global_verbose", 0)
        if getattr(args, "device_code", False) and getattr(args, "interactive", False):
            raise UsageError("--device-code and --interactive exclude each other: give one")
        signs_in = getattr(args, "device_code", False) or getattr(args, "interactive", False)
        if signs_in and (getattr(args, "token", None) or getattr(args, "token_template", None)):
            raise UsageError(
                "--device-code and --interactive sign in: drop --token/--token-template"
            )
        if getattr(args, "token", None) and getattr(args, "token_template", None):
            raise UsageError("--token and --token-template exclude each other: give one")
        # The demo is self-contained: nothing from the environment changes what it shows.
        op = resolve_api(args, environ, use_environment=args.command != "demo")
        from .commands import run  # the drawing modules, and so rich, from here on

        with _logging_to(stderr, verbosity):
            return run(args, op, stdin=stdin, stdout=stdout, stderr=stderr, environ=environ)
    except UsageError as exc:
        for line in str(exc).splitlines():
            print(f"error: {printable(line)}", file=stderr)
        return EXIT_USAGE
    except StoppedError as exc:
        for line in exc.lines:
            for part in line.splitlines():
                print(f"error: {printable(part)}", file=stderr)
        return EXIT_FAILED
    except ServiceCommsError as exc:
        for line in _error_lines(exc, verbosity):
            print(f"error: {line}", file=stderr)
        if isinstance(exc, EndpointRetiredError) and op is not None:
            tenant = getattr(args, "tenant", None)
            print(f"error: {retired_hint(op, tenant=tenant)}", file=stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Python 3.10's event loop lets Ctrl-C out of anyio.run as the main task's CancelledError;
        # out here, no loop is running, so either one means the user interrupted.
        print("interrupted", file=stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): it has what it wanted, so stop quietly with 0 (1
        # would say a tenant failed), and keep Python from complaining again when it flushes
        # stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass  # stdout is not a real file (e.g. a test's buffer)
        return EXIT_OK
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
