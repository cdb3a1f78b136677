"""``servicecomms watch``: one cycle for cron, the state file, delivery at least once (``kill -9`` at
random moments), clean stops on SIGTERM and Ctrl-C, and ``watch status``."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from servicecomms_async.cli import main
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.graph import graph_error
from servicecomms_async.watch import SQLiteStateStore, WatchEvent

from .conftest import ThreadedEmulator

TEMPLATE = "emulator-app.{tenant}"
FORBIDDEN = "forbidden.example.com"  # its token is refused with 403


async def _tokens(token: str, permission: str) -> tuple[str, bool] | web.Response:
    tenant = token.removeprefix("emulator-app.")
    if tenant == token or not tenant:
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if tenant == FORBIDDEN:
        return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges.")
    return tenant, False


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=31, tenants=8, messages_per_tenant=60, degraded_ratio=0.5)
    with ThreadedEmulator(config, graph_token_validator=_tokens) as emulator:
        yield emulator


def watch(
    emu: Emulator, *argv: str, stdin: str = "", environ: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    connection = ["--base-url", emu.graph_base_url, "--token-template", TEMPLATE]
    args = ["watch", *argv, *(connection if argv[0] != "status" else [])]
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=dict(environ or {}))
    return code, out.getvalue(), err.getvalue()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tenants_file(tmp_path: Path, tenants: list[str]) -> Path:
    path = tmp_path / "tenants.txt"
    path.write_text("# watched\n" + "\n".join(tenants) + "\n")
    return path


def test_once_delivers_the_baseline_then_nothing(emu: Emulator, tmp_path: Path) -> None:
    state, out = tmp_path / "watch.db", tmp_path / "events.jsonl"
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    args = ("--once", "--tenants", str(tenants), "--state", str(state), "--sink", f"jsonl:{out}")
    code, stdout, stderr = watch(emu, *args)
    assert code == 0, stderr
    events = lines(out)
    expected = set()
    for tenant in emu.tenant_ids:
        data = emu.graph_dataset(tenant)
        expected |= {("issue.opened", i["id"]) for i in data.issues if not i["isResolved"]}
        expected |= {
            ("service.status_changed", s["id"])
            for s in data.health_overviews
            if s["status"] != "serviceOperational"
        }
    assert {(e["type"], e["subject"]) for e in events} == expected
    assert all(e["specversion"] == "1.0" and e["data"]["baseline"] for e in events)
    assert f"polled {len(emu.tenant_ids)}/{len(emu.tenant_ids)} tenants" in stdout
    # The next cycle: nothing changed, nothing delivered, the file is as it was.
    code, _, stderr = watch(emu, *args)
    assert code == 0, stderr
    assert lines(out) == events
    code, status, _ = watch(emu, "status", "--state", str(state), "--format", "json")
    rows = json.loads(status)
    assert {r["tenantId"] for r in rows} == set(emu.tenant_ids)
    assert all(r["failuresInARow"] == 0 and r["pendingEvents"] == 0 for r in rows)
    assert all(r["lastSuccess"] and r["cursor"] for r in rows)
    code, table, _ = watch(emu, "status", "--state", str(state))
    assert code == 0 and emu.tenant_ids[0] in table and "last success" in table


def test_events_on_stdout_and_a_failing_tenant_exits_1(emu: Emulator, tmp_path: Path) -> None:
    tenants = tenants_file(tmp_path, [emu.tenant_ids[0], FORBIDDEN])
    state = tmp_path / "watch.db"
    code, stdout, stderr = watch(
        emu, "--once", "--tenants", str(tenants), "--state", str(state), "--baseline", "none"
    )
    assert code == 1
    (event,) = [json.loads(line) for line in stdout.splitlines()]  # jsonl:- is the default
    assert event["type"] == "tenant.failed" and event["subject"] == FORBIDDEN
    assert event["data"]["error"]["status"] == 403
    assert "1 failed" in stderr  # the cycle's line goes to stderr when stdout carries events
    code, status, _ = watch(emu, "status", "--state", str(state), "--format", "json")
    failing = next(r for r in json.loads(status) if r["tenantId"] == FORBIDDEN)
    assert failing["failuresInARow"] == 1 and failing["lastSuccess"] is None
    assert failing["lastError"]["code"] == "Authorization_RequestDenied"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--once", "--tenant", "x.example.com"), "--state PATH is required"),
        (("--once", "--state", "s.db"), "give --tenant T or --tenants FILE"),
        (
            ("--once", "--tenant", "x.example.com", "--state", "s.db", "--sink", "sms:x"),
            "unknown sink kind 'sms'",
        ),
        (
            (
                "--once",
                "--tenant",
                "x.example.com",
                "--state",
                "s.db",
                "--sink",
                "slack:https://h/x",
            ),
            "a slack URL is a secret",
        ),
        (
            ("--once", "--tenant", "x.example.com", "--state", "s.db", "--interval", "5m"),
            "not allowed",
        ),
        (("--tenant", "x.example.com", "--state", "s.db", "--api", "legacy"), "Microsoft Graph"),
    ],
)
def test_usage_errors(emu: Emulator, tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
    os.chdir(tmp_path)
    emu.requests.clear()
    code, _, stderr = watch(emu, *argv)
    assert code == 2 and message in stderr, stderr
    assert emu.requests == []
    assert not (tmp_path / "s.db").exists()


def test_a_foreign_state_file_is_refused_untouched(emu: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "notes.db"
    state.write_text("my notes, not a database\n")
    code, _, stderr = watch(emu, "--once", "--tenant", emu.tenant_ids[0], "--state", str(state))
    assert code == 2 and "--state:" in stderr
    assert state.read_text() == "my notes, not a database\n"


# -- as a process: signals and kill -9 ----------------------------------------------------------------


def command(emu: Emulator, *argv: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "servicecomms_async",
        "watch",
        *argv,
        "--base-url",
        emu.graph_base_url,
        "--token-template",
        TEMPLATE,
    ]


@pytest.mark.parametrize(("sent", "expected"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_forever_stops_cleanly_on_a_signal(
    emu: Emulator, tmp_path: Path, sent: signal.Signals, expected: int
) -> None:
    state, out = tmp_path / "watch.db", tmp_path / "events.jsonl"
    process = subprocess.Popen(
        command(
            emu,
            *("--tenant", emu.tenant_ids[0], "--state", str(state)),
            *("--interval", "1s", "--no-budget", "--sink", f"jsonl:{out}"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not state.exists():
            time.sleep(0.05)
        time.sleep(2.5)  # a cycle or two
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == expected, stderr
    assert "stopping" in stdout
    assert "Traceback" not in stderr

    async def check() -> None:
        async with SQLiteStateStore(state, readonly=True) as store:
            assert await store.integrity_check() == ["ok"]
            (tenant,) = await store.tenant_states()
            assert tenant.has_baseline
            assert await store.pending_events() == []

    anyio.run(check)


async def _intact(state: Path, run: int) -> None:
    async with SQLiteStateStore(state, readonly=True) as store:
        assert await store.integrity_check() == ["ok"], f"run {run}"


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """20 runs killed at random moments, each restarted until a cycle completes: every expected
    event is delivered at least once, a duplicate is the same line again, the state never corrupt."""
    config = EmulatorConfig(seed=32, tenants=16, messages_per_tenant=80, degraded_ratio=0.5)
    seed = int(os.environ.get("WATCH_CRASH_SEED", random.randrange(1 << 32)))
    print(f"WATCH_CRASH_SEED={seed}")
    rng = random.Random(seed)
    with ThreadedEmulator(config, graph_token_validator=_tokens) as emulator:
        tenants = tenants_file(tmp_path, emulator.tenant_ids)
        reference = tmp_path / "reference.jsonl"
        started = time.monotonic()
        once = ("--once", "--baseline", "all", "--tenants", str(tenants), "--concurrency", "4")
        subprocess.run(
            command(
                emulator, *once, "--state", str(tmp_path / "ref.db"), "--sink", f"jsonl:{reference}"
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        whole_run = time.monotonic() - started
        expected = {e["id"]: e for e in lines(reference)}
        state, out = tmp_path / "watch.db", tmp_path / "events.jsonl"
        kills = 0
        for run in range(20):
            process = subprocess.Popen(
                command(emulator, *once, "--state", str(state), "--sink", f"jsonl:{out}"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.1, whole_run * 0.95))
            if process.poll() is None:
                process.kill()
                kills += 1
            process.wait(timeout=60)

            if state.exists():
                anyio.run(_intact, state, run)
        # Finish: restart until a run completes.
        for _ in range(5):
            done = subprocess.run(
                command(emulator, *once, "--state", str(state), "--sink", f"jsonl:{out}"),
                capture_output=True,
                timeout=120,
            )
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
    raw = out.read_text().splitlines() if out.exists() else []
    delivered = [json.loads(line) for line in raw if line]
    assert len(delivered) == len(raw)  # no torn line
    counts = Counter(e["id"] for e in delivered)
    assert set(counts) == set(expected), f"seed {seed}"
    by_id: dict[str, set[str]] = {}
    for line in raw:
        by_id.setdefault(json.loads(line)["id"], set()).add(line)
    assert all(len(versions) == 1 for versions in by_id.values())  # a duplicate is the same event
    for event_id, event in expected.items():
        mine = json.loads(next(iter(by_id[event_id])))
        assert (mine["type"], mine["subject"], mine["data"]["entity"]) == (
            event["type"],
            event["subject"],
            event["data"]["entity"],
        )
        WatchEvent.from_cloudevent(mine)
    assert kills >= 10, f"only {kills} of 20 runs were killed before they ended (seed {seed})"


class _Collector:
    """A webhook receiver on its own loop in a thread (reachable from subprocesses): it takes every
    event, slowly, and keeps each body it got by event id."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.bodies: dict[str, set[bytes]] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        import asyncio

        body = await request.read()
        await asyncio.sleep(0.005)  # slow enough for a kill to land in the middle of delivering
        self.bodies.setdefault(request.headers["webhook-id"], set()).add(body)
        return web.Response(status=204)

    def __enter__(self) -> _Collector:
        import asyncio

        self.thread.start()

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner

        self.runner = asyncio.run_coroutine_threadsafe(start(), self.loop).result()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    def __exit__(self, *exc_info: object) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def test_kill_9_while_delivering_to_a_webhook_loses_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("WATCH_CRASH_SEED", random.randrange(1 << 32)))
    print(f"WATCH_CRASH_SEED={seed}")
    rng = random.Random(seed)
    secret = "whsec_" + "a2lsbC05IHdoaWxlIGRlbGl2ZXJpbmcgdGhlIGV2ZW50cw=="
    environ = {**os.environ, "SERVICECOMMS_WEBHOOK_SECRET": secret}
    config = EmulatorConfig(seed=33, tenants=6, messages_per_tenant=40, degraded_ratio=0.5)
    with ThreadedEmulator(config, graph_token_validator=_tokens) as emulator, _Collector() as hook:
        tenants = tenants_file(tmp_path, emulator.tenant_ids)
        reference = tmp_path / "reference.jsonl"
        once = ("--once", "--baseline", "all", "--tenants", str(tenants))
        subprocess.run(
            command(
                emulator, *once, "--state", str(tmp_path / "ref.db"), "--sink", f"jsonl:{reference}"
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        expected = {e["id"] for e in lines(reference)}
        state = tmp_path / "watch.db"
        run = command(emulator, *once, "--state", str(state), "--sink", f"hook=webhook:{hook.url}")
        started = time.monotonic()
        subprocess.run(run, env=environ, capture_output=True, timeout=120)  # a whole run, to time
        whole = time.monotonic() - started
        hook.bodies.clear()
        state.unlink()
        for run_number in range(10):
            process = subprocess.Popen(
                run, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(0.1, whole))
            process.kill()
            process.wait(timeout=60)
            if state.exists():
                anyio.run(_intact, state, run_number)
        for _ in range(5):
            done = subprocess.run(run, env=environ, capture_output=True, timeout=120)
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
        leftover = subprocess.run(
            [
                sys.executable,
                "-m",
                "servicecomms_async",
                "watch",
                "deliveries",
                "--state",
                str(state),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert json.loads(leftover.stdout) == []  # nothing pending, nothing dead
    assert set(hook.bodies) == expected, f"seed {seed}"
    assert all(len(bodies) == 1 for bodies in hook.bodies.values())  # a duplicate is the same event


def test_sinks_from_a_config_file(emu: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    rolled = tmp_path / "rollups.jsonl"
    config = tmp_path / "watch.toml"
    config.write_text(
        f"""
[[sinks]]
name = "siem"
kind = "jsonl"
target = "{out}"

[[sinks]]
name = "digest"
kind = "jsonl"
target = "{rolled}"
rollup = true
"""
    )
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    code, stdout, stderr = watch(
        emu,
        "--once",
        "--tenants",
        str(tenants),
        "--state",
        str(tmp_path / "w.db"),
        "--config",
        str(config),
    )
    assert code == 0, stderr
    per_tenant, rollups = lines(out), lines(rolled)
    assert per_tenant and all(e["source"].startswith("/tenants/") for e in per_tenant)
    assert rollups and all(e["source"] == "/rollup" for e in rollups)
    # Every per-tenant change is in exactly one rollup, with its tenant.
    covered = Counter(
        (e["type"], e["subject"], t) for e in rollups for t in e["data"]["affectedTenants"]
    )
    assert covered == Counter(
        (e["type"], e["subject"], e["source"].removeprefix("/tenants/")) for e in per_tenant
    )
    assert "rollups" in stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[sinks]]\nkind = 'jsonl'\ntarget = 'x'\ncolour = 'red'\n", "unknown setting 'colour'"),
        ("[[sinks]\n", "is not valid TOML"),
        (
            "[[sinks]]\nkind = 'webhook'\ntarget = 'https://h.example/x'\nsecret = 'whsec_abc'\n",
            "env:VARNAME or file:PATH",
        ),
        ("[watch]\ninterval = 5\n", "unknown section 'watch'"),
    ],
)
def test_a_bad_config_is_a_usage_error(
    emu: Emulator, tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "watch.toml"
    config.write_text(text)
    code, _, stderr = watch(
        emu,
        "--once",
        "--tenant",
        emu.tenant_ids[0],
        "--state",
        str(tmp_path / "w.db"),
        "--config",
        str(config),
    )
    assert code == 2 and message in stderr, stderr
    assert "whsec_abc" not in stderr
    assert not (tmp_path / "w.db").exists()


def test_a_line_torn_by_a_crash_is_cut_before_appending(emu: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    whole = '{"specversion": "1.0", "id": "earlier"}\n'
    out.write_text(whole + '{"specversion": "1.0", "id": "torn-by-kill-9", "da')
    code, _, stderr = watch(
        emu,
        "--once",
        "--tenant",
        emu.tenant_ids[0],
        "--state",
        str(tmp_path / "w.db"),
        "--baseline",
        "all",
        "--sink",
        f"jsonl:{out}",
    )
    assert code == 0, stderr
    text = out.read_text()
    assert text.startswith(whole) and "torn-by-kill-9" not in text
    assert all(json.loads(line) for line in text.splitlines())  # whole lines only
