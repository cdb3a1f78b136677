"""1. Streaming: items through the library's pagers against the floor, client CPU and wall per item.

Every figure is the median of ``sizes.pairs`` alternated library/floor pairs, with the spread
(min-max) of the per-pair ratios. Each run records wall time, the client's CPU time
(``time.process_time``: the benchmark process runs no server) and the server process's CPU time.

- **Against the emulator** (``tenant.messages()``, real shape, 100 per page): the wall ratio. The
  emulator renders every page anew, at tens of µs of its own CPU per item, and that cost sits on both
  sides of a wall/wall ratio; the server's CPU per item is reported beside it.
- **Against the replay server** (:mod:`.replay`, pre-rendered pages, about 1 µs per item, its own
  process): the client's CPU per item, for legacy messages, Graph messages and Graph issues. That is
  what the library itself costs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from servicecomms_async.emulator import Emulator

from . import floor, library
from .measure import Outcome, Pairs, Row, Timed, paired, spread
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

WALL_BAR = 1.3  # against the emulator
CPU_BARS = {"legacy messages": 1.6, "Graph messages": 1.6, "Graph issues": 2.0}
PAGE_SIZE = 100


def _us(value: float) -> str:
    return f"{value * 1e6:.1f}"


def _cpu_row(name: str, pairs: Pairs, bar: float, where: str) -> Row:
    lib_cpu, flo_cpu = pairs.median("library", "cpu"), pairs.median("floor", "cpu")
    server = pairs.median("floor", "server_cpu")
    items = pairs.floor[0].items
    return Row(
        benchmark=f"1. stream {items:,} {name} vs replay server (client CPU µs/item)",
        library=_us(lib_cpu),
        floor=_us(flo_cpu),
        ratio=pairs.cpu_ratio,
        bar=f"≤ {bar:g}x",
        met=pairs.cpu_ratio <= bar,
        notes=(
            f"median of {len(pairs.library)} alternated pairs, per-pair CPU ratios "
            f"{spread(pairs.cpu_ratios())}; wall ratio {pairs.wall_ratio:.2f}x "
            f"({spread(pairs.wall_ratios())}); replay server {_us(server)} µs CPU/item; {where}"
        ),
        why_not_met=(
            "Per item the library structures a frozen attrs model (see the parse benchmark); the "
            "floor only decodes JSON."
        ),
    )


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    config = ServerConfig(messages_per_tenant=sizes.stream_messages)
    emulator = servers.emulator(config)
    tenant = tenant_ids(1)[0]
    graph_token = Emulator.graph_token(tenant)

    # Against the emulator: wall.
    base_url = emulator.base_url
    against_emulator = await paired(
        sizes.pairs,
        lambda: library.stream_messages(base_url, tenant),
        lambda: floor.stream_messages(base_url, tenant),
        server=emulator,
    )
    lib_wall = against_emulator.median("library", "seconds")
    flo_wall = against_emulator.median("floor", "seconds")
    where = "client pinned apart from the server (see Placement)"
    rows = [
        Row(
            benchmark=f"1. stream {against_emulator.floor[0].items:,} messages vs emulator (wall µs/item)",
            library=_us(lib_wall),
            floor=_us(flo_wall),
            ratio=against_emulator.wall_ratio,
            bar=f"≤ {WALL_BAR:g}x",
            met=against_emulator.wall_ratio <= WALL_BAR,
            notes=(
                f"median of {sizes.pairs} alternated pairs, per-pair wall ratios "
                f"{spread(against_emulator.wall_ratios())}; client CPU "
                f"{_us(against_emulator.median('library', 'cpu'))} vs "
                f"{_us(against_emulator.median('floor', 'cpu'))} µs/item "
                f"({against_emulator.cpu_ratio:.2f}x); the emulator's own CPU "
                f"{_us(against_emulator.median('floor', 'server_cpu'))} µs/item, in both sides; {where}"
            ),
            why_not_met="The emulator renders each page anew; its cost is in both sides' wall time.",
        )
    ]

    # Against the replay server: client CPU.
    replay = servers.replay(config)
    replay_base, replay_graph = replay.base_url, replay.graph_base_url
    sides: dict[str, tuple[Callable[[], Awaitable[Timed]], Callable[[], Awaitable[Timed]]]] = {
        "legacy messages": (
            lambda: library.stream_messages(replay_base, tenant),
            lambda: floor.stream_messages(replay_base, tenant),
        ),
        "Graph messages": (
            lambda: library.stream_graph_messages(
                replay_graph, graph_token, tenant, page_size=PAGE_SIZE
            ),
            lambda: floor.stream_graph(replay_graph, graph_token, "messages", page_size=PAGE_SIZE),
        ),
        "Graph issues": (
            lambda: library.stream_graph_issues(
                replay_graph, graph_token, tenant, page_size=PAGE_SIZE
            ),
            lambda: floor.stream_graph(replay_graph, graph_token, "issues", page_size=PAGE_SIZE),
        ),
    }
    details: dict[str, object] = {"emulator": against_emulator.details()}
    for name, (run_library, run_floor) in sides.items():
        pairs = await paired(sizes.pairs, run_library, run_floor, server=replay)
        if (
            "ids" in pairs.floor[0].info
            and pairs.library[0].info["ids"] != pairs.floor[0].info["ids"]
        ):
            raise RuntimeError(f"{name}: library and floor saw different items; the run is void")
        rows.append(_cpu_row(name, pairs, CPU_BARS[name], where))
        details[name] = pairs.details()
    return Outcome(
        "streaming",
        rows,
        {
            "library_items": against_emulator.library[0].items,
            "floor_items": against_emulator.floor[0].items,
            "library_us_per_item": lib_wall * 1e6,
            "floor_us_per_item": flo_wall * 1e6,
            **details,
        },
    )
