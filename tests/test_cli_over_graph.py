"""The legacy commands over Microsoft Graph: ``services``, ``status`` and ``history`` with ``--api
graph`` print the legacy records and CSV columns, and ``messages --shape legacy`` the legacy-shaped
messages, against the emulator serving both APIs on loopback."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from servicecomms_async.cli import CSV_COLUMNS, main
from servicecomms_async.emulator import Emulator, EmulatorConfig

from .conftest import TOKEN, ThreadedEmulator

TEMPLATE = "emulator-app.{tenant}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(seed=31, tenants=4, messages_per_tenant=80, degraded_ratio=0.75)
    with ThreadedEmulator(config) as emu:
        yield emu


def run(emu: Emulator, api: str, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    if api == "graph":
        connection = ["--base-url", emu.graph_base_url, "--token-template", TEMPLATE]
    else:
        connection = ["--base-url", emu.base_url, "--token", TOKEN]
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [*argv, "--api", api, *connection],
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        environ={},
    )
    return code, out.getvalue(), err.getvalue()


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or ()), rows


@pytest.mark.parametrize("command", ["services", "status", "history"])
def test_graph_prints_the_legacy_records_and_columns(emulator: Emulator, command: str) -> None:
    for tenant in emulator.tenant_ids:
        code, legacy_out, err = run(
            emulator, "legacy", command, "--tenant", tenant, "--format", "csv"
        )
        assert code == 0, err
        code, graph_out, err = run(
            emulator, "graph", command, "--tenant", tenant, "--format", "csv"
        )
        assert code == 0, err
        legacy_columns, legacy_rows = csv_rows(legacy_out)
        graph_columns, graph_rows = csv_rows(graph_out)
        assert graph_columns == legacy_columns == list(CSV_COLUMNS[command])
        assert len(graph_rows) == len(legacy_rows) > 0
        same = ["TenantId", "Id", "DisplayName"] if command == "services" else [
            "TenantId", "Id", "Workload", "WorkloadDisplayName",
        ]  # fmt: skip
        if command == "history":
            same.append("StatusTime")  # midnight UTC on both
        if command == "status":
            same += ["Status", "StatusDisplayName"]
        for ours, theirs in zip(graph_rows, legacy_rows, strict=True):
            assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
            if command == "services":
                # Graph names the feature groups its issues name: legacy display names (the
                # legacy cell lists the short names, which Graph has not).
                legacy_service = next(
                    s for s in emulator.dataset(tenant).services if s["Id"] == theirs["Id"]
                )
                display_names = {f["DisplayName"] for f in legacy_service["Features"]}
                assert set(filter(None, ours["Features"].split(";"))) <= display_names
            elif command == "history":
                ids = set(filter(None, ours["IncidentIds"].split(";")))
                assert ids == set(filter(None, theirs["IncidentIds"].split(";")))
            else:
                ids = set(filter(None, ours["IncidentIds"].split(";")))
                assert set(filter(None, theirs["IncidentIds"].split(";"))) <= ids


def test_graph_json_records_are_legacy_records(emulator: Emulator) -> None:
    tenant = emulator.tenant_ids[0]
    code, out, err = run(emulator, "graph", "history", "--tenant", tenant, "--format", "json")
    assert code == 0, err
    records: list[dict[str, Any]] = json.loads(out)
    assert records and all(next(iter(r)) == "TenantId" for r in records)
    assert {r["source"] for r in records} == {"reconstructed"}
    assert all(r["StatusTime"].endswith("T00:00:00Z") for r in records)
    assert all(isinstance(r["FeatureStatus"], list) for r in records)

    workload = records[0]["Workload"]
    code, out, err = run(
        emulator, "graph", "status", "--tenant", tenant, "--workload", workload.upper(),
        "--format", "jsonl",
    )  # fmt: skip
    assert code == 0, err
    assert [json.loads(line)["Workload"] for line in out.splitlines()] == [workload]


def test_messages_shape_legacy_prints_legacy_messages(emulator: Emulator) -> None:
    tenant = emulator.tenant_ids[1]
    code, out, err = run(
        emulator, "graph", "messages", "--tenant", tenant, "--shape", "legacy", "--format", "csv"
    )
    assert code == 0, err
    columns, rows = csv_rows(out)
    assert columns == list(CSV_COLUMNS["messages"])
    data = emulator.graph_dataset(tenant)
    assert [r["Id"] for r in rows] == [i["id"] for i in data.issues] + [
        m["id"] for m in data.messages
    ]
    assert {r["MessageType"] for r in rows} == {"Incident", "MessageCenter"}
    assert {r["TenantId"] for r in rows} == {tenant}

    # The same incidents as the legacy API's, with its columns.
    code, legacy_out, err = run(
        emulator, "legacy", "messages", "--tenant", tenant, "--type", "Incident", "--format", "csv"
    )
    assert code == 0, err
    _, legacy_rows = csv_rows(legacy_out)
    code, out, err = run(
        emulator, "graph", "messages", "--tenant", tenant, "--shape", "legacy",
        "--type", "Incident", "--page-size", "9", "--format", "csv",
    )  # fmt: skip
    assert code == 0, err
    _, graph_rows = csv_rows(out)
    same = ["Id", "MessageType", "Workload", "WorkloadDisplayName", "FeatureDisplayName",
            "Title", "Status", "Classification", "StartTime", "EndTime", "LastUpdatedTime"]  # fmt: skip
    assert [{k: r[k] for k in same} for r in graph_rows] == [
        {k: r[k] for k in same} for r in legacy_rows
    ]

    # Graph's own Message Center records stay the default shape.
    code, out, err = run(emulator, "graph", "messages", "--tenant", tenant, "--format", "jsonl")
    assert code == 0, err
    first = json.loads(out.splitlines()[0])
    assert next(iter(first)) == "tenantId" and "category" in first


def test_shape_usage_errors(emulator: Emulator) -> None:
    tenant = emulator.tenant_ids[0]
    code, _, err = run(emulator, "graph", "messages", "--tenant", tenant, "--type", "Incident")
    assert code == 2 and "--shape legacy" in err
    code, _, err = run(emulator, "graph", "messages", "--tenant", tenant, "--shape", "legacy",
                       "--category", "planForChange")  # fmt: skip
    assert code == 2 and "--category" in err
    code, _, err = run(emulator, "legacy", "messages", "--tenant", tenant, "--shape", "graph")
    assert code == 2 and "--shape graph" in err


def test_a_graph_scan_of_the_status(emulator: Emulator) -> None:
    stdin = "\n".join(emulator.tenant_ids) + "\n"
    code, out, err = run(
        emulator, "graph", "scan", "--tenants", "-", "--operation", "status", "--format", "csv",
        "--no-progress", stdin=stdin,
    )  # fmt: skip
    assert code == 0, err
    columns, rows = csv_rows(out)
    assert columns == list(CSV_COLUMNS["status"])
    assert {r["TenantId"] for r in rows} == set(emulator.tenant_ids)
