"""Every error body the emulator's servers send, built in one place.

* The legacy API's OData JSON, ``{"error": {"code", "message"}}`` (:func:`odata_error`), and the
  bodies the real services were captured sending, JSON and plain text (the ``*_BODY`` constants;
  ``tests/fixtures`` holds the same payloads, with their sources in ``tests/fixtures/SOURCES.md``).
* Microsoft Graph's JSON, ``{"error": {"code", "message", "innerError": {"date", "request-id",
  "client-request-id"}}}``, with the same ``request-id`` in a header (:func:`graph_error`), and
  :class:`GraphError`, which Graph's handlers raise to send one.
* Microsoft Entra ID's v2.0 token endpoint errors (:func:`entra_error`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone

import orjson
from aiohttp import web

from .parsing import GUID_RE

__all__ = [
    "AF429_BODY",
    "AF10001_BODY",
    "AF20002_BODY",
    "AF50000_BODY",
    "GRAPH_429_BODY",
    "HTTPSYS_503_BODY",
    "JSON_TYPE",
    "NOT_FOUND_BODY",
    "STACK_TRACE_BODY",
    "GraphError",
    "bad_request",
    "client_request_id",
    "entra_error",
    "graph_error",
    "graph_http_error",
    "graph_throttled",
    "legacy_http_error",
    "not_found",
    "odata_error",
]

JSON_TYPE = "application/json; charset=utf-8"

# --- the legacy API ----------------------------------------------------------------------------


def odata_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """The legacy API's error: ``{"error": {"code": code, "message": message}}``."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, headers={"Content-Type": JSON_TYPE, **headers})


def legacy_http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """The legacy API's answer for an aiohttp routing error (no such route, wrong method)."""
    if exc.status == 404:
        return odata_error(404, "NotFound", "No resource matches the request URI.")
    if exc.status == 405:
        return odata_error(
            405,
            "MethodNotAllowed",
            f"The HTTP method {request.method} is not supported; use GET.",
            Allow="GET",
        )
    return odata_error(exc.status, exc.reason.replace(" ", ""), exc.reason)


# Bodies as the real services sent them.
GRAPH_429_BODY = (
    b'{"error":{"code":"TooManyRequests","innerError":{"code":"429","date":"2020-08-18T12:51:51",'
    b'"message":"Please retry after","request-id":"94fb3b52-452a-4535-a601-69e0a90e3aa2",'
    b'"status":"429"},"message":"Please retry again later."}}'
)
AF429_BODY = (
    b'{"error":{"code":"AF429","message":"Too many requests. Method=GetBlob, '
    b'PublisherId=00000000-0000-0000-0000-000000000000"}}'
)
AF50000_BODY = (
    b'{"error":{"code":"AF50000","message":"An internal error occurred.  Retry the request."}}'
)
STACK_TRACE_BODY = (
    b"System.Collections.Generic.KeyNotFoundException: The given key was not present in the "
    b"dictionary.\n"
    b"   at System.ThrowHelper.ThrowKeyNotFoundException()\n"
    b"   at System.Collections.Generic.Dictionary`2.get_Item(TKey key)\n"
    b"   at Microsoft.Office365ServiceComms.Common.OAuthAuthorizeAttribute.OnAuthorization("
    b"HttpActionContext actionContext)\n"
    b"   at System.Web.Http.Filters.AuthorizationFilterAttribute.OnAuthorizationAsync("
    b"HttpActionContext actionContext, CancellationToken cancellationToken)\n"
)
# What HTTP.sys (in front of the IIS-hosted service) sends when the application pool is down.
HTTPSYS_503_BODY = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b"<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n"
    b'<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    b"<BODY><h2>Service Unavailable</h2>\r\n"
    b"<hr><p>HTTP Error 503. The service is unavailable.</p>\r\n"
    b"</BODY></HTML>\r\n"
)
AF10001_BODY = (
    b'{"error":{"code":"AF10001","message":"The permission set () sent in the request does not '
    b'include the expected permission."}}'
)
NOT_FOUND_BODY = (
    b'{"error":{"code":"NotFound","message":"No HTTP resource was found that matches the request '
    b'URI."}}'
)
AF20002_BODY = (
    b'{"error":{"code":"AF20002","message":"Invalid parameter type. A parameter was sent with a '
    b'value of the wrong type."}}'
)

# --- Microsoft Graph ---------------------------------------------------------------------------


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    request: web.Request | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A Graph error response; ``request`` supplies the ``client-request-id`` to echo."""
    request_id = str(uuid.uuid4())
    echoed = client_request_id(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": echoed,
            },
        }
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={
            "Content-Type": JSON_TYPE,
            "request-id": request_id,
            "client-request-id": echoed,
            **(headers or {}),
        },
    )


def graph_throttled(request: web.Request | None = None) -> web.Response:
    """Graph's 429 as captured (its extra ``innerError`` fields), with this response's id and date."""
    response = graph_error(429, "TooManyRequests", "Please retry again later.", request=request)
    assert isinstance(response.body, bytes)
    captured = orjson.loads(GRAPH_429_BODY)
    captured["error"]["innerError"].update(orjson.loads(response.body)["error"]["innerError"])
    response.body = orjson.dumps(captured)
    return response


def graph_http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """Graph's answer for an aiohttp routing error (no such route, wrong method) on a Graph path."""
    if exc.status == 404:
        return graph_error(
            404, "NotFound", f"No resource matches {request.path[:200]!r}.", request=request
        )
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "GET")
        return graph_error(
            405,
            "BadRequest",
            f"The HTTP method {request.method} is not allowed here; use {allowed}.",
            request=request,
            headers={"Allow": allowed},
        )
    return graph_error(exc.status, exc.reason.replace(" ", ""), exc.reason, request=request)


def client_request_id(request: web.Request | None) -> str:
    """The client's ``client-request-id`` when it sent a GUID, else a new one."""
    sent = request.headers.get("client-request-id") if request is not None else None
    if sent and GUID_RE.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


class GraphError(Exception):
    """Raised by Graph's handlers; the route wrapper sends it as :func:`graph_error`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self, request: web.Request) -> web.Response:
        return graph_error(
            self.status, self.code, self.message, request=request, headers=self.headers
        )


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def not_found(message: str) -> GraphError:
    return GraphError(404, "NotFound", message)


# --- Microsoft Entra ID --------------------------------------------------------------------------


def entra_error(
    status: int, error: str, code: int, description: str, *, now: float, authority: str
) -> web.Response:
    """A v2.0 token endpoint error: ``error_description`` starts with the AADSTS code and ends with
    the trace id, correlation id and timestamp lines, as Entra writes it."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    moment = datetime.fromtimestamp(now, timezone.utc)
    described = (
        f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation_id}\r\nTimestamp: {moment.strftime('%Y-%m-%d %H:%M:%S')}Z"
    )
    body = {
        "error": error,
        "error_description": described,
        "error_codes": [code],
        "timestamp": moment.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{authority}/error?code={code}",
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={"Content-Type": JSON_TYPE, "Cache-Control": "no-store, no-cache"},
    )
