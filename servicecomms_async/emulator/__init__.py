"""An embedded, deterministic emulator of both APIs: Microsoft Graph's service communications routes and the
legacy Office 365 Service Communications API, with fault injection and a local Entra token endpoint.

Use it in tests, demos and benchmarks::

    async with Emulator(EmulatorConfig(seed=1, tenants=50)) as emu:
        url = f"{emu.base_url}/{emu.tenant_ids[0]}/ServiceComms/CurrentStatus"
        graph = f"{emu.graph_base_url}/admin/serviceAnnouncement/issues"  # Microsoft Graph
        headers = {"Authorization": f"Bearer {emu.graph_token(emu.tenant_ids[0])}"}

Everything it serves derives from the :class:`EmulatorConfig` and the tenant id, so two
emulators with equal configs (including ``now``) serve identical data. With a clock the world
moves (incidents open, change and resolve; Message Center posts are published and updated),
still deterministically::

    emu = Emulator(EmulatorConfig(seed=1, now=start), clock=ManualClock())
    emu.advance(timedelta(hours=6))        # emu.now == start + 6 h
    emu.changes(tenant)                    # the ground truth: what changed, and the event it is

``Emulator(config, graph_limits=GraphLimits())`` enforces Microsoft Graph's documented request limits
(240/60 s and 800/h per app per tenant, 130,000/10 s per app) with 429 and ``Retry-After``
(:mod:`.limits`).
"""

from .app import Emulator, RecordedRequest, TokenValidator, run_forever
from .clock import Clock, ManualClock, ScaledClock
from .config import EmulatorConfig, Paging, Shape, TimelineConfig
from .data import TenantDataset
from .graph import GraphCaller, GraphDataset, GraphTokenValidator
from .limits import GraphLimits, Window
from .timeline import Change

__all__ = [
    "Change",
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "GraphCaller",
    "GraphDataset",
    "GraphLimits",
    "GraphTokenValidator",
    "ManualClock",
    "Paging",
    "RecordedRequest",
    "ScaledClock",
    "Shape",
    "TenantDataset",
    "TimelineConfig",
    "TokenValidator",
    "Window",
    "run_forever",
]
