"""How big each benchmark runs: ``full`` (the default), ``quick`` and ``tiny`` (the smoke test)."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Sizes:
    """Every size a benchmark reads; ``repeats`` is how many alternating library/floor runs (best wins)."""

    name: str
    repeats: int
    pairs: int  # alternated library/floor pairs for the client-cost figures (medians of ratios)
    stream_messages: int  # 1. messages streamed from one tenant
    parse_items: int  # 2. pre-decoded message dicts structured
    fanout_tenants: int  # 3. tenants fetched at once ...
    fanout_concurrency: int  # ... this many at a time ...
    fanout_latency: float  # ... with this much server latency per request (seconds)
    memory_small: int  # 4. messages streamed in a fresh process: small ...
    memory_large: int  # ... and large
    scaling_tenants: tuple[int, ...]  # 5. scan sizes
    scaling_concurrency: int
    startup_runs: int  # 6. subprocess runs per import / first-item figure
    graph_legacy_messages: int  # 7. emulator messages per tenant (~1 in 5 is a Graph post) ...
    graph_page_size: int  # ... read with Prefer: odata.maxpagesize=this, on every side


FULL = Sizes(
    name="full",
    repeats=3,
    pairs=7,
    stream_messages=20_000,
    parse_items=100_000,
    fanout_tenants=2_000,
    fanout_concurrency=200,
    fanout_latency=0.1,
    memory_small=2_000,
    memory_large=200_000,
    scaling_tenants=(10, 100, 1_000, 5_000),
    scaling_concurrency=100,
    startup_runs=10,
    graph_legacy_messages=20_000,
    graph_page_size=100,
)

QUICK = attrs.evolve(
    FULL,
    name="quick",
    stream_messages=5_000,
    parse_items=20_000,
    fanout_tenants=1_000,
    memory_large=20_000,
    scaling_tenants=(10, 100, 1_000),
    startup_runs=5,
    graph_legacy_messages=5_000,
)

# Small enough for the smoke test (every code path, a few seconds); its figures mean nothing.
TINY = Sizes(
    name="tiny",
    repeats=1,
    pairs=1,
    stream_messages=250,
    parse_items=300,
    fanout_tenants=12,
    fanout_concurrency=4,
    fanout_latency=0.01,
    memory_small=100,
    memory_large=300,
    scaling_tenants=(2, 6),
    scaling_concurrency=4,
    startup_runs=1,
    graph_legacy_messages=250,
    graph_page_size=20,
)

BY_NAME = {sizes.name: sizes for sizes in (FULL, QUICK, TINY)}
