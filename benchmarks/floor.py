"""The floor: raw aiohttp + ``orjson.loads``, fetching exactly the pages the library fetches and doing
nothing else with them (no models, no validation, no retries). Each function mirrors one in
:mod:`.library` and takes the same arguments.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from .measure import ClientCounters, Timed, clock
from .server import TOKEN

PAGE_SIZE = 100
_HEADERS = {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}


def _client(limit: int = 100, counters: ClientCounters | None = None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        headers=_HEADERS,
        trace_configs=[counters.trace_config()] if counters is not None else None,
    )


async def _get(client: aiohttp.ClientSession, url: str) -> object:
    async with client.get(url) as response:
        response.raise_for_status()
        return orjson.loads(await response.read())


async def stream_messages(base_url: str, tenant: str, *, max_items: int | None = None) -> Timed:
    """Every message of ``tenant`` page by page ($top=100, $skip=...), until a short page."""
    started = clock()
    count = 0
    async with _client() as client:
        endpoint = f"{base_url}/{tenant}/ServiceComms/Messages?$top={PAGE_SIZE}"
        skip = 0
        while True:
            page = await _get(client, f"{endpoint}&$skip={skip}" if skip else endpoint)
            items = page["value"]  # type: ignore[index]
            for _ in items:
                count += 1
                if count == max_items:
                    return Timed(clock() - started, count)
            if len(items) < PAGE_SIZE:
                break
            skip += len(items)
    return Timed(clock() - started, count)


async def scan_current_status(
    base_url: str,
    tenants: list[str],
    *,
    concurrency: int,
    counters: ClientCounters | None = None,
) -> Timed:
    """``/CurrentStatus`` for every tenant, ``concurrency`` requests at a time (a semaphore)."""
    started = clock()
    semaphore = asyncio.Semaphore(concurrency)
    async with _client(limit=concurrency, counters=counters) as client:

        async def one(tenant: str) -> int:
            async with semaphore:
                page = await _get(client, f"{base_url}/{tenant}/ServiceComms/CurrentStatus")
                return sum(1 for _ in page["value"])  # type: ignore[index,misc]

        counts = await asyncio.gather(*(one(tenant) for tenant in tenants))
    return Timed(clock() - started, sum(counts))


async def first_item(base_url: str, tenant: str) -> float:
    """Seconds from nothing (no pool, no connection) to the first ``/CurrentStatus`` item."""
    started = clock()
    async with _client() as client:
        page = await _get(client, f"{base_url}/{tenant}/ServiceComms/CurrentStatus")
        next(iter(page["value"]))  # type: ignore[index]
        return clock() - started


async def stream_graph_messages(graph_base_url: str, token: str, *, page_size: int) -> Timed:
    """Every Graph Message Center post of the token's tenant (``/admin/serviceAnnouncement/messages``,
    ``Prefer: odata.maxpagesize``), following ``@odata.nextLink`` until there is none; keeps the ids."""
    return await stream_graph(graph_base_url, token, "messages", page_size=page_size)


async def stream_graph(
    graph_base_url: str, token: str, collection: str, *, page_size: int
) -> Timed:
    """Every item of ``/admin/serviceAnnouncement/{collection}`` (messages, issues), page by page."""
    started = clock()
    ids: list[str] = []
    pages = 0
    headers = {
        "Accept": "application/json",
        "Authorization": f"Bearer {token}",
        "Prefer": f"odata.maxpagesize={page_size}",
    }
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as client:
        url: str | None = f"{graph_base_url}/admin/serviceAnnouncement/{collection}"
        while url is not None:
            page = await _get(client, url)
            pages += 1
            ids.extend(item["id"] for item in page["value"])  # type: ignore[index]
            url = page.get("@odata.nextLink")  # type: ignore[attr-defined]
    return Timed(clock() - started, len(ids), {"ids": ids, "pages": pages})


async def raw_scan_current_status(
    base_url: str, tenants: list[str], *, concurrency: int, counters: ClientCounters | None = None
) -> Timed:
    """The same requests as :func:`scan_current_status` without aiohttp: ``concurrency`` keep-alive
    sockets (asyncio streams), each a worker taking the next tenant, writing the request line and
    reading the status line, headers and ``Content-Length`` bytes; then ``orjson.loads``. What a
    client that does nearly nothing costs, so the server's share of a fan-out is visible."""
    started = clock()
    origin, _, prefix = base_url.partition("//")[2].partition("/")
    host, _, port = origin.partition(":")
    path = "/" + prefix
    pending = iter(tenants)
    counts: list[int] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        try:
            for tenant in pending:
                writer.write(
                    f"GET {path}/{tenant}/ServiceComms/CurrentStatus HTTP/1.1\r\nHost: {origin}\r\n"
                    f"Accept: application/json\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"HTTP error from the server: {head[:40]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                page = orjson.loads(await reader.readexactly(length))
                counts.append(sum(1 for _ in page["value"]))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(tenants)))))
    return Timed(clock() - started, sum(counts))
