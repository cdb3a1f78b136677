"""The ``servicecomms`` command line end to end: in-process via ``main(argv)`` and as real subprocesses,
against an emulator served on loopback from a background thread."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from aiohttp import web

from servicecomms_async._wire import parse_datetime
from servicecomms_async.cli import CSV_COLUMNS, main
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware

from .conftest import ThreadedEmulator

TOKEN = "cli-token-never-shown"
REJECTED_TOKEN = "rejected-token-never-shown"
FORBIDDEN_TENANT = "forbidden.example.com"


@dataclass
class Served:
    emulator: Emulator
    tenants: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def api_requests(self) -> list[str]:
        return [r.path for r in self.emulator.requests if "/ServiceComms/" in r.path]


async def _reject_token(tenant: str, token: str) -> web.Response | None:
    if token == REJECTED_TOKEN:
        body = b'{"error":{"code":"AF10001","message":"The token is not valid."}}'
        return web.Response(status=401, body=body, content_type="application/json")
    return None


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One emulator for the module, on its own loop in a thread, reachable from subprocesses too."""
    config = EmulatorConfig(seed=21, tenants=6, messages_per_tenant=40)
    faults = fault_middleware(FaultPlan(tenant_faults={FORBIDDEN_TENANT: Fault.FORBIDDEN}))
    with ThreadedEmulator(config, middlewares=[faults], token_validator=_reject_token) as emulator:
        yield Served(emulator, emulator.tenant_ids)


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(
    served: Served | None,
    *argv: str,
    stdin: str = "",
    environ: Mapping[str, str] | None = None,
    token: str | None = TOKEN,
) -> Run:
    """``main(argv)`` in-process, pointed at the emulator, with captured streams. The commands
    both APIs have run on the legacy API here (Graph is the default: tests/test_cli_over_graph.py)."""
    args = list(argv)
    if args and args[0] in ("services", "status", "history", "scan") and "--api" not in args:
        args[1:1] = ["--api", "legacy"]
    if served is not None and argv[0] not in ("demo", "emulator"):
        args += ["--base-url", served.base_url]
        if token is not None:
            args += ["--token", token]
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=dict(environ or {}))
    return Run(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: Run, *fragments: str) -> None:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0]


def when(text: str) -> datetime:
    return parse_datetime(text)


# -- one tenant ------------------------------------------------------------------------------------


def test_services_as_json_are_the_tenants_services(served: Served) -> None:
    tenant = served.tenants[0]
    result = run(served, "services", "--tenant", tenant, "--format", "json")
    assert result.code == 0, result.err
    records = json.loads(result.out)
    wire = served.emulator.dataset(tenant).services
    assert [r["Id"] for r in records] == [w["Id"] for w in wire]
    assert {r["TenantId"] for r in records} == {tenant}
    assert records[0]["Features"] == wire[0]["Features"]  # JSON keeps the objects, wire names


def test_status_as_csv_has_the_documented_columns_and_the_servers_values(served: Served) -> None:
    tenant = served.tenants[1]
    result = run(served, "status", "--tenant", tenant, "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == list(CSV_COLUMNS["status"])
    wire = served.emulator.dataset(tenant).current_status
    assert len(rows) == len(wire)
    for row, item in zip(rows, wire, strict=True):
        assert row["TenantId"] == tenant
        assert (row["Workload"], row["Status"]) == (item["Workload"], item["Status"])
        assert row["IncidentIds"] == ";".join(item["IncidentIds"])
        assert row["StatusTime"].endswith("Z")
        assert when(row["StatusTime"]) == when(item["StatusTime"])


def test_history_as_jsonl_applies_the_filters(served: Served) -> None:
    tenant = served.tenants[2]
    result = run(
        served,
        "history",
        "--tenant",
        tenant,
        "--workload",
        "Exchange",
        "--since",
        "2000-01-01",
        "--format",
        "jsonl",
    )
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    expected = [
        r for r in served.emulator.dataset(tenant).historical_status if r["Workload"] == "Exchange"
    ]
    assert [r["Id"] for r in records] == [r["Id"] for r in expected]
    assert served.emulator.requests[-1].query["$filter"] == (
        "Workload eq 'Exchange' and StatusTime ge 2000-01-01T00:00:00Z"
    )


def test_messages_as_json_with_type_and_max_items(served: Served, tmp_path: Path) -> None:
    tenant = served.tenants[0]
    output = tmp_path / "messages.json"
    result = run(
        served,
        "messages",
        "--api",
        "legacy",
        "--tenant",
        tenant,
        "--type",
        "Incident",
        "--max-items",
        "7",
        "--format",
        "json",
        "--output",
        str(output),
    )
    assert result.code == 0, result.err
    assert result.out == ""
    records = json.loads(output.read_text(encoding="utf-8"))
    assert len(records) == 7
    assert {r["MessageType"] for r in records} == {"Incident"}
    assert all(r["StartTime"].endswith("Z") for r in records)
    wire = {m["Id"]: m for m in served.emulator.dataset(tenant).messages}
    for record in records:
        assert record["Title"] == wire[record["Id"]]["Title"]
        assert when(record["LastUpdatedTime"]) == when(wire[record["Id"]]["LastUpdatedTime"])


def test_messages_as_csv(served: Served) -> None:
    tenant = served.tenants[3]
    result = run(served, "messages", "--api", "legacy", "--tenant", tenant, "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == list(CSV_COLUMNS["messages"])
    wire = served.emulator.dataset(tenant).messages
    assert [r["Id"] for r in rows] == [m["Id"] for m in wire]
    assert [r["MessageType"] for r in rows] == [m["MessageType"] for m in wire]
    center = [r for r in rows if r["MessageType"] == "MessageCenter"]
    assert center
    assert all(r["AffectedWorkloadNames"] for r in center)  # MC posts name services only there


def test_status_as_a_table_for_people(served: Served) -> None:
    tenant = served.tenants[4]
    result = run(served, "status", "--tenant", tenant)
    assert result.code == 0, result.err
    wire = served.emulator.dataset(tenant).current_status
    for item in wire:
        assert item["Workload"] in result.out
    assert f"{len(wire)} rows" in result.out
    assert "\x1b[" not in result.out  # no colour codes when stdout is not a terminal


# -- scans -----------------------------------------------------------------------------------------


def test_scan_as_csv_covers_every_tenant_and_lists_the_failure(
    served: Served, tmp_path: Path
) -> None:
    tenants_file = tmp_path / "tenants.txt"
    ok = served.tenants[:4]
    tenants_file.write_text(
        "# customers\n"
        + "\n".join(ok)
        + f"\n\n{FORBIDDEN_TENANT}   # lost consent\n{ok[0].upper()}\n",
        encoding="utf-8",
    )
    result = run(
        served, "scan", "--tenants", str(tenants_file), "--operation", "status", "--format", "csv"
    )
    assert result.code == 1, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == list(CSV_COLUMNS["status"])
    assert {r["TenantId"] for r in rows} == set(ok)
    for tenant in ok:
        expected = served.emulator.dataset(tenant).current_status
        assert [r["Workload"] for r in rows if r["TenantId"] == tenant] == [
            w["Workload"] for w in expected
        ]
    # Records on stdout, so the summary and the failure list go to stderr.
    assert "Scanned 5 tenants" in result.err
    assert "4 succeeded, 1 failed" in result.err
    failure_lines = [line for line in result.err.splitlines() if FORBIDDEN_TENANT in line]
    assert len(failure_lines) == 1
    assert "ForbiddenError" in failure_lines[0]
    assert "403" in failure_lines[0]
    assert "AF10001" in failure_lines[0]


def test_scan_summary_table_counts_degraded_tenants(served: Served, tmp_path: Path) -> None:
    tenants_file = tmp_path / "tenants.txt"
    tenants_file.write_text("\n".join(served.tenants), encoding="utf-8")
    result = run(
        served, "scan", "--api", "legacy", "--tenants", str(tenants_file), "--concurrency", "3"
    )
    assert result.code == 0, result.err
    assert "Scanned 6 tenants" in result.out
    assert "6 succeeded, 0 failed" in result.out
    assert "Failed tenants" not in result.out
    degraded: dict[str, set[str]] = {}
    for tenant in served.tenants:
        for row in served.emulator.dataset(tenant).current_status:
            if row["Status"] == "ServiceDegradation":
                degraded.setdefault(row["WorkloadDisplayName"], set()).add(tenant)
    assert degraded, "the dataset should have a degraded workload"
    rows = {}
    for line in result.out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 5:
            rows[cells[0]] = cells
    assert rows["Workload"][:3] == ["Workload", "Tenants", "Degraded"]
    for workload, tenants in degraded.items():
        assert rows[workload][2] == str(len(tenants)), rows[workload]
        incident_ids = {
            incident
            for tenant in tenants
            for row in served.emulator.dataset(tenant).current_status
            if row["WorkloadDisplayName"] == workload
            for incident in row["IncidentIds"]
        }
        assert set(rows[workload][-1].split(", ")) <= incident_ids


def test_scan_summary_goes_to_the_output_file(served: Served, tmp_path: Path) -> None:
    output = tmp_path / "summary.txt"
    stdin = "\n".join(served.tenants[:2]) + "\n"
    result = run(
        served, "scan", "--tenants", "-", "--operation", "services", "-o", str(output), stdin=stdin
    )
    assert result.code == 0, result.err
    assert result.out == ""
    summary = output.read_text(encoding="utf-8")
    assert "Scanned 2 tenants" in summary
    assert "Exchange Online" in summary


def test_scan_messages_from_stdin_as_jsonl(served: Served) -> None:
    stdin = "\n".join(served.tenants[:3]) + "\n"
    result = run(
        served,
        "scan",
        "--api",
        "legacy",
        "--tenants",
        "-",
        "--operation",
        "messages",
        "--type",
        "MessageCenter",
        "--format",
        "jsonl",
        stdin=stdin,
    )
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    for tenant in served.tenants[:3]:
        expected = [
            m["Id"]
            for m in served.emulator.dataset(tenant).messages
            if m["MessageType"] == "MessageCenter"
        ]
        assert [r["Id"] for r in records if r["TenantId"] == tenant] == expected
    assert "Scanned 3 tenants" in result.err


def test_a_malformed_tenants_file_is_a_usage_error_before_any_request(
    served: Served, tmp_path: Path
) -> None:
    tenants_file = tmp_path / "tenants.txt"
    tenants_file.write_text(
        f"{served.tenants[0]}\nnot a tenant\n# fine\n../../etc/passwd\n", encoding="utf-8"
    )
    before = len(served.api_requests())
    result = run(served, "scan", "--tenants", str(tenants_file))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert lines == [
        f"error: {tenants_file}:2: tenant must be a tenant GUID or a DNS domain name such as "
        "contoso.onmicrosoft.com, got 'not a tenant'",
        f"error: {tenants_file}:4: tenant must be a tenant GUID or a DNS domain name such as "
        "contoso.onmicrosoft.com, got '../../etc/passwd'",
    ]
    assert len(served.api_requests()) == before


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["scan", "--tenants", "-", "--operation", "incidents"], "invalid choice: 'incidents'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["status"], "--tenant"),
        (["status", "--tenant", "a/b"], "tenant must be"),
        (["status", "--tenant", "contoso.com", "--since", "2024-01-01"], "--since applies to"),
        (["history", "--tenant", "contoso.com", "--since", "yesterday"], "ISO 8601"),
        (["status", "--tenant", "contoso.com", "--select", "Nope"], "--select: 'Nope'"),
        (["status", "--tenant", "contoso.com", "--workload", " Exchange"], "--workload"),
        (["scan", "--tenants", "-", "--concurrency", "0"], "--concurrency"),
        (["scan", "--tenants", "/no/such/file"], "cannot read /no/such/file"),
        (["scan", "--tenants", "-"], "no tenant ids in stdin"),
        (["status", "--tenant", "contoso.com", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(served: Served, argv: list[str], fragment: str) -> None:
    before = len(served.api_requests())
    result = run(served, *argv, stdin="# nothing here\n")
    assert result.code == 2
    assert_one_line_error(result, fragment)
    assert len(served.api_requests()) == before


def test_an_unreachable_host_is_one_line_and_exit_1() -> None:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(
        None,
        "status",
        "--tenant",
        "contoso.com",
        "--base-url",
        f"http://127.0.0.1:{port}/api/v1.0",
        "--token",
        TOKEN,
        "--attempts",
        "1",
    )
    assert result.code == 1
    assert_one_line_error(result, "ConnectError", f"127.0.0.1:{port}")


def test_a_refused_token_is_one_line_exit_1_and_never_shown(served: Served) -> None:
    result = run(
        served, "status", "--tenant", served.tenants[0], "-vv", "--attempts", "1", token=None,
        environ={"SERVICECOMMS_TOKEN": REJECTED_TOKEN},
    )  # fmt: skip
    assert result.code == 1
    error_lines = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert "UnauthorizedError" in error_lines[0]
    assert "HTTP 401" in error_lines[0]
    assert "Traceback" not in result.err
    assert REJECTED_TOKEN not in result.err + result.out
    # The environment's token is the one sent.
    sent = served.emulator.requests[-1].headers["Authorization"]
    assert sent == f"Bearer {REJECTED_TOKEN}"


def test_a_client_secret_without_its_home_tenant_is_a_usage_error(served: Served) -> None:
    secret = "client-secret-never-shown"
    result = run(
        served,
        "status",
        "--tenant",
        served.tenants[0],
        "--client-id",
        "00000000-0000-0000-0000-000000000001",
        token=None,
        environ={"AZURE_CLIENT_SECRET": secret},
    )
    assert result.code == 2
    assert_one_line_error(result, "--auth-tenant", "AZURE_TENANT_ID")
    assert secret not in result.err


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(None, "--version").code == 0
    assert capsys.readouterr().out.strip() == "servicecomms 0.1.0"


def test_the_console_script_is_the_cli() -> None:
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    if "servicecomms" not in scripts:
        pytest.skip("the package is not installed (pip install -e .)")
    assert scripts["servicecomms"].load() is main


# -- real subprocesses -----------------------------------------------------------------------------


def python_m(*argv: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SERVICECOMMS_"))}
    return subprocess.run(
        [sys.executable, "-m", "servicecomms_async", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_demo_runs_to_completion_as_a_subprocess() -> None:
    done = python_m("demo", "--api", "legacy")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warnings, no progress bar (not a terminal)
    out = done.stdout
    assert "300 simulated tenants" in out
    assert "Scanned 300 tenants" in out
    assert "296 succeeded, 4 failed" in out
    assert "Failed tenants (4)" in out
    for error in ("ThrottledError", "ServerError", "ForbiddenError"):
        assert error in out
    assert "Workload" in out
    assert "Degraded" in out


def test_scan_as_a_subprocess_streams_jsonl(served: Served) -> None:
    done = python_m(
        "scan",
        "--api",
        "legacy",
        "--tenants",
        "-",
        "--operation",
        "services",
        "--format",
        "jsonl",
        "--base-url",
        served.base_url,
        "--token",
        TOKEN,
        stdin="\n".join(served.tenants) + "\n",
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    for tenant in served.tenants:
        expected = [s["Id"] for s in served.emulator.dataset(tenant).services]
        assert [r["Id"] for r in records if r["TenantId"] == tenant] == expected
    assert "Scanned 6 tenants" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_the_emulator_command_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "servicecomms_async", "emulator", "--port", "0", "--tenants", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # "... listening on http://127.0.0.1:PORT/api/v1.0", a settings line, then one URL per tenant
        first, _, tenant_url = (process.stdout.readline() for _ in range(3))
        assert "listening on http://127.0.0.1:" in first
        base_url = first.split()[-1]
        tenant = tenant_url.strip().split("/")[-3]
        result = run(
            None, "services", "--tenant", tenant, "--base-url", base_url, "--token", TOKEN,
            "--format", "json",
        )  # fmt: skip
        assert result.code == 0, result.err
        assert len(json.loads(result.out)) > 0
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0
