"""The emulator's command line: its options, and serving until Ctrl-C with one-line errors.

``python -m servicecomms_async.emulator`` and ``servicecomms emulator`` both run this, so the two can
never drift apart. The options' defaults are :class:`EmulatorConfig`'s own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .app import run_forever
from .clock import ScaledClock
from .config import EmulatorConfig, TimelineConfig
from .limits import GRAPH_APP_WINDOWS, GRAPH_TENANT_WINDOWS, GraphLimits, Window, parse_windows
from .server import BindError, check_loopback_host, check_port


class CommandError(Exception):
    """A one-line reason the emulator cannot start, for ``error: ...`` and exit code 2."""


def _argument_type(
    convert: Callable[[str], Any], check: Callable[[Any], Any], expected: str
) -> Any:
    """An argparse type: ``convert`` the text ("expected ..." when it cannot), then ``check`` it
    (its own message when it refuses)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options, grouped as "server" and "data", with their defaults in ``--help``."""
    default: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(EmulatorConfig)}
    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        type=_argument_type(
            str, check_loopback_host, "a loopback address (127.0.0.1, ::1, localhost)"
        ),
        default="127.0.0.1",
        help="loopback address to listen on: 127.0.0.1, ::1 or localhost (default: %(default)s)",
    )
    server.add_argument(
        "--port",
        type=_argument_type(int, check_port, "a TCP port from 0 to 65535"),
        default=8080,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    server.add_argument(
        "--tenants-file",
        metavar="PATH",
        help="write every tenant id here, one a line (for scan --tenants), once listening",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--tenants",
        type=int,
        default=default["tenants"],
        metavar="N",
        help="tenant ids (default: %(default)s)",
    )
    data.add_argument(
        "--seed",
        type=int,
        default=default["seed"],
        help="the same seed, the same data (default: %(default)s)",
    )
    data.add_argument(
        "--shape",
        choices=("real", "spec"),
        default=default["shape"],
        help="legacy routes: what the service sent (real) or what it documented (spec) "
        "(default: %(default)s)",
    )
    data.add_argument(
        "--messages-per-tenant",
        type=int,
        default=default["messages_per_tenant"],
        metavar="N",
        help="legacy messages per tenant; Graph's issues and posts come from them "
        "(default: %(default)s)",
    )
    data.add_argument(
        "--history-days",
        type=int,
        default=default["history_days"],
        metavar="N",
        help="days of legacy HistoricalStatus, 1 to 7 (default: %(default)s)",
    )
    data.add_argument(
        "--paging",
        choices=("skip", "nextlink"),
        default=default["paging"],
        help="legacy Messages: $skip only (as the service did) or with @odata.nextLink "
        "(default: %(default)s)",
    )
    data.add_argument(
        "--latency",
        type=float,
        default=default["latency"],
        metavar="SECONDS",
        help="added to every request (default: %(default)s)",
    )
    data.add_argument(
        "--latency-jitter",
        type=float,
        default=default["latency_jitter"],
        metavar="SECONDS",
        help="up to this much more or less latency (default: %(default)s)",
    )
    data.add_argument(
        "--degraded-ratio",
        type=float,
        default=default["degraded_ratio"],
        metavar="RATIO",
        help="share of tenants with an active incident, 0 to 1 (default: %(default)s)",
    )
    timeline = parser.add_argument_group("timeline (a world that moves)")
    moving = TimelineConfig()
    timeline.add_argument(
        "--timeline-speed",
        type=float,
        default=None,
        metavar="SPEED",
        help="make the world move at SPEED times real time (60: a minute is an hour); "
        "without it the data is static",
    )
    timeline.add_argument(
        "--incidents-per-day",
        type=float,
        default=moving.global_incidents_per_day,
        metavar="N",
        help="new incidents a day across the services, seen by every subscribed tenant "
        "(default: %(default)s)",
    )
    timeline.add_argument(
        "--tenant-incidents-per-day",
        type=float,
        default=moving.tenant_incidents_per_day,
        metavar="N",
        help="new incidents a day for each tenant alone (default: %(default)s)",
    )
    timeline.add_argument(
        "--posts-per-day",
        type=float,
        default=moving.messages_per_day,
        metavar="N",
        help="new Message Center posts a day (default: %(default)s)",
    )
    _add_limit_arguments(parser)


def _windows_option(flag: str) -> Callable[[str], tuple[Window, ...]]:
    """An argparse type for ``N/SECONDS[,N/SECONDS...]`` (or ``none``: no windows)."""

    def parse(text: str) -> tuple[Window, ...]:
        if text.strip().lower() == "none":
            return ()
        try:
            windows = parse_windows(text, flag)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag}: ")) from None
        if not windows:
            raise argparse.ArgumentTypeError(
                "expected REQUESTS/SECONDS windows such as 240/60,800/3600, or none"
            )
        return windows

    return parse


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    def text(windows: tuple[Window, ...]) -> str:
        return ",".join(map(str, windows))

    limits = parser.add_argument_group(
        "Microsoft Graph request limits (off unless one of these is given)"
    )
    limits.add_argument(
        "--graph-limits",
        action="store_true",
        help="answer 429 with Retry-After past Graph's documented limits on "
        f"/admin/serviceAnnouncement/: {text(GRAPH_TENANT_WINDOWS)} (requests/seconds) per app "
        f"per tenant and {text(GRAPH_APP_WINDOWS)} per app",
    )
    limits.add_argument(
        "--graph-limit-per-tenant",
        type=_windows_option("--graph-limit-per-tenant"),
        default=None,
        metavar="N/SECONDS,...",
        help="limits per app per tenant instead of Graph's (none: no per-tenant limit); "
        "turns the limits on",
    )
    limits.add_argument(
        "--graph-limit-per-app",
        type=_windows_option("--graph-limit-per-app"),
        default=None,
        metavar="N/SECONDS,...",
        help="limits per app across its tenants instead of Graph's (none: no app-wide limit); "
        "turns the limits on",
    )


def limits_from(args: argparse.Namespace) -> GraphLimits | None:
    """The :class:`GraphLimits` the options ask for (None: no limits); an option left out keeps
    Graph's documented windows."""
    per_tenant = getattr(args, "graph_limit_per_tenant", None)
    per_app = getattr(args, "graph_limit_per_app", None)
    if not getattr(args, "graph_limits", False) and per_tenant is None and per_app is None:
        return None
    return GraphLimits(
        per_tenant=GRAPH_TENANT_WINDOWS if per_tenant is None else per_tenant,
        per_app=GRAPH_APP_WINDOWS if per_app is None else per_app,
    )


def clock_from(args: argparse.Namespace) -> ScaledClock | None:
    """The clock ``--timeline-speed`` asks for (None: static data); a :class:`CommandError`."""
    speed = getattr(args, "timeline_speed", None)
    if speed is None:
        return None
    try:
        return ScaledClock(speed)
    except ValueError as exc:
        raise CommandError(f"--timeline-speed: {exc}") from None


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    """The :class:`EmulatorConfig` the options describe; a bad value is a :class:`CommandError`."""
    moving = TimelineConfig()
    try:
        timeline = TimelineConfig(
            global_incidents_per_day=getattr(
                args, "incidents_per_day", moving.global_incidents_per_day
            ),
            tenant_incidents_per_day=getattr(
                args, "tenant_incidents_per_day", moving.tenant_incidents_per_day
            ),
            messages_per_day=getattr(args, "posts_per_day", moving.messages_per_day),
        )
        return EmulatorConfig(
            seed=args.seed,
            tenants=args.tenants,
            shape=args.shape,
            messages_per_tenant=args.messages_per_tenant,
            history_days=args.history_days,
            paging=args.paging,
            latency=args.latency,
            latency_jitter=args.latency_jitter,
            degraded_ratio=args.degraded_ratio,
            timeline=timeline,
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def serve(args: argparse.Namespace, out: TextIO) -> None:
    """Serve until Ctrl-C (which returns normally), announcing on ``out``; raises CommandError."""
    config = config_from(args)
    clock = clock_from(args)
    graph_limits = limits_from(args)

    def announce(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_forever(
                    config,
                    args.host,
                    args.port,
                    tenants_file=args.tenants_file,
                    announce=announce,
                    clock=clock,
                    graph_limits=graph_limits,
                )
            )
    except BindError as exc:
        raise CommandError(f"--port: {exc}") from None
    except OSError as exc:  # the tenants file
        raise CommandError(
            f"--tenants-file: cannot write {args.tenants_file}: {exc.strerror or exc}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m servicecomms_async.emulator",
        description="Serve the embedded, deterministic emulator of both APIs (Microsoft Graph's "
        "/admin/serviceAnnouncement and the legacy Service Communications API) on loopback "
        "until Ctrl-C.",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), serve until Ctrl-C; return an exit code."""
    args = build_parser().parse_args(argv)
    try:
        serve(args, sys.stdout)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
