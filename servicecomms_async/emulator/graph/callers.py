"""Who a Graph request is from: Graph has no tenant in the URL, the bearer token names it.

Without a validator, the emulator's own opaque tokens (:func:`graph_token`) are accepted; with one
(``IdentityServer.graph_token_validator`` for real JWTs), it alone decides (:func:`identify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from ..errors import GraphError
from ..parsing import bearer_token, is_valid_tenant

__all__ = [
    "APP_TOKEN_PREFIX",
    "GRAPH_AUDIENCES",
    "SERVICE_HEALTH_READ",
    "SERVICE_MESSAGE_READ",
    "SERVICE_MESSAGE_VIEWPOINT_WRITE",
    "USER_TOKEN_PREFIX",
    "Answered",
    "GraphCaller",
    "GraphTokenValidator",
    "graph_token",
    "identify",
]

# Graph's resource as a URI and as its application id; tokens carry whichever was requested.
GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
SERVICE_HEALTH_READ = "ServiceHealth.Read.All"
SERVICE_MESSAGE_READ = "ServiceMessage.Read.All"
SERVICE_MESSAGE_VIEWPOINT_WRITE = "ServiceMessageViewpoint.Write"

APP_TOKEN_PREFIX = "emulator-app."
USER_TOKEN_PREFIX = "emulator-user."


class GraphCaller(NamedTuple):
    """Who a Graph request is from: the tenant (lower case), whether the token is delegated, the
    user whose viewpoint state it sees (``None``: keyed by the token itself), and the app (client id)
    that called, for Graph's per-app limits (``None``: the emulator's one default app, as for its own
    ``emulator-app.<tenant>`` tokens; see :mod:`..limits`)."""

    tenant: str
    delegated: bool
    user: str | None = None
    app: str | None = None


GraphTokenValidator = Callable[
    [str, str], Awaitable["GraphCaller | tuple[str, bool] | web.StreamResponse"]
]
"""``(bearer token, permission needed) -> GraphCaller | (tenant, delegated)`` to accept, or a
response to send. A :class:`GraphCaller`'s ``app`` is the app Graph's limits count it against."""


class Answered(Exception):
    """Not an error: carries the response a token validator chose to send."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("answered by the token validator")
        self.response = response


def graph_token(tenant: str, *, delegated: bool = False) -> str:
    """The emulator's opaque Graph token for ``tenant`` (a GUID or a domain): ``emulator-app.<tenant>``
    acts with application permissions, ``emulator-user.<tenant>`` (``delegated=True``) with delegated
    ones. Deterministic, so two processes agree on it."""
    if not isinstance(tenant, str) or not is_valid_tenant(tenant):
        raise ValueError(f"tenant must be a tenant GUID or domain name, got {tenant!r}")
    prefix = USER_TOKEN_PREFIX if delegated else APP_TOKEN_PREFIX
    return prefix + tenant.lower()


async def identify(
    request: web.Request, permission: str, validator: GraphTokenValidator | None
) -> GraphCaller:
    """The caller of ``request``; :class:`~..errors.GraphError` (401) when there is none, or
    :class:`Answered` when the validator sent its own response."""
    token = bearer_token(request.headers.get("Authorization"))
    challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
    if token is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
    if validator is not None:
        result = await validator(token, permission)
        if isinstance(result, web.StreamResponse):
            raise Answered(result)
        tenant, delegated, *rest = result
        user = rest[0] if rest and rest[0] is not None else _token_key(token)
        app = str(rest[1]).lower() if len(rest) > 1 and rest[1] else None
        return GraphCaller(str(tenant).lower(), bool(delegated), user, app)
    for prefix, delegated in ((APP_TOKEN_PREFIX, False), (USER_TOKEN_PREFIX, True)):
        if token.startswith(prefix):
            tenant = token.removeprefix(prefix)
            if is_valid_tenant(tenant):
                return GraphCaller(tenant.lower(), delegated, _token_key(token))
    raise GraphError(
        401,
        "InvalidAuthenticationToken",
        "Access token validation failure. The token is not one this emulator issued "
        "(use Emulator.graph_token(tenant) or an identity server's graph_token_validator).",
        challenge,
    )


def _token_key(token: str) -> str:
    # Viewpoint state is keyed by a digest, so the token itself is kept nowhere.
    return hashlib.sha256(token.encode()).hexdigest()[:32]
