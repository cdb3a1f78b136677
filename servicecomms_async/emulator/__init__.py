"""An embedded, deterministic emulator of both APIs: Microsoft Graph's service communications routes and the
legacy Office 365 Service Communications API, with fault injection and a local Entra token endpoint.

Use it in tests, demos and benchmarks::

    async with Emulator(EmulatorConfig(seed=1, tenants=50)) as emu:
        url = f"{emu.base_url}/{emu.tenant_ids[0]}/ServiceComms/CurrentStatus"
        graph = f"{emu.graph_base_url}/admin/serviceAnnouncement/issues"  # Microsoft Graph
        headers = {"Authorization": f"Bearer {emu.graph_token(emu.tenant_ids[0])}"}

Everything it serves derives from the :class:`EmulatorConfig` and the tenant id, so two
emulators with equal configs (including ``now``) serve identical data.
"""

from .app import Emulator, RecordedRequest, TokenValidator, run_forever
from .config import EmulatorConfig, Paging, Shape
from .data import TenantDataset
from .graph import GraphCaller, GraphDataset, GraphTokenValidator

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "GraphCaller",
    "GraphDataset",
    "GraphTokenValidator",
    "Paging",
    "RecordedRequest",
    "Shape",
    "TenantDataset",
    "TokenValidator",
    "run_forever",
]
