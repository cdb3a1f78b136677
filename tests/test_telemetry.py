"""OpenTelemetry: the span tree and the metrics of a list call, a scan with faults and a watch cycle,
captured by the SDK's in-memory exporter and reader against the emulator over loopback; no token,
secret or URL query value in any span attribute or metric label; tenant ids hashed on request; the
Prometheus endpoint of ``servicecomms watch --metrics-port``; and the library without OpenTelemetry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from servicecomms_async import (
    ForbiddenError,
    RetryPolicy,
    ServiceCommsSession,
    TenantFailed,
    telemetry,
)
from servicecomms_async.cli import main
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware
from servicecomms_async.emulator.graph import graph_error
from servicecomms_async.watch import MemoryStateStore, SQLiteStateStore, Watcher
from servicecomms_async.watch.outbox import Outbox
from servicecomms_async.watch.sinks import DeliveryError, JsonlSink

from .conftest import SECRETS, TOKEN, ThreadedEmulator, leaks

REPO = Path(__file__).resolve().parents[1]


class Capture:
    """What the in-memory exporter and reader hold."""

    def __init__(self, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.exporter = spans
        self.reader = reader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = list(self.exporter.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every data point by metric name, with its attributes."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        found.setdefault(metric.name, []).append((dict(point.attributes), point))
        return found

    def total(self, name: str, **match: Any) -> float:
        """A counter's sum (or a histogram's count) over the points whose attributes match."""
        total = 0.0
        for attributes, point in self.metrics().get(name, []):
            wanted = {k.replace("__", "."): v for k, v in match.items()}
            if all(attributes.get(k) == v for k, v in wanted.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total


@pytest.fixture
def otel() -> Iterator[Capture]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.configure(
        tracer_provider=tracer_provider, meter_provider=meter_provider, enabled=True
    )
    capture = Capture(exporter, reader)
    try:
        yield capture
        assert_private(capture)  # every test's spans and labels, whatever it checked itself
    finally:
        telemetry.configure(
            tracer_provider=trace.get_tracer_provider(),
            meter_provider=metrics.get_meter_provider(),
            hash_tenant_ids=False,
        )
        meter_provider.shutdown()
        tracer_provider.shutdown()


def assert_private(capture: Capture) -> None:
    """No token, secret, or URL query value in a span attribute, event or metric label."""
    texts: list[str] = []
    for span in capture.spans():
        texts += [f"{span.name}"]
        texts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            texts += [f"{k}={v}" for k, v in (event.attributes or {}).items()]
        if span.status.description:
            texts.append(span.status.description)
        url = (span.attributes or {}).get("url.full")
        if isinstance(url, str) and "?" in url:
            for part in url.split("?", 1)[1].split("&"):
                assert part.endswith("=" + telemetry.REDACTED), url
    for name, points in capture.metrics().items():
        for attributes, _ in points:
            texts += [f"{name} {k}={v}" for k, v in attributes.items()]
    assert texts, "nothing was recorded"
    leaked = [t for t in texts if leaks(t) or TOKEN in t or any(s in t for s in SECRETS)]
    assert not leaked, leaked[:3]
    # The values of the watcher's and the pagers' queries never appear: no filter, no date.
    assert not [
        t
        for t in texts
        if "lastModifiedDateTime" in t or "$filter=" in t.replace("$filter=REDACTED", "")
    ]
    assert not [t for t in texts if "Bearer" in t or "emulator-app." in t]


def children(capture: Capture, parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s
        for s in capture.spans(name)
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


@pytest.fixture
async def graph_emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(seed=7, tenants=4, messages_per_tenant=40)) as emulator:
        yield emulator


def graph_session(emu: Emulator, **options: Any) -> ServiceCommsSession[Any]:
    return ServiceCommsSession(
        token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url, **options
    )


# -- a list call ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_list_call_is_one_span_from_its_first_page_to_its_end(
    graph_emu: Emulator, otel: Capture
) -> None:
    tenant = graph_emu.tenant_ids[0]
    async with graph_session(graph_emu) as session:
        issues = await session.graph(tenant).issues(page_size=5).collect()
        # Closed early: the span ends with the stream, with what it had read.
        async for _ in session.graph(tenant).messages(page_size=5):
            break
    listed = otel.spans("servicecomms.list issues")
    assert len(listed) == 1
    span = listed[0]
    assert span.attributes is not None
    assert span.attributes["servicecomms.tenant.id"] == tenant
    assert span.attributes["servicecomms.api"] == "graph"
    assert span.attributes["servicecomms.items"] == len(issues) > 5
    assert span.attributes["servicecomms.pages"] == -(-len(issues) // 5)
    assert span.status.status_code is StatusCode.UNSET
    (messages,) = otel.spans("servicecomms.list messages")
    assert messages.attributes is not None
    assert messages.attributes["servicecomms.pages"] == 1
    assert messages.attributes["servicecomms.items"] == 5
    assert "servicecomms.cancelled" in messages.attributes  # closed, not failed
    assert messages.status.status_code is StatusCode.UNSET


@pytest.mark.anyio
async def test_a_failed_list_call_records_the_error_type_only(otel: Capture) -> None:
    config = EmulatorConfig(seed=3, tenants=2, messages_per_tenant=0)
    tenant = Emulator(config).tenant_ids[0]
    faults = fault_middleware(FaultPlan(tenant_faults={tenant: Fault.FORBIDDEN}))
    async with (
        Emulator(config, middlewares=[faults]) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        with pytest.raises(ForbiddenError) as raised:
            await session.tenant(tenant).current_status().collect()
    (span,) = otel.spans("servicecomms.list CurrentStatus")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "403"
    assert span.attributes["servicecomms.api"] == "legacy"
    assert str(raised.value) not in span.status.description  # the type, never the message
    assert not span.events  # no exception event: its message names the URL and the tenant


@pytest.mark.anyio
async def test_a_list_call_has_a_client_span_per_http_attempt_and_the_duration_metric(
    graph_emu: Emulator, otel: Capture
) -> None:
    tenant = graph_emu.tenant_ids[0]
    async with graph_session(graph_emu) as session:
        issues = await session.graph(tenant).issues(page_size=5).collect()
    (listed,) = otel.spans("servicecomms.list issues")
    pages = -(-len(issues) // 5)
    attempts = children(otel, listed, "GET")
    assert len(attempts) == pages
    port = int(str(graph_emu.graph_base_url).split(":")[2].split("/")[0])
    for span in attempts:
        assert span.kind is SpanKind.CLIENT
        attributes = span.attributes or {}
        assert attributes["http.request.method"] == "GET"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == port
        assert attributes["http.response.status_code"] == 200
        assert "http.request.resend_count" not in attributes  # first attempts only
        assert "error.type" not in attributes
        assert str(attributes["url.full"]).startswith(f"http://127.0.0.1:{port}/")
    tokens = children(otel, listed, "servicecomms.get_token")
    assert len(tokens) == pages
    assert otel.total("http.client.request.duration", http__response__status_code=200) == pages
    assert otel.total("servicecomms.requests", http__response__status_code=200) == pages
    (point,) = [
        p for a, p in otel.metrics()["http.client.request.duration"] if a.get("error.type") is None
    ]
    assert set(otel.metrics()["http.client.request.duration"][0][0]) == {
        "http.request.method",
        "server.address",
        "server.port",
        "http.response.status_code",
    }
    assert 0 < point.sum < 30


# -- a scan with faults -----------------------------------------------------------------------------


def scan_faults(config: EmulatorConfig) -> tuple[list[str], Any]:
    tenants = Emulator(config).tenant_ids
    plan = FaultPlan(
        fail_first=1,  # every URL is throttled once, then answers
        kinds=(Fault.THROTTLE_429,),
        retry_after=0,
        tenant_faults={tenants[-1]: Fault.FORBIDDEN},
    )
    return tenants, fault_middleware(plan)


async def run_scan(config: EmulatorConfig, middleware: Any, tenants: Sequence[str]) -> list[Any]:
    async with (
        Emulator(config, middlewares=[middleware]) as emu,
        ServiceCommsSession(
            token=TOKEN, base_url=emu.base_url, retry=RetryPolicy(attempts=4)
        ) as session,
    ):
        async with session.scan(tenants, lambda t: t.current_status(), concurrency=3) as results:
            return [r async for r in results]


@pytest.mark.anyio
async def test_a_scan_is_one_span_over_its_tenants_list_calls_with_its_metrics(
    otel: Capture,
) -> None:
    config = EmulatorConfig(seed=5, tenants=6, messages_per_tenant=0)
    tenants, middleware = scan_faults(config)
    results = await run_scan(config, middleware, tenants)
    failed = [r for r in results if isinstance(r, TenantFailed)]
    assert [r.tenant_id for r in failed] == [tenants[-1]]
    (scan,) = otel.spans("servicecomms.scan")
    assert scan.attributes is not None
    assert scan.attributes["servicecomms.scan.tenants"] == 6
    assert scan.attributes["servicecomms.scan.succeeded"] == 5
    assert scan.attributes["servicecomms.scan.failed"] == 1
    assert scan.attributes["servicecomms.scan.concurrency"] == 3
    listed = children(otel, scan, "servicecomms.list CurrentStatus")
    assert sorted(str((s.attributes or {})["servicecomms.tenant.id"]) for s in listed) == sorted(
        tenants
    )
    assert {str((s.attributes or {}).get("error.type")) for s in listed} == {"None", "403"}
    assert otel.total("servicecomms.scan.tenants.failed", error__type="403") == 1
    assert otel.total("servicecomms.scan.tenants.failed") == 1
    assert otel.total("servicecomms.scan.duration") == 1


@pytest.mark.anyio
async def test_a_scan_with_faults_has_retry_spans_with_the_resend_count(otel: Capture) -> None:
    config = EmulatorConfig(seed=5, tenants=6, messages_per_tenant=0)
    tenants, middleware = scan_faults(config)
    await run_scan(config, middleware, tenants)
    (scan,) = otel.spans("servicecomms.scan")
    for listed in children(otel, scan, "servicecomms.list CurrentStatus"):
        attempts = sorted(
            children(otel, listed, "GET"),
            key=lambda s: int((s.attributes or {}).get("http.request.resend_count", 0)),
        )
        statuses = [(s.attributes or {})["http.response.status_code"] for s in attempts]
        if (listed.attributes or {}).get("error.type") == "403":
            assert statuses == [403]  # not retried
            assert (attempts[0].attributes or {})["error.type"] == "403"
            continue
        assert statuses == [429, 200]
        first, second = attempts
        assert "http.request.resend_count" not in (first.attributes or {})
        assert (first.attributes or {})["error.type"] == "429"
        assert first.status.status_code is StatusCode.ERROR
        assert (second.attributes or {})["http.request.resend_count"] == 1
        assert "error.type" not in (second.attributes or {})
        (wait,) = children(otel, listed, "servicecomms.retry_wait")
        assert (wait.attributes or {})["http.response.header.retry-after"] == ("0",)
        assert (wait.attributes or {})["servicecomms.retry.reason"] == "retry-after"
        assert first.end_time is not None and wait.start_time is not None
        assert second.start_time is not None and wait.end_time is not None
        assert first.end_time <= wait.start_time <= wait.end_time <= second.start_time
    assert otel.total("servicecomms.throttled", http__response__status_code=429) == 5
    assert otel.total("servicecomms.requests", http__response__status_code=429) == 5
    assert otel.total("servicecomms.requests", http__response__status_code=200) == 5
    assert otel.total("servicecomms.retry.wait", servicecomms__retry__reason="retry-after") == 5
    assert otel.total("http.client.request.duration", error__type="429") == 5


# -- a watch cycle ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_watch_cycle_spans_its_tenants_and_counts_events_and_staleness(
    graph_emu: Emulator, otel: Capture
) -> None:
    tenants = graph_emu.tenant_ids
    async with graph_session(graph_emu) as session:
        watcher = Watcher(session, tenants, MemoryStateStore())
        before = time.time()
        events = await watcher.poll()
    assert events
    (cycle,) = otel.spans("servicecomms.watch.cycle")
    assert cycle.attributes is not None
    assert cycle.attributes["servicecomms.watch.tenants"] == len(tenants)
    assert cycle.attributes["servicecomms.watch.succeeded"] == len(tenants)
    assert cycle.attributes["servicecomms.watch.events"] == len(events)
    (scan,) = children(otel, cycle, "servicecomms.scan")
    polls = children(otel, scan, "servicecomms.watch.tenant")
    assert sorted(str((s.attributes or {})[telemetry.TENANT]) for s in polls) == sorted(tenants)
    per_tenant = Counter(e.tenant_id for e in events)
    for span in polls:
        attributes = span.attributes or {}
        assert attributes["servicecomms.watch.events"] == per_tenant[attributes[telemetry.TENANT]]
        names = sorted(s.name for s in children(otel, span))
        assert names == [
            "servicecomms.list healthOverviews",
            "servicecomms.list issues",
            "servicecomms.list messages",
        ]
    by_type = Counter(str(e.type) for e in events)
    for kind, count in by_type.items():
        assert otel.total("servicecomms.watch.events", servicecomms__event__type=kind) == count
    assert otel.total("servicecomms.watch.events") == len(events)
    staleness = {
        a[telemetry.TENANT]: p.value
        for a, p in otel.metrics()["servicecomms.watch.staleness"]
        if a[telemetry.TENANT] in tenants
    }
    assert set(staleness) == set(tenants)
    assert all(0 <= value <= time.time() - before for value in staleness.values())


@pytest.mark.anyio
async def test_a_failing_tenant_grows_stale_and_its_span_says_why(otel: Capture) -> None:
    config = EmulatorConfig(seed=9, tenants=3, messages_per_tenant=5)
    tenants = Emulator(config).tenant_ids
    faults = fault_middleware(FaultPlan(tenant_faults={tenants[0]: Fault.FORBIDDEN}))
    async with Emulator(config, middlewares=[faults]) as emu, graph_session(emu) as session:
        watcher = Watcher(session, tenants, MemoryStateStore())
        await watcher.poll()
        await anyio.sleep(0.05)
        await watcher.poll()
    polls = otel.spans("servicecomms.watch.tenant")
    failed = [s for s in polls if (s.attributes or {})[telemetry.TENANT] == tenants[0]]
    assert len(failed) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in failed)
    assert all((s.attributes or {})["error.type"] == "403" for s in failed)
    staleness = {
        a[telemetry.TENANT]: p.value for a, p in otel.metrics()["servicecomms.watch.staleness"]
    }
    # Never polled successfully: stale since the watcher began, older than the others' last poll.
    assert staleness[tenants[0]] >= 0.05
    assert staleness[tenants[0]] > max(staleness[t] for t in tenants[1:])
    assert otel.total("servicecomms.watch.events", servicecomms__event__type="tenant.failed") == 1


@pytest.mark.anyio
async def test_tenant_ids_are_hashed_on_request(graph_emu: Emulator, otel: Capture) -> None:
    telemetry.configure(hash_tenant_ids=True)
    tenants = graph_emu.tenant_ids[:2]
    async with graph_session(graph_emu) as session:
        watcher = Watcher(session, tenants, MemoryStateStore())
        await watcher.poll()
    recorded = {
        str((s.attributes or {})[telemetry.TENANT])
        for s in otel.spans()
        if telemetry.TENANT in (s.attributes or {})
    }
    assert recorded == {telemetry.tenant_attribute(t) for t in tenants}
    assert all(re.fullmatch(r"[0-9a-f]{16}", value) for value in recorded)
    texts = [str(v) for s in otel.spans() for v in (s.attributes or {}).values()]
    texts += [str(v) for points in otel.metrics().values() for a, _ in points for v in a.values()]
    assert not [t for t in texts if any(tenant in t for tenant in tenants)]


def test_a_url_keeps_its_query_names_only() -> None:
    from yarl import URL

    url = URL(
        "https://user:pw@manage.example.com:8443/api/v1.0/contoso.com/ServiceComms/Messages"
        "?$filter=StartTime%20ge%202026-01-01&$top=100&$skip=200",
        encoded=True,
    )
    assert telemetry.redact_url(url, "contoso.com") == (
        "https://manage.example.com:8443/api/v1.0/contoso.com/ServiceComms/Messages"
        "?$filter=REDACTED&$top=REDACTED&$skip=REDACTED"
    )
    telemetry.configure(hash_tenant_ids=True)
    try:
        hashed = telemetry.redact_url(url, "contoso.com")
        assert "contoso" not in hashed
        assert telemetry.tenant_attribute("contoso.com") in hashed
    finally:
        telemetry.configure(hash_tenant_ids=False)
    assert re.fullmatch(r"[0-9a-f-]{36}", telemetry.new_client_request_id())


# -- the outbox -------------------------------------------------------------------------------------


class RefusingSink:
    name = "down"
    kind = "webhook"
    rollup = False

    async def deliver(self, events: Sequence[Any]) -> None:
        raise DeliveryError("the receiver is down", retryable=True, status=503)

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_deliveries_by_sink_and_state_and_the_outbox_depth_and_age(
    graph_emu: Emulator, otel: Capture, tmp_path: Path
) -> None:
    tenants = graph_emu.tenant_ids[:2]
    store = SQLiteStateStore(str(tmp_path / "watch.db"))
    sinks = [JsonlSink(str(tmp_path / "events.jsonl")), RefusingSink()]
    outbox = Outbox(store, sinks)  # type: ignore[list-item]
    async with graph_session(graph_emu) as session, store:
        await outbox.open()
        events = await Watcher(session, tenants, store, baseline="all").poll()
        report = await outbox.deliver(within=0)
        await outbox.aclose()
    assert report.delivered["jsonl"] == len(events) > 0
    assert otel.total(
        "servicecomms.outbox.deliveries",
        servicecomms__sink__name="jsonl",
        servicecomms__delivery__state="delivered",
    ) == len(events)
    assert (
        otel.total(
            "servicecomms.outbox.deliveries",
            servicecomms__sink__name="down",
            servicecomms__delivery__state="failed",
        )
        == report.failed["down"]
        >= 1
    )
    await anyio.sleep(0.02)
    gauges = otel.metrics()
    pending = {
        a["servicecomms.sink.name"]: p.value for a, p in gauges["servicecomms.outbox.pending"]
    }
    assert pending == {"jsonl": 0, "down": report.pending["down"]}
    assert pending["down"] == len(events)
    age = {
        a["servicecomms.sink.name"]: p.value
        for a, p in gauges["servicecomms.outbox.oldest_pending_age"]
    }
    assert age["jsonl"] == 0
    assert 0.02 <= age["down"] < 60


# -- the Prometheus endpoint ------------------------------------------------------------------------

CLI_TEMPLATE = "emulator-app.{tenant}"


async def _tokens(token: str, permission: str) -> tuple[str, bool] | web.Response:
    tenant = token.removeprefix("emulator-app.")
    if tenant == token or not tenant:
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    return tenant, False


@pytest.fixture(scope="module")
def cli_emu() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=31, tenants=3, messages_per_tenant=20)
    with ThreadedEmulator(config, graph_token_validator=_tokens) as emulator:
        yield emulator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int, until: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
            if until in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{until!r} never appeared in the metrics: {text[-2000:]}")


def test_watch_serves_its_metrics_for_prometheus(cli_emu: Emulator, tmp_path: Path) -> None:
    port = free_port()
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join(cli_emu.tenant_ids) + "\n")
    command = [
        sys.executable,
        "-m",
        "servicecomms_async",
        "watch",
        "--tenants",
        str(tenants),
        "--state",
        str(tmp_path / "watch.db"),
        "--sink",
        f"jsonl:{tmp_path / 'events.jsonl'}",
        "--interval",
        "60",
        "--metrics-port",
        str(port),
        "--base-url",
        cli_emu.graph_base_url,
        "--token-template",
        CLI_TEMPLATE,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SERVICECOMMS_OTEL_HASH_TENANT": "1"},
        cwd=REPO,
    )
    try:
        text = scrape(port, "servicecomms_outbox_deliveries")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in out.decode() + err.decode()
    stale = re.findall(r"^servicecomms_watch_staleness_seconds\{(.*)\} (\S+)$", text, re.M)
    assert len(stale) == len(cli_emu.tenant_ids)
    hashed = {hashlib.sha256(t.lower().encode()).hexdigest()[:16] for t in cli_emu.tenant_ids}
    shown = {re.search(r'servicecomms_tenant_id="([^"]*)"', labels)[1] for labels, _ in stale}  # type: ignore[index]
    assert shown == hashed
    assert all(float(value) < 60 for _, value in stale)
    assert not [t for t in cli_emu.tenant_ids if t in text]  # hashed, as asked
    assert "servicecomms_outbox_pending" in text
    assert 'servicecomms_delivery_state="delivered"' in text
    assert "emulator-app." not in text


def test_metrics_port_without_the_extra_is_a_usage_error(
    cli_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "watch",
            "--tenant",
            cli_emu.tenant_ids[0],
            "--state",
            str(tmp_path / "watch.db"),
            "--once",
            "--metrics-port",
            str(free_port()),
            "--base-url",
            cli_emu.graph_base_url,
            "--token-template",
            CLI_TEMPLATE,
        ],
        stdin=io.StringIO(),
        stdout=out,
        stderr=err,
        environ={},
    )
    assert code == 2
    assert "--metrics-port" in err.getvalue()
    assert "servicecomms-async[otel]" in err.getvalue()


def test_metrics_port_is_checked(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(
        ["watch", "--tenant", "contoso.com", "--state", "x.db", "--metrics-port", "70000"],
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=err,
        environ={},
    )
    assert code == 2
    assert "--metrics-port" in err.getvalue()


# -- without OpenTelemetry --------------------------------------------------------------------------

WITHOUT_OTEL = r"""
import sys
sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
import asyncio, json
from servicecomms_async import ServiceCommsSession, TenantDone, telemetry
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.watch import MemoryStateStore, Watcher

async def run():
    assert not telemetry.AVAILABLE and not telemetry.ENABLED
    assert telemetry.operation_span("x") is telemetry.NULL
    with telemetry.token_span("t") as span:
        span.set("k", 1)
    async with Emulator(EmulatorConfig(seed=7, tenants=3, messages_per_tenant=10)) as emu:
        async with ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as session:
            events = await Watcher(session, emu.tenant_ids, MemoryStateStore()).poll()
        async with ServiceCommsSession(token="t" * 20, base_url=emu.base_url) as session:
            async with session.scan(emu.tenant_ids, lambda t: t.services()) as results:
                done = [r async for r in results if isinstance(r, TenantDone)]
    print(json.dumps({"events": len(events), "done": len(done),
                      "otel": [m for m in sys.modules if m.startswith("opentelemetry")]}))

asyncio.run(run())
"""


def test_without_opentelemetry_the_library_imports_and_a_watch_and_a_scan_run() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["events"] > 0
    assert outcome["done"] == 3
    assert outcome["otel"] == ["opentelemetry"]  # only the blocked entry itself
