"""Page and AsyncPager: every list operation returns a pager, not a coroutine.

``async for item in pager`` streams items across pages; ``pager.pages()`` streams :class:`Page` objects;
``await pager`` or ``await pager.first_page()`` fetches just the first page.

Paging rules: when a response carries ``@odata.nextLink`` it is followed verbatim; otherwise an operation
that pages with ``$top``/``$skip`` asks for the next ``$skip`` until a page comes back shorter than
``$top``. An empty page that still points onward does not end the stream.

What a server cannot make the pager do (each raises :class:`~servicecomms_async.errors.PagingError`, at
once and without a retry, unless said otherwise):

* **Loop.** A next link to a page already fetched in this stream, compared after normalising both
  (resolved against the page it came from; scheme and host case, default port, ``#fragment``,
  percent-encoding of plain characters and empty query parameters such as a trailing ``&`` do not
  count); a ``$skip`` page whose first and last items are those of the previous page (a server that
  ignores ``$skip``); more pages than ``max_pages``.
* **Send anywhere.** A next link must be ``http`` or ``https``, without user info, backslash, control
  characters or white space, and at most ``MAX_NEXT_LINK_LENGTH`` (16 KiB) characters.
* **Flood.** A page with more items than were asked for (``page_size``), or than ``max_items_per_page``
  (10,000), is an :class:`~servicecomms_async.errors.UnexpectedResponseError`; a long page is
  structured in slices of ``ITEMS_PER_SLICE`` items with a pass through the event loop between them,
  so that other tenants' requests and timers keep running.

Links live only as long as their stream: the pager keeps their normalised forms in the stream's own
generator, never in a cache of its own.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import aclosing
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import anyio.lowlevel
import attrs
from yarl import URL

from . import _constants, telemetry
from ._odata import encode_query
from ._transport import Response
from ._validate import validate_page_size
from ._wire import WireConverter, structure_items
from .errors import PagingError, ServiceCommsError, UnexpectedResponseError

T = TypeVar("T")

DEFAULT_MAX_PAGES = _constants.MAX_PAGES
DEFAULT_MAX_ITEMS_PER_PAGE = _constants.MAX_ITEMS_PER_PAGE
NEXT_LINK = "@odata.nextLink"


@attrs.frozen
class Page(Generic[T]):
    """One response's items, with where it came from and where the next page is (if the server said)."""

    items: list[T]
    url: str
    next_link: str | None
    request_id: str | None
    number: int  # 1 for the first page
    server_time: datetime | None = None  # the response's ``Date`` header, UTC

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@attrs.frozen(kw_only=True)
class PageQuery:
    """Where the first page is and how to ask for the following ones."""

    endpoint: URL
    params: dict[str, str] = attrs.field(factory=dict)
    page_size: int | None = None  # None: the operation does not page with $top/$skip
    asked_page_size: int | None = None  # the most items a page may hold, however it was asked for
    # The first page's URL as text, encoded once; the next $skip pages append "&$skip=N" to it.
    _first: str = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        first = ""  # no query: the first page is the endpoint itself
        if self.params or self.page_size is not None:
            params: dict[str, str | int] = dict(self.params)
            if self.page_size is not None:
                params["$top"] = self.page_size
            first = f"{self.endpoint}?{encode_query(params)}"
        object.__setattr__(self, "_first", first)

    def url(self, skip: int) -> URL:
        if not self._first:
            return self.endpoint
        if skip and self.page_size is not None:
            return URL(f"{self._first}&$skip={int(skip)}", encoded=True)
        return URL(self._first, encoded=True)


@attrs.frozen(kw_only=True)
class PagingRule:
    """How an API is asked for pages of ``page_size`` items (from 1 to ``max_page_size``).

    Both rules follow ``@odata.nextLink`` verbatim whenever a response carries one. ``$top``/``$skip``
    (the legacy API) sends the page size as ``$top`` and, without a next link, asks for the next
    ``$skip`` until a short page; ``Prefer`` (Microsoft Graph) sends it as ``Prefer:
    odata.maxpagesize`` and never as ``$top``, which on Graph's ``/issues`` suppresses the next link.
    """

    page_size_in: Literal["$top", "Prefer"]
    max_page_size: int

    def query(
        self, endpoint: URL, params: dict[str, str], page_size: object
    ) -> tuple[PageQuery, dict[str, str] | None]:
        """The first page's query and the request headers for ``page_size`` (None: the server's)."""
        if page_size is not None:
            page_size = validate_page_size(page_size, maximum=self.max_page_size)
        if self.page_size_in == "$top":
            query = PageQuery(
                endpoint=endpoint, params=params, page_size=page_size, asked_page_size=page_size
            )
            return query, None
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size is not None else None
        return PageQuery(endpoint=endpoint, params=params, asked_page_size=page_size), headers


TOP_SKIP = PagingRule(page_size_in="$top", max_page_size=_constants.LEGACY_MAX_PAGE_SIZE)
NEXT_LINK_PREFER = PagingRule(page_size_in="Prefer", max_page_size=_constants.GRAPH_MAX_PAGE_SIZE)

Fetch = Callable[[URL], Awaitable[Response]]


class AsyncPager(Generic[T]):
    """Items of type ``T`` from one list operation, fetched page by page as they are consumed."""

    # The span a stream of this pager runs in (set by the client while telemetry is on).
    _operation: telemetry.Operation | None = None

    def __init__(
        self,
        *,
        fetch: Fetch,
        query: PageQuery,
        model: type[T],
        converter: WireConverter,
        max_items: int | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_items_per_page: int = DEFAULT_MAX_ITEMS_PER_PAGE,
    ) -> None:
        self._fetch = fetch
        self._query = query
        self._model = model
        self._converter = converter
        self._max_items = max_items
        self._max_pages = max_pages
        self._max_items_per_page = max_items_per_page
        # Weak references to the iterations this pager started, for aclose(): a list, since a
        # WeakSet per pager cost more than the rest of making one.
        self._open: list[weakref.ref[AsyncGenerator[Any, None]]] = []

    @property
    def first_url(self) -> str:
        """The URL of the first request (for logs and tests; it never holds a secret)."""
        return str(self._query.url(0))

    def __repr__(self) -> str:
        return f"AsyncPager[{self._model.__name__}]({self.first_url})"

    async def first_page(self) -> Page[T]:
        """Fetch only the first page."""
        pages = self.pages()
        try:
            return await pages.__anext__()
        except StopAsyncIteration:  # pragma: no cover - pages() always yields at least one page
            raise PagingError("the server returned no page") from None
        finally:
            await pages.aclose()

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self.first_page().__await__()

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Stream the pages; close it (``aclose()`` or leaving ``async for``) to stop early."""
        return self._remember(self._pages())

    def __aiter__(self) -> AsyncIterator[T]:
        return self._remember(self._items())

    def _remember(self, generator: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        opened: Any = self._open
        if isinstance(opened, list):
            if len(opened) >= 8:  # iterated again and again: forget the finished ones
                opened[:] = [ref for ref in opened if ref() is not None]
            opened.append(weakref.ref(generator))
        else:  # a subclass that keeps its own WeakSet
            opened.add(generator)
        return generator

    def _batches(self) -> AsyncGenerator[tuple[list[T], bool], None]:
        """``(items, last)`` per page, ``last`` being True when no page follows (for the scan,
        which sends a tenant's final result with its last page). Not remembered by the pager:
        whoever asks for it closes it."""
        if type(self)._pages is AsyncPager._pages:
            return self._stream()
        return self._batches_of(self._pages())

    @staticmethod
    async def _batches_of(
        pages: AsyncGenerator[Page[T], None],
    ) -> AsyncGenerator[tuple[list[T], bool], None]:
        async with aclosing(pages):
            async for page in pages:
                yield page.items, False

    async def collect(self) -> list[T]:
        """All items in a list (mind memory on long streams; prefer ``async for``)."""
        return [item async for item in self]

    async def aclose(self) -> None:
        """Stop every iteration this pager started; safe to call more than once."""
        opened: Any = self._open
        if isinstance(opened, list):
            self._open = []
            generators = [ref() for ref in opened]
        else:
            self._open = type(opened)()
            generators = list(opened)
        for generator in generators:
            if generator is not None:
                await generator.aclose()

    async def _items(self) -> AsyncGenerator[T, None]:
        if type(self)._pages is AsyncPager._pages:
            async with aclosing(self._stream()) as stream:
                async for items, _ in stream:
                    for item in items:
                        yield item
            return
        async with aclosing(self._pages()) as pages:
            async for page in pages:
                for item in page.items:
                    yield item

    async def _pages(self) -> AsyncGenerator[Page[T], None]:
        async with aclosing(self._stream(pages=True)) as stream:
            async for page, _ in stream:
                yield page

    def _stream(self, *, pages: bool = False) -> AsyncGenerator[tuple[Any, bool], None]:
        """The paging loop: ``(Page, last)`` per page with ``pages``, else ``(items, last)``; in
        the operation's span when telemetry is on."""
        operation = self._operation
        if operation is None:
            return self._paginate(self._fetch, pages)
        return telemetry.traced_stream(
            operation, self._fetch, lambda fetch: self._paginate(fetch, pages)
        )

    async def _paginate(self, fetch: Fetch, pages: bool) -> AsyncGenerator[tuple[Any, bool], None]:
        query = self._query
        url = query.url(0)
        skip = 0
        yielded = 0
        # Every URL fetched in this stream, and their normalised forms, made only once a next link
        # must be compared with them; they die with the stream.
        fetched_urls: list[URL] = [url]
        fetched: set[tuple[object, ...]] | None = None
        previous_ends: tuple[object, object] | None = None
        number = 0
        while True:
            number += 1
            if number > self._max_pages:
                raise PagingError(
                    f"more than {self._max_pages} pages from {query.endpoint}; stopping (raise max_pages "
                    "if this is expected)"
                )
            response = await fetch(url)
            page_url, request_id, date = response.url, response.request_id, response.date
            failure: ServiceCommsError | None = None
            try:
                raw_items, next_link = _page_parts(response)
                count = len(raw_items)
                ends = _ends(raw_items)
                self._check_count(count, page_url)
                items = await self._structure(raw_items)
            except ServiceCommsError as exc:
                failure = exc
            # A held error must not keep the page alive through this frame's locals, nor through
            # the frames below it (they hold the decoded body).
            response = raw_items = None  # type: ignore[assignment]
            if failure is not None:
                raise failure.with_traceback(None)
            if self._max_items is not None and yielded + len(items) >= self._max_items:
                items = items[: self._max_items - yielded]
                yield (
                    (
                        Page(items, page_url, next_link, request_id, number, date)
                        if pages
                        else items
                    ),
                    True,
                )
                return
            yielded += len(items)
            last = next_link is None and (query.page_size is None or count < query.page_size)
            yield (
                (Page(items, page_url, next_link, request_id, number, date) if pages else items),
                last,
            )
            del items
            if next_link is not None:
                url = self._follow(url, next_link)
                key = link_key(url)
                if fetched is None:
                    fetched = {link_key(seen) for seen in fetched_urls}
                    fetched_urls.clear()
                if key in fetched:
                    raise PagingError(
                        f"the server sent the same @odata.nextLink twice ({_short(next_link)} is "
                        "a page already fetched in this stream); stopping instead of looping",
                        url=page_url,
                    )
                fetched.add(key)
                previous_ends = None
                continue
            if query.page_size is None or count < query.page_size:
                return
            if ends is not None and ends == previous_ends:
                raise PagingError(
                    f"the page at $skip={skip} from {query.endpoint} starts and ends with the same "
                    "items as the page before it: the server ignores $skip; stopping instead of "
                    "looping",
                    url=page_url,
                )
            previous_ends = ends
            skip += count
            url = query.url(skip)
            if fetched is None:
                fetched_urls.append(url)
            else:
                fetched.add(link_key(url))

    def _check_count(self, count: int, page_url: str) -> None:
        asked = self._query.asked_page_size
        if asked is not None and count > asked:
            raise UnexpectedResponseError(
                f"the page from {page_url} holds {count} items, more than the {asked} asked for "
                "(page_size)",
                url=page_url,
            )
        if count > self._max_items_per_page:
            raise UnexpectedResponseError(
                f"the page from {page_url} holds {count} items, more than the limit of "
                f"{self._max_items_per_page} (max_items_per_page)",
                url=page_url,
            )

    async def _structure(self, raw_items: list[Any]) -> list[T]:
        """The items as models, a slice at a time, letting the event loop run between slices."""
        size = _constants.ITEMS_PER_SLICE
        if len(raw_items) <= size:
            return structure_items(raw_items, self._model, conv=self._converter)
        items: list[T] = []
        for start in range(0, len(raw_items), size):
            items += structure_items(
                raw_items[start : start + size], self._model, conv=self._converter
            )
            await anyio.lowlevel.checkpoint()  # let other tenants' requests and timers run
        return items

    def _follow(self, url: URL, next_link: str) -> URL:
        """The URL ``next_link`` points to from ``url``, or PagingError when it may not be followed."""
        refused = _refusal(next_link)
        if refused is None:
            try:
                target = url.join(URL(next_link, encoded=True))
            except (ValueError, TypeError) as exc:
                refused = f"it is not a valid URL ({type(exc).__name__}: {_short(str(exc))})"
            else:
                if target.scheme not in ("http", "https") or not target.host:
                    refused = "only http and https links to a host are followed"
                elif target.raw_user is not None or target.raw_password is not None:
                    refused = "it holds user info (user:password@)"
                else:
                    return target
        raise PagingError(
            f"refusing the @odata.nextLink from {_redacted(url)}: {refused}; link "
            f"{_short(next_link)}",
            url=_redacted(url),
        )


def _refusal(next_link: str) -> str | None:
    """Why a next link's text may not be followed, before it is parsed (None: it may be parsed)."""
    if len(next_link) > _constants.MAX_NEXT_LINK_LENGTH:
        return (
            f"it is {len(next_link)} characters long, above the limit of "
            f"{_constants.MAX_NEXT_LINK_LENGTH} (MAX_NEXT_LINK_LENGTH)"
        )
    if "\\" in next_link:
        return "it holds a backslash"
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in next_link):
        return "it holds a control character or white space"
    return None


def link_key(url: URL) -> tuple[object, ...]:
    """What identifies the page ``url`` asks for: two spellings of one URL give the same key.

    Scheme and host in lower case, the port with the scheme's default filled in, ``.`` and ``..``
    path segments resolved, percent-encoded plain characters (``%41``) decoded and other escapes in
    upper case (RFC 3986, section 6.2.2), empty query parameters (``a=1&&b=2&``) dropped, the fragment
    ignored (and ``%24`` read as ``$``, since OData servers do). Escapes that change the meaning
    (``%2F``, ``%26``, ``+``) are kept as they are.
    """
    path = _without_dot_segments(_normal_escapes(url.raw_path)) or "/"
    query = tuple(_normal_escapes(part) for part in url.raw_query_string.split("&") if part)
    return (url.scheme.lower(), (url.raw_host or "").lower(), url.port, path, query)


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# RFC 3986's unreserved characters, and "$": OData's $skip and %24skip name the same option.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~$")


def _normal_escapes(text: str) -> str:
    def normal(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(normal, text)


def _without_dot_segments(path: str) -> str:
    """``path`` without ``.`` and ``..`` segments (RFC 3986, section 5.2.4)."""
    kept: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "a/b/." names the directory "a/b/"
    return "/".join(kept)


def _ends(raw_items: list[Any]) -> tuple[object, object] | None:
    """The ids (or the whole objects, when they have no id) of a page's first and last items."""
    if not raw_items:
        return None

    def identity(item: Any) -> object:
        if isinstance(item, dict):
            for name in ("Id", "id"):
                if name in item:
                    return (name, repr(item[name]))
        return repr(item)

    return identity(raw_items[0]), identity(raw_items[-1])


def _short(text: str, limit: int = 200) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _redacted(url: URL) -> str:
    return str(url.with_user(None)) if url.raw_user or url.raw_password else str(url)


def _page_parts(response: Response) -> tuple[list[Any], str | None]:
    data = response.data
    if not isinstance(data, dict) or "value" not in data:
        raise UnexpectedResponseError(
            f"expected a JSON object with a 'value' array from {response.url}, got "
            f"{type(data).__name__}{' without value' if isinstance(data, dict) else ''}",
            url=response.url,
        )
    next_link = data.get(NEXT_LINK)
    if next_link is not None and (not isinstance(next_link, str) or not next_link):
        raise UnexpectedResponseError(
            f"@odata.nextLink from {response.url} is not a non-empty string: {next_link!r}",
            url=response.url,
        )
    raw_items = data["value"]
    if not isinstance(raw_items, list):
        raise UnexpectedResponseError(
            f"expected 'value' to be a JSON array from {response.url}, got {type(raw_items).__name__}",
            url=response.url,
        )
    return raw_items, next_link
