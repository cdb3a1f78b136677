"""Issue 12 ("Hardening"), the command line: hostile server text, failures a program can read, Ctrl-C
and closed pipes, credentials, local input and output, and the benchmarks' committed results.

In-process through ``main(argv)`` against the emulator on loopback (hostile answers from
``canned_middleware``), and as real subprocesses where a signal or a pipe matters."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from servicecomms_async.cli import main
from servicecomms_async.emulator import Emulator, EmulatorConfig

from .conftest import ThreadedEmulator, canned_middleware

TOKEN = "hardening-token-never-shown"
GUID = "603b68be-c201-4d4e-9a4b-0123456789ab"  # a tenant whose id must never be cut
HOSTILE = "hostile.example.com"
MARKUP = "markup.example.com"
FORMULAS = "formulas.example.com"
DEEP = "deep.example.com"
# Window title, clear screen, a clipboard write (OSC 52), a bidirectional override.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u202e"
DEPTH = 1000


def _services(*names: str, extra: Any = None) -> bytes:
    items = []
    for index, name in enumerate(names):
        item: dict[str, Any] = {"Id": f"Svc{index}", "DisplayName": name, "Features": []}
        if extra is not None:
            item["Nested"] = extra
        items.append(item)
    return json.dumps({"value": items}).encode()


def _error(status: int, code: str, message: str) -> tuple[int, bytes, Mapping[str, str]]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, body, {"Content-Type": "application/json", "X-Activity-Id": "req-0001"}


def _deep_body() -> bytes:
    nested = "[" * DEPTH + "]" * DEPTH
    text = '{"value":[{"Id":"Deep","DisplayName":"Deep","Features":[],"Nested":' + nested + "}]}"
    return text.encode()


JSON = {"Content-Type": "application/json"}
CANNED = {
    GUID: _error(403, "AF10001", f"Denied {ESCAPES} here"),
    HOSTILE: _error(403, "AF10001", f"Bad {ESCAPES} text"),
    MARKUP: (200, _services("[/] closes", "[b]bold[/b] and [red]red[/red]", ":smile:"), JSON),
    FORMULAS: (200, _services('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "plain"), JSON),
    DEEP: (200, _deep_body(), JSON),
}


@dataclass
class Served:
    emulator: Emulator

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def tenants(self) -> list[str]:
        return self.emulator.tenant_ids


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    config = EmulatorConfig(seed=5, tenants=4, messages_per_tenant=30)
    with ThreadedEmulator(config, middlewares=[canned_middleware(CANNED)]) as emulator:
        yield Served(emulator)


@pytest.fixture(scope="module")
def slow() -> Iterator[Served]:
    """Forty tenants answering slowly: a scan of them takes many seconds, time to interrupt it."""
    config = EmulatorConfig(seed=9, tenants=40, messages_per_tenant=20, latency=0.25)
    with ThreadedEmulator(config) as emulator:
        yield Served(emulator)


@dataclass
class Run:
    code: int
    out: str
    err: str


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(served: Served | None, *argv: str, stdin: str = "", terminal: bool = False) -> Run:
    args = list(argv)
    if served is not None:
        args += ["--base-url", served.base_url, "--token", TOKEN]
    out: io.StringIO = _Terminal() if terminal else io.StringIO()
    err = io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err, environ={})
    return Run(code, out.getvalue(), err.getvalue())


def scan(served: Served, tmp_path: Path, tenants: list[str], *argv: str, **kw: Any) -> Run:
    path = tmp_path / "tenants.txt"
    path.write_text("\n".join(tenants) + "\n", encoding="utf-8")
    return run(served, "scan", "--api", "legacy", "--tenants", str(path), "--operation",
               "services", *argv, **kw)  # fmt: skip


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # rich's own colours on a "terminal"


def python_m(*argv: str, **kw: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SERVICECOMMS_"))}
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.Popen(
        [sys.executable, "-m", "servicecomms_async", *argv],
        stdin=subprocess.DEVNULL,
        env=env,
        **options,
    )


# -- 15: server text is shown, never obeyed ----------------------------------------------------


def test_escape_sequences_in_an_error_line_are_shown_escaped(served: Served) -> None:
    result = run(served, "services", "--api", "legacy", "--tenant", HOSTILE, "--attempts", "1")
    assert result.code == 1
    assert "\x1b" not in result.err and "\x07" not in result.err and "\u202e" not in result.err
    assert "Bad \\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\u202e text" in result.err


def test_escape_sequences_in_the_failure_table_are_shown_escaped(
    served: Served, tmp_path: Path
) -> None:
    result = scan(served, tmp_path, [HOSTILE, served.tenants[0]], "--attempts", "1")
    assert result.code == 1
    assert "Failed tenants (1)" in result.out
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "\\x1b]52;c;ZXZpbA==" in result.out


def test_markup_in_server_text_is_text_in_tables(served: Served, tmp_path: Path) -> None:
    single = run(served, "services", "--api", "legacy", "--tenant", MARKUP)
    assert single.code == 0, single.err
    summary = scan(served, tmp_path, [MARKUP])
    assert summary.code == 0, summary.err  # before: rich's MarkupError on "[/]"
    for text in (single.out, summary.out):
        assert "[/] closes" in text
        assert "[b]bold[/b] and [red]red[/red]" in text
        assert ":smile:" in text


# -- 16: which tenants failed, readable by programs and uncut for people -------------------------


def test_failures_file_has_one_uncut_record_per_failed_tenant(
    served: Served, tmp_path: Path
) -> None:
    failures = tmp_path / "failures.jsonl"
    result = scan(served, tmp_path, [GUID, HOSTILE, served.tenants[1]], "--attempts", "1",
                  "--failures", str(failures))  # fmt: skip
    assert result.code == 1
    records = [json.loads(line) for line in failures.read_text(encoding="utf-8").splitlines()]
    assert [r["tenant"] for r in records] == sorted([GUID, HOSTILE])
    first = records[0]
    assert re.fullmatch(r"[0-9a-f-]{36}", first.pop("request_id"))  # the emulator's activity id
    assert first == {
        "tenant": GUID,
        "error": "ForbiddenError",
        "status": 403,
        "code": "AF10001",
        "message": f"Denied {ESCAPES} here",  # data for programs: as the server sent it
    }


def test_failures_file_is_written_empty_when_every_tenant_succeeds(
    served: Served, tmp_path: Path
) -> None:
    failures = tmp_path / "failures.jsonl"
    result = scan(served, tmp_path, served.tenants[:2], "--failures", str(failures))
    assert result.code == 0, result.err
    assert failures.read_text(encoding="utf-8") == ""


def test_json_summary_is_one_document_with_totals_tables_and_failures(
    served: Served, tmp_path: Path
) -> None:
    result = scan(served, tmp_path, [GUID, *served.tenants[:2]], "--attempts", "1",
                  "--summary-format", "json")  # fmt: skip
    assert result.code == 1
    summary = json.loads(result.out)
    assert (summary["tenants"], summary["succeeded"], summary["failed"]) == (3, 2, 1)
    assert summary["interrupted"] is False
    assert summary["failures"][0]["tenant"] == GUID
    assert summary["tables"] and summary["tables"][0]["rows"]


def test_an_80_column_terminal_wraps_text_and_never_cuts_a_tenant_id(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = scan(served, tmp_path, [GUID, HOSTILE, served.tenants[0]], "--attempts", "1",
                  terminal=True)  # fmt: skip
    assert result.code == 1
    text = _plain(result.out)
    assert GUID in text  # before: "603b68be-c201-4…"
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    wide = scan(served, tmp_path, [GUID, HOSTILE], "--attempts", "1", "--wide", terminal=True)
    lines = [line for line in _plain(wide.out).splitlines() if GUID in line]
    assert len(lines) == 1 and "ForbiddenError" in lines[0] and "Denied" in lines[0]


# -- 17: Ctrl-C and closed pipes -----------------------------------------------------------------


def _wait_for_requests(served: Served, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while len(served.emulator.requests) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the scan never started"
        time.sleep(0.05)


def _interrupt(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, (out or b"").decode(), err.decode()


def _slow_scan(slow: Served, where: Path, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
    tenants = where / "tenants.txt"
    tenants.write_text("\n".join(slow.tenants) + "\n", encoding="utf-8")
    return python_m(
        "scan", "--api", "legacy", "--tenants", str(tenants), "--operation", "messages",
        "--concurrency", "2", "--base-url", slow.base_url, "--token", TOKEN, *argv, **kw,
    )  # fmt: skip


def test_ctrl_c_prints_a_partial_summary_and_leaves_the_output_file_as_it_was(
    slow: Served, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    output = results / "messages.json"
    output.write_text("previous run\n", encoding="utf-8")
    before = len(slow.emulator.requests)
    process = _slow_scan(slow, tmp_path, "--format", "json", "-o", str(output))
    _wait_for_requests(slow, before + 4, process)
    code, out, err = _interrupt(process)
    assert code == 130, err
    assert "Interrupted after" in out, out + err  # before: nothing but "interrupted"
    assert "of 40 tenants finished" in out
    assert "Traceback" not in err
    # Before: a truncated JSON array; now the file is only ever replaced by a complete one.
    assert output.read_text(encoding="utf-8") == "previous run\n"
    assert [p.name for p in results.iterdir()] == ["messages.json"]


def test_ctrl_c_closes_the_json_array_on_stdout(slow: Served, tmp_path: Path) -> None:
    before = len(slow.emulator.requests)
    # stdout to a file, not a pipe that nobody reads until the end (it would fill and block).
    with (tmp_path / "stdout.json").open("wb") as stdout:
        process = _slow_scan(slow, tmp_path, "--format", "json", stdout=stdout)
        _wait_for_requests(slow, before + 6, process)
        code, _, err = _interrupt(process)
    assert code == 130, err
    records = json.loads((tmp_path / "stdout.json").read_text(encoding="utf-8"))
    assert isinstance(records, list)
    assert "Interrupted after" in err


def test_a_reader_that_stops_early_is_not_a_failure(slow: Served, tmp_path: Path) -> None:
    process = _slow_scan(slow, tmp_path, "--format", "jsonl")
    assert process.stdout is not None
    first = process.stdout.readline()
    assert json.loads(first)["TenantId"]
    process.stdout.close()  # as `| head -1` does
    assert process.stderr is not None
    err = process.stderr.read().decode()
    assert process.wait(timeout=30) == 0, err  # before: 1, which says a tenant failed
    assert "Traceback" not in err
    process.stderr.close()


# -- 18: credentials -------------------------------------------------------------------------------


class _NoCredential:
    """A sync credential that fails as DefaultAzureCredential does without any configured."""

    calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        type(self).calls += 1
        raise ClientAuthenticationError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
            "Attempted credentials:\n"
            "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
            "\tAzureCliCredential: Azure CLI not found on path"
        )

    def close(self) -> None:
        pass


def test_a_scan_without_working_credentials_stops_once_with_the_reasons(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicecomms_async.cli import auth

    def no_credentials(args: Any, environ: Any, stderr: Any = None) -> auth.Auth:
        credential = _NoCredential()
        return auth.Auth({"credential": credential, "per_tenant_tokens": True}, credential)

    from servicecomms_async.cli.commands import scan as scan_command

    monkeypatch.setattr(scan_command, "make_auth", no_credentials)
    _NoCredential.calls = 0
    tenants = [f"tenant{i}.example.com" for i in range(30)]
    path = tmp_path / "tenants.txt"
    path.write_text("\n".join(tenants), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["scan", "--api", "legacy", "--tenants", str(path), "--base-url", served.base_url,
         "--concurrency", "1", "--attempts", "1", "--failures", str(tmp_path / "failed.jsonl")],
        stdin=io.StringIO(), stdout=out, stderr=err, environ={},
    )  # fmt: skip
    assert code == 1
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("error: stopped the scan: its first 3 tenants could not get a token")
    assert "DefaultAzureCredential failed to retrieve a token" in lines[0]
    assert any("--device-code" in line and "AZURE_CLIENT_ID" in line for line in lines)
    assert "Failed tenants" not in out.getvalue() + err.getvalue()  # not 30 identical rows
    assert _NoCredential.calls < 10
    failed = (tmp_path / "failed.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["error"] for line in failed] == ["CredentialError"] * 3


def _auth_for(*argv: str, stderr: io.StringIO | None = None) -> Any:
    from servicecomms_async.cli.auth import make_auth
    from servicecomms_async.cli.parser import build_parser

    args = build_parser(emulator_options=False).parse_args(["status", "--tenant", "x.com", *argv])
    return make_auth(args, {}, stderr)


def test_device_code_builds_the_device_code_credential_and_prompts_on_stderr() -> None:
    from azure.identity import DeviceCodeCredential

    stderr = io.StringIO()
    auth = _auth_for("--device-code", "--client-id", "11111111-1111-1111-1111-111111111111",
                     "--auth-tenant", "contoso.onmicrosoft.com", stderr=stderr)  # fmt: skip
    credential = auth.credential
    assert isinstance(credential, DeviceCodeCredential)
    assert credential._client_id == "11111111-1111-1111-1111-111111111111"
    assert credential._tenant_id == "contoso.onmicrosoft.com"
    credential._prompt_callback("https://microsoft.com/devicelogin", "ABCD-1234", None)
    assert "https://microsoft.com/devicelogin" in stderr.getvalue()
    assert "ABCD-1234" in stderr.getvalue()


def test_interactive_builds_the_browser_credential() -> None:
    from azure.identity import InteractiveBrowserCredential

    credential = _auth_for("--interactive").credential
    assert isinstance(credential, InteractiveBrowserCredential)
    assert credential._tenant_id == "organizations"


def test_a_client_id_without_a_secret_is_a_usage_error_not_a_silent_fallback() -> None:
    result = run(None, "status", "--tenant", "x.com", "--client-id", "abc")
    assert result.code == 2
    assert "--client-id needs" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_verbose_before_the_command_is_accepted(served: Served) -> None:
    result = run(served, "-v", "services", "--api", "legacy", "--tenant", served.tenants[0])
    assert result.code == 0, result.err


# -- 19: local input and output --------------------------------------------------------------------


def test_tenants_from_dev_zero_is_a_usage_error(served: Served) -> None:
    result = run(served, "scan", "--tenants", "/dev/zero")
    assert result.code == 2  # before: MemoryError
    assert "longer than 1024 characters" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_too_many_tenants_is_a_usage_error(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicecomms_async.cli import tenants

    monkeypatch.setattr(tenants, "MAX_TENANTS", 5)
    path = tmp_path / "tenants.txt"
    path.write_text("\n".join(f"t{i}.example.com" for i in range(50)), encoding="utf-8")
    result = run(served, "scan", "--tenants", str(path))
    assert result.code == 2
    assert "more than 5 tenants" in result.err


def test_output_to_a_full_device_is_one_line(served: Served) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    tenant = served.tenants[0]
    result = run(
        served,
        "status",
        "--api",
        "legacy",
        "--tenant",
        tenant,
        "--format",
        "json",
        "-o",
        "/dev/full",
    )
    assert result.code == 2, result.err  # before: an OSError traceback
    assert result.err.strip() == ("error: cannot write --output /dev/full: No space left on device")


def test_items_nested_a_thousand_levels_deep_are_written_as_json(served: Served) -> None:
    for fmt in ("json", "jsonl"):
        result = run(served, "services", "--api", "legacy", "--tenant", DEEP, "--format", fmt)
        assert result.code == 0, result.err  # before: orjson's "Recursion limit reached"
        records = orjson.loads(result.out) if fmt == "json" else [orjson.loads(result.out)]
        nested, depth = records[0]["Nested"], 1
        while nested:
            nested, depth = nested[0], depth + 1
        assert depth == DEPTH
    table = run(served, "services", "--api", "legacy", "--tenant", DEEP)
    assert table.code == 0, table.err


def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote(served: Served) -> None:
    result = run(served, "services", "--api", "legacy", "--tenant", FORMULAS, "--format", "csv")
    assert result.code == 0, result.err
    names = [row["DisplayName"] for row in csv.DictReader(io.StringIO(result.out))]
    assert names == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "plain"]


# -- 21: benchmarks --------------------------------------------------------------------------------


def test_partial_benchmark_runs_never_write_the_committed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = pytest.importorskip("benchmarks.__main__")

    async def no_benchmarks(sizes: Any, names: Any) -> list[Any]:
        return []

    monkeypatch.setattr(bench, "run_benchmarks", no_benchmarks)
    results = bench.DEFAULT_OUTPUT
    before = results.read_bytes()
    for argv in (["--quick"], ["--only", "streaming"], ["--tiny"]):
        assert bench.main(argv) == 0
        assert results.read_bytes() == before, argv
    with pytest.raises(SystemExit) as refused:
        bench.main(["--only", "streaming", "--output", str(results)])
    assert refused.value.code == 2
    assert results.read_bytes() == before
    elsewhere = tmp_path / "quick.md"
    assert bench.main(["--quick", "--output", str(elsewhere)]) == 0
    assert "# Benchmark results" in elsewhere.read_text(encoding="utf-8")
    assert "not written" in capsys.readouterr().err


def _on_a_terminal(*argv: str) -> str:
    """Run the command with stdout and stderr on one pseudo-terminal; what the terminal received."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SERVICECOMMS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "servicecomms_async", *argv],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env={**env, "COLUMNS": "100"},
    )  # fmt: skip
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    return received.decode("utf-8", "replace")


def test_records_on_the_terminal_leave_no_copies_of_the_progress_line() -> None:
    shown = _on_a_terminal("demo", "--api", "legacy", "--tenants", "30", "--format", "jsonl")
    assert '"TenantId"' in shown
    # Before: the bar and the records shared the line, and every redraw left a copy behind.
    assert "failed 0 items" not in shown and "items/s" not in shown.split("Scanned")[0]
    table = _on_a_terminal("demo", "--api", "legacy", "--tenants", "30")
    assert "items/s" in table  # with nothing else on the terminal, the bar is drawn
