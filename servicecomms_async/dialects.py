"""The two APIs as small records: where each lives per cloud, its root URL, its paging rule, its record keys.

::

    LEGACY  https://manage.office.com/api/v1.0/{tenant}/ServiceComms/...   $top/$skip, up to 100
    GRAPH   https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/... @odata.nextLink,
                                                                           Prefer: odata.maxpagesize up to 1000

The engine, the session and the command line read what differs between the APIs from here; nothing
else branches on which API it is talking to.
"""

from __future__ import annotations

from typing import Literal

import attrs
from yarl import URL

from .clouds import Cloud
from .paging import NEXT_LINK_PREFER, TOP_SKIP, PagingRule

Api = Literal["legacy", "graph"]
APIS: tuple[Api, ...] = ("legacy", "graph")


@attrs.frozen(kw_only=True)
class Dialect:
    """What one API looks like on the wire."""

    name: Api
    paging: PagingRule
    tenant_key: str  # the tenant id's key in output records, in the API's own casing
    tenant_in_path: bool  # legacy: /{tenant}/ServiceComms; Graph finds the tenant in the token

    def endpoint(self, cloud: Cloud) -> tuple[str, str]:
        """The base URL and token scope of this API in ``cloud``."""
        if self.name == "legacy":
            return cloud.base_url, cloud.token_scope
        if cloud.graph_base_url is None or cloud.graph_token_scope is None:
            raise ValueError(f"cloud {cloud.name!r} has no Microsoft Graph endpoint configured")
        return cloud.graph_base_url, cloud.graph_token_scope

    def root(self, base_url: URL, tenant_id: str) -> URL:
        """Where one tenant's resources are: ``{base}/{tenant}/ServiceComms`` or
        ``{base}/admin/serviceAnnouncement``."""
        if self.tenant_in_path:
            return base_url / tenant_id / "ServiceComms"
        return base_url / "admin" / "serviceAnnouncement"


LEGACY = Dialect(
    name="legacy",
    paging=TOP_SKIP,
    tenant_key="TenantId",
    tenant_in_path=True,
)
GRAPH = Dialect(
    name="graph",
    paging=NEXT_LINK_PREFER,
    tenant_key="tenantId",
    tenant_in_path=False,
)
DIALECTS: dict[str, Dialect] = {LEGACY.name: LEGACY, GRAPH.name: GRAPH}


def get_dialect(api: object) -> Dialect:
    """The dialect named ``api`` (``"legacy"`` or ``"graph"``)."""
    found = DIALECTS.get(api) if isinstance(api, str) else None
    if found is None:
        raise ValueError(f"api must be 'legacy' or 'graph', got {api!r}")
    return found
