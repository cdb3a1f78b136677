"""The tenants file of ``scan``: one tenant GUID or domain a line."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .._validate import validate_tenant_id
from .errors import UsageError


def read_tenants(source: str, stdin: TextIO) -> list[str]:
    """Tenant ids from a file (or ``-``): one per line, blank lines and ``#`` comments skipped.

    Every malformed line is reported (``FILE:LINE: reason``) before anything is sent.
    """
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--tenants: cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--tenants: {source} is not UTF-8 text") from None
    label = "stdin" if source == "-" else source
    tenants: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            tenants.append(validate_tenant_id(entry))
        except ValueError as exc:
            problems.append(f"{label}:{number}: {exc}")
    if problems:
        raise UsageError("\n".join(problems))
    if not tenants:
        raise UsageError(f"--tenants: no tenant ids in {label}")
    return tenants
