"""HTTP sinks (webhook, Teams Workflows, Slack) against real loopback aiohttp receivers."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import importlib.util
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from azure.core.credentials import AccessToken

from servicecomms_async.watch.events import EventType, WatchEvent
from servicecomms_async.watch.http_sinks import (
    FLOW_AUDIENCES,
    SlackSink,
    TeamsSink,
    WebhookSink,
    http_sink,
)
from servicecomms_async.watch.sinks import DeliveryError

from .conftest import SECRETS

# What must never show: the secret parts of the URL, the signing secret, the tokens.
PATH_SECRET = "PATHSECRET-7f3a9c41"
QUERY_SECRET = "QUERYSECRET-2b8e1d55"
SIGNING_KEY = bytes(range(1, 33))
WEBHOOK_SECRET = "whsec_" + base64.b64encode(SIGNING_KEY).decode()
BEARER = "webhook-bearer-token-3c9d2e"
FLOW_TOKEN = "flow-trigger-token-8a7b6c"
SECRETS.update({PATH_SECRET, QUERY_SECRET, WEBHOOK_SECRET, BEARER, FLOW_TOKEN})
ALL_SECRETS = (PATH_SECRET, QUERY_SECRET, WEBHOOK_SECRET, BEARER, FLOW_TOKEN)
SECRET_PATH = f"/workflows/{PATH_SECRET}/triggers/manual/paths/invoke"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def event(n: int = 1, *, type: EventType = EventType.ISSUE_OPENED) -> WatchEvent:
    return WatchEvent(
        id=f"{n:032x}",
        type=type,
        tenant_id="contoso.com",
        subject=f"EX{100000 + n}",
        time=datetime(2026, 12, 2, 10, 15, tzinfo=timezone.utc),
        data={"tenantId": "contoso.com", "entity": {"id": f"EX{100000 + n}", "title": "Mail"}},
    )


class Received:
    def __init__(self, at: float, request: web.Request, body: bytes) -> None:
        self.at = at
        self.headers = request.headers
        self.path = request.path
        self.query = dict(request.query)
        self.body = body


class Receiver:
    """A loopback HTTP server that records each request and answers from a script (then 200)."""

    def __init__(self, default: int = 200) -> None:
        self.received: list[Received] = []
        self.script: list[Handler | int] = []
        self.default = default
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.base = ""

    @property
    def url(self) -> str:
        return f"{self.base}{SECRET_PATH}?api-version=1&sig={QUERY_SECRET}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(time.monotonic(), request, body))
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, int):
            return web.Response(status=answer)
        return await answer(request)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rec:
        yield rec


def answer(status: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)

    return respond


def verify_standard_webhook(secret: str, received: Received) -> dict[str, Any]:
    """Standard Webhooks v1 verification, written from the spec: the key is the base64 after
    ``whsec_``; the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the header is a
    space-separated list of ``v1,<base64 HMAC-SHA256>``; compared in constant time."""
    msg_id = received.headers["webhook-id"]
    stamp = received.headers["webhook-timestamp"]
    assert stamp.isdigit()
    assert abs(int(stamp) - time.time()) < 300  # the spec's replay tolerance
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = hmac.new(key, f"{msg_id}.{stamp}.".encode() + received.body, hashlib.sha256)
    wanted = base64.b64encode(expected.digest()).decode()
    signatures = received.headers["webhook-signature"].split(" ")
    assert any(
        version == "v1" and hmac.compare_digest(value, wanted)
        for version, _, value in (s.partition(",") for s in signatures)
    ), "no valid v1 signature"
    parsed: dict[str, Any] = orjson.loads(received.body)
    return parsed


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in ALL_SECRETS:
            assert secret not in text, f"{secret} shown in {text!r}"


def frame_leaks(error: BaseException, *extra: str) -> list[str]:
    """The library's traceback frame locals (of ``error`` and what is chained to it) whose repr
    shows a secret, as "function.name": what rich's locals, ``pytest -l`` or Sentry would print.
    The test's own frames hold the secrets it passed, so they are not looked at."""
    secrets = [*ALL_SECRETS, *extra]
    found: list[str] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        pending += [current.__cause__, current.__context__]
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if "servicecomms_async" in frame.f_code.co_filename:
                for name, value in frame.f_locals.items():
                    shown = repr(value)
                    if any(secret in shown for secret in secrets):
                        found.append(f"{frame.f_code.co_name}.{name}")
            tb = tb.tb_next
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- webhook -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_webhook_signs_every_attempt_and_classifies_failures(receiver: Receiver) -> None:
    receiver.script = [503, answer(429, "slow down", {"Retry-After": "7"})]
    sink = WebhookSink(receiver.url, secret=WEBHOOK_SECRET, bearer_token=BEARER)
    events = [event(1), event(2), event(3)]
    try:
        with pytest.raises(DeliveryError) as first:
            await sink.deliver(events)
        assert (first.value.retryable, first.value.status, first.value.delivered) == (
            True,
            503,
            0,
        )
        assert first.value.retry_after is None
        with pytest.raises(DeliveryError) as second:
            await sink.deliver(events)
        assert (second.value.retryable, second.value.status, second.value.retry_after) == (
            True,
            429,
            7.0,
        )
        assert "slow down" in str(second.value)
        await sink.deliver(events)
    finally:
        await sink.aclose()
    got = receiver.received
    assert len(got) == 5
    for received in got:
        assert received.headers["Content-Type"] == "application/cloudevents+json"
        assert received.headers["Authorization"] == f"Bearer {BEARER}"
        assert received.path == SECRET_PATH and received.query["sig"] == QUERY_SECRET
        cloudevent = verify_standard_webhook(WEBHOOK_SECRET, received)
        assert cloudevent["specversion"] == "1.0"
        assert received.headers["webhook-id"] == cloudevent["id"]
    # The same webhook-id on each attempt of the same event; every event arrived, in order.
    assert [r.headers["webhook-id"] for r in got] == [events[0].id] * 3 + [
        events[1].id,
        events[2].id,
    ]
    assert [WatchEvent.from_json(r.body) for r in got[2:]] == events


@pytest.mark.anyio
async def test_a_failure_mid_batch_says_how_many_went_through(receiver: Receiver) -> None:
    receiver.script = [200, 202, 500]
    sink = WebhookSink(receiver.url, secret=WEBHOOK_SECRET)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event(1), event(2), event(3), event(4)])
    finally:
        await sink.aclose()
    assert info.value.delivered == 2 and info.value.retryable and info.value.status == 500
    assert len(receiver.received) == 3  # nothing sent after the failure


@pytest.mark.anyio
async def test_retry_after_as_an_http_date(receiver: Receiver) -> None:
    when = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), True)
    receiver.script = [answer(503, headers={"Retry-After": when})]
    sink = WebhookSink(receiver.url)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert info.value.retry_after is not None and 80 < info.value.retry_after <= 90
    # Unsigned without a secret, but still identified.
    assert "webhook-signature" not in receiver.received[0].headers
    assert receiver.received[0].headers["webhook-id"] == event().id


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_not_retryable(receiver: Receiver, status: int) -> None:
    receiver.script = [answer(status, "nope")]
    sink = WebhookSink(receiver.url, secret=WEBHOOK_SECRET)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert not info.value.retryable and info.value.status == status
    assert f"HTTP {status}" in str(info.value) and "nope" in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [408, 500, 502, 504])
async def test_408_and_5xx_are_retryable(receiver: Receiver, status: int) -> None:
    receiver.script = [status]
    sink = WebhookSink(receiver.url)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert info.value.retryable and info.value.status == status


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(receiver: Receiver, status: int) -> None:
    async with Receiver() as elsewhere:
        target = f"{elsewhere.base}/steal/{PATH_SECRET}"
        receiver.script = [answer(status, headers={"Location": target})]
        sink = WebhookSink(receiver.url, secret=WEBHOOK_SECRET, bearer_token=BEARER)
        try:
            with pytest.raises(DeliveryError) as info:
                await sink.deliver([event()])
        finally:
            await sink.aclose()
        assert elsewhere.received == []
    assert not info.value.retryable and info.value.status == status
    assert "not followed" in str(info.value)
    assert_no_secret(str(info.value))


@pytest.mark.anyio
async def test_a_receiver_that_never_answers_times_out_retryably(receiver: Receiver) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await receiver.release.wait()
        return web.Response()

    receiver.script = [hang]
    sink = WebhookSink(receiver.url, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert time.monotonic() - started < 5
    assert info.value.retryable and info.value.status is None and info.value.delivered == 0
    assert "no answer within 0.5s" in str(info.value)


@pytest.mark.anyio
async def test_a_connection_refused_is_retryable() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}{SECRET_PATH}?sig={QUERY_SECRET}")
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert info.value.retryable and info.value.status is None
    assert_no_secret(str(info.value), repr(sink))
    assert frame_leaks(info.value) == []


@pytest.mark.anyio
async def test_a_huge_error_body_is_not_read_whole(receiver: Receiver) -> None:
    sent = {"bytes": 0}
    total = 64 * 1024 * 1024

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500, headers={"Content-Type": "text/plain"})
        response.content_length = total
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            while sent["bytes"] < total:
                await response.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    receiver.script = [huge]
    sink = WebhookSink(receiver.url)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    await asyncio.sleep(0.2)
    assert info.value.retryable and info.value.status == 500
    assert len(str(info.value)) < 600
    assert sent["bytes"] < total // 4  # the client hung up long before the end


# -- webhook configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (base64.b64encode(SIGNING_KEY).decode(), "prefix is required"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "holds 65 bytes"),
        ("", "Standard Webhooks secret"),
    ],
)
def test_signing_secrets_are_checked_on_construction(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        WebhookSink(f"https://hooks.example/{PATH_SECRET}", secret=secret)
    assert secret not in str(info.value) or not secret
    assert_no_secret(str(info.value))
    assert frame_leaks(info.value, *([secret] if secret else [])) == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"http://hooks.example/{PATH_SECRET}", "must use https"),
        (f"https://user:{QUERY_SECRET}@hooks.example/{PATH_SECRET}", "user name or password"),
        (f"/relative/{PATH_SECRET}", "absolute https"),
        (f"ftp://hooks.example/{PATH_SECRET}", "absolute https"),
        ("", "needs a URL"),
    ],
)
def test_urls_are_checked_on_construction(url: str, why: str) -> None:
    for make in (WebhookSink, TeamsSink, SlackSink):
        with pytest.raises(ValueError, match=why) as info:
            make(url)
        assert_no_secret(str(info.value))
        assert frame_leaks(info.value) == []


def test_plain_http_only_for_loopback_hosts() -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9"):
        assert WebhookSink(f"http://{host}/hook").host in host


def test_reprs_show_only_scheme_and_host() -> None:
    url = (
        f"https://prod-12.westus.logic.azure.com:443{SECRET_PATH}?api-version=1&sig={QUERY_SECRET}"
    )
    assert (
        repr(TeamsSink(url)) == "TeamsSink(name='teams', https://prod-12.westus.logic.azure.com/…)"
    )
    webhook = WebhookSink(url, name="siem", secret=WEBHOOK_SECRET, bearer_token=BEARER)
    assert repr(webhook) == "WebhookSink(name='siem', https://prod-12.westus.logic.azure.com/…)"
    assert repr(SlackSink(f"https://hooks.slack.com/services/{PATH_SECRET}")) == (
        "SlackSink(name='slack', https://hooks.slack.com/…)"
    )
    assert_no_secret(repr(vars(webhook)), str(webhook))


def test_chat_sinks_always_take_rollups() -> None:
    assert TeamsSink("https://x.logic.azure.com/a").rollup is True
    assert SlackSink("https://hooks.slack.com/services/a").rollup is True
    assert WebhookSink("https://hooks.example/a").rollup is False
    assert WebhookSink("https://hooks.example/a", rollup=True).rollup is True
    assert [TeamsSink.kind, SlackSink.kind, WebhookSink.kind] == ["teams", "slack", "webhook"]


# -- Teams -------------------------------------------------------------------------------------


def card(event: WatchEvent) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.5",
                    "body": [{"type": "TextBlock", "text": event.subject}],
                },
            }
        ],
    }


class Credential:
    """A tiny real async credential, as azure-identity's are: ``await get_token(*scopes)``."""

    def __init__(self, token: str = FLOW_TOKEN, fail: bool = False) -> None:
        self.token = token
        self.fail = fail
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.fail:
            raise RuntimeError("AADSTS700016: application not found in the directory")
        return AccessToken(f"{self.token}-{len(self.scopes)}", int(time.time()) + 3600)


@pytest.mark.anyio
async def test_teams_posts_the_card_with_the_credentials_token(receiver: Receiver) -> None:
    receiver.default = 202
    credential = Credential()
    sink = TeamsSink(receiver.url, credential=credential, render=card)
    try:
        await sink.deliver([event(1), event(2)])
    finally:
        await sink.aclose()
    assert [orjson.loads(r.body) for r in receiver.received] == [card(event(1)), card(event(2))]
    assert {r.headers["Content-Type"] for r in receiver.received} == {"application/json"}
    assert {r.headers["Authorization"] for r in receiver.received} == {f"Bearer {FLOW_TOKEN}-1"}
    assert credential.scopes == [("https://service.flow.microsoft.com/.default",)]  # cached


@pytest.mark.parametrize(
    ("cloud", "scope"),
    [
        ("public", "https://service.flow.microsoft.com/.default"),
        ("gcc", "https://gov.service.flow.microsoft.us/.default"),
        ("gcc-high", "https://high.service.flow.microsoft.us/.default"),
        ("dod", "https://service.flow.appsplatform.us/.default"),
        ("china", "https://service.powerautomate.cn/.default"),
    ],
)
def test_teams_asks_for_the_clouds_workflows_audience(cloud: str, scope: str) -> None:
    sink = TeamsSink("https://x.logic.azure.us/a", credential=Credential(), cloud=cloud)
    assert sink.scope == scope == FLOW_AUDIENCES[cloud] + ".default"


@pytest.mark.anyio
async def test_teams_scope_sent_for_gcc_high_and_401_fetches_a_new_token(
    receiver: Receiver,
) -> None:
    receiver.script = [401]
    credential = Credential()
    sink = TeamsSink(receiver.url, credential=credential, cloud="gcc-high", render=card)
    try:
        await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert credential.scopes == [("https://high.service.flow.microsoft.us/.default",)] * 2
    assert [r.headers["Authorization"] for r in receiver.received] == [
        f"Bearer {FLOW_TOKEN}-1",
        f"Bearer {FLOW_TOKEN}-2",
    ]


@pytest.mark.anyio
async def test_teams_without_a_credential_sends_no_token(receiver: Receiver) -> None:
    sink = TeamsSink(receiver.url, render=card)
    try:
        await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert "Authorization" not in receiver.received[0].headers


@pytest.mark.anyio
async def test_teams_paces_at_most_four_requests_a_second(receiver: Receiver) -> None:
    receiver.default = 202
    sink = TeamsSink(receiver.url, render=card)
    try:
        await sink.deliver([event(n) for n in range(9)])
    finally:
        await sink.aclose()
    times = [r.at for r in receiver.received]
    assert len(times) == 9
    # 9 requests at most 4 a second: 8 gaps of 0.25 s, 2 s in all, measured where they arrive
    # (unpaced, they take a few milliseconds). The slack is for the first request's connection
    # and a loaded machine; no 5 requests in a row arrive within (nearly) a second.
    assert times[-1] - times[0] >= 1.75
    assert all(later - earlier >= 0.8 for earlier, later in zip(times, times[4:], strict=False))


@pytest.mark.anyio
async def test_two_teams_sinks_on_one_url_share_the_pace(receiver: Receiver) -> None:
    first, second = TeamsSink(receiver.url, render=card), TeamsSink(receiver.url, render=card)
    try:
        await asyncio.gather(
            first.deliver([event(1), event(2)]), second.deliver([event(3), event(4)])
        )
    finally:
        await first.aclose()
        await second.aclose()
    times = sorted(r.at for r in receiver.received)
    assert times[-1] - times[0] >= 0.7  # 4 requests: 3 gaps of 0.25 s


@pytest.mark.parametrize(
    "url",
    [
        f"https://contoso.webhook.office.com/webhookb2/{PATH_SECRET}/IncomingWebhook/x/y",
        f"https://outlook.office.com/webhook/{PATH_SECRET}/IncomingWebhook/x/y",
    ],
)
def test_retired_office_365_connector_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="retired") as info:
        TeamsSink(url)
    assert "Workflows" in str(info.value)
    assert_no_secret(str(info.value))
    assert frame_leaks(info.value) == []


@pytest.mark.anyio
async def test_a_teams_message_above_28_kb_is_refused_before_sending(receiver: Receiver) -> None:
    def big(event: WatchEvent) -> dict[str, Any]:
        message = card(event)
        message["attachments"][0]["content"]["body"][0]["text"] = "x" * 28_000
        return message

    sink = TeamsSink(receiver.url, render=big)
    try:
        with pytest.raises(DeliveryError, match="above Teams' 28000") as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert not info.value.retryable and receiver.received == []


@pytest.mark.anyio
async def test_a_failing_credential_is_a_retryable_error_without_secrets(
    receiver: Receiver,
) -> None:
    sink = TeamsSink(receiver.url, credential=Credential(fail=True), render=card)
    try:
        with pytest.raises(DeliveryError, match="AADSTS700016") as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert info.value.retryable and receiver.received == []
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert_no_secret(str(info.value), repr(sink))


_HAVE_TEMPLATES = importlib.util.find_spec("servicecomms_async.watch.templates") is not None


@pytest.mark.anyio
@pytest.mark.skipif(not _HAVE_TEMPLATES, reason="watch/templates.py has not landed yet")
async def test_the_real_templates_reach_the_receivers(receiver: Receiver) -> None:
    teams, slack = TeamsSink(receiver.url), SlackSink(receiver.url.replace("workflows", "slack"))
    try:
        await teams.deliver([event(1, type=EventType.ISSUE_UPDATED)])
        await slack.deliver([event(2, type=EventType.MESSAGE_PUBLISHED)])
    finally:
        await teams.aclose()
        await slack.aclose()
    teams_body, slack_body = (orjson.loads(r.body) for r in receiver.received)
    assert teams_body["type"] == "message"
    attachment = teams_body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["version"] == "1.5"
    assert len(receiver.received[0].body) <= 28_000
    assert isinstance(slack_body["text"], str) and slack_body["text"]
    assert len(slack_body.get("blocks", [])) <= 50


# -- Slack -------------------------------------------------------------------------------------


def slack_text(event: WatchEvent) -> dict[str, Any]:
    return {"text": f"{event.type}: {event.subject}"}


@pytest.mark.anyio
async def test_slack_paces_one_request_a_second(receiver: Receiver) -> None:
    sink = SlackSink(receiver.url, render=slack_text)
    try:
        await sink.deliver([event(1), event(2), event(3)])
    finally:
        await sink.aclose()
    times = [r.at for r in receiver.received]
    assert times[-1] - times[0] >= 1.75  # 2 gaps of 1 s (a few milliseconds unpaced)
    assert [orjson.loads(r.body) for r in receiver.received] == [
        slack_text(event(n)) for n in (1, 2, 3)
    ]


@pytest.mark.anyio
async def test_slack_429_is_retryable_after_its_retry_after(receiver: Receiver) -> None:
    receiver.script = [answer(429, "rate_limited", {"Retry-After": "30"})]
    sink = SlackSink(receiver.url, render=slack_text)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert info.value.retryable and info.value.retry_after == 30.0 and info.value.status == 429


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "text"),
    [(400, "invalid_payload"), (400, "no_text"), (404, "no_service"), (410, "channel_is_archived")],
)
async def test_slack_error_text_is_in_the_error(receiver: Receiver, status: int, text: str) -> None:
    receiver.script = [answer(status, text)]
    sink = SlackSink(receiver.url, name="ops", render=slack_text)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.deliver([event()])
    finally:
        await sink.aclose()
    assert not info.value.retryable
    assert str(info.value).startswith("slack sink 'ops' (http://127.0.0.1:")
    assert f"HTTP {status}: {text}" in str(info.value)


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_secret_in_reprs_errors_logs_or_frame_locals(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        # A receiver that echoes what it got: the URL, and the Authorization header.
        seen = f"{request.url} {request.headers.get('Authorization')}"
        return web.Response(status=500, text=f"error at {seen}")

    async def hang(request: web.Request) -> web.StreamResponse:
        await receiver.release.wait()
        return web.Response()

    sinks = [
        WebhookSink(receiver.url, secret=WEBHOOK_SECRET, bearer_token=BEARER, timeout=0.5),
        TeamsSink(receiver.url, credential=Credential(), render=card, timeout=0.5),
        SlackSink(receiver.url, render=slack_text, timeout=0.5),
    ]
    errors: list[DeliveryError] = []
    with caplog.at_level(logging.DEBUG):
        for sink in sinks:
            receiver.script = [echo, hang, answer(404, f"no {PATH_SECRET} here")]
            try:
                for _ in range(3):
                    with pytest.raises(DeliveryError) as info:
                        await sink.deliver([event()])
                    errors.append(info.value)
                await sink.deliver([event()])  # and a success, logged
            finally:
                await sink.aclose()
    assert len(errors) == 9
    assert "HTTP 500: error at *** Bearer ***" in str(errors[0])  # the echo, scrubbed
    for error in errors:
        assert_no_secret(str(error), repr(error), repr(error.args))
        assert frame_leaks(error) == []
    assert_no_secret(caplog.text, *(repr(s) for s in sinks), *(repr(vars(s)) for s in sinks))


def test_configuration_reads_secret_urls_from_env_or_file(tmp_path: Path) -> None:
    url = f"https://prod-1.westus.logic.azure.com{SECRET_PATH}?sig={QUERY_SECRET}"
    path = tmp_path / "teams.url"
    path.write_text(url + "\n")
    environ = {"TEAMS_URL": url, "SERVICECOMMS_WEBHOOK_SECRET": WEBHOOK_SECRET}
    from_env = http_sink("teams", "env:TEAMS_URL", name="ops", environ=environ)
    from_file = http_sink("teams", f"file:{path}", environ=environ)
    assert isinstance(from_env, TeamsSink) and isinstance(from_file, TeamsSink)
    assert (from_env.name, from_file.name) == ("ops", "teams")
    assert from_env._target.reveal() == from_file._target.reveal()
    slack = http_sink("slack", "https://hooks.slack.com/services/x", environ={}, cloud="dod")
    assert isinstance(slack, SlackSink) and slack.admin_center == "https://portal.apps.mil"
    gov = http_sink("teams", "env:TEAMS_URL", environ=environ, cloud="gcc", credential=Credential())
    assert (
        isinstance(gov, TeamsSink) and gov.scope == "https://gov.service.flow.microsoft.us/.default"
    )
    hook = http_sink("webhook", "https://hooks.example/in", environ=environ, rollup=True)
    assert isinstance(hook, WebhookSink) and hook.signed and hook.rollup
    assert not http_sink("webhook", "https://hooks.example/in", environ={}).signed
    secret_file = tmp_path / "secret"
    secret_file.write_text(WEBHOOK_SECRET)
    named = http_sink(
        "webhook",
        "https://hooks.example/in",
        environ={"TOKEN": BEARER},
        secret=f"file:{secret_file}",
        token="env:TOKEN",
    )
    assert isinstance(named, WebhookSink) and named.signed and named._token is not None


@pytest.mark.parametrize(
    ("kind", "target", "options", "why"),
    [
        ("teams", "env:MISSING", {}, "environment variable MISSING"),
        ("teams", "file:/nonexistent/teams.url", {}, "cannot read the URL from /nonexistent"),
        ("slack", "env:", {}, "needs a variable name"),
        ("webhook", "https://h.example/x", {"secret": WEBHOOK_SECRET}, "never given as a value"),
        ("webhook", "https://h.example/x", {"token": BEARER}, "never given as a value"),
        ("webhook", "env:BAD_URL", {}, "must use https"),
        ("webhook", "https://h.example/x", {"secret": "env:BAD_SECRET"}, "prefix is required"),
        ("email", "x", {}, "unknown HTTP sink kind"),
        ("teams", "https://x.logic.azure.com/a", {"secret": "env:S"}, "webhook sinks only"),
    ],
)
def test_configuration_errors_name_the_sink_and_never_a_secret(
    kind: str, target: str, options: dict[str, str], why: str
) -> None:
    environ = {
        "BAD_URL": f"http://h.example/{PATH_SECRET}?sig={QUERY_SECRET}",
        "BAD_SECRET": BEARER,
        "OTHER": FLOW_TOKEN,
    }
    with pytest.raises(ValueError, match=why) as info:
        http_sink(kind, target, name="mine", environ=environ, **options)
    assert "'mine'" in str(info.value)
    assert_no_secret(str(info.value))
    assert info.value.__context__ is None
    assert frame_leaks(info.value) == []


@pytest.mark.anyio
async def test_the_session_is_made_lazily_and_closed(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url)
    assert sink._session is None
    await sink.deliver([])
    assert sink._session is None
    await sink.deliver([event()])
    session = sink._session
    assert session is not None and not session.closed
    await sink.aclose()
    assert session.closed and sink._session is None
    await sink.aclose()  # idempotent
    await sink.deliver([event(2)])  # used again: a new session
    await sink.aclose()
    assert len(receiver.received) == 2
