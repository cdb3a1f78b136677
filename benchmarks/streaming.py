"""1. Streaming throughput: messages through ``tenant.messages()`` against the floor, µs per item.

Both sides page through the same tenant of the same emulator process (real shape: incidents, planned
maintenance and Message Center posts mixed, 100 per page), one request at a time. The emulator's own
serving cost is in both figures; it runs in another process, so the ratio is the client's overhead.
"""

from __future__ import annotations

from . import floor, library
from .measure import Outcome, Row, best_of_alternating, per_item_us, ratio
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

BAR = 2.0
AIM = 1.5


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    base_url = servers.get(ServerConfig(messages_per_tenant=sizes.stream_messages))
    tenant = tenant_ids(1)[0]
    lib, flo = await best_of_alternating(
        sizes.repeats,
        lambda: library.stream_messages(base_url, tenant),
        lambda: floor.stream_messages(base_url, tenant),
    )
    lib_us, floor_us = per_item_us(lib), per_item_us(flo)
    r = ratio(lib_us, floor_us)
    row = Row(
        benchmark=f"1. stream {sizes.stream_messages:,} messages (µs/item)",
        library=f"{lib_us:.1f}",
        floor=f"{floor_us:.1f}",
        ratio=r,
        bar=f"≤ {BAR:g}x (aim {AIM:g}x)",
        met=r is not None and r <= BAR,
        notes=f"best of {sizes.repeats}, alternating; server in its own process",
        why_not_met=(
            "Per message the library adds the parse benchmark's cost (benchmark 2) to the floor's; "
            "when the emulator serves faster than usual the floor shrinks and the ratio grows."
        ),
    )
    return Outcome(
        "streaming",
        [row],
        {
            "library_items": lib.items,
            "floor_items": flo.items,
            "library_us_per_item": lib_us,
            "floor_us_per_item": floor_us,
        },
    )
