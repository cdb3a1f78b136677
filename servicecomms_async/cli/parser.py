"""The argument parser, built from the registry: one subcommand per operation name (with the
filters its operations accept), ``incident-report``, ``scan``, ``emulator`` and ``demo``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__, _constants
from ..clouds import CLOUDS
from ..scan import DEFAULT_CONCURRENCY
from ..sharding import check_shard_spec
from . import registry, types
from .errors import UsageError
from .filters import FILTERS, add_filter
from .output.records import FORMATS
from .registry import API_ENV, APIS, DEFAULT_API, OPERATIONS, Operation

TENANT_HELP = "tenant GUID or domain name"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own messages, in the one-line form of every other usage error.
        raise UsageError(f"{self.prog}: {message} (see: {self.prog} --help)")


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default after its help, where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text == argparse.SUPPRESS
            or "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or isinstance(action, (argparse._CountAction, argparse._VersionAction))
            or not action.option_strings
        ):
            return action.help
        return f"{text} (default: {default})" if text else f"default: {default}"


def _api_list(ops: Sequence[Operation]) -> list[str]:
    return list(dict.fromkeys(op.api for op in ops))


def _add_api(
    parser: argparse.ArgumentParser, ops: Sequence[Operation], *, environment: bool
) -> None:
    apis = _api_list(ops)
    if len(apis) == 1:
        # Not shown: the command belongs to one API. Naming the other is a clear usage error.
        parser.add_argument("--api", choices=tuple(APIS), help=argparse.SUPPRESS)
        return
    source = f"${API_ENV}, else {DEFAULT_API}" if environment else DEFAULT_API
    parser.add_argument(
        "--api",
        choices=tuple(APIS),
        help=f"graph (Microsoft Graph) or legacy (manage.office.com, retired in Microsoft's public "
        f"cloud); default {source}, or the API of an operation only one has",
    )


def _add_connection(parser: argparse.ArgumentParser, ops: Sequence[Operation]) -> None:
    _add_api(parser, ops, environment=True)
    group = parser.add_argument_group("connection and authentication")
    group.add_argument(
        "--cloud",
        choices=sorted(CLOUDS),
        default="public",
        help="Microsoft cloud: its API host, token scope and sign-in authority",
    )
    apis = _api_list(ops)
    envs = " or ".join(f"${APIS[api].base_url_env} ({api})" for api in apis)
    group.add_argument(
        "--base-url",
        type=types.base_url(),
        help=f"API root, e.g. the emulator's (default {envs}, else the cloud's)",
    )
    group.add_argument(
        "--token",
        help="a static bearer token, e.g. the emulator's (default $SERVICECOMMS_TOKEN); "
        "otherwise azure-identity is used",
    )
    group.add_argument(
        "--token-template",
        metavar="TEMPLATE",
        type=types.token_template,
        help="a static token per tenant, {tenant} replaced by its id, e.g. emulator-app.{tenant} "
        "for the emulator's Graph routes (Graph reads the tenant from the token)",
    )
    group.add_argument("--client-id", help="app (client) id (default $AZURE_CLIENT_ID)")
    group.add_argument(
        "--auth-tenant",
        help="the app's home tenant (default $AZURE_TENANT_ID); the secret comes only from "
        "$AZURE_CLIENT_SECRET",
    )
    group.add_argument(
        "--client-certificate",
        metavar="PATH",
        help="PEM/PKCS12 certificate (default $AZURE_CLIENT_CERTIFICATE_PATH)",
    )
    group.add_argument(
        "--device-code",
        action="store_true",
        help="sign in as an admin with a code shown on stderr, in a browser anywhere "
        "(--client-id: the public client app; --auth-tenant: the admin's tenant)",
    )
    group.add_argument(
        "--interactive",
        action="store_true",
        help="sign in as an admin in this machine's browser (options as --device-code)",
    )
    group.add_argument(
        "--timeout",
        type=types.seconds("--timeout"),
        default=_constants.TOTAL_TIMEOUT,
        metavar="SECONDS",
        help="per request",
    )
    group.add_argument(
        "--attempts",
        type=types.count("--attempts"),
        default=_constants.RETRY_ATTEMPTS,
        metavar="N",
        help="tries per request",
    )
    group.add_argument(
        "--budget-per-tenant",
        type=types.windows("--budget-per-tenant"),
        metavar="N/SECONDS,...",
        help="request budget per tenant, e.g. 240/60,800/3600: a request waits for room instead of "
        "being throttled (default on Graph: 240/60,800/3600; none on the legacy API)",
    )
    group.add_argument(
        "--budget-per-app",
        type=types.windows("--budget-per-app"),
        metavar="N/SECONDS,...",
        help="request budget for all tenants together (default on Graph: 130000/10)",
    )
    group.add_argument(
        "--no-budget", action="store_true", help="no request budget: only react to 429s"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr, with each credential's reason for failing (-vv: debug)",
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table for people; json, jsonl or csv for programs",
    )
    group.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write here, not to stdout (written under a temporary name, in place once complete)",
    )
    group.add_argument(
        "--wide",
        action="store_true",
        help="tables at their full width (by default they wrap text to fit the terminal; ids and "
        "dates are never cut)",
    )


def _scope(dest: str, takers: Sequence[Operation], ops: Sequence[Operation]) -> str:
    """`` [issues, messages]``: where a filter applies, when not to every operation of the command."""
    apis = _api_list(ops)
    if all(
        sum(op.api == api for op in takers) == sum(op.api == api for op in ops)
        for api in _api_list(takers)
    ):
        return ""  # every operation of the API (or APIs) in the group's title takes it
    if len(apis) == 1:
        return f" [{', '.join(op.name for op in takers)}]"
    parts = []
    for api in apis:
        mine = [op.name for op in takers if op.api == api]
        if mine:
            parts.append(f"{api}: {', '.join(mine)}")
    return f" [{'; '.join(parts)}]"


def _add_filters(parser: argparse.ArgumentParser, ops: Sequence[Operation]) -> None:
    """The filters ``ops`` accept, grouped by API when there are two; every other filter is known
    but hidden, so that giving it says where it belongs."""
    apis = _api_list(ops)
    groups: dict[str, Any] = {}

    def group(title: str) -> Any:
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        return groups[title]

    for dest, spec in FILTERS.items():
        takers = [op for op in ops if dest == "select" or dest in op.filters]
        if not takers:
            add_filter(parser, spec, argparse.SUPPRESS)
            continue
        taker_apis = _api_list(takers)
        if len(apis) == 1:
            title = "filters"
        elif len(taker_apis) == len(apis):
            title = "filters (both APIs)"
        else:
            api = APIS[taker_apis[0]]
            title = f"filters ({api.label}, --api {api.name})"
        add_filter(group(title), spec, spec.help + _scope(dest, takers, ops))


def _operations(name: str) -> list[Operation]:
    ops = [registry.find(api, name) for api in registry.apis_of(name)]
    return [op for op in ops if op is not None]


def _help_of(ops: Sequence[Operation]) -> str:
    first, *others = ops
    return "; ".join([first.help, *(f"with --api {op.api}: {op.help}" for op in others)])


def build_parser(*, emulator_options: bool = True) -> Parser:
    """The whole parser. ``emulator_options=False`` leaves the emulator's own options out (they
    read their defaults from the emulator, which is imported only when that command runs)."""
    parser = Parser(
        prog="servicecomms",
        description="Microsoft 365 service health, through Microsoft Graph (the default) or the "
        "legacy Service Communications API: one tenant, or a scan of many.",
        epilog="Exit codes: 0 all tenants succeeded, 1 some failed, 2 usage error, 130 interrupted.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # -v before the command too (a subcommand's own default would overwrite a shared dest).
    parser.add_argument(
        "-v", "--verbose", dest="global_verbose", action="count", default=0, help=argparse.SUPPRESS
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    def command(name: str, help_text: str, description: str | None = None) -> Parser:
        sub: Parser = commands.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            formatter_class=HelpFormatter,
        )
        return sub

    for name in registry.names():
        ops = _operations(name)
        sub = command(name, _help_of(ops))
        sub.add_argument("--tenant", required=True, type=types.tenant_id(), help=TENANT_HELP)
        _add_connection(sub, ops)
        _add_output(sub)
        _add_filters(sub, ops)
        if registry.shapes_of(name):
            _add_shape(sub)

    graph_ops = [op for op in OPERATIONS if op.api == "graph"]
    report = command(
        "incident-report",
        "download an issue's post-incident review document (Microsoft Graph)",
        "Download the post-incident review document of one issue, as the bytes Microsoft Graph "
        "sends, to a file or to stdout when stdout is not a terminal.",
    )
    report.add_argument("--tenant", required=True, type=types.tenant_id(), help=TENANT_HELP)
    report.add_argument(
        "--id", dest="issue_id", required=True, type=types.segment("--id"), help="e.g. EX123456"
    )
    report.add_argument(
        "--output", "-o", metavar="FILE", help="write the document here (- or none: stdout)"
    )
    _add_connection(report, graph_ops[:1])

    scan = command(
        "scan",
        "run one operation for many tenants, with progress and a summary",
        "Run one operation for every tenant in a file (one per line, # comments).",
    )
    group = scan.add_argument_group("scan")
    group.add_argument(
        "--tenants",
        required=True,
        metavar="FILE",
        help="file of tenant ids, one per line (# comments allowed); - reads stdin",
    )
    _add_operation(group)
    group.add_argument(
        "--concurrency",
        type=types.count("--concurrency"),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="tenants at once",
    )
    group.add_argument(
        "--tenant-timeout",
        type=types.seconds("--tenant-timeout"),
        metavar="SECONDS",
        help="how long one tenant may take in all (retries included) before it counts as failed",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_shard(group)
    group.add_argument(
        "--failures",
        metavar="FILE",
        help="also write the failed tenants here, one JSON object a line (tenant, error, status, "
        "code, message, request_id)",
    )
    group.add_argument(
        "--summary-format",
        choices=("table", "json"),
        default="table",
        help="the summary for people, or one JSON object (totals, tables, failures)",
    )
    _add_connection(scan, OPERATIONS)
    _add_output(scan)
    _add_filters(scan, OPERATIONS)
    _add_shape(scan)

    _add_watch(command("watch", WATCH_HELP, WATCH_DESCRIPTION), graph_ops)

    emulator = command(
        "emulator",
        "serve the embedded emulator (both APIs) on loopback until Ctrl-C",
        "Serve the embedded, deterministic emulator of both APIs (Microsoft Graph's "
        "/admin/serviceAnnouncement and the legacy routes) until Ctrl-C.",
    )
    if emulator_options:
        _add_emulator_options(emulator)

    demo = command(
        "demo",
        "scan a few hundred emulated tenants in-process: no credentials, no network",
        "Start the embedded emulator with simulated tenants (some degraded, some throttled or "
        "failing), scan them all and print the summary.",
    )
    _add_api(demo, OPERATIONS, environment=False)
    demo.add_argument(
        "mode",
        nargs="?",
        choices=("scan", "watch"),
        default="scan",
        help="scan: a scan with its summary (the default); watch: a live feed of the watcher's "
        "events while the emulated world moves, time sped up",
    )
    demo.add_argument(
        "--tenants",
        type=types.whole_number(),
        metavar="N",
        help="simulated tenants (default 300 for scan, 25 for watch)",
    )
    _add_operation(demo)
    demo.add_argument(
        "--concurrency",
        type=types.count("--concurrency"),
        default=25,
        metavar="N",
        help="tenants at once",
    )
    demo.add_argument(
        "--seed", type=types.whole_number(), default=2024, help="the same seed, the same show"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    feed = demo.add_argument_group("demo watch")
    feed.add_argument(
        "--cycles", type=types.count("--cycles"), default=12, metavar="N", help="polls to show"
    )
    feed.add_argument(
        "--step",
        type=types.duration("--step"),
        default=1800.0,
        metavar="DURATION",
        help="emulated time between polls; seconds",
    )
    feed.add_argument(
        "--pause",
        type=types.duration("--pause"),
        default=0.5,
        metavar="DURATION",
        help="real time between polls; seconds",
    )
    _add_output(demo)
    return parser


WATCH_HELP = (
    "poll tenants on Microsoft Graph and deliver what changed as events (status: the state)"
)
WATCH_DESCRIPTION = (
    "Poll every tenant's service health on Microsoft Graph, keep its state in a SQLite file, and "
    "deliver each change (an issue opened, updated, resolved or reopened; a Message Center post "
    "published or updated; a service's status; a tenant failing or recovering) as a CloudEvent, at "
    "least once. `watch status --state PATH` prints each tenant's state."
)


def _add_watch(watch: argparse.ArgumentParser, graph_ops: Sequence[Operation]) -> None:
    """``watch`` polls (``--once`` or every ``--interval``); ``watch status`` reads the state file."""
    group = watch.add_argument_group("watch")
    group.add_argument("--tenant", type=types.tenant_id(), help=TENANT_HELP)
    group.add_argument(
        "--tenants",
        metavar="FILE",
        help="file of tenant ids, one per line (# comments allowed); - reads stdin",
    )
    group.add_argument(
        "--state",
        metavar="PATH",
        help="the SQLite state file (created on the first run); with --shard it must contain "
        "{shard}, replaced by the shard's index (watch-{shard}.db: watch-0.db, watch-1.db, ...)",
    )
    _add_shard(group)
    when = group.add_mutually_exclusive_group()
    when.add_argument(
        "--once",
        action="store_true",
        help="one cycle, deliver, exit (0: all polled, 1: some failed)",
    )
    when.add_argument(
        "--interval",
        type=types.duration("--interval"),
        default=300.0,
        metavar="DURATION",
        help="poll every DURATION (300, 90s, 5m, 1h) until Ctrl-C or SIGTERM; seconds",
    )
    group.add_argument(
        "--baseline",
        choices=("active", "all", "none"),
        default="active",
        help="what a tenant's first poll emits: its unresolved issues and unhealthy services, "
        "everything, or nothing",
    )
    group.add_argument(
        "--sink",
        action="append",
        metavar="[NAME=]KIND:TARGET",
        help="where events go (repeatable): jsonl:PATH (one CloudEvent a line; jsonl:- is stdout, "
        "the default), webhook:URL (signed with $SERVICECOMMS_WEBHOOK_SECRET), teams:env:VAR or "
        "slack:env:VAR (the URL from a variable or file:PATH: chat URLs are secrets)",
    )
    _add_delivery(group)
    group.add_argument(
        "--rollup",
        action="store_true",
        help="every sink gets one event per change across tenants (teams and slack always do)",
    )
    group.add_argument(
        "--concurrency",
        type=types.count("--concurrency"),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="tenants at once",
    )
    group.add_argument(
        "--tenant-timeout",
        type=types.seconds("--tenant-timeout"),
        metavar="SECONDS",
        help="how long one tenant's poll may take in all before it counts as failed",
    )
    group.add_argument(
        "--metrics-port",
        type=types.checked(int, _port, expected="a port number"),
        metavar="PORT",
        help="serve the OpenTelemetry metrics (staleness per tenant, requests, throttling, "
        "deliveries, outbox depth) in Prometheus' text format at http://HOST:PORT/metrics while "
        "watching; needs servicecomms-async[otel]",
    )
    group.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address --metrics-port listens on (loopback unless told otherwise)",
    )
    _add_connection(watch, graph_ops[:1])
    subcommands = watch.add_subparsers(
        dest="watch_command", metavar="SUBCOMMAND", parser_class=Parser
    )
    readers = (
        (
            "status",
            "each tenant's last successful poll, cursor, failures in a row and pending events",
            "Print each tenant's state from a watch state file (read-only).",
        ),
        (
            "deliveries",
            "the pending and dead deliveries, per event and sink",
            "List the deliveries of a watch state file that are pending or dead (read-only).",
        ),
    )
    for name, help_text, description in readers:
        reader = subcommands.add_parser(
            name, help=help_text, description=description, formatter_class=HelpFormatter
        )
        reader.add_argument("--state", metavar="PATH", required=True, help="the watch state file")
        reader.add_argument("--format", choices=("table", "json"), default="table", help="output")
        reader.add_argument("--wide", action="store_true", help="tables at their full width")
    replay = subcommands.add_parser(
        "replay",
        help="deliver events to a sink again (dead ones, one event, or all since a time)",
        description="Make deliveries to one sink pending again. With the sink's definition "
        "(--sink NAME=KIND:TARGET, or --config with it) they are delivered now; otherwise the next "
        "watch run delivers them.",
        formatter_class=HelpFormatter,
    )
    replay.add_argument("--state", metavar="PATH", required=True, help="the watch state file")
    replay.add_argument(
        "--sink", required=True, metavar="NAME[=KIND:TARGET]", help="the sink, by its name"
    )
    replay.add_argument("--config", metavar="FILE", help="the watch's TOML file of [[sinks]]")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--since", type=types.when("--since"), metavar="TIME", help="events since")
    which.add_argument("--id", dest="event_id", type=types.text("--id"), help="one event")
    which.add_argument("--dead", action="store_true", help="the dead deliveries")
    _add_delivery(replay, config=False)
    replay.add_argument("--cloud", choices=sorted(CLOUDS), default="public", help="Teams' cloud")


def _add_delivery(group: Any, *, config: bool = True) -> None:
    """The delivery options of ``watch`` and ``watch replay``."""
    if config:
        group.add_argument(
            "--config",
            metavar="FILE",
            help="a TOML file of [[sinks]] (name, kind, target, secret, token, rollup, auth)",
        )
    group.add_argument(
        "--delivery-attempts",
        type=types.count("--delivery-attempts"),
        default=_constants.DELIVERY_ATTEMPTS,
        metavar="N",
        help="tries per event and sink before it is dead",
    )
    group.add_argument(
        "--delivery-timeout",
        type=types.seconds("--delivery-timeout"),
        default=_constants.DELIVERY_TIMEOUT,
        metavar="SECONDS",
        help="how long a run waits for retries (Retry-After included) before leaving the rest pending",
    )


def _add_shard(group: Any) -> None:
    group.add_argument(
        "--shard",
        type=types.checked(str, check_shard_spec, expected="I/N"),
        metavar="I/N",
        help="only this shard's share of the tenants: shard I (0 to N-1) of N, by rendezvous "
        "hashing of the tenant id (stable: adding a shard moves only its share); auto/N takes I "
        "from $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)",
    )


def _add_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=registry.SHAPES,
        help="graph: Microsoft Graph's own records (default); legacy: the legacy API's records and "
        "columns, rebuilt from Graph (messages --api graph: incidents and Message Center posts)",
    )


def _add_operation(parser: Any) -> None:
    defaults = "; ".join(f"{api}: {registry.default_operation(api).name}" for api in APIS)
    choices = "; ".join(f"{api}: {', '.join(registry.names(api))}" for api in APIS)
    parser.add_argument(
        "--operation",
        choices=registry.names(),
        metavar="OPERATION",
        help=f"{choices} (default {defaults})",
    )


def _add_emulator_options(parser: argparse.ArgumentParser) -> None:
    # The emulator owns its command line; importing it is left for when that command runs.
    from ..emulator.command import add_arguments

    add_arguments(parser)


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"--metrics-port must be from 1 to 65535, got {value}")
    return value
