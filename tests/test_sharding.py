"""Sharding: rendezvous hashing over 10,000 tenants (disjoint, complete, balanced, stable when a shard
is added, the same in every process), ``--shard`` on ``scan`` and ``watch`` against the emulator, the
per-shard function for engines, and the Kubernetes manifests."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from servicecomms_async import ServiceCommsSession, Shard
from servicecomms_async.cli import main
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.sharding import run_watch_shard, shard_of, watch_shard
from servicecomms_async.watch import JsonlSink, SQLiteStateStore

from .conftest import ThreadedEmulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TEMPLATE = "emulator-app.{tenant}"


def ten_thousand_tenants() -> list[str]:
    """Half GUIDs (some in upper case), half domains: what a partner's tenants file holds."""
    rng = random.Random(17)
    guids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    guids = [g.upper() if i % 3 == 0 else g for i, g in enumerate(guids)]
    domains = [f"customer{i}.onmicrosoft.com" for i in range(5000)]
    return guids + domains


TENANTS = ten_thousand_tenants()


def assignment(count: int) -> dict[str, int]:
    return {tenant: shard_of(tenant, count) for tenant in TENANTS}


# -- the hash ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [4, 5, 8, 16])
def test_shards_are_disjoint_cover_every_tenant_and_are_balanced(count: int) -> None:
    shards = [Shard(index, count).select(TENANTS) for index in range(count)]
    everyone = [tenant for shard in shards for tenant in shard]
    assert len(everyone) == len(set(everyone)) == len(TENANTS)  # disjoint, nothing lost
    assert set(everyone) == {t.lower() for t in TENANTS}  # normalised ids
    sizes = [len(shard) for shard in shards]
    mean = len(TENANTS) / count
    # Each tenant lands on a shard independently of the others (that is what keeps a tenant where it
    # is when other tenants or shards come and go), so a shard's size is binomial, with
    # sigma = sqrt(T/N * (1 - 1/N)): 43 tenants for 10,000 over 4 shards, 24 over 16. 4.5 sigma is
    # not reached by chance; a biased hash would reach it.
    sigma = math.sqrt(mean * (1 - 1 / count))
    assert max(abs(size - mean) for size in sizes) <= 4.5 * sigma, sizes


@pytest.mark.parametrize("count", [4, 5, 8, 16])
def test_shards_are_within_five_percent_of_an_even_share_with_thousands_each(count: int) -> None:
    # 5% of an even share is 2.9 sigma for 10,000 tenants over 4 shards and 1.3 sigma over 16: no
    # hash of the tenant id alone keeps every shard that close at 10,000 (only an assignment that
    # depends on the whole list can, and then adding one tenant moves others). With 4,000 tenants a
    # shard, 5% is 3.2 sigma or more; with 64,000 tenants, every shard here is within 3%.
    tenants = [str(uuid.UUID(int=i * 7919 + 1, version=4)) for i in range(64_000)]
    sizes = Counter(shard_of(t, count) for t in tenants)
    mean = len(tenants) / count
    assert max(abs(size - mean) for size in sizes.values()) <= 0.05 * mean, sizes


def test_adding_a_fifth_shard_moves_a_fifth_of_the_tenants_all_to_it() -> None:
    four, five = assignment(4), assignment(5)
    moved = [tenant for tenant in TENANTS if four[tenant] != five[tenant]]
    assert all(five[tenant] == 4 for tenant in moved)  # only to the new shard
    assert abs(len(moved) / len(TENANTS) - 1 / 5) < 0.02, len(moved)
    assert len(moved) == Counter(five.values())[4]  # the new shard is made of moved tenants only


def test_the_tenant_id_is_normalised_before_hashing() -> None:
    guid = "8A2F6F7C-1B2C-4D5E-8F90-A1B2C3D4E5F6"
    for count in (2, 7, 31):
        assert shard_of(guid, count) == shard_of(guid.lower(), count)
        assert shard_of("Contoso.COM.", count) == shard_of("contoso.com", count)
    shard = Shard(shard_of("contoso.com", 3), 3)
    assert shard.select(["CONTOSO.com", "contoso.com."]) == ["contoso.com"]  # one tenant, once
    assert shard.owns("Contoso.Com")


def test_the_assignment_is_the_same_in_another_process_whatever_its_hash_seed() -> None:
    script = (
        "import json, sys; from servicecomms_async.sharding import shard_of\n"
        "tenants = json.load(sys.stdin)\n"
        "print(json.dumps([shard_of(t, 5) for t in tenants]))\n"
    )
    sample = TENANTS[::50]
    here = [shard_of(t, 5) for t in sample]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(sample),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        assert json.loads(done.stdout) == here


def test_the_hash_is_the_documented_one() -> None:
    """blake2b (8 bytes, big-endian) of "index:tenant", the highest weight wins: a contract, so that
    another implementation (or a later version) assigns the same tenants to the same shards."""

    def documented(tenant: str, count: int) -> int:
        weights = [
            int.from_bytes(hashlib.blake2b(f"{i}:{tenant}".encode(), digest_size=8).digest(), "big")
            for i in range(count)
        ]
        return weights.index(max(weights))

    guid = "8a2f6f7c-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    assert [shard_of(t, 8) for t in ("contoso.com", "fabrikam.com", "adatum.com", guid)] == [
        2, 6, 3, 7
    ]  # fmt: skip
    for tenant in TENANTS[::97]:
        for count in (1, 3, 16):
            assert shard_of(tenant, count) == documented(tenant.lower(), count)


# -- parsing ----------------------------------------------------------------------------------------


def test_specs_parse_zero_based_and_auto_reads_the_job_completion_index() -> None:
    assert Shard.parse("0/4") == Shard(0, 4)
    assert Shard.parse("3/4") == Shard(3, 4)
    assert str(Shard.parse("2/8")) == "2/8"
    assert Shard.parse("auto/4", environ={"JOB_COMPLETION_INDEX": "2"}) == Shard(2, 4)
    assert Shard.from_environment(6, environ={"JOB_COMPLETION_INDEX": "5"}) == Shard(5, 6)
    assert Shard(1, 4).state_path("/state/watch-{shard}.db") == "/state/watch-1.db"


@pytest.mark.parametrize(
    ("spec", "environ", "fragment"),
    [
        ("0/0", {}, "count must be at least 1"),
        ("4/4", {}, "index must be 0 to 3"),
        ("-1/3", {}, "index must be a whole number, got '-1'"),
        ("a/b", {}, "count must be a whole number, got 'b'"),
        ("a/3", {}, "index must be a whole number, got 'a'"),
        ("1/2/3", {}, "shard must be I/N"),
        ("3", {}, "shard must be I/N"),
        (" 1/3", {}, "whole number"),
        ("auto/3", {}, "$JOB_COMPLETION_INDEX, which is not set"),
        ("auto/3", {"JOB_COMPLETION_INDEX": "3"}, "is 3, but there are 3 shards"),
        ("auto/3", {"JOB_COMPLETION_INDEX": "x"}, "must be a shard index 0 to 2"),
        ("0/100001", {}, "at most 100,000"),
    ],
)
def test_bad_specs_are_clear_value_errors(
    spec: str, environ: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Shard.parse(spec, environ=environ)


def test_bad_shards_and_state_paths_in_python() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        Shard(-1, 3)
    with pytest.raises(TypeError):
        Shard(True, 3)
    with pytest.raises(ValueError, match=re.escape("must contain {shard}")):
        Shard(0, 2).state_path("watch.db")
    with pytest.raises(ValueError, match="tenant_ids: tenant must be"):
        Shard(0, 2).select(["contoso.com", "not a tenant"])


# -- the command line, against the emulator ---------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=41, tenants=12, messages_per_tenant=20, degraded_ratio=0.5)
    with ThreadedEmulator(config) as emulator:
        yield emulator


def cli(
    emu: Emulator, *argv: str, environ: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "--base-url", emu.graph_base_url, "--token-template", TEMPLATE]
    code = main(args, stdin=io.StringIO(), stdout=out, stderr=err, environ=dict(environ or {}))
    return code, out.getvalue(), err.getvalue()


def tenants_file(tmp_path: Path, tenants: list[str]) -> str:
    path = tmp_path / "tenants.txt"
    path.write_text("# all of them\n" + "\n".join(tenants) + "\n")
    return str(path)


def test_three_scan_shards_cover_every_tenant_exactly_once(emu: Emulator, tmp_path: Path) -> None:
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    seen: Counter[str] = Counter()
    for index in range(3):
        code, out, err = cli(
            emu,
            "scan",
            "--operation",
            "overview",
            "--tenants",
            tenants,
            "--shard",
            f"{index}/3",
            "--format",
            "jsonl",
            "--summary-format",
            "json",
            "--no-progress",
        )
        assert code == 0, err
        records = [json.loads(line) for line in out.splitlines()]
        mine = {r["tenantId"] for r in records}
        assert mine == set(Shard(index, 3).select(emu.tenant_ids))
        seen.update(mine)
        summary = json.loads(err[err.index("{") :])
        assert summary["shard"] == {"index": index, "count": 3, "tenants": len(mine), "of": 12}
        assert summary["tenants"] == len(mine)
        assert f"shard {index} of 3: {len(mine)} of 12 tenants" in err
    assert seen == Counter({tenant: 1 for tenant in emu.tenant_ids})
    # auto/3 in a pod of index 1: that shard's tenants, and no request for any other tenant.
    before = len(emu.requests)
    code, out, _ = cli(
        emu, "scan", "--operation", "overview", "--tenants", tenants, "--shard", "auto/3",
        environ={"JOB_COMPLETION_INDEX": "1"},
    )  # fmt: skip
    assert code == 0
    mine = Shard(1, 3).select(emu.tenant_ids)
    assert f"Shard 1 of 3: {len(mine)} of 12 tenants." in out
    asked = {r.headers["Authorization"].removeprefix("Bearer emulator-app.")
             for r in emu.requests[before:]}  # fmt: skip
    assert asked == set(mine)


@pytest.mark.parametrize(
    ("argv", "environ", "fragment"),
    [
        (["--shard", "0/0"], {}, "--shard: shard count must be at least 1"),
        (["--shard", "4/4"], {}, "index must be 0 to 3"),
        (["--shard=-1/3"], {}, "whole number"),  # "--shard -1/3" is argparse's error
        (["--shard", "a/b"], {}, "whole number"),
        (["--shard", "1/2/3"], {}, "I/N"),
        (["--shard", "auto/3"], {}, "JOB_COMPLETION_INDEX"),
    ],
)
@pytest.mark.parametrize("command", ["scan", "watch"])
def test_bad_shards_are_usage_errors_before_any_request(
    emu: Emulator,
    tmp_path: Path,
    command: str,
    argv: list[str],
    environ: dict[str, str],
    fragment: str,
) -> None:
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    extra = ["--state", str(tmp_path / "w-{shard}.db"), "--once"] if command == "watch" else []
    before = len(emu.requests)
    code, _, err = cli(emu, command, "--tenants", tenants, *extra, *argv, environ=environ)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert len(emu.requests) == before
    assert not list(tmp_path.glob("w-*"))  # no state file made


def test_watch_shards_each_keep_their_own_state_file(emu: Emulator, tmp_path: Path) -> None:
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    state = str(tmp_path / "watch-{shard}.db")
    polled: set[str] = set()
    for index in range(3):
        events = tmp_path / f"events-{index}.jsonl"
        argv = ("watch", "--once", "--tenants", tenants, "--state", state, "--shard", f"{index}/3")
        code, out, err = cli(emu, *argv, "--sink", f"jsonl:{events}", "--baseline", "all")
        assert code == 0, err
        mine = set(Shard(index, 3).select(emu.tenant_ids))
        assert f"shard {index} of 3: {len(mine)} of 12 tenants, state " in out
        assert f"polled {len(mine)}/{len(mine)} tenants" in out
        delivered = [json.loads(line) for line in events.read_text().splitlines()]
        assert {e["data"]["tenantId"] for e in delivered} == mine  # every tenant's, no other's
        code, status, _ = main_status(tmp_path / f"watch-{index}.db")
        assert {row["tenantId"] for row in status} == mine
        polled |= mine
    assert polled == set(emu.tenant_ids)
    assert sorted(p.name for p in tmp_path.glob("watch-*.db")) == [
        "watch-0.db", "watch-1.db", "watch-2.db"
    ]  # fmt: skip


def main_status(path: Path) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["watch", "status", "--state", str(path), "--format", "json"]
    code = main(argv, stdout=out, stderr=err, environ={})
    return code, json.loads(out.getvalue()), err.getvalue()


@pytest.mark.parametrize(
    ("state", "shard", "fragment"),
    [
        ("watch.db", "0/3", "--state: a sharded state path must contain {shard}"),
        ("watch-{shard}.db", None, "contains {shard}, which only --shard fills"),
    ],
)
def test_a_state_path_must_name_the_shard_exactly_when_sharded(
    emu: Emulator, tmp_path: Path, state: str, shard: str | None, fragment: str
) -> None:
    tenants = tenants_file(tmp_path, emu.tenant_ids)
    argv = ["watch", "--once", "--tenants", tenants, "--state", str(tmp_path / state)]
    code, _, err = cli(emu, *argv, *(["--shard", shard] if shard else []))
    assert code == 2 and fragment in err, err
    assert not list(tmp_path.glob("*.db"))


def test_a_shard_without_tenants_succeeds_and_makes_no_state(emu: Emulator, tmp_path: Path) -> None:
    tenant = emu.tenant_ids[0]
    other = (shard_of(tenant, 2) + 1) % 2
    argv = ["watch", "--once", "--tenant", tenant, "--state", str(tmp_path / "w-{shard}.db")]
    code, out, err = cli(emu, *argv, "--shard", f"{other}/2", "--sink", "jsonl:-")
    assert code == 0, err
    assert f"shard {other} of 2: 0 of 1 tenants" in err and out == ""
    assert not list(tmp_path.glob("w-*"))


# -- the function for engines ---------------------------------------------------------------------


def session_factory(emu: Emulator) -> ServiceCommsSession[Any]:
    return ServiceCommsSession(
        token=lambda tenant: f"emulator-app.{tenant}", api="graph", base_url=emu.graph_base_url
    )


def test_run_watch_shard_polls_its_tenants_and_returns_a_json_summary(
    emu: Emulator, tmp_path: Path
) -> None:
    summaries = []
    for index in range(3):
        events = tmp_path / f"events-{index}.jsonl"
        summary = run_watch_shard(
            emu.tenant_ids,
            f"{index}/3",
            tmp_path / "state-{shard}.db",
            session=lambda: session_factory(emu),
            sinks=lambda: [JsonlSink(str(events))],  # noqa: B023  (called at once)
            baseline="all",
        )
        json.dumps(summary)  # JSON-able, for Celery's and Temporal's serialisers
        mine = Shard(index, 3).select(emu.tenant_ids)
        assert summary["shard"] == f"{index}/3"
        assert summary["tenants"] == summary["succeeded"] == len(mine)
        assert summary["tenants_total"] == 12 and summary["failed"] == []
        assert summary["state"] == str(tmp_path / f"state-{index}.db")
        lines = [json.loads(line) for line in events.read_text().splitlines()]
        assert summary["events"] == summary["delivered"] == len(lines) > 0
        assert {e["data"]["tenantId"] for e in lines} == set(mine)
        assert summary["requests"] >= 3 * len(mine) and summary["pending"] == 0
        summaries.append(summary)
    assert sum(s["tenants"] for s in summaries) == 12
    # The next run of a shard: nothing changed, nothing new; the state was kept.
    again = run_watch_shard(
        emu.tenant_ids, "0/3", tmp_path / "state-{shard}.db", session=lambda: session_factory(emu)
    )
    assert again["events"] == 0 and again["succeeded"] == summaries[0]["tenants"]


@pytest.mark.anyio
async def test_watch_shard_uses_an_open_session_and_leaves_it_open(
    emu: Emulator, tmp_path: Path
) -> None:
    async with session_factory(emu) as session:
        summary = await watch_shard(
            emu.tenant_ids,
            Shard.parse("auto/2", environ={"JOB_COMPLETION_INDEX": "1"}),
            str(tmp_path / "w-{shard}.db"),
            session=session,
            baseline="none",
        )
        assert not session.closed
    assert summary["tenants"] == len(Shard(1, 2).select(emu.tenant_ids))
    assert summary["events"] == 0  # baseline "none"
    async with SQLiteStateStore(str(tmp_path / "w-1.db"), readonly=True) as store:
        assert {s.tenant_id for s in await store.tenant_states()} == set(
            Shard(1, 2).select(emu.tenant_ids)
        )


@pytest.mark.anyio
async def test_run_watch_shard_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="await watch_shard"):
        run_watch_shard(["contoso.com"], "0/1", tmp_path / "{shard}.db", session=lambda: None)  # type: ignore[arg-type,return-value]


# -- the examples -----------------------------------------------------------------------------------


def test_the_kubernetes_manifests_run_an_indexed_job_per_shard() -> None:
    manifests = sorted((EXAMPLES / "kubernetes").glob("*.yaml"))
    assert manifests
    text = "\n".join(path.read_text() for path in manifests)
    for needed in ("JOB_COMPLETION_INDEX", "completionMode: Indexed", "concurrencyPolicy: Forbid"):
        assert needed in text
    yaml = pytest.importorskip("yaml")
    documents = [doc for path in manifests for doc in yaml.safe_load_all(path.read_text()) if doc]
    cron = next(d for d in documents if d["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"]
    (container,) = job["template"]["spec"]["containers"]
    command = " ".join(container.get("command", []) + container.get("args", []))
    count = job["completions"]
    assert f"--shard auto/{count}" in command and "--once" in command and "{shard}" in command
    env = {e["name"]: e for e in container["env"]}
    assert any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())
    assert "AZURE_CLIENT_SECRET" in env


@pytest.mark.parametrize("name", ["celery_tasks.py", "prefect_flow.py"])
def test_the_engine_examples_import_without_their_engines(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
