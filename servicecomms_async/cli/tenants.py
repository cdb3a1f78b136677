"""The tenants file of ``scan``: one tenant GUID or domain a line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from .._validate import validate_tenant_id
from .errors import UsageError

# A tenant id is a GUID or a DNS name (at most 253 characters); a line may add a comment. The
# limits keep an endless or huge input (``/dev/zero``, a wrong file) from exhausting memory.
MAX_LINE = 1024
MAX_TENANTS = 1_000_000
MAX_PROBLEMS = 20  # malformed lines reported one by one; the rest are counted


def _lines(stream: TextIO, label: str) -> Iterator[str]:
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise UsageError(
                f"--tenants: {label} has a line longer than {MAX_LINE} characters: "
                "is it a tenants file (one tenant id a line)?"
            )
        yield line


def read_tenants(source: str, stdin: TextIO) -> list[str]:
    """Tenant ids from a file (or ``-``): one per line, blank lines and ``#`` comments skipped.

    Every malformed line is reported (``FILE:LINE: reason``, the first few one by one) before
    anything is sent. A line longer than :data:`MAX_LINE` characters or more than
    :data:`MAX_TENANTS` tenants is a usage error, read no further.
    """
    label = "stdin" if source == "-" else source
    try:
        stream = stdin if source == "-" else open(source, encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"--tenants: cannot read {source}: {exc.strerror or exc}") from None
    tenants: list[str] = []
    problems: list[str] = []
    more = 0
    try:
        for number, line in enumerate(_lines(stream, label), start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            try:
                tenants.append(validate_tenant_id(entry))
            except ValueError as exc:
                if len(problems) < MAX_PROBLEMS:
                    problems.append(f"{label}:{number}: {exc}")
                else:
                    more += 1
            if len(tenants) > MAX_TENANTS:
                raise UsageError(
                    f"--tenants: {label} has more than {MAX_TENANTS:,} tenants: scan it in parts"
                )
    except OSError as exc:
        raise UsageError(f"--tenants: cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--tenants: {label} is not UTF-8 text") from None
    finally:
        if stream is not stdin:
            stream.close()
    if problems:
        if more:
            problems.append(f"{label}: {more} more malformed line{'s' if more > 1 else ''}")
        raise UsageError("\n".join(problems))
    if not tenants:
        raise UsageError(f"--tenants: no tenant ids in {label}")
    return tenants
