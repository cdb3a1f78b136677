"""Clouds: where the API lives, which token scope it wants, and which Entra authority issues that token.

A :class:`Cloud` is a frozen record of three URLs. Pick a preset with ``ServiceCommsSession(...,
cloud=GCC_HIGH)`` (or by name, ``cloud="gcc-high"``); ``base_url=`` and ``scope=`` on the session still
override a preset's values one by one, and ``Cloud(...)`` builds a custom one.

The session uses ``base_url`` and ``token_scope``. It does not build credentials itself, so
``authority`` is there for the caller: pass it to azure-identity, e.g.
``ClientSecretCredential(tenant, client_id, secret, authority=GCC_HIGH.authority)``. A token from the
wrong cloud's authority is refused by the API with 401.

What is documented and what is inferred, with the sources:

* Public, GCC, GCC High and DoD API hosts are documented for the Management API family (Activity API
  reference and its troubleshooting page: ``manage.office.com``, ``manage-gcc.office.com``,
  ``manage.office365.us``, ``manage.protection.apps.mil``). The Service Communications API reference
  itself only ever names ``manage.office.com``; for one day in 2018 it listed
  ``servicecommsgcchigh.cloudapp.net`` and ``servicecommsdod.cloudapp.net`` for government clouds.
  That ServiceComms is served on the family's sovereign hosts is [inferred].
* Token scopes are ``{API host}/.default``: the troubleshooting page tells callers to use the API
  endpoint as the token resource. An older revision of that page said GCC used ``manage.office.com``
  as its resource; if a GCC tenant's tokens are refused, pass ``scope="https://manage.office.com/.default"``.
* Authorities: public and GCC sign in at ``login.microsoftonline.com`` (GCC tenants live in the
  commercial directory), GCC High and DoD at ``login.microsoftonline.us`` (the troubleshooting page's
  GCC High and DoD samples; azure-identity's ``AzureAuthorityHosts.AZURE_GOVERNMENT``), China at
  ``login.chinacloudapi.cn`` (``AzureAuthorityHosts.AZURE_CHINA``).
* China (Office 365 operated by 21Vianet): Microsoft documents no Management API host for it
  (MicrosoftDocs/office-365-management-api issue 249 asks for one and is open). ``manage.office365.cn``
  is [inferred] from a third-party Management API script that uses it for the 21Vianet ("Gallatin")
  plan; it is unverified.

Microsoft Graph (the successor API, ``api="graph"`` on the session): ``graph_base_url`` and
``graph_token_scope`` are the national cloud deployments Microsoft documents for Graph
(learn.microsoft.com/graph/deployments): ``graph.microsoft.com`` for the public cloud and GCC,
``graph.microsoft.us`` for GCC High (US Gov L4), ``dod-graph.microsoft.us`` for DoD (US Gov L5) and
``microsoftgraph.chinacloudapi.cn`` for China (21Vianet).
"""

from __future__ import annotations

import attrs
from yarl import URL

from ._validate import is_loopback_host

__all__ = [
    "CHINA",
    "CLOUDS",
    "DOD",
    "GCC",
    "GCC_HIGH",
    "PUBLIC",
    "Cloud",
    "get_cloud",
]


def _https_url(instance: Cloud, attribute: attrs.Attribute[str], value: str) -> None:
    # Plain http only for loopback hosts, so a custom cloud can point at the embedded emulator.
    url = URL(value) if isinstance(value, str) else None
    if (
        url is None
        or not url.host
        or url.scheme not in ("https", "http")
        or (url.scheme == "http" and not is_loopback_host(url.host))
        or url.query_string
        or url.fragment
    ):
        raise ValueError(
            f"Cloud.{attribute.name} must be an absolute https:// URL without query or fragment "
            f"(http only for loopback hosts), got {value!r}"
        )


def _default_scope(value: str) -> None:
    if not isinstance(value, str) or not value.endswith("/.default") or "://" not in value:
        raise ValueError(
            "Cloud.token_scope must be a resource's '.default' scope such as "
            f"'https://manage.office.com/.default' (what client-credential tokens need), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Cloud:
    """One Microsoft cloud: ``name``, the API ``base_url`` (ending in ``/api/v1.0``), the token
    ``token_scope`` (``{resource}/.default``) and the Entra ``authority`` (an https URL without a tenant).

    Custom clouds are allowed: ``Cloud(name="test", base_url=..., token_scope=..., authority=...)``.
    """

    name: str
    base_url: str = attrs.field(validator=_https_url)
    token_scope: str = attrs.field()
    authority: str = attrs.field(validator=_https_url)
    graph_base_url: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_https_url)
    )
    graph_token_scope: str | None = attrs.field(default=None)

    @token_scope.validator
    def _check_token_scope(self, _: attrs.Attribute[str], value: str) -> None:
        _default_scope(value)

    @graph_token_scope.validator
    def _check_graph_token_scope(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            _default_scope(value)

    def token_endpoint(self, tenant: str) -> str:
        """The v2.0 token endpoint of ``tenant`` at this cloud's authority."""
        return f"{self.authority.rstrip('/')}/{tenant}/oauth2/v2.0/token"


PUBLIC = Cloud(
    name="public",
    base_url="https://manage.office.com/api/v1.0",
    token_scope="https://manage.office.com/.default",
    authority="https://login.microsoftonline.com",
    graph_base_url="https://graph.microsoft.com/v1.0",
    graph_token_scope="https://graph.microsoft.com/.default",
)
GCC = Cloud(
    name="gcc",
    base_url="https://manage-gcc.office.com/api/v1.0",
    token_scope="https://manage-gcc.office.com/.default",
    authority="https://login.microsoftonline.com",
    graph_base_url="https://graph.microsoft.com/v1.0",
    graph_token_scope="https://graph.microsoft.com/.default",
)
GCC_HIGH = Cloud(
    name="gcc-high",
    base_url="https://manage.office365.us/api/v1.0",
    token_scope="https://manage.office365.us/.default",
    authority="https://login.microsoftonline.us",
    graph_base_url="https://graph.microsoft.us/v1.0",
    graph_token_scope="https://graph.microsoft.us/.default",
)
DOD = Cloud(
    name="dod",
    base_url="https://manage.protection.apps.mil/api/v1.0",
    token_scope="https://manage.protection.apps.mil/.default",
    authority="https://login.microsoftonline.us",
    graph_base_url="https://dod-graph.microsoft.us/v1.0",
    graph_token_scope="https://dod-graph.microsoft.us/.default",
)
CHINA = Cloud(
    name="china",
    base_url="https://manage.office365.cn/api/v1.0",  # [inferred], see the module docstring
    token_scope="https://manage.office365.cn/.default",
    authority="https://login.chinacloudapi.cn",
    graph_base_url="https://microsoftgraph.chinacloudapi.cn/v1.0",
    graph_token_scope="https://microsoftgraph.chinacloudapi.cn/.default",
)

CLOUDS: dict[str, Cloud] = {cloud.name: cloud for cloud in (PUBLIC, GCC, GCC_HIGH, DOD, CHINA)}
"""The presets by name: ``public``, ``gcc``, ``gcc-high``, ``dod``, ``china``."""


def get_cloud(cloud: Cloud | str) -> Cloud:
    """A :class:`Cloud` as is, or a preset by name (case-insensitive; ``_`` and ``-`` are the same)."""
    if isinstance(cloud, Cloud):
        return cloud
    if isinstance(cloud, str):
        found = CLOUDS.get(cloud.strip().lower().replace("_", "-"))
        if found is not None:
            return found
        raise ValueError(f"cloud must be a Cloud or one of {sorted(CLOUDS)}, got {cloud!r}")
    raise TypeError(f"cloud must be a Cloud or one of {sorted(CLOUDS)}, got {type(cloud).__name__}")
