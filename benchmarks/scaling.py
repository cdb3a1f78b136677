"""5. Scaling: items per second for scans of more and more tenants (``current_status``, no latency).

The cost per item must stay flat as the tenant count grows: no per-tenant state that accumulates,
nothing quadratic. Each size runs library and floor alternately (best of ``repeats``) on one emulator
process; its per-tenant caches are warmed by an untimed run first.
"""

from __future__ import annotations

from . import floor, library
from .measure import Outcome, Row, Timed, best_of_alternating, per_item_us, ratio
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

FLAT_BAR = (
    1.3  # the gap to the floor (library / floor) at the largest size vs at the reference size
)
REFERENCE_TENANTS = 100  # below this, fixed costs (a new pool, first connections) dominate


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    base_url = servers.get(ServerConfig())
    concurrency = sizes.scaling_concurrency
    rows: list[Row] = []
    figures: dict[int, dict[str, float]] = {}
    for count in sizes.scaling_tenants:
        tenants = tenant_ids(count)

        async def run_library(tenants: list[str] = tenants) -> Timed:
            return await library.scan_current_status(base_url, tenants, concurrency=concurrency)

        async def run_floor(tenants: list[str] = tenants) -> Timed:
            return await floor.scan_current_status(base_url, tenants, concurrency=concurrency)

        lib, flo = await best_of_alternating(sizes.repeats, run_library, run_floor)
        lib_us, floor_us = per_item_us(lib), per_item_us(flo)
        figures[count] = {
            "library_us_per_item": lib_us,
            "floor_us_per_item": floor_us,
            "library_items": lib.items,
            "floor_items": flo.items,
        }
        rows.append(
            Row(
                benchmark=f"5. scan {count:,} tenants x current_status (µs/item; items/s)",
                library=f"{lib_us:.1f}; {lib.items / lib.seconds:,.0f}/s",
                floor=f"{floor_us:.1f}; {flo.items / flo.seconds:,.0f}/s",
                ratio=ratio(lib_us, floor_us),
                bar="— (see flatness)",
                met=None,
                notes=f"{lib.items:,} items; concurrency {concurrency}; best of {sizes.repeats}",
            )
        )
    reference = min(
        (count for count in sizes.scaling_tenants if count >= REFERENCE_TENANTS),
        default=sizes.scaling_tenants[0],
    )
    largest = max(sizes.scaling_tenants)
    lib_growth = figures[largest]["library_us_per_item"] / figures[reference]["library_us_per_item"]
    floor_growth = figures[largest]["floor_us_per_item"] / figures[reference]["floor_us_per_item"]
    gap_large = figures[largest]["library_us_per_item"] / figures[largest]["floor_us_per_item"]
    gap_reference = (
        figures[reference]["library_us_per_item"] / figures[reference]["floor_us_per_item"]
    )
    gap_growth = gap_large / gap_reference
    rows.append(
        Row(
            benchmark=(
                f"5. gap to the floor, {largest:,} vs {reference:,} tenants (flatness: "
                "library/floor at the largest size over library/floor at the reference)"
            ),
            library=f"{gap_large:.2f}x vs {gap_reference:.2f}x",
            floor="—",
            ratio=gap_growth,
            bar=f"≤ {FLAT_BAR:g}x",
            met=gap_growth <= FLAT_BAR,
            notes=(
                f"cost per item at the largest size over the reference: library {lib_growth:.2f}x, "
                f"floor {floor_growth:.2f}x (the floor's own cost moves with the server)"
            ),
        )
    )
    return Outcome(
        "scaling",
        rows,
        {"by_tenants": figures, "flatness": lib_growth, "gap_growth": gap_growth},
    )
