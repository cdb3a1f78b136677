"""The benchmarks run end to end at tiny sizes, so they cannot rot. No timing is asserted here: these
figures mean nothing; what must hold is that each benchmark did the same work on both sides."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS, main
from benchmarks.sizes import TINY


# msgraph-sdk's generated code warns about its own deprecated classes on every call.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions.*")
def test_every_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    output, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"

    assert main(["--tiny", "--output", str(output), "--json", str(raw)]) == 0

    figures = json.loads(raw.read_text(encoding="utf-8"))
    assert set(figures) == set(BENCHMARKS)

    streaming = figures["streaming"]
    assert streaming["library_items"] == streaming["floor_items"] == TINY.stream_messages

    assert figures["parsing"]["items"] == TINY.parse_items

    fanout = figures["fanout"]
    assert fanout["library_items"] == fanout["floor_items"] > 0
    for side in ("library", "floor"):
        # one request per tenant (no retries), bounded by the concurrency, over reused connections
        assert fanout[side]["requests"] == TINY.fanout_tenants
        assert 1 <= fanout[side]["max_in_flight"] <= TINY.fanout_concurrency
        assert 1 <= fanout[side]["connections_opened"] <= TINY.fanout_concurrency

    memory = figures["memory"]
    assert memory["scan_items"]["library"] == memory["scan_items"]["floor"] > 0
    for side in ("library", "floor"):
        peaks = memory["stream_peaks_mb"][side]
        assert set(peaks) == {str(TINY.memory_small), str(TINY.memory_large)}
        assert all(peak > 0 for peak in peaks.values())

    scaling = figures["scaling"]["by_tenants"]
    assert set(scaling) == {str(count) for count in TINY.scaling_tenants}
    for by_size in scaling.values():
        assert by_size["library_items"] == by_size["floor_items"] > 0

    startup = figures["startup"]
    assert startup["import_library_s"] > 0 and startup["first_item_library_s"] > 0

    graph = figures["graph"]
    assert graph["library_items"] == graph["floor_items"] > TINY.graph_page_size  # several pages
    if find_spec("msgraph") is None:  # CI installs the test extra only; msgraph-sdk is in bench
        assert graph["msgraph_skipped"] is not None and graph["msgraph_items"] is None
    else:
        assert graph["msgraph_skipped"] is None
        assert graph["msgraph_items"] == graph["library_items"] and graph["msgraph_same_ids"]
        assert graph["msgraph_first_page_items"] == TINY.graph_page_size  # Prefer was honoured

    text = output.read_text(encoding="utf-8")
    assert "| benchmark | library | floor | ratio | bar | met? |" in text
    assert "Command: `python -m benchmarks --tiny" in text
    for number in range(1, 8):
        assert f"| {number}. " in text, f"benchmark {number} is missing from the table"


def test_graph_benchmark_without_msgraph_sdk_still_compares_library_and_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import graph

    monkeypatch.setattr(graph, "msgraph_version", lambda: None)  # as in CI: no bench extra
    output, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"

    assert main(["--tiny", "--only", "graph", "--output", str(output), "--json", str(raw)]) == 0

    figures = json.loads(raw.read_text(encoding="utf-8"))["graph"]
    assert figures["library_items"] == figures["floor_items"] > 0
    assert "msgraph-sdk is not installed" in figures["msgraph_skipped"]
    assert figures["msgraph_items"] is None
    text = output.read_text(encoding="utf-8")
    assert "| not run |" in text and "msgraph-sdk is not installed" in text
