"""HTTP sinks: a signed webhook, Microsoft Teams (Workflows) and Slack (incoming webhooks).

Each sink posts one request per event, in order, and :meth:`deliver` raises
:class:`~servicecomms_async.watch.sinks.DeliveryError` at the first that fails, with ``delivered`` set
to how many went through before it. What counts as success, and what may be retried:

* any 2xx is delivered;
* 408, 429 and 5xx, a timeout or a connection error are ``retryable`` (``retry_after`` from the
  ``Retry-After`` header, delta-seconds or an HTTP date);
* a redirect is not followed (it would carry the signature or the token elsewhere) and, like every
  other 4xx, is not retryable.

**Secrets.** Slack and Workflows URLs are bearer secrets (whoever has one can post), and so are the
webhook signing secret and bearer tokens. None of them appears in a ``repr`` (which shows the scheme
and host only: ``TeamsSink(name='teams', https://prod-12.westus.logic.azure.com/…)``), a log record,
an error's message, or the locals of the traceback frames of an error raised here: errors are raised
fresh, outside the ``except`` blocks (no aiohttp exception, whose request info holds the URL and
headers, rides along), and header values that hold a secret show as ``'***'``. An error body quoted in
a message is cut to 300 characters, with the URL's path, query and the secrets taken out.

Each sink has one ``aiohttp.ClientSession``, made on first use inside the running loop and closed by
:meth:`aclose` (a sink used again after it opens a new one). Chat sinks are paced per target URL (Teams
at most 4 requests a second, Slack 1), across every sink of the process that posts to the same URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import anyio
import orjson
from yarl import URL

from .._transport import HiddenHeaderValue
from .._validate import is_loopback_host
from .._version import __version__
from ..auth import Secret
from ..clouds import Cloud, get_cloud
from ..retry import parse_retry_after
from .events import WatchEvent
from .sinks import DeliveryError

__all__ = [
    "ADMIN_CENTERS",
    "DEFAULT_WEBHOOK_SECRET_ENV",
    "DEFAULT_WEBHOOK_TOKEN_ENV",
    "FLOW_AUDIENCES",
    "SlackSink",
    "TeamsSink",
    "WebhookSink",
    "http_sink",
]

logger = logging.getLogger("servicecomms_async.watch.sinks")

ERROR_BODY_READ = 64 * 1024  # bytes of an error answer read at most; the rest is never read
ERROR_TEXT_SHOWN = 300  # characters of it quoted in a DeliveryError
TEAMS_MAX_BYTES = 28_000  # Workflows refuses bigger messages after answering 202 (run history only)
TEAMS_INTERVAL = 0.25  # seconds between requests to one Workflows URL: at most 4 a second
SLACK_INTERVAL = 1.0  # Slack: "1 per second" per incoming webhook
_USER_AGENT = f"servicecomms-async/{__version__}"
_MIN_SECRET_BYTES = 24  # Standard Webhooks: "at least 24 bytes (192 bits, 512 maximum)"
_MAX_SECRET_BYTES = 64
_MIN_SCRUB = 6  # shorter fragments of a URL are not scrubbed from error text (they would mangle it)
_TOKEN_REFRESH_MARGIN = 300.0  # seconds before expiry a cached trigger token is renewed

DEFAULT_WEBHOOK_SECRET_ENV = "SERVICECOMMS_WEBHOOK_SECRET"
DEFAULT_WEBHOOK_TOKEN_ENV = "SERVICECOMMS_WEBHOOK_TOKEN"

FLOW_AUDIENCES: dict[str, str] = {
    "public": "https://service.flow.microsoft.com/",
    "gcc": "https://gov.service.flow.microsoft.us/",
    "gcc-high": "https://high.service.flow.microsoft.us/",
    "dod": "https://service.flow.appsplatform.us/",
    "china": "https://service.powerautomate.cn/",
}
"""The audience of a Workflows trigger token per cloud (Power Automate OAuth authentication); the
scope asked of the credential is the audience followed by ``.default``."""

ADMIN_CENTERS: dict[str, str] = {
    "public": "https://admin.microsoft.com",
    "gcc": "https://admin.microsoft.com",
    "gcc-high": "https://portal.office365.us",
    "dod": "https://portal.apps.mil",
    "china": "https://portal.partner.microsoftonline.cn",
}
"""The Microsoft 365 admin center per cloud, for the "view in the admin center" links of chat
messages (``admin_center=`` overrides). Public and GCC are documented; the GCC High, DoD and China
portals are the admin portals Microsoft names for those clouds, and the deep links the templates
build under them are [inferred]."""


# -- targets and secrets ----------------------------------------------------------------------


class _Target:
    """A sink URL that never shows itself: ``repr`` and ``str`` give the scheme and host only."""

    __slots__ = ("_secrets", "_url", "shown")

    def __init__(self, url: URL) -> None:
        self._url = url
        self.shown = f"{url.scheme}://{url.host}{_port(url)}/…"
        pieces = {str(url), url.raw_path_qs, url.path_qs, url.raw_path, url.path}
        pieces.add(url.raw_query_string)
        pieces.update(url.query.values())
        pieces.update(part for part in url.raw_parts if part != "/")
        self._secrets = sorted(
            (p for p in pieces if len(p) >= _MIN_SCRUB and p != "/"), key=len, reverse=True
        )

    def reveal(self) -> URL:
        return self._url

    @property
    def host(self) -> str:
        return self._url.host or ""

    def digest(self) -> str:
        return hashlib.sha256(str(self._url).encode()).hexdigest()

    def scrub(self, text: str, *others: Secret | None) -> str:
        """``text`` without the URL, its path, its query and ``others``."""
        for piece in [*self._secrets, *(o.reveal() for o in others if o is not None)]:
            if len(piece) >= _MIN_SCRUB and piece in text:
                text = text.replace(piece, "***")
        return text

    def __repr__(self) -> str:
        return self.shown

    __str__ = __repr__


def _port(url: URL) -> str:
    return "" if url.explicit_port is None or url.is_default_port() else f":{url.explicit_port}"


def _check_url(kind: str, name: str, url: object) -> URL | str:
    """The URL, or the reason it is refused (a message that never holds the URL's path or query)."""
    if not isinstance(url, (str, URL)) or not str(url).strip():
        return f"{kind} sink {name!r} needs a URL"
    text = str(url).strip()
    try:
        parsed = URL(text)
    except (ValueError, TypeError):
        return f"{kind} sink {name!r}: the URL does not parse"
    if not parsed.is_absolute() or not parsed.host or parsed.scheme not in ("https", "http"):
        return f"{kind} sink {name!r}: the URL must be an absolute https:// URL"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return f"{kind} sink {name!r}: the URL must not hold a user name or password"
    if parsed.scheme == "http" and not is_loopback_host(parsed.host):
        return (
            f"{kind} sink {name!r}: the URL must use https:// (plain http only for loopback hosts), "
            f"got http://{parsed.host}/…"
        )
    if parsed.fragment:
        return f"{kind} sink {name!r}: the URL must not have a #fragment"
    return parsed


def _signing_key(name: str, secret: object) -> bytes | str:
    """The HMAC key of a ``whsec_`` secret, or the reason it is refused (never echoing it)."""
    if not isinstance(secret, str):
        return f"webhook sink {name!r}: the signing secret must be a string (whsec_...)"
    text = secret.strip()
    if not text.startswith("whsec_"):
        return (
            f"webhook sink {name!r}: the signing secret must be a Standard Webhooks secret: whsec_ "
            "followed by the base64 of 24 to 64 random bytes (the prefix is required, so that a "
            "password or another scheme's key is not taken for one)"
        )
    try:
        key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return f"webhook sink {name!r}: the signing secret after whsec_ is not valid base64"
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        return (
            f"webhook sink {name!r}: the signing secret holds {len(key)} bytes; Standard Webhooks "
            f"wants {_MIN_SECRET_BYTES} to {_MAX_SECRET_BYTES}"
        )
    return key


class _Key:
    """The webhook HMAC key; its ``repr`` hides it."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, message: bytes) -> str:
        return base64.b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).decode()

    def __repr__(self) -> str:
        return "_Key('***')"


def sign_webhook(key: _Key, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of Standard Webhooks v1 (symmetric)."""
    return "v1," + key.sign(f"{webhook_id}.{timestamp}.".encode() + body)


# -- pacing ------------------------------------------------------------------------------------


class _Pacer:
    """Spaces requests to one target at least ``interval`` seconds apart (by their start).

    A caller takes the next free slot without awaiting anything first, so concurrent callers (and
    callers on different event loops) each get their own slot without a lock.
    """

    __slots__ = ("__weakref__", "_next", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await anyio.sleep(slot - now)


_PACERS: weakref.WeakValueDictionary[tuple[str, str], _Pacer] = weakref.WeakValueDictionary()


def _pacer_for(kind: str, target: _Target, interval: float) -> _Pacer:
    key = (kind, target.digest())  # a digest: the URL itself is kept nowhere else
    pacer = _PACERS.get(key)
    if pacer is None:
        pacer = _PACERS[key] = _Pacer(interval)
    return pacer


# -- the common HTTP part ----------------------------------------------------------------------


class _HttpSink:
    kind = "http"
    rollup: bool

    def __init__(self, target: _Target, *, name: str, timeout: float) -> None:
        self.name = name
        self._target = target
        if not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"{self.kind} sink {name!r}: timeout must be a positive number")
        self.timeout = float(timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pacer: _Pacer | None = None
        self.requests_sent = 0  # every HTTP attempt, for diagnostics and tests

    def __repr__(self) -> str:
        target = getattr(self, "_target", None)
        return f"{type(self).__name__}(name={getattr(self, 'name', '?')!r}, {target!r})"

    @property
    def host(self) -> str:
        """The target's host (safe to show)."""
        return self._target.host

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": _USER_AGENT},
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _where(self) -> str:
        return f"{self.kind} sink {self.name!r} ({self._target.shown})"

    async def _extra_headers(self) -> dict[str, str]:
        return {}

    def _secrets(self) -> tuple[Secret | None, ...]:
        return ()

    async def _post(
        self, body: bytes, headers: dict[str, str], event: WatchEvent, *, delivered: int
    ) -> int:
        """POST ``body``; the status on success, :class:`DeliveryError` otherwise."""
        if self._pacer is not None:
            await self._pacer.wait()
        client = self._client()
        status: int | None = None
        retry_after: float | None = None
        text = ""
        location = ""
        failure: str | None = None
        resp: aiohttp.ClientResponse | None = None
        self.requests_sent += 1
        try:
            async with client.post(
                self._target.reveal(),
                data=body,
                headers=headers,
                allow_redirects=False,  # the signature or the token must not go anywhere else
            ) as resp:
                status = resp.status
                if 200 <= status < 300:
                    pass  # the body is not read: released (or closed) on leaving the block
                else:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    location = _host_of(resp.headers.get("Location"))
                    text = await _read_some(resp)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            failure = f"no answer within {self.timeout:g}s"
        except aiohttp.ClientResponseError as exc:  # its str() holds the URL: only its message
            failure = f"unreadable response: {type(exc).__name__}: {exc.message}"
        except aiohttp.ClientError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        except OSError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        # No aiohttp object (the response holds the URL) may outlive the attempt in this frame.
        del body, headers, resp
        if failure is not None:
            failure = self._target.scrub(failure, *self._secrets())[:ERROR_TEXT_SHOWN]
            raise DeliveryError(
                f"{self._where()}: event {event.id} not delivered: {failure}",
                retryable=True,
                delivered=delivered,
            )
        assert status is not None
        if 200 <= status < 300:
            return status
        error = self._status_error(status, text, location, retry_after, event, delivered)
        del text  # the raw body may echo the URL or a header
        raise error

    def _status_error(
        self,
        status: int,
        text: str,
        location: str,
        retry_after: float | None,
        event: WatchEvent,
        delivered: int,
    ) -> DeliveryError:
        retryable = status in (408, 429) or status >= 500
        if 300 <= status < 400:
            detail = f"redirect to {location or '?'} not followed"
            retryable = False
        else:
            detail = " ".join(self._target.scrub(text, *self._secrets()).split())
            detail = detail[:ERROR_TEXT_SHOWN]
        message = f"{self._where()}: event {event.id} not delivered: HTTP {status}"
        if detail:
            message += f": {detail}"
        if retryable and retry_after is not None:
            message += f" (retry after {retry_after:g}s)"
        return DeliveryError(
            message,
            retryable=retryable,
            retry_after=retry_after,
            status=status,
            delivered=delivered,
        )


def _host_of(location: str | None) -> str:
    if not location:
        return ""
    try:
        url = URL(location)
    except (ValueError, TypeError):
        return "?"
    return f"{url.scheme}://{url.host}/…" if url.host else "a relative URL"


async def _read_some(resp: aiohttp.ClientResponse) -> str:
    """At most :data:`ERROR_BODY_READ` bytes of an error body, as text (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < ERROR_BODY_READ:
            chunk = await resp.content.read(ERROR_BODY_READ - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        pass  # the status is what matters; the text is a courtesy
    return b"".join(chunks).decode("utf-8", errors="replace")


def _raise_config(message: str) -> NoReturn:
    raise ValueError(message)


# -- webhook -----------------------------------------------------------------------------------


class WebhookSink(_HttpSink):
    """POSTs each event's structured CloudEvent (``application/cloudevents+json``) to ``url``.

    With ``secret`` (a Standard Webhooks ``whsec_<base64>`` secret), each request is signed as
    Standard Webhooks v1: ``webhook-id`` is the event id (the same on every attempt, for the
    receiver to de-duplicate), ``webhook-timestamp`` the Unix time in seconds when the attempt is
    sent, and ``webhook-signature`` is ``v1,`` and the base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``
    keyed with the base64-decoded part of the secret after ``whsec_``. A secret without the prefix
    is refused (the spec serialises symmetric secrets with it; without it, a password or an
    asymmetric ``whsk_`` key could be taken for one). Without a secret, ``webhook-id`` and
    ``webhook-timestamp`` are still sent, unsigned.

    ``bearer_token`` adds ``Authorization: Bearer <token>``. ``rollup``: deliver rollups across
    tenants instead of each tenant's events.
    """

    kind = "webhook"

    def __init__(
        self,
        url: str | URL,
        *,
        name: str = "webhook",
        secret: str | Secret | None = None,
        bearer_token: str | Secret | None = None,
        timeout: float = 10.0,
        rollup: bool = False,
    ) -> None:
        checked = _check_url(self.kind, name, url)
        key: bytes | str | None = None
        if secret is not None:
            key = _signing_key(name, secret.reveal() if isinstance(secret, Secret) else secret)
        token: Secret | None = None
        problem: str | None = None
        if isinstance(bearer_token, Secret):
            token = bearer_token
        elif isinstance(bearer_token, str) and bearer_token.strip():
            token = Secret(bearer_token.strip())
        elif bearer_token is not None:
            problem = f"webhook sink {name!r}: bearer_token must be a non-empty string"
        if isinstance(key, str):
            problem = key
        if isinstance(checked, str):
            problem = checked
        target = None if isinstance(checked, str) else _Target(checked)
        # Nothing secret may stay in this frame's locals: a refusal's traceback shows them.
        del url, secret, bearer_token, checked
        if problem is not None or target is None:
            del key, token
            _raise_config(problem or "unreachable")
        super().__init__(target, name=name, timeout=timeout)
        self.rollup = bool(rollup)
        self._key = _Key(key) if isinstance(key, bytes) else None
        self._token = token
        del key, token

    @property
    def signed(self) -> bool:
        return self._key is not None

    def _secrets(self) -> tuple[Secret | None, ...]:
        return (self._token,)

    async def deliver(self, events: Sequence[WatchEvent]) -> None:
        for delivered, event in enumerate(events):
            if "." in event.id or not event.id.isprintable() or " " in event.id:
                raise DeliveryError(
                    f"{self._where()}: event id {event.id!r} cannot be a webhook-id",
                    retryable=False,
                    delivered=delivered,
                )
            body = event.to_json()
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/cloudevents+json",
                "webhook-id": event.id,
                "webhook-timestamp": str(timestamp),
            }
            if self._key is not None:
                headers["webhook-signature"] = sign_webhook(self._key, event.id, timestamp, body)
            if self._token is not None:
                headers["Authorization"] = HiddenHeaderValue("Bearer " + self._token.reveal())
            status = await self._post(body, headers, event, delivered=delivered)
            logger.debug("%s: event %s delivered (HTTP %d)", self._where(), event.id, status)


# -- Teams -------------------------------------------------------------------------------------

Render = Callable[[WatchEvent], Mapping[str, Any]]


def _is_retired_connector(url: URL) -> bool:
    host = (url.host or "").lower().rstrip(".")
    if host == "webhook.office.com" or host.endswith(".webhook.office.com"):
        return True
    # The older form of the same connectors: https://outlook.office.com/webhook/...
    return host in ("outlook.office.com", "outlook.office365.com") and url.path.startswith(
        "/webhook"
    )


class TeamsSink(_HttpSink):
    """A Microsoft Teams **Workflows** webhook (Power Automate "When a Teams webhook request is
    received"): one Adaptive Card message per event (``templates.teams_message``, or ``render``).

    ``credential``: an azure-identity **async** credential (``await get_token(scope)``); its token
    for the cloud's Workflows audience (``FLOW_AUDIENCES``; ``audience=`` for another) goes in
    ``Authorization: Bearer``, as triggers in "Any user in my tenant" or "Specific users" mode want.
    Without one, the trigger must be in "Anyone" mode (the signed URL alone). The sink does not
    close the credential. A 401 drops the cached token and is tried once more with a new one.

    Requests to one URL are paced at most 4 a second. A message above 28,000 bytes of JSON is
    refused before sending (not retryable): Workflows would answer 202 and drop it.

    **202 means accepted, not shown**: Workflows answers 202 as soon as the flow is triggered, even
    when the flow then fails (a card it cannot post, an orphaned flow, a private channel); such
    failures show only in the flow's run history. Every 2xx counts as delivered.

    A ``*.webhook.office.com`` URL (the Office 365 connectors, retired in 2025-2026) is refused
    when the sink is made, with the migration hint. ``rollup`` is always True.
    """

    kind = "teams"

    def __init__(
        self,
        url: str | URL,
        *,
        name: str = "teams",
        credential: Any = None,
        cloud: Cloud | str = "public",
        audience: str | None = None,
        admin_center: str | None = None,
        render: Render | None = None,
        timeout: float = 10.0,
    ) -> None:
        checked = _check_url(self.kind, name, url)
        del url
        if isinstance(checked, str):
            _raise_config(checked)
        assert isinstance(checked, URL)
        target = _Target(checked)
        del checked  # a yarl URL's repr is the whole URL
        if _is_retired_connector(target.reveal()):
            _raise_config(
                f"teams sink {name!r}: {target.host} is an Office 365 connector (incoming webhook) "
                "URL, and Microsoft retired those connectors. Create a workflow instead: in the "
                "channel, Workflows > 'Post to a channel when a webhook request is received' (or "
                "Power Automate's 'When a Teams webhook request is received' trigger), and give its "
                "URL here"
            )
        resolved = get_cloud(cloud)
        if audience is None:
            audience = FLOW_AUDIENCES.get(resolved.name)
            if audience is None and credential is not None:
                raise ValueError(
                    f"teams sink {name!r}: no Workflows audience is known for cloud "
                    f"{resolved.name!r}; pass audience="
                )
        if credential is not None and not callable(getattr(credential, "get_token", None)):
            raise TypeError(
                f"teams sink {name!r}: credential must be an azure-identity async credential "
                f"(with get_token), got {type(credential).__name__}"
            )
        super().__init__(target, name=name, timeout=timeout)
        self.rollup = True
        self.cloud = resolved
        self.credential = credential
        self.scope = None if audience is None else audience.rstrip("/") + "/.default"
        self.admin_center = admin_center or ADMIN_CENTERS.get(
            resolved.name, ADMIN_CENTERS["public"]
        )
        self._render = render
        self._token: Secret | None = None
        self._token_expires = 0.0
        self._pacer = _pacer_for(self.kind, self._target, TEAMS_INTERVAL)

    def _secrets(self) -> tuple[Secret | None, ...]:
        return (self._token,)

    def render(self, event: WatchEvent) -> Mapping[str, Any]:
        if self._render is None:
            templates = importlib.import_module(".templates", __package__)

            admin_center = self.admin_center

            def default(event: WatchEvent) -> Mapping[str, Any]:
                message: Mapping[str, Any] = templates.teams_message(
                    event, admin_center=admin_center
                )
                return message

            self._render = default
        return self._render(event)

    async def _bearer(self, delivered: int) -> Secret | None:
        if self.credential is None or self.scope is None:
            return None
        if self._token is not None and time.time() < self._token_expires - _TOKEN_REFRESH_MARGIN:
            return self._token
        failure: str | None = None
        try:
            issued = self.credential.get_token(self.scope)
            if inspect.isawaitable(issued):
                issued = await issued
            token, expires_on = issued.token, float(issued.expires_on)
        except Exception as exc:  # azure-identity's errors (ClientAuthenticationError, ...)
            failure = self._target.scrub(f"{type(exc).__name__}: {exc}")
        else:
            self._token, self._token_expires = Secret(token), expires_on
            del token
        issued = None  # an AccessToken's repr shows the token
        if failure is not None:
            # Retryable: the identity endpoint may be down; a wrong configuration ends dead after
            # the outbox's attempts.
            raise DeliveryError(
                f"{self._where()}: no token from {type(self.credential).__name__} for "
                f"{self.scope}: {failure}"[:600],
                retryable=True,
                delivered=delivered,
            )
        return self._token

    async def deliver(self, events: Sequence[WatchEvent]) -> None:
        for delivered, event in enumerate(events):
            body = orjson.dumps(self.render(event))
            if len(body) > TEAMS_MAX_BYTES:
                raise DeliveryError(
                    f"{self._where()}: the message for event {event.id} is {len(body)} bytes of "
                    f"JSON, above Teams' {TEAMS_MAX_BYTES}; Workflows would accept it (202) and "
                    "never show it",
                    retryable=False,
                    delivered=delivered,
                )
            for attempt in (1, 2):
                token = await self._bearer(delivered)
                headers = {"Content-Type": "application/json"}
                if token is not None:
                    headers["Authorization"] = HiddenHeaderValue("Bearer " + token.reveal())
                try:
                    status = await self._post(body, headers, event, delivered=delivered)
                except DeliveryError as exc:
                    if exc.status == 401 and token is not None and attempt == 1:
                        self._token = None  # revoked or expired early: one more try, new token
                        continue
                    raise
                break
            logger.debug("%s: event %s accepted (HTTP %d)", self._where(), event.id, status)


# -- Slack -------------------------------------------------------------------------------------


class SlackSink(_HttpSink):
    """A Slack incoming webhook: one message per event (``templates.slack_message``, or
    ``render``), paced at one request a second per URL. ``cloud`` (or ``admin_center``) picks the
    admin center the message links to. A 429 is retryable after its
    ``Retry-After``; Slack's error answers (``invalid_payload``, ``no_text``, ``channel_not_found``,
    ...) are quoted in the error. ``rollup`` is always True."""

    kind = "slack"

    def __init__(
        self,
        url: str | URL,
        *,
        name: str = "slack",
        cloud: Cloud | str = "public",
        admin_center: str | None = None,
        render: Render | None = None,
        timeout: float = 10.0,
    ) -> None:
        checked = _check_url(self.kind, name, url)
        del url
        if isinstance(checked, str):
            _raise_config(checked)
        assert isinstance(checked, URL)
        target = _Target(checked)
        del checked  # a yarl URL's repr is the whole URL
        super().__init__(target, name=name, timeout=timeout)
        self.rollup = True
        self.cloud = get_cloud(cloud)
        self.admin_center = admin_center or ADMIN_CENTERS.get(
            self.cloud.name, ADMIN_CENTERS["public"]
        )
        self._render = render
        self._pacer = _pacer_for(self.kind, self._target, SLACK_INTERVAL)

    def render(self, event: WatchEvent) -> Mapping[str, Any]:
        if self._render is None:
            templates = importlib.import_module(".templates", __package__)

            admin_center = self.admin_center

            def default(event: WatchEvent) -> Mapping[str, Any]:
                message: Mapping[str, Any] = templates.slack_message(
                    event, admin_center=admin_center
                )
                return message

            self._render = default
        return self._render(event)

    async def deliver(self, events: Sequence[WatchEvent]) -> None:
        for delivered, event in enumerate(events):
            body = orjson.dumps(self.render(event))
            headers = {"Content-Type": "application/json; charset=utf-8"}
            status = await self._post(body, headers, event, delivered=delivered)
            logger.debug("%s: event %s delivered (HTTP %d)", self._where(), event.id, status)


# -- configuration -----------------------------------------------------------------------------

HttpSink = WebhookSink | TeamsSink | SlackSink


def _resolve(
    kind: str, name: str, what: str, source: str, environ: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """``env:VAR``, ``file:PATH`` or the value itself: (value, None) or (None, why not)."""
    if source.startswith("env:"):
        var = source[4:]
        if not var:
            return (
                None,
                f"{kind} sink {name!r}: env: needs a variable name, e.g. env:{what.upper()}",
            )
        value = environ.get(var, "").strip()
        if not value:
            return None, f"{kind} sink {name!r}: the environment variable {var} ({what}) is not set"
        return value, None
    if source.startswith("file:"):
        path = source[5:]
        if not path:
            return None, f"{kind} sink {name!r}: file: needs a path"
        try:
            value = Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return (
                None,
                f"{kind} sink {name!r}: cannot read the {what} from {path}: {type(exc).__name__}",
            )
        if not value:
            return None, f"{kind} sink {name!r}: the file {path} ({what}) is empty"
        return value, None
    return source, None


def http_sink(
    kind: str,
    target: str,
    *,
    name: str | None = None,
    environ: Mapping[str, str] | None = None,
    secret: str | None = None,
    token: str | None = None,
    credential: Any = None,
    cloud: Cloud | str = "public",
    rollup: bool = False,
    timeout: float = 10.0,
) -> HttpSink:
    """An HTTP sink from configuration (``--sink [NAME=]KIND:TARGET`` or a config file).

    ``target`` is the URL itself or, to keep a secret URL (Slack, Workflows) off the command line,
    ``env:VARNAME`` or ``file:PATH`` (the file's text, stripped). For ``webhook``, ``secret`` says
    where the signing secret is (``env:VAR`` or ``file:PATH``, never the value itself); by default
    it is ``$SERVICECOMMS_WEBHOOK_SECRET`` when set (unsigned otherwise). ``token`` (the same forms)
    is an optional bearer token, ``$SERVICECOMMS_WEBHOOK_TOKEN`` by default when set. For ``teams``,
    ``credential`` and ``cloud`` are the trigger token's. ``rollup`` is for ``webhook``; chat sinks
    always take rollups.

    Raises ``ValueError`` naming the sink and what is wrong, never the secret or the URL's path.
    """
    sink_name = name or kind
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        return _http_sink(
            kind, target, sink_name, env, secret, token, credential, cloud, rollup, timeout
        )
    except ValueError as exc:
        message = str(exc)
    # Raised again with no argument left in this frame (environ's repr would show every variable).
    del target, environ, env, secret, token
    raise ValueError(message)


def _http_sink(
    kind: str,
    target: str,
    name: str,
    environ: Mapping[str, str],
    secret: str | None,
    token: str | None,
    credential: Any,
    cloud: Cloud | str,
    rollup: bool,
    timeout: float,
) -> HttpSink:
    if kind not in ("webhook", "teams", "slack"):
        raise ValueError(f"sink {name!r}: unknown HTTP sink kind {kind!r} (webhook, teams, slack)")
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{kind} sink {name!r} needs a URL, env:VARNAME or file:PATH")
    url, problem = _resolve(kind, name, "URL", target.strip(), environ)
    if problem is not None:
        raise ValueError(problem)
    assert url is not None
    if kind != "webhook" and (secret is not None or token is not None):
        raise ValueError(
            f"{kind} sink {name!r}: a signing secret or bearer token is for webhook sinks only"
            + (" (Teams takes a credential)" if kind == "teams" else "")
        )
    if kind == "teams":
        return TeamsSink(url, name=name, credential=credential, cloud=cloud, timeout=timeout)
    if kind == "slack":
        return SlackSink(url, name=name, cloud=cloud, timeout=timeout)
    signing: str | None = None
    if secret is not None:
        if not secret.startswith(("env:", "file:")):
            raise ValueError(
                f"webhook sink {name!r}: the signing secret is read from env:VARNAME or file:PATH, "
                "never given as a value"
            )
        signing, problem = _resolve(kind, name, "signing secret", secret, environ)
        if problem is not None:
            raise ValueError(problem)
    else:
        signing = environ.get(DEFAULT_WEBHOOK_SECRET_ENV, "").strip() or None
    bearer: str | None = None
    if token is not None:
        if not token.startswith(("env:", "file:")):
            raise ValueError(
                f"webhook sink {name!r}: the bearer token is read from env:VARNAME or file:PATH, "
                "never given as a value"
            )
        bearer, problem = _resolve(kind, name, "bearer token", token, environ)
        if problem is not None:
            raise ValueError(problem)
    else:
        bearer = environ.get(DEFAULT_WEBHOOK_TOKEN_ENV, "").strip() or None
    return WebhookSink(
        url, name=name, secret=signing, bearer_token=bearer, timeout=timeout, rollup=rollup
    )
