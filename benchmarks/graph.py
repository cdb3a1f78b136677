"""7. Against the alternative, Microsoft Graph's service communications API through msgraph-sdk.

Not measured yet: servicecomms-async does not speak Graph (``/admin/serviceAnnouncement/...``) yet,
so there is no library figure to set beside msgraph-sdk's. This benchmark reports the floor only (the
streaming floor, µs per message, from the same run). When Graph support lands, measure here: stream the
emulator's Graph messages through ``session.tenant(t).graph_messages()`` (or whatever it is called),
through ``msgraph-sdk``'s ``admin.service_announcement.messages`` with its page iterator, and through
the floor, alternating as :mod:`.streaming` does, and add msgraph-sdk to the ``bench`` extra.
"""

from __future__ import annotations

from .measure import Outcome, Row
from .sizes import Sizes


def run(sizes: Sizes, streaming_floor_us: float | None) -> Outcome:
    floor = (
        f"{streaming_floor_us:.1f} µs/item (stream floor)"
        if streaming_floor_us is not None
        else "—"
    )
    row = Row(
        benchmark="7. vs msgraph-sdk (Graph service announcements)",
        library="not implemented",
        floor=floor,
        ratio=None,
        bar="— (Graph not implemented yet)",
        met=None,
        notes="the library has no Graph support yet, so msgraph-sdk is not run; see benchmarks/graph.py",
    )
    return Outcome("graph", [row], {"sizes": sizes.name})
