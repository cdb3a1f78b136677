"""Which API and operation a command line means, and the check of its filters against them
(before any request: a bad filter is a usage error, not the same failure for every tenant)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from .._odata import build_select
from . import registry
from .errors import UsageError
from .filters import FILTERS
from .registry import API_ENV, APIS, DEFAULT_API, Operation

SCANNING = ("scan", "demo")
_KIND = {"legacy": "legacy API", "graph": "Microsoft Graph"}


def _and(names: tuple[str, ...] | list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def resolve_api(
    args: argparse.Namespace, environ: Mapping[str, str], *, use_environment: bool = True
) -> Operation | None:
    """Settle ``args.api`` (and a scan's or the demo's default ``args.operation``) and the base URL;
    return the operation (``None`` for commands that are not one).

    A command or operation of one API picks it; naming the other API is a usage error. Otherwise the
    ``--api`` flag, then ``$SERVICECOMMS_API``, then Graph. The base URL variable is the chosen API's
    own, so that a legacy emulator URL in the environment is never used for Graph.
    """
    environment_api = (environ.get(API_ENV) or None) if use_environment else None
    if environment_api is not None and environment_api not in APIS:
        raise UsageError(f"${API_ENV} must be legacy or graph, got {environment_api!r}")
    command: str = args.command
    if command == "emulator":
        return None
    scanning = command in SCANNING
    explicit: str | None = getattr(args, "api", None)
    name: str | None = args.operation if scanning else command
    if command in ("incident-report", "watch"):
        apis: tuple[str, ...] = ("graph",)
    elif name is None:
        apis = ()
    else:
        apis = registry.apis_of(name)
    if not apis:
        api = explicit or environment_api or DEFAULT_API
        op: Operation | None = registry.default_operation(api)
        args.operation = op.name if op is not None else None
    else:
        subject = f"--operation {name}" if scanning else command
        what = "operation" if scanning else "command"
        if explicit is not None and explicit not in apis:
            other = apis[0]
            theirs = _and(list(registry.names(explicit)))
            raise UsageError(
                f"{subject} is a {_KIND[other]} {what} (drop --api {explicit}); "
                f"with --api {explicit} use {theirs.replace(' and ', ' or ')}"
            )
        api = explicit or (apis[0] if len(apis) == 1 else environment_api or apis[0])
        op = registry.find(api, name) if name is not None else None
    args.api = api
    if getattr(args, "base_url", None) is None and hasattr(args, "base_url") and use_environment:
        args.base_url = environ.get(APIS[api].base_url_env) or None
    shape: str | None = getattr(args, "shape", None)
    if shape is not None and op is not None:
        shaped = registry.find(api, op.name, shape)
        if shaped is None:
            raise UsageError(
                f"--shape {shape}: {op.name} with --api {api} has only its own records"
                + (" (legacy-shaped: messages --api graph)" if shape == "legacy" else "")
            )
        op = shaped
    return op


def bind(args: argparse.Namespace, op: Operation) -> Callable[[Any], Any]:
    """``op``'s per-tenant call with the filters given, each checked against the API and the
    operation, and ``--select`` against the model."""
    options: dict[str, Any] = {"select": getattr(args, "select", None)}
    for dest, spec in FILTERS.items():
        value = getattr(args, dest, None)
        options[dest] = value
        if value is None or dest == "select" or dest in op.filters:
            continue
        flag = spec.flag_for(value)
        shaped = registry.find(op.api, op.name, "legacy") if op.shape is None else None
        if shaped is not None and shaped is not op and dest in shaped.filters:
            raise UsageError(
                f"{flag} is a legacy API filter: with --api {op.api} it needs --shape legacy "
                f"({op.name} --shape legacy), or use --api legacy"
            )
        here = registry.accepting(dest, op.api)
        if here:
            raise UsageError(f"{flag} applies to {_and(here)} only, not {op.name}")
        other = next(api for api in APIS if api != op.api)
        theirs = registry.accepting(dest, other)
        if op.api == "graph":
            raise UsageError(
                f"{flag} is a legacy API filter ({_and(theirs)} with --api legacy), not one of "
                "Microsoft Graph's"
            )
        raise UsageError(
            f"{flag} is a Microsoft Graph filter: it needs --api graph ({_and(theirs)})"
        )
    try:
        build_select(options["select"], op.model)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc).replace("select:", "--select:", 1)) from None
    return op.bind(options)


def retired_hint(op: Operation, *, tenant: str | None = None) -> str:
    """What to run instead of a legacy operation once its endpoint answered that it is retired:
    the single-tenant Graph command for ``tenant``, else the Graph scan."""
    successor = op.successor or registry.default_operation("graph").name
    if tenant is not None:
        suggestion = f"servicecomms {successor} --tenant {tenant}"
    else:
        name, _, rest = successor.partition(" ")
        rest = rest.replace("--api graph", "").strip()
        suggestion = " ".join(
            part for part in ("servicecomms scan --api graph --operation", name, rest) if part
        )
    return (
        "Microsoft retired the legacy endpoint in its public cloud; use Microsoft Graph: "
        + suggestion
    )
