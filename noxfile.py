"""Developer sessions: ``nox -s tests lint typecheck bench``."""

from __future__ import annotations

import json
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, as CI runs it."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "servicecomms_async")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against a raw aiohttp + orjson floor on the same server (writes benchmarks/RESULTS.md)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def audit(session: nox.Session) -> None:
    """pip-audit over the installed dependencies; says so plainly when no vulnerability database answers."""
    session.install("-e", ".", "pip-audit>=2.7")
    report = Path(session.create_tmp()) / "pip-audit.json"
    session.run(
        "pip-audit",
        "--progress-spinner",
        "off",
        "--skip-editable",
        "--format",
        "json",
        "--output",
        str(report),
        success_codes=[0, 1],
        silent=True,
    )
    dependencies = json.loads(report.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    if not audited:
        session.skip(
            f"NOT AUDITED: no vulnerability database could be reached from this machine "
            f"(pip-audit could check 0 of {len(dependencies)} dependencies)"
        )
    session.log(f"audited {len(audited)} of {len(dependencies)} dependencies")
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        session.log(f"{dependency['name']} {dependency['version']}: {ids}")
    if vulnerable:
        session.error(f"{len(vulnerable)} dependencies have known vulnerabilities")
