"""Page and AsyncPager: every list operation returns a pager, not a coroutine.

``async for item in pager`` streams items across pages; ``pager.pages()`` streams :class:`Page` objects;
``await pager`` or ``await pager.first_page()`` fetches just the first page.

Paging rules: when a response carries ``@odata.nextLink`` it is followed verbatim; otherwise an operation
that pages with ``$top``/``$skip`` asks for the next ``$skip`` until a page comes back shorter than
``$top``. An empty page that still points onward does not end the stream; the same next link twice, or
more pages than ``max_pages``, raises :class:`~servicecomms_async.errors.PagingError` instead of looping.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import aclosing
from typing import Any, Generic, Literal, TypeVar

import attrs
from yarl import URL

from . import _constants
from ._odata import encode_query
from ._transport import Response
from ._validate import validate_page_size
from ._wire import WireConverter, structure_items
from .errors import PagingError, UnexpectedResponseError

T = TypeVar("T")

DEFAULT_MAX_PAGES = _constants.MAX_PAGES
NEXT_LINK = "@odata.nextLink"


@attrs.frozen
class Page(Generic[T]):
    """One response's items, with where it came from and where the next page is (if the server said)."""

    items: list[T]
    url: str
    next_link: str | None
    request_id: str | None
    number: int  # 1 for the first page

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

    def url(self, skip: int) -> URL:
        params: dict[str, str | int] = dict(self.params)
        if self.page_size is not None:
            params["$top"] = self.page_size
            if skip:
                params["$skip"] = skip
        if not params:
            return self.endpoint
        return URL(f"{self.endpoint}?{encode_query(params)}", encoded=True)


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
            return PageQuery(endpoint=endpoint, params=params, page_size=page_size), None
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size is not None else None
        return PageQuery(endpoint=endpoint, params=params), headers


TOP_SKIP = PagingRule(page_size_in="$top", max_page_size=_constants.LEGACY_MAX_PAGE_SIZE)
NEXT_LINK_PREFER = PagingRule(page_size_in="Prefer", max_page_size=_constants.GRAPH_MAX_PAGE_SIZE)

Fetch = Callable[[URL], Awaitable[Response]]


class AsyncPager(Generic[T]):
    """Items of type ``T`` from one list operation, fetched page by page as they are consumed."""

    def __init__(
        self,
        *,
        fetch: Fetch,
        query: PageQuery,
        model: type[T],
        converter: WireConverter,
        max_items: int | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self._fetch = fetch
        self._query = query
        self._model = model
        self._converter = converter
        self._max_items = max_items
        self._max_pages = max_pages
        self._open: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()

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
        generator = self._pages()
        self._open.add(generator)
        return generator

    def __aiter__(self) -> AsyncIterator[T]:
        generator = self._items()
        self._open.add(generator)
        return generator

    async def collect(self) -> list[T]:
        """All items in a list (mind memory on long streams; prefer ``async for``)."""
        return [item async for item in self]

    async def aclose(self) -> None:
        """Stop every iteration this pager started; safe to call more than once."""
        open_generators, self._open = list(self._open), weakref.WeakSet()
        for generator in open_generators:
            await generator.aclose()

    async def _items(self) -> AsyncGenerator[T, None]:
        async with aclosing(self._pages()) as pages:
            async for page in pages:
                for item in page.items:
                    yield item

    async def _pages(self) -> AsyncGenerator[Page[T], None]:
        query = self._query
        url = query.url(0)
        skip = 0
        yielded = 0
        seen_links: set[str] = set()
        number = 0
        while True:
            number += 1
            if number > self._max_pages:
                raise PagingError(
                    f"more than {self._max_pages} pages from {query.endpoint}; stopping (raise max_pages "
                    "if this is expected)"
                )
            response = await self._fetch(url)
            raw_items, next_link = _page_parts(response)
            items = structure_items(raw_items, self._model, conv=self._converter)
            if self._max_items is not None and yielded + len(items) >= self._max_items:
                items = items[: self._max_items - yielded]
                yield Page(items, response.url, next_link, response.request_id, number)
                return
            yielded += len(items)
            yield Page(items, response.url, next_link, response.request_id, number)
            if next_link is not None:
                if next_link in seen_links:
                    raise PagingError(
                        f"the server sent the same @odata.nextLink twice ({next_link}); stopping "
                        "instead of looping"
                    )
                seen_links.add(next_link)
                url = url.join(URL(next_link, encoded=True))
                continue
            if query.page_size is None or len(raw_items) < query.page_size:
                return
            skip += len(raw_items)
            url = query.url(skip)


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
