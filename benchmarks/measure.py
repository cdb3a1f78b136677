"""What every benchmark shares: a result row, alternating best-of runs, and client-side counters."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import aiohttp
import attrs


@attrs.frozen(kw_only=True)
class Row:
    """One line of the results table; ``met`` is None where the brief sets no bar."""

    benchmark: str
    library: str
    floor: str
    ratio: float | None
    bar: str
    met: bool | None
    notes: str = ""
    why_not_met: str = ""  # what stands in the way, shown when ``met`` is False


@attrs.frozen
class Outcome:
    """What a benchmark returns: its table rows and the raw figures behind them (for tests and JSON)."""

    name: str
    rows: list[Row]
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Timed:
    """One run: wall seconds, how many items it produced, and anything else it observed; with
    :func:`paired`, also the client's CPU seconds (``time.process_time``: this process, which runs
    no server) and the server process's CPU seconds over the same run."""

    seconds: float
    items: int
    info: Mapping[str, Any] = attrs.field(factory=dict)
    cpu: float = float("nan")
    server_cpu: float = float("nan")


class HasCpu:
    """Anything with ``cpu_seconds()``: a server process whose CPU time a run reads."""

    def cpu_seconds(self) -> float:  # pragma: no cover - a protocol
        raise NotImplementedError


async def measured(run: Callable[[], Awaitable[Timed]], server: Any = None) -> Timed:
    """``run()`` with the client's CPU time and (when ``server`` has ``cpu_seconds()``) the
    server's; garbage from the previous run is collected first, so neither side pays for the other's."""
    gc.collect()
    server_before = server.cpu_seconds() if server is not None else float("nan")
    cpu_before = time.process_time()
    result = await run()
    cpu = time.process_time() - cpu_before
    server_cpu = server.cpu_seconds() - server_before if server is not None else float("nan")
    return attrs.evolve(result, cpu=cpu, server_cpu=server_cpu)


@attrs.frozen
class Pairs:
    """Library and floor runs made in alternated pairs, and the per-pair ratios' medians and spread."""

    library: list[Timed]
    floor: list[Timed]

    def wall_ratios(self) -> list[float]:
        return [
            lib.seconds / flo.seconds for lib, flo in zip(self.library, self.floor, strict=True)
        ]

    def cpu_ratios(self) -> list[float]:
        return [lib.cpu / flo.cpu for lib, flo in zip(self.library, self.floor, strict=True)]

    @property
    def wall_ratio(self) -> float:
        return statistics.median(self.wall_ratios())

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu_ratios())

    def median(self, side: str, what: str, per: str | None = "items") -> float:
        """The median over one side's runs of ``what`` (seconds, cpu, server_cpu), per item or not."""
        runs = self.library if side == "library" else self.floor
        values = [
            getattr(run, what) / (getattr(run, per) if per else 1) for run in runs if run.items
        ]
        return statistics.median(values) if values else float("nan")

    def details(self) -> dict[str, Any]:
        return {
            "pairs": len(self.library),
            "wall_ratios": self.wall_ratios(),
            "cpu_ratios": self.cpu_ratios(),
            "wall_ratio_median": self.wall_ratio,
            "cpu_ratio_median": self.cpu_ratio,
            "library_seconds": [run.seconds for run in self.library],
            "floor_seconds": [run.seconds for run in self.floor],
            "library_cpu": [run.cpu for run in self.library],
            "floor_cpu": [run.cpu for run in self.floor],
            "library_server_cpu": [run.server_cpu for run in self.library],
            "floor_server_cpu": [run.server_cpu for run in self.floor],
        }


def spread(ratios: Sequence[float]) -> str:
    """``min-max`` of per-pair ratios."""
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


async def paired(
    pairs: int,
    library: Callable[[], Awaitable[Timed]],
    floor: Callable[[], Awaitable[Timed]],
    *,
    server: Any = None,
    warm_up: bool = True,
) -> Pairs:
    """``pairs`` library/floor pairs, alternating which side goes first; every run timed by
    :func:`measured` (wall, client CPU, server CPU). One untimed run of each first when ``warm_up``."""
    if warm_up:
        await floor()
        await library()
    libs: list[Timed] = []
    floors: list[Timed] = []
    for number in range(pairs):
        if number % 2 == 0:
            floors.append(await measured(floor, server))
            libs.append(await measured(library, server))
        else:
            libs.append(await measured(library, server))
            floors.append(await measured(floor, server))
    return Pairs(libs, floors)


async def best_of_alternating(
    repeats: int,
    library: Callable[[], Awaitable[Timed]],
    floor: Callable[[], Awaitable[Timed]],
    *,
    warm_up: bool = True,
) -> tuple[Timed, Timed]:
    """Run library and floor ``repeats`` times each, alternating which goes first; return the fastest
    run of each. One untimed run of each comes first when ``warm_up`` (server caches, first-use code)."""
    if warm_up:
        await floor()
        await library()
    best: dict[str, Timed] = {}
    for repeat in range(repeats):
        order = (("floor", floor), ("library", library))
        for name, run in order if repeat % 2 == 0 else reversed(order):
            result = await run()
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result
    return best["library"], best["floor"]


async def best_of_rotating(
    repeats: int, runs: Mapping[str, Callable[[], Awaitable[Timed]]]
) -> dict[str, Timed]:
    """:func:`best_of_alternating` for more than two sides: each repeat starts one side later
    (a, b, c; then b, c, a; ...); returns the fastest run of each side, by name. No warm-up here:
    a side that needs one (and can afford it) is warmed by the caller."""
    names = list(runs)
    best: dict[str, Timed] = {}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            result = await runs[name]()
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result
    return best


def best_of_alternating_sync(
    repeats: int, library: Callable[[], Timed], floor: Callable[[], Timed]
) -> tuple[Timed, Timed]:
    """:func:`best_of_alternating` for code that does not await (parsing, subprocesses)."""
    best: dict[str, Timed] = {}
    for repeat in range(repeats):
        order = (("floor", floor), ("library", library))
        for name, run in order if repeat % 2 == 0 else reversed(order):
            result = run()
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result
    return best["library"], best["floor"]


def per_item_us(run: Timed) -> float:
    return run.seconds / run.items * 1e6 if run.items else float("nan")


def ratio(library: float, floor: float) -> float | None:
    return library / floor if floor > 0 else None


class ClientCounters:
    """Connections opened and requests in flight, seen from the client through an aiohttp TraceConfig.

    The server runs in another process, so its own counters are out of reach; these count what the
    client's pool did, the same way for the library and the floor.
    """

    def __init__(self) -> None:
        self.connections_opened = 0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_connection_create_end.append(self._on_connection_created)
        config.on_request_start.append(self._on_request_start)
        config.on_request_end.append(self._on_request_done)
        config.on_request_exception.append(self._on_request_done)
        config.freeze()
        return config

    async def _on_connection_created(self, *_: Any) -> None:
        self.connections_opened += 1

    async def _on_request_start(self, *_: Any) -> None:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def _on_request_done(self, *_: Any) -> None:
        self.in_flight -= 1


def attach_counters(session: Any, counters: ClientCounters) -> None:
    """Trace a ServiceCommsSession's pool with ``counters`` (call after the session is open).

    The library has no public hook for aiohttp trace configs yet, so this reaches into the session's
    transport; aiohttp reads ``ClientSession.trace_configs`` on every request, so appending works.
    """
    client: aiohttp.ClientSession | None = getattr(
        getattr(session, "_transport", SimpleNamespace()), "_session", None
    )
    if client is None:
        raise RuntimeError("the session has no open aiohttp pool to trace (is it open?)")
    client.trace_configs.append(counters.trace_config())


def clock() -> float:
    return time.perf_counter()
