"""7. Against the alternative: Graph Message Center posts through this library, msgraph-sdk and the floor.

All three read the same pages of one tenant's ``/v1.0/admin/serviceAnnouncement/messages`` from the
same emulator process (its Graph routes: the bearer token ``emulator-app.<tenant>`` names the tenant),
each sending ``Prefer: odata.maxpagesize=N`` and following ``@odata.nextLink`` until there is none:

- **library**: ``session.graph(tenant).messages(page_size=N)`` on ``ServiceCommsSession(api="graph")``,
  every post a typed :class:`~servicecomms_async.graph.models.ServiceUpdateMessage`;
- **msgraph-sdk** (Microsoft's Python SDK, optional: ``pip install -e ".[bench]"``): a
  ``GraphServiceClient`` on a ``GraphRequestAdapter`` (msgraph-core's default middleware) whose
  ``base_url`` is the emulator's, authenticated by kiota's ``AzureIdentityAuthenticationProvider`` over
  an ``AsyncTokenCredential`` that hands out the emulator's token. That is the stock pipeline: kiota
  exempts 127.0.0.1 from its https-only rule, so nothing is switched off. The first page comes from
  ``client.admin.service_announcement.messages.get(...)``, the rest from msgraph-core's ``PageIterator``;
- **floor**: raw aiohttp + ``orjson.loads``, nothing else.

Every side keeps the ids it saw; library and floor must agree (else the run is void and raises), and
msgraph-sdk's are compared with them (a difference is reported in its row). The sides run in rotating
order, best of ``sizes.repeats``; the floor and the library are warmed by one full run each, msgraph-sdk
by one first page (its generated models are imported on first use), since a full run of it takes
seconds. Without msgraph-sdk, or when it cannot talk to the emulator, its row says why and the library
is still measured against the floor.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from servicecomms_async.emulator import Emulator

from . import floor, library
from .measure import Outcome, Row, Timed, best_of_rotating, clock, per_item_us, ratio
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
MSGRAPH_PACKAGE = "msgraph-sdk"


class EmulatorCredential:
    """An ``azure.core.credentials_async.AsyncTokenCredential`` that hands out one fixed token.

    Stands in for azure-identity's credentials, which would fetch and cache a real token; the token
    stays out of ``repr``.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "EmulatorCredential(<token>)"

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> EmulatorCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def msgraph_version() -> str | None:
    """The installed msgraph-sdk's version, or None when it is not installed."""
    try:
        return metadata.version(MSGRAPH_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


async def msgraph_messages(
    graph_base_url: str, token: str, *, page_size: int, first_page_only: bool = False
) -> Timed:
    """msgraph-sdk's way: ``messages.get()`` for the first page, then ``PageIterator.iterate``."""
    # Imported here: msgraph-sdk is optional (the ``bench`` extra) and heavy to import.
    import httpx
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]
    from msgraph_core.tasks.page_iterator import PageIterator  # type: ignore[import-untyped]

    started = clock()
    ids: list[str | None] = []
    prefer = f"odata.maxpagesize={page_size}"
    # Kiota's default client (httpx, HTTP/2 allowed, 100 s timeout, 30 s to connect) on a connection
    # pool kept here: msgraph-core's AsyncGraphTransport does not pass aclose() on, so closing the
    # client would leave the pool's connections open.
    pool = httpx.AsyncHTTPTransport(http2=True)
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(transport=pool, timeout=httpx.Timeout(100, connect=30))
    )
    async with pool, http_client:
        auth = AzureIdentityAuthenticationProvider(EmulatorCredential(token), scopes=GRAPH_SCOPES)
        adapter = GraphRequestAdapter(auth, client=http_client)
        adapter.base_url = graph_base_url
        client = GraphServiceClient(request_adapter=adapter)
        config = RequestConfiguration()  # type: ignore[var-annotated]
        config.headers.add("Prefer", prefer)
        first = await client.admin.service_announcement.messages.get(request_configuration=config)
        if first_page_only:
            page = first.value if first is not None and first.value is not None else []
            ids.extend(message.id for message in page)
            return Timed(clock() - started, len(ids), {"ids": ids})
        iterator = PageIterator(first, adapter)
        # PageIterator.set_headers({...}) raises TypeError in msgraph-core 1.5 (it passes the dict
        # as keyword arguments to HeadersCollection.add_all), so the next pages' Prefer goes in here.
        iterator.headers.add("Prefer", prefer)

        def keep(message: Any) -> bool:
            ids.append(message.id)
            return True  # go on

        await iterator.iterate(keep)
    return Timed(clock() - started, len(ids), {"ids": ids})


async def _probe_msgraph(graph_base_url: str, token: str, page_size: int) -> tuple[str | None, int]:
    """(None, items on the first page) when msgraph-sdk reads a first page from the emulator (and is
    then warm); else (why not, 0)."""
    if msgraph_version() is None:
        return f'{MSGRAPH_PACKAGE} is not installed (pip install -e ".[bench]")', 0
    try:
        probe = await msgraph_messages(
            graph_base_url, token, page_size=page_size, first_page_only=True
        )
    except Exception as exc:  # reported in the table instead of ending the whole run
        why = f"{type(exc).__name__}: {str(exc)[:300]}"
        return f"{MSGRAPH_PACKAGE} could not read the emulator: {why}", 0
    if probe.items == 0:
        return f"{MSGRAPH_PACKAGE} read an empty first page from the emulator", 0
    return None, probe.items


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    config = ServerConfig(messages_per_tenant=sizes.graph_legacy_messages)
    graph_base_url = servers.get_graph(config)
    tenant = tenant_ids(1)[0]
    token = Emulator.graph_token(tenant)
    page_size = sizes.graph_page_size

    def run_library() -> Awaitable[Timed]:
        return library.stream_graph_messages(graph_base_url, token, tenant, page_size=page_size)

    def run_floor() -> Awaitable[Timed]:
        return floor.stream_graph_messages(graph_base_url, token, page_size=page_size)

    def run_msgraph() -> Awaitable[Timed]:
        return msgraph_messages(graph_base_url, token, page_size=page_size)

    await run_floor()  # warm-up: the emulator converts and caches the tenant's Graph messages
    await run_library()
    skipped, msgraph_first_page = await _probe_msgraph(graph_base_url, token, page_size)
    runs: dict[str, Callable[[], Awaitable[Timed]]] = {"floor": run_floor, "library": run_library}
    if skipped is None:
        runs["msgraph"] = run_msgraph
    best = await best_of_rotating(sizes.repeats, runs)

    lib, flo = best["library"], best["floor"]
    if lib.info["ids"] != flo.info["ids"]:
        raise RuntimeError(
            f"library and floor saw different messages ({lib.items} vs {flo.items}): the run is void"
        )
    lib_us, floor_us = per_item_us(lib), per_item_us(flo)
    posts = f"{flo.items:,} posts, {flo.info['pages']} pages of {page_size}"
    rows = [
        Row(
            benchmark=f"7. Graph Message Center, {flo.items:,} posts: `graph(t).messages()` (µs/item)",
            library=f"{lib_us:.1f}",
            floor=f"{floor_us:.1f}",
            ratio=ratio(lib_us, floor_us),
            bar="— (reported)",
            met=None,
            notes=(
                f"{posts} (Prefer: odata.maxpagesize={page_size}, @odata.nextLink), same emulator "
                f"and ids on every side; best of {sizes.repeats}, rotating order"
            ),
        )
    ]
    details: dict[str, Any] = {
        "sizes": sizes.name,
        "page_size": page_size,
        "legacy_messages_per_tenant": sizes.graph_legacy_messages,
        "pages": flo.info["pages"],
        "library_items": lib.items,
        "floor_items": flo.items,
        "library_us_per_item": lib_us,
        "floor_us_per_item": floor_us,
        "library_over_floor": ratio(lib_us, floor_us),
        "msgraph_version": msgraph_version(),
        "msgraph_skipped": skipped,
        "msgraph_items": None,
        "msgraph_first_page_items": msgraph_first_page,  # shows that its Prefer header was sent
        "msgraph_same_ids": None,
        "msgraph_us_per_item": None,
    }

    version = msgraph_version() or "(not installed)"
    name = f"7. same posts through msgraph-sdk {version} `PageIterator` (µs/item)"
    if skipped is not None:
        rows.append(
            Row(
                benchmark=name,
                library="not run",
                floor=f"{floor_us:.1f}",
                ratio=None,
                bar="— (reported)",
                met=None,
                notes=f"not run: {skipped}",
            )
        )
        return Outcome("graph", rows, details)

    ms = best["msgraph"]
    ms_us = per_item_us(ms)
    same_ids = ms.info["ids"] == flo.info["ids"]
    over_library = ratio(ms_us, lib_us)
    details |= {
        "msgraph_items": ms.items,
        "msgraph_same_ids": same_ids,
        "msgraph_us_per_item": ms_us,
        "msgraph_over_floor": ratio(ms_us, floor_us),
        "msgraph_over_library": over_library,
    }
    agreement = (
        "the same ids in the same order as the library"
        if same_ids
        else f"**different messages**: {ms.items:,} items, not the library's {lib.items:,}"
    )
    rows.append(
        Row(
            benchmark=name,
            library=(
                f"msgraph-sdk {ms_us:,.1f} ({over_library:,.0f}x the library)"
                if over_library is not None
                else f"msgraph-sdk {ms_us:,.1f}"
            ),
            floor=f"{floor_us:.1f}",
            ratio=ratio(ms_us, floor_us),
            bar="— (reported)",
            met=None,
            notes=(
                f"ratio is msgraph-sdk / floor; {agreement}. GraphServiceClient on a GraphRequestAdapter "
                "(msgraph-core default middleware) with base_url set to the emulator's, kiota's "
                "AzureIdentityAuthenticationProvider over a fixed-token AsyncTokenCredential (kiota "
                "allows plain http to 127.0.0.1); `messages.get()` then msgraph-core `PageIterator`"
            ),
        )
    )
    return Outcome("graph", rows, details)
