"""The command line's front door: Graph by default, ``--help`` per command, the ``emulator``
subcommand, the retired legacy endpoint, and running without rich (the ``cli`` extra)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from servicecomms_async.cli import OPERATIONS, main
from servicecomms_async.emulator import Emulator, EmulatorConfig

from .conftest import ThreadedEmulator

RETIRED_TOKEN = "retired-token-never-shown"
TEMPLATE = "emulator-app.{tenant}"


async def _retired(tenant: str, token: str) -> web.Response | None:
    if token == RETIRED_TOKEN:  # what manage.office.com answers since 2022, as plain text
        return web.Response(status=403, text="Please use MSGraph to access this resource")
    return None


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=5, tenants=3, messages_per_tenant=30)
    with ThreadedEmulator(config, token_validator=_retired) as emu:
        yield emu


def run(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), stdout=out, stderr=err, environ=environ or {})
    return code, out.getvalue(), err.getvalue()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SERVICECOMMS_"))}


# -- Graph is the default -------------------------------------------------------------------------


def test_messages_without_api_is_graph_and_the_environment_can_choose_legacy(
    emulator: Emulator,
) -> None:
    tenant = emulator.tenant_ids[0]
    graph = ["--base-url", emulator.graph_base_url, "--token-template", TEMPLATE]
    code, out, err = run("messages", "--tenant", tenant, "--format", "jsonl", *graph)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == [m["id"] for m in emulator.graph_dataset(tenant).messages]
    assert all(next(iter(r)) == "tenantId" for r in records)

    legacy = ["--base-url", emulator.base_url, "--token", "any"]
    code, out, err = run(
        "messages", "--tenant", tenant, "--format", "jsonl", *legacy,
        environ={"SERVICECOMMS_API": "legacy"},
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["Id"] for r in records] == [m["Id"] for m in emulator.dataset(tenant).messages]


def test_scan_without_operation_is_the_graph_overview(emulator: Emulator, tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join(emulator.tenant_ids) + "\n", encoding="utf-8")
    code, out, err = run(
        "scan", "--tenants", str(tenants), "--base-url", emulator.graph_base_url,
        "--token-template", TEMPLATE,
    )  # fmt: skip
    assert code == 0, err
    assert "overview: 3 tenants" in out
    assert "Not operational" in out
    assert "3 succeeded, 0 failed" in out


def test_demo_without_api_scans_through_graph() -> None:
    code, out, err = run("demo", "--tenants", "12", "--no-progress")
    assert code == 0, err
    assert "/v1.0: 12 simulated tenants" in out
    assert "8 succeeded, 4 failed" in out
    assert "Not operational" in out


def test_demo_through_graph_fails_its_tenants_with_the_emulators_fault_plans() -> None:
    code, out, _ = run(
        "demo", "--tenants", "8", "--no-progress", "--format", "json", "-o", os.devnull
    )
    assert code == 0
    failures = [
        line for line in out.splitlines() if " 429 " in line or " 500 " in line or " 403 " in line
    ]
    # Graph's own answers for the four always-failing tenants: both throttles are Graph's 429.
    assert sorted(line.split()[1] for line in failures) == [
        "ForbiddenError", "ServerError", "ThrottledError", "ThrottledError"
    ]  # fmt: skip
    assert "Authorization_RequestDenied" in out and "TooManyRequests" in out


# -- help -------------------------------------------------------------------------------------------


def help_of(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, _, err = run(*argv, "--help")
    assert code == 0, err
    return capsys.readouterr().out


def test_each_commands_help_lists_only_its_filters_with_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = help_of("status", capsys=capsys)
    # status runs on both APIs (legacy records over Graph by default): --api chooses.
    assert "--workload" in status and "--select" in status and "--api" in status
    for other in ("--since", "--category", "--expand-issues", "--type", "--page-size"):
        assert other not in status, other
    assert "(default: 60.0)" in status and "(default: 5)" in status
    assert "(default: table)" in status

    overview = help_of("overview", capsys=capsys)
    assert "--expand-issues" in overview
    for other in ("--workload", "--since", "--service", "--api"):
        assert other not in overview, other

    messages = help_of("messages", capsys=capsys)
    assert "filters (Microsoft Graph, --api graph)" in messages
    assert "filters (the legacy API, --api legacy)" in messages
    assert "--category" in messages and "--type" in messages and "--api" in messages
    assert "--expand-issues" not in messages and "--classification" not in messages

    scan = help_of("scan", capsys=capsys)
    assert "(default: 50)" in scan
    # Where --since applies (help text is wrapped: compare it as one line).
    assert "[graph: issues, messages, history; legacy: history]" in " ".join(scan.split())


def test_every_registry_operation_is_a_command_and_a_scan_operation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    top = help_of(capsys=capsys)
    scan = help_of("scan", capsys=capsys)
    for op in OPERATIONS:
        assert op.name in top
        assert op.name in scan
        # Graph's own records say tenantId; legacy records (over Graph too) TenantId.
        own = {"graph": "tenantId", "legacy": "TenantId"}[op.api]
        assert op.csv_columns[0] == op.record_tenant_key == (op.tenant_key or own)
    assert "emulator" in top


# -- the emulator command ---------------------------------------------------------------------------


def test_emulator_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of("emulator", capsys=capsys)
    for option in ("--host", "--port", "--tenants-file", "--tenants", "--seed", "--shape"):
        assert option in text
    assert "(default: 8080)" in text and "(default: 50)" in text


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--port", "70000"], ["--port", "65535"]),
        (["--port", "http"], ["--port", "a TCP port"]),
        (["--host", "192.0.2.1"], ["--host", "loopback"]),
        (["--host", "example.com"], ["--host", "loopback"]),
        (["--tenants", "-1"], ["tenants must be >= 0"]),
        (["--degraded-ratio", "2"], ["degraded_ratio"]),
    ],
)
def test_emulator_errors_are_one_line(argv: list[str], fragments: list[str]) -> None:
    code, _, err = run("emulator", *argv)
    one_line_error(code, err, *fragments)


def test_emulator_on_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run("emulator", "--port", str(port))
    one_line_error(code, err, "--port", f"127.0.0.1:{port}", "in use")


def test_emulator_writes_its_tenants_file_and_a_scan_reads_it(tmp_path: Path) -> None:
    tenants_file = tmp_path / "tenants.txt"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "servicecomms_async", "emulator", "--port", "0",
            "--tenants", "7", "--tenants-file", str(tenants_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        graph_base_url = first.split()[-1].replace("/api/v1.0", "/v1.0")
        deadline = time.monotonic() + 10
        while not tenants_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        tenants = tenants_file.read_text(encoding="utf-8").splitlines()
        assert len(tenants) == len(set(tenants)) == 7
        code, out, err = run(
            "scan", "--tenants", str(tenants_file), "--operation", "issues", "--format", "jsonl",
            "--base-url", graph_base_url, "--token-template", TEMPLATE,
        )  # fmt: skip
        assert code == 0, err
        assert {json.loads(line)["tenantId"] for line in out.splitlines()} <= set(tenants)
        assert "Scanned 7 tenants" in err
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 0


# -- the retired legacy endpoint --------------------------------------------------------------------


def test_a_retired_legacy_endpoint_names_the_graph_command(emulator: Emulator) -> None:
    tenant = emulator.tenant_ids[0]
    code, out, err = run(
        "status", "--api", "legacy", "--tenant", tenant, "--base-url", emulator.base_url,
        "--token", RETIRED_TOKEN,
    )  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: EndpointRetiredError: ")
    assert f"servicecomms status --api graph --tenant {tenant}" in lines[1]
    assert RETIRED_TOKEN not in out + err

    code, _, err = run(
        "messages", "--api", "legacy", "--tenant", tenant, "--base-url", emulator.base_url,
        "--token", RETIRED_TOKEN,
    )  # fmt: skip
    assert code == 1
    assert f"servicecomms messages --api graph --tenant {tenant}" in err


def test_a_scan_of_the_retired_endpoint_names_the_graph_scan(
    emulator: Emulator, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join(emulator.tenant_ids) + "\n", encoding="utf-8")
    code, out, err = run(
        "scan", "--api", "legacy", "--tenants", str(tenants), "--operation", "history", "--base-url",
        emulator.base_url, "--token", RETIRED_TOKEN,
    )  # fmt: skip
    assert code == 1, err
    assert "Failed tenants (3)" in out
    assert out.count("EndpointRetiredError") == 3
    assert "servicecomms scan --api graph --operation history" in out


# -- without rich -----------------------------------------------------------------------------------

_WITHOUT_RICH = """
import sys

class RefuseRich:
    def find_spec(self, name, path=None, target=None):
        if name == "rich" or name.startswith("rich."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, RefuseRich())
import servicecomms_async.cli
sys.exit(servicecomms_async.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["demo"], ["status", "--tenant", "contoso.com"], ["--help"]])
def test_without_rich_the_command_names_the_extra_and_exits_2(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RICH, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        'error: the servicecomms command needs the cli extra: pip install "servicecomms-async[cli]"\n'
    )


def test_importing_the_library_or_the_cli_does_not_import_rich() -> None:
    code = "import sys, servicecomms_async, servicecomms_async.cli; print('rich' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
