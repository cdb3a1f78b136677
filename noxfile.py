"""Developer sessions: ``nox -s tests lint typecheck bench``."""

from __future__ import annotations

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
    """pip-audit over the installed dependencies; says so plainly when no vulnerability database is reachable."""
    session.install("-e", ".", "pip-audit>=2.7")
    try:
        session.run("pip-audit", "--progress-spinner", "off", "--skip-editable")
    except nox.command.CommandFailed:
        session.error(
            "pip-audit failed: either a dependency has a known vulnerability (see above) or the "
            "vulnerability database (PyPI / OSV) could not be reached from this machine"
        )
