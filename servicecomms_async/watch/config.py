"""Sinks from configuration: ``--sink [NAME=]KIND:TARGET`` specs and a TOML file.

::

    [[sinks]]
    name = "siem"                  # default: the kind
    kind = "webhook"               # jsonl, webhook, teams, slack
    target = "env:SIEM_URL"        # the URL, env:VARNAME or file:PATH (a path or - for jsonl)
    secret = "env:SIEM_SECRET"     # webhook: the whsec_ signing secret (env: or file: only)
    token = "file:/run/secrets/t"  # webhook: an optional bearer token (env: or file: only)
    rollup = false                 # webhook and jsonl: rollups instead of per-tenant events

    [[sinks]]
    kind = "teams"
    target = "env:TEAMS_WORKFLOW_URL"
    auth = "azure"                 # the trigger's token from azure-identity; default "anyone"

Secrets never come from the command line: a URL that is a secret (Slack's, a Workflows trigger's)
is named by ``env:`` or ``file:``; signing secrets and tokens only by them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .sinks import JsonlSink, Sink

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "KINDS",
    "check_names",
    "load_config",
    "parse_sink_spec",
    "sink_from_table",
    "sinks_from",
]

KINDS = ("jsonl", "webhook", "teams", "slack")
_KEYS = {"name", "kind", "target", "secret", "token", "rollup", "auth", "cloud", "timeout"}


def load_config(path: str | Path) -> dict[str, Any]:
    """The TOML file at ``path`` (``ValueError`` naming the file and the problem)."""
    try:
        with open(path, "rb") as file:
            loaded: dict[str, Any] = tomllib.load(file)
            return loaded
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: is not valid TOML ({exc})") from None


def parse_sink_spec(spec: str) -> dict[str, Any]:
    """``[NAME=]KIND:TARGET`` as a sink table."""
    name, sep, rest = spec.partition("=")
    if not sep or ":" in name or not name:
        name, rest = "", spec
    kind, sep, target = rest.partition(":")
    if not sep or not target:
        raise ValueError(
            f"a sink is [NAME=]KIND:TARGET, such as jsonl:events.jsonl or slack:env:SLACK_URL, "
            f"got {_shown(spec)!r}"
        )
    table: dict[str, Any] = {"kind": kind, "target": target}
    if name:
        table["name"] = name
    return table


def sink_from_table(
    table: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    stdout: TextIO | None = None,
    rollup: bool = False,
    cloud: str = "public",
) -> Sink:
    """One sink from its table (a spec or a ``[[sinks]]`` entry). ``rollup`` makes every sink take
    rollups (``--rollup``); ``cloud`` is the Teams trigger's default cloud."""
    unknown = sorted(set(table) - _KEYS)
    kind = table.get("kind")
    name = str(table.get("name") or kind)
    if unknown:
        raise ValueError(f"sink {name!r}: unknown setting {unknown[0]!r} (known: {sorted(_KEYS)})")
    if kind not in KINDS:
        raise ValueError(f"sink {name!r}: unknown sink kind {kind!r} ({', '.join(KINDS)})")
    target = table.get("target")
    if not isinstance(target, str) or not target:
        raise ValueError(f"sink {name!r}: needs a target")
    wants_rollup = bool(table.get("rollup", False)) or rollup
    if kind == "jsonl":
        for key in ("secret", "token", "auth"):
            if key in table:
                raise ValueError(f"sink {name!r}: a jsonl sink has no {key}")
        return JsonlSink(target, name=name, stdout=stdout, rollup=wants_rollup)
    from .http_sinks import http_sink

    credential = None
    auth = table.get("auth", "anyone")
    if auth not in ("anyone", "azure"):
        raise ValueError(f"sink {name!r}: auth is 'anyone' or 'azure', not {auth!r}")
    if auth == "azure":
        if kind != "teams":
            raise ValueError(f"sink {name!r}: auth = 'azure' is for teams sinks")
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return http_sink(
        kind,
        target,
        name=name,
        environ=environ,
        secret=table.get("secret"),
        token=table.get("token"),
        credential=credential,
        cloud=table.get("cloud", cloud),
        rollup=wants_rollup,
        timeout=float(table.get("timeout", 10.0)),
    )


def sinks_from(
    specs: Sequence[str],
    config: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str],
    stdout: TextIO | None = None,
    rollup: bool = False,
    cloud: str = "public",
) -> list[Sink]:
    """Every sink of ``specs`` and of the config's ``[[sinks]]``; names must differ."""
    tables: list[Mapping[str, Any]] = [parse_sink_spec(spec) for spec in specs]
    for table in tables:
        if table["kind"] in ("teams", "slack") and "://" in table["target"]:
            # A chat webhook's URL is its password: it would stay in shell history and ps output.
            raise ValueError(
                f"sink {table.get('name') or table['kind']!r}: a {table['kind']} URL is a secret; "
                f"give it as {table['kind']}:env:VARNAME or {table['kind']}:file:PATH (or in --config)"
            )
    if config is not None:
        extra = sorted(set(config) - {"sinks"})
        if extra:
            raise ValueError(f"unknown section {extra[0]!r} in the config (known: sinks)")
        listed = config.get("sinks", [])
        if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
            raise ValueError("sinks must be an array of tables: [[sinks]]")
        tables += listed
    sinks = [
        sink_from_table(t, environ=environ, stdout=stdout, rollup=rollup, cloud=cloud)
        for t in tables
    ]
    return check_names(sinks)


def check_names(sinks: list[Sink]) -> list[Sink]:
    """``sinks``, once no two of them share a name (``ValueError`` naming the first that does)."""
    names = [s.name for s in sinks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two sinks are named {twice[0]!r}: name them NAME=KIND:TARGET")
    return sinks


def _shown(spec: str) -> str:
    """A spec as it may be shown: a URL's path and query are secrets for chat webhooks."""
    head, sep, _ = spec.partition("://")
    if not sep:
        return spec[:80]
    host = _.split("/", 1)[0]
    return f"{head}://{host}/…"
