"""The ``servicecomms`` command line with Microsoft Graph (``--api graph``, ``overview``, ``issues``,
``incident-report``, Graph scans and ``demo --api graph``): in-process via ``main(argv)`` and as a real
subprocess, against the emulator's Graph routes served on loopback from a background thread."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from servicecomms_async._wire import parse_datetime
from servicecomms_async.cli import GRAPH_CSV_COLUMNS, main
from servicecomms_async.emulator import Emulator, EmulatorConfig, GraphDataset, RecordedRequest
from servicecomms_async.emulator.graph import graph_error, incident_report

from .conftest import ThreadedEmulator

TEMPLATE = "emulator-app.{tenant}"
REJECTED_TEMPLATE = "rejected-secret-{tenant}"  # tokens the emulator refuses; never to be shown
FORBIDDEN_TENANT = "forbidden.example.com"  # its Graph token is refused with 403


@dataclass
class Served:
    emulator: Emulator

    @property
    def tenants(self) -> list[str]:
        return self.emulator.tenant_ids

    @property
    def graph_base_url(self) -> str:
        return self.emulator.graph_base_url

    def data(self, tenant: str) -> GraphDataset:
        return self.emulator.graph_dataset(tenant)

    def graph_requests(self) -> list[RecordedRequest]:
        return [r for r in self.emulator.requests if "/admin/serviceAnnouncement/" in r.path]


async def _graph_tokens(token: str, permission: str) -> tuple[str, bool] | web.Response:
    """The emulator's own app tokens, except that one tenant is refused and rejected-* is invalid."""
    tenant = token.removeprefix("emulator-app.")
    if tenant == token or not tenant:
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if tenant == FORBIDDEN_TENANT:
        return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges.")
    return tenant, False


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One emulator for the module, on its own loop in a thread, reachable from subprocesses too."""
    config = EmulatorConfig(seed=21, tenants=6, messages_per_tenant=60, degraded_ratio=0.5)
    with ThreadedEmulator(config, graph_token_validator=_graph_tokens) as emulator:
        yield Served(emulator)


@dataclass
class Run:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""


class _BinaryCapture(io.TextIOWrapper):
    """A text stdout with a binary ``buffer`` underneath, as ``sys.stdout`` is; optionally a "terminal"."""

    def __init__(self, *, terminal: bool = False) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal

    def captured(self) -> bytes:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue()


def run(
    served: Served | None,
    *argv: str,
    stdin: str = "",
    environ: Mapping[str, str] | None = None,
    auth: tuple[str, ...] = ("--token-template", TEMPLATE),
    base_url: str | None = None,
    terminal: bool = False,
) -> Run:
    """``main(argv)`` in-process, pointed at the emulator's Graph routes, with captured streams."""
    args = list(argv)
    if served is not None and argv[0] != "demo":
        args += ["--base-url", base_url or served.graph_base_url, *auth]
    out, err = _BinaryCapture(terminal=terminal), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=dict(environ or {}))
    raw = out.captured()
    return Run(code, raw.decode("utf-8", "replace"), err.getvalue(), raw)


def assert_one_line_error(result: Run, *fragments: str) -> None:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def records_of(result: Run, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        records: list[dict[str, Any]] = json.loads(result.out)
        return records
    if fmt == "jsonl":
        return [json.loads(line) for line in result.out.splitlines()]
    return list(csv.DictReader(io.StringIO(result.out)))


def when(text: str) -> datetime:
    return parse_datetime(text)


def wire_items(served: Served, tenant: str, command: str) -> list[dict[str, Any]]:
    data = served.data(tenant)
    return {"overview": data.health_overviews, "issues": data.issues, "messages": data.messages}[
        command
    ]


def tenants_file(tmp_path: Path, tenants: list[str]) -> str:
    path = tmp_path / "tenants.txt"
    path.write_text("\n".join(tenants) + "\n", encoding="utf-8")
    return str(path)


# -- one tenant, every command in every format ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
@pytest.mark.parametrize("command", ["overview", "issues", "messages"])
def test_each_graph_command_in_each_format_shows_the_tenants_items(
    served: Served, command: str, fmt: str
) -> None:
    tenant = served.tenants[2]
    argv = [command, "--tenant", tenant, "--format", fmt]
    if command == "messages":
        argv += ["--api", "graph"]
    result = run(served, *argv)
    assert result.code == 0, result.err
    wire = wire_items(served, tenant, command)
    assert wire, "the dataset should have items for this command"
    if fmt == "table":
        label = "service" if command == "overview" else "id"
        for item in wire:
            assert item[label] in result.out
        assert f"{len(wire)} rows" in result.out
        return
    records = records_of(result, fmt)
    assert [r["id"] for r in records] == [w["id"] for w in wire]
    assert {r["tenantId"] for r in records} == {tenant}
    if fmt == "csv":
        assert list(records[0]) == list(GRAPH_CSV_COLUMNS[command])
    else:
        # Graph's own camelCase names, every wire field kept, the tenant first.
        for record, item in zip(records, wire, strict=True):
            assert next(iter(record)) == "tenantId"
            assert set(item) <= set(record)
            assert (
                record["status" if command != "messages" else "category"]
                == (item["status" if command != "messages" else "category"])
            )
    if command != "overview":
        for record, item in zip(records, wire, strict=True):
            assert record["lastModifiedDateTime"].endswith("Z")
            assert when(record["lastModifiedDateTime"]) == when(item["lastModifiedDateTime"])


def test_overview_expanded_issues_are_asked_for_and_listed_by_id_in_csv(served: Served) -> None:
    tenant = served.tenants[0]
    before = len(served.graph_requests())
    result = run(served, "overview", "--tenant", tenant, "--expand-issues", "--format", "csv")
    assert result.code == 0, result.err
    sent = served.graph_requests()[before:]
    assert [r.query for r in sent] == [{"$expand": "issues"}]
    rows = records_of(result, "csv")
    issues_by_service: dict[str, list[str]] = {}
    for issue in served.data(tenant).issues:
        issues_by_service.setdefault(issue["service"], []).append(issue["id"])
    assert rows and any(row["issues"] for row in rows)
    for row in rows:
        assert row["issues"] == ";".join(issues_by_service.get(row["service"], []))


def test_issue_filters_reach_the_server_and_the_rows_match(served: Served) -> None:
    tenant = served.tenants[1]
    issues = served.data(tenant).issues
    since = sorted(i["lastModifiedDateTime"] for i in issues)[len(issues) // 3][:10]  # a day

    def wanted(issue: dict[str, Any], service: str) -> bool:
        return (
            issue["service"] == service
            and issue["isResolved"]
            and issue["classification"] == "incident"
            and when(issue["lastModifiedDateTime"]) >= when(since)
        )

    service = next(i["service"] for i in issues if wanted(i, i["service"]))
    result = run(
        served,
        "issues",
        "--tenant",
        tenant,
        "--service",
        service,
        "--resolved",
        "--classification",
        "Incident",  # any case; Graph's is camelCase
        "--since",
        since,
        "--format",
        "csv",
    )
    assert result.code == 0, result.err
    assert served.graph_requests()[-1].query["$filter"] == (
        f"service eq '{service}' and isResolved eq true and classification eq 'incident' and "
        f"lastModifiedDateTime ge {since}T00:00:00Z"
    )
    expected = [i["id"] for i in issues if wanted(i, service)]
    rows = records_of(result, "csv")
    assert [r["id"] for r in rows] == expected
    assert {(r["isResolved"], r["classification"]) for r in rows} <= {("true", "incident")}


def test_page_size_and_max_items_page_with_prefer_and_stop_early(served: Served) -> None:
    tenant = served.tenants[3]
    before = len(served.graph_requests())
    result = run(
        served,
        "issues",
        "--tenant",
        tenant,
        "--page-size",
        "5",
        "--max-items",
        "12",
        "--filter",
        "classification eq 'advisory'",
        "--format",
        "jsonl",
    )
    assert result.code == 0, result.err
    expected = [i["id"] for i in served.data(tenant).issues if i["classification"] == "advisory"]
    assert [r["id"] for r in records_of(result, "jsonl")] == expected[:12]
    sent = served.graph_requests()[before:]
    assert len(sent) == 3  # 5 + 5 + 2: no page beyond the twelfth item
    assert all(r.headers.get("Prefer") == "odata.maxpagesize=5" for r in sent)
    assert all("$top" not in r.query for r in sent)
    assert sent[0].query["$filter"] == "(classification eq 'advisory')"


def test_message_filters_reach_the_server_and_the_records_match(served: Served) -> None:
    tenant = served.tenants[4]
    messages = served.data(tenant).messages
    services = sorted({s for m in messages for s in m["services"]})[:2]
    result = run(
        served,
        "messages",
        "--api",
        "graph",
        "--tenant",
        tenant,
        "--category",
        "planForChange",
        "--severity",
        "normal",
        "--service",
        services[0],
        "--service",
        services[1],
        "--major-change",
        "--select",
        "id,services,isMajorChange,category,severity",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    query = served.graph_requests()[-1].query
    assert query["$filter"] == (
        "category eq 'planForChange' and severity eq 'normal' and "
        f"services/any(x:x eq '{services[0]}' or x eq '{services[1]}') and isMajorChange eq true"
    )
    assert query["$select"] == "id,services,isMajorChange,category,severity"
    expected = [
        m["id"]
        for m in messages
        if m["category"] == "planForChange"
        and m["severity"] == "normal"
        and set(m["services"]) & set(services)
        and m["isMajorChange"]
    ]
    records = records_of(result, "json")
    assert [r["id"] for r in records] == expected
    assert all(r["isMajorChange"] is True for r in records)


def test_messages_csv_joins_lists_and_writes_booleans_in_lower_case(served: Served) -> None:
    tenant = served.tenants[5]
    result = run(served, "messages", "--api", "graph", "--tenant", tenant, "--format", "csv")
    assert result.code == 0, result.err
    rows = records_of(result, "csv")
    for row, item in zip(rows, served.data(tenant).messages, strict=True):
        assert row["services"] == ";".join(item["services"])
        assert row["tags"] == ";".join(item["tags"])
        assert row["isMajorChange"] == ("true" if item["isMajorChange"] else "false")


def test_the_environment_chooses_graph_for_messages_and_its_own_base_url(served: Served) -> None:
    tenant = served.tenants[0]
    before = len(served.graph_requests())
    environ = {
        "SERVICECOMMS_API": "graph",
        # The legacy variable points at the legacy routes: with Graph it must not be used.
        "SERVICECOMMS_BASE_URL": served.emulator.base_url,
        "SERVICECOMMS_GRAPH_BASE_URL": served.graph_base_url,
    }
    out, err = _BinaryCapture(), io.StringIO()
    argv = ["messages", "--tenant", tenant, "--token-template", TEMPLATE, "--format", "jsonl"]
    code = main(argv, stdin=io.StringIO(), stdout=out, stderr=err, environ=environ)
    assert code == 0, err.getvalue()
    records = [json.loads(line) for line in out.captured().decode().splitlines()]
    assert [r["id"] for r in records] == [m["id"] for m in served.data(tenant).messages]
    assert all("tenantId" in r and "TenantId" not in r for r in records)
    assert len(served.graph_requests()) > before


# -- incident reports -------------------------------------------------------------------------------


def _reviewed_issue(served: Served, tenant: str) -> dict[str, Any]:
    return next(
        i
        for i in served.data(tenant).issues
        if i["classification"] == "incident" and i["isResolved"]
    )


def test_incident_report_to_a_file_is_the_document_as_sent(served: Served, tmp_path: Path) -> None:
    tenant = served.tenants[0]
    issue = _reviewed_issue(served, tenant)
    target = tmp_path / "report.bin"
    result = run(
        served, "incident-report", "--tenant", tenant, "--id", issue["id"], "-o", str(target)
    )
    assert result.code == 0, result.err
    assert result.out_bytes == b""
    document = target.read_bytes()
    assert document == incident_report(issue)
    assert f"Issue: {issue['id']}".encode() in document
    assert served.graph_requests()[-1].path.endswith(f"/issues/{issue['id']}/incidentReport")


def test_incident_report_goes_to_stdout_when_it_is_not_a_terminal(served: Served) -> None:
    tenant = served.tenants[1]
    issue = _reviewed_issue(served, tenant)
    result = run(served, "incident-report", "--tenant", tenant, "--id", issue["id"])
    assert result.code == 0, result.err
    assert result.out_bytes == incident_report(issue)


def test_incident_report_refuses_a_terminal_before_any_request(served: Served) -> None:
    tenant = served.tenants[1]
    issue = _reviewed_issue(served, tenant)
    before = len(served.graph_requests())
    result = run(served, "incident-report", "--tenant", tenant, "--id", issue["id"], terminal=True)
    assert result.code == 2
    assert_one_line_error(result, "--output", "terminal")
    assert result.out_bytes == b""
    assert len(served.graph_requests()) == before


def test_a_missing_incident_report_exits_1_and_writes_no_file(
    served: Served, tmp_path: Path
) -> None:
    target = tmp_path / "report.bin"
    result = run(
        served, "incident-report", "--tenant", served.tenants[0], "--id", "EX0", "-o", str(target)
    )
    assert result.code == 1
    assert_one_line_error(result, "NotFoundError", "HTTP 404")
    assert not target.exists()


# -- scans -------------------------------------------------------------------------------------------


def _summary_rows(text: str, first_column: str) -> dict[str, list[str]]:
    """The summary table's rows by their first cell (cells are separated by 2+ spaces)."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in text.splitlines():
        cells = [c for c in line.strip().split("  ") if c.strip()]
        cells = [c.strip() for c in cells]
        if cells[:1] == [first_column]:
            in_table = True
        elif in_table and not cells:
            break
        if in_table and len(cells) >= 2:
            rows[cells[0]] = cells
    return rows


def test_scan_overview_summary_counts_tenants_not_operational_and_lists_failures(
    served: Served, tmp_path: Path
) -> None:
    tenants = [*served.tenants, FORBIDDEN_TENANT]
    result = run(
        served,
        "scan",
        "--api",
        "graph",
        "--operation",
        "overview",
        "--expand-issues",
        "--tenants",
        tenants_file(tmp_path, tenants),
    )
    assert result.code == 1, result.err  # one tenant failed
    assert f"Scanned {len(tenants)} tenants" in result.out
    assert f"{len(served.tenants)} succeeded, 1 failed" in result.out
    not_operational: dict[str, set[str]] = {}
    active: dict[str, set[str]] = {}
    for tenant in served.tenants:
        data = served.data(tenant)
        for health in data.health_overviews:
            if health["status"] != "serviceOperational":
                not_operational.setdefault(health["service"], set()).add(tenant)
        for issue in data.issues:
            if not issue["isResolved"]:
                active.setdefault(issue["service"], set()).add(issue["id"])
    assert not_operational, "the dataset should have a service that is not operational"
    rows = _summary_rows(result.out, "Service")
    assert rows["Service"][:3] == ["Service", "Tenants", "Not operational"]
    for service, affected in not_operational.items():
        assert rows[service][2] == str(len(affected)), rows[service]
    for service, ids in active.items():
        shown = {part.split(" (")[0] for part in rows[service][-1].split(", ")}
        assert shown == ids, rows[service]
    failure = [line for line in result.out.splitlines() if FORBIDDEN_TENANT in line]
    assert len(failure) == 1
    assert "ForbiddenError" in failure[0] and "403" in failure[0]
    assert "Authorization_RequestDenied" in failure[0]


def test_scan_issues_as_csv_covers_every_tenant_with_the_summary_on_stderr(
    served: Served, tmp_path: Path
) -> None:
    result = run(
        served,
        "scan",
        "--operation",
        "issues",  # a Graph operation: no --api needed
        "--active",
        "--format",
        "csv",
        "--tenants",
        tenants_file(tmp_path, served.tenants),
    )
    assert result.code == 0, result.err
    rows = records_of(result, "csv")
    assert rows, "the dataset should have active issues"
    assert list(rows[0]) == list(GRAPH_CSV_COLUMNS["issues"])
    per_service: dict[str, dict[str, int]] = {}
    for tenant in served.tenants:
        expected = [i for i in served.data(tenant).issues if not i["isResolved"]]
        assert [r["id"] for r in rows if r["tenantId"] == tenant] == [i["id"] for i in expected]
        for issue in expected:
            counts = per_service.setdefault(issue["service"], {})
            counts[issue["id"]] = counts.get(issue["id"], 0) + 1
    assert per_service, "the dataset should have active issues"
    assert f"Scanned {len(served.tenants)} tenants" in result.err
    summary = _summary_rows(result.err, "Service")
    for service, counts in per_service.items():
        shown = summary[service][-1]
        for issue_id, tenants in counts.items():
            assert f"{issue_id} ({tenants})" in shown


def test_scan_messages_summary_counts_posts_by_category_severity_and_major_change(
    served: Served,
) -> None:
    stdin = "\n".join(served.tenants) + "\n"
    result = run(
        served, "scan", "--api", "graph", "--operation", "messages", "--tenants", "-", stdin=stdin
    )
    assert result.code == 0, result.err
    posts: dict[str, dict[str, Any]] = {}
    for tenant in served.tenants:
        for message in served.data(tenant).messages:
            posts[message["id"]] = message
    rows = _summary_rows(result.out, "Category")
    assert rows["Category"] == [
        "Category", "Tenants", "Messages", "Normal", "High", "Critical", "Major changes"
    ]  # fmt: skip
    for category in {p["category"] for p in posts.values()}:
        mine = [p for p in posts.values() if p["category"] == category]
        by_severity = [
            str(sum(p["severity"] == s for p in mine)) for s in ("normal", "high", "critical")
        ]
        major = str(sum(bool(p["isMajorChange"]) for p in mine))
        assert rows[category][2:] == [str(len(mine)), *by_severity, major], rows[category]


def test_a_scan_as_a_subprocess_streams_graph_jsonl(served: Served) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SERVICECOMMS_"))}
    done = subprocess.run(
        [
            sys.executable, "-m", "servicecomms_async", "scan", "--api", "graph",
            "--operation", "issues", "--format", "jsonl", "--base-url", served.graph_base_url,
            "--token-template", TEMPLATE, "--tenants", "-",
        ],
        input="\n".join(served.tenants) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    for tenant in served.tenants:
        expected = [i["id"] for i in served.data(tenant).issues]
        assert [r["id"] for r in records if r["tenantId"] == tenant] == expected
    assert f"Scanned {len(served.tenants)} tenants" in done.stderr
    for tenant in served.tenants:  # no token (the template made one per tenant) is shown
        assert f"emulator-app.{tenant}" not in done.stdout + done.stderr


def test_a_refused_template_token_is_one_line_exit_1_and_never_shown(served: Served) -> None:
    result = run(
        served, "overview", "--tenant", served.tenants[0], "-vv", "--attempts", "1",
        auth=("--token-template", REJECTED_TEMPLATE),
    )  # fmt: skip
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "UnauthorizedError" in errors[0] and "HTTP 401" in errors[0]
    assert "rejected-secret" not in result.err + result.out
    sent = served.graph_requests()[-1].headers["Authorization"]
    assert sent == f"Bearer rejected-secret-{served.tenants[0]}"


# -- usage errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        # A Graph filter with the legacy API, and a legacy filter with Graph.
        (
            ["messages", "--api", "legacy", "--category", "planForChange"],
            ["--category", "--api graph"],
        ),
        (["messages", "--api", "legacy", "--major-change"], ["--major-change", "--api graph"]),
        (["messages", "--type", "Incident"], ["--type", "legacy API filter", "--api legacy"]),
        (["messages", "--api", "graph", "--type", "Incident"], ["--type", "legacy API filter"]),
        (["messages", "--api", "graph", "--workload", "Exchange"], ["--workload", "legacy API"]),
        # status, services and history run over Graph too (legacy records, tests/test_cli_over_graph.py)
        (["status", "--api", "graph", "--since", "2024-01-01"], ["--since applies to"]),
        (["overview", "--api", "legacy"], ["overview is a Microsoft Graph command"]),
        (["scan", "--tenants", "-", "--api", "graph", "--operation", "nope"], ["--operation"]),
        (["issues", "--expand-issues"], ["--expand-issues applies to overview only"]),
        (
            ["overview", "--since", "2024-01-01"],
            ["--since applies to issues, messages and history"],
        ),
        (["issues", "--active", "--resolved"], ["--resolved", "not allowed with"]),
        (["issues", "--service", "Exchange Online", "--service", "Planner"], ["--service", "one"]),
        (["issues", "--service", " Planner"], ["--service", "surrounding spaces"]),
        (["issues", "--classification", "outage"], ["--classification", "advisory, incident"]),
        (["messages", "--api", "graph", "--severity", "urgent"], ["--severity", "critical"]),
        (["issues", "--page-size", "1001"], ["--page-size", "1000"]),
        (["issues", "--filter", " "], ["--filter", "OData"]),
        (["issues", "--select", "Nope"], ["--select: 'Nope'", "ServiceHealthIssue"]),
        (["incident-report", "--id", "../EX1", "-o", "x"], ["--id", "EX123456"]),
        (["incident-report", "-o", "x"], ["--id"]),
        (["issues", "--token", "secret-token"], ["--token and --token-template exclude"]),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_request(
    served: Served, argv: list[str], fragments: list[str]
) -> None:
    before = len(served.graph_requests())
    if argv[0] != "scan":
        argv = [argv[0], "--tenant", "contoso.com", *argv[1:]]
    result = run(served, *argv, stdin=f"{served.tenants[0]}\n")
    assert result.code == 2
    assert_one_line_error(result, *fragments)
    assert len(served.graph_requests()) == before


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("secret-without-field", "must contain {tenant}"),
        ("secret-{0}-{tenant}", "no other"),
        ("secret-{tenant!r}", "no other"),
        ("secret-{tenant", "not a valid template"),
    ],
)
def test_a_bad_token_template_is_a_usage_error_that_never_shows_it(
    served: Served, template: str, fragment: str
) -> None:
    result = run(served, "overview", "--tenant", "contoso.com", auth=("--token-template", template))
    assert result.code == 2
    assert_one_line_error(result, "--token-template", fragment)
    assert "secret" not in result.err


def test_one_static_token_cannot_scan_many_graph_tenants(served: Served) -> None:
    stdin = "\n".join(served.tenants[:3]) + "\n"
    token = "emulator-app." + served.tenants[0]
    before = len(served.graph_requests())
    result = run(
        served,
        "scan",
        "--api",
        "graph",
        "--operation",
        "issues",
        "--tenants",
        "-",
        stdin=stdin,
        auth=("--token", token),
    )
    assert result.code == 2
    assert_one_line_error(result, "--token-template", "3 tenants")
    assert token not in result.err
    assert len(served.graph_requests()) == before


def test_an_unknown_api_in_the_environment_is_a_usage_error(served: Served) -> None:
    result = run(
        served, "messages", "--tenant", "contoso.com", environ={"SERVICECOMMS_API": "beta"}
    )
    assert result.code == 2
    assert_one_line_error(result, "$SERVICECOMMS_API", "legacy or graph", "'beta'")


# -- demo ---------------------------------------------------------------------------------------------


def test_demo_through_graph_runs_to_completion() -> None:
    result = run(None, "demo", "--api", "graph", "--tenants", "40", "--no-progress")
    assert result.code == 0, result.err
    assert result.err == ""  # the table and the summary go to stdout; nothing else is said
    out = result.out
    assert "/v1.0: 40 simulated tenants" in out
    assert "Scanned 40 tenants" in out
    assert "36 succeeded, 4 failed" in out
    assert "Failed tenants (4)" in out
    for error in ("ThrottledError", "ServerError", "ForbiddenError"):
        assert error in out
    assert "Not operational" in out
    assert "servicecomms overview --base-url" in out


@pytest.mark.parametrize(
    ("argv", "heading"),
    [
        (["--operation", "issues"], "Tenants with active issues"),  # a Graph operation picks Graph
        (["--api", "graph", "--operation", "messages"], "Major changes"),
    ],
)
def test_demo_runs_every_graph_operation(argv: list[str], heading: str) -> None:
    result = run(None, "demo", *argv, "--tenants", "12", "--no-progress")
    assert result.code == 0, result.err
    assert "/v1.0: 12 simulated tenants" in result.out
    assert "8 succeeded, 4 failed" in result.out
    assert heading in result.out
