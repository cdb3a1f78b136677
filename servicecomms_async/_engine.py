"""The request engine: list, get one, get bytes and post for one tenant, over the transport and the converter.

It knows no client and no session: a client says which URL, which model, which paging rule and which
options; the engine sends the requests, pages, and structures the JSON into the model. Both API clients
are thin typed methods over it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from yarl import URL

from . import _constants
from ._config import RequestOptions
from ._odata import build_select
from ._transport import Response, Transport
from ._validate import validate_max_items
from ._wire import WireConverter
from .errors import ServiceCommsError, UnexpectedResponseError
from .paging import AsyncPager, PageQuery, PagingRule

T = TypeVar("T")

Select = Iterable[str] | str | None


class Engine:
    """Sends a client's requests through one transport and structures the answers with one converter."""

    def __init__(
        self,
        transport: Transport,
        converter: WireConverter,
        *,
        max_pages: int,
        max_items_per_page: int = _constants.MAX_ITEMS_PER_PAGE,
    ) -> None:
        self.transport = transport
        self.converter = converter
        self.max_pages = max_pages
        self.max_items_per_page = max_items_per_page

    def list(
        self,
        tenant: str,
        endpoint: URL,
        model: type[T],
        *,
        paging: PagingRule,
        options: RequestOptions,
        params: Mapping[str, str] | None = None,
        select: Select = None,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> AsyncPager[T]:
        """A pager over ``endpoint``'s items as ``model``. Every argument is checked here, before any
        request; the first request is sent when the pager is iterated or awaited."""
        query = dict(params or {})
        select_text = build_select(select, model)
        if select_text is not None:
            query["$select"] = select_text
        first, headers = paging.query(endpoint, query, page_size)
        transport = self.transport
        retry, timeout = options.retry, options.timeout

        async def fetch(url: URL) -> Response:
            return await transport.request(
                "GET", url, tenant=tenant, retry=retry, timeouts=timeout, headers=headers
            )

        return AsyncPager(
            fetch=fetch,
            query=first,
            model=model,
            converter=self.converter,
            max_items=validate_max_items(max_items),
            max_pages=self.max_pages,
            max_items_per_page=self.max_items_per_page,
        )

    async def get(
        self,
        tenant: str,
        url: URL,
        model: type[T],
        *,
        options: RequestOptions,
        params: Mapping[str, str] | None = None,
    ) -> T:
        """One JSON object as ``model``."""
        if params:
            url = PageQuery(endpoint=url, params=dict(params)).url(0)
        response = await self.transport.request(
            "GET", url, tenant=tenant, retry=options.retry, timeouts=options.timeout
        )
        decoded, response_url = response.data, response.url
        del response
        if not isinstance(decoded, dict):
            kind = type(decoded).__name__
            del decoded  # a held error must not keep the body alive through this frame
            raise UnexpectedResponseError(
                f"expected a JSON object from {response_url}, got {kind}",
                url=response_url,
                tenant=tenant,
            )
        data = {k: v for k, v in decoded.items() if k != "@odata.context"}
        del decoded
        try:
            return self.converter.structure_fn(model)(data)
        except ServiceCommsError as exc:
            failure = exc
        del data
        raise failure.with_traceback(None)  # the converter's frames hold the object

    async def get_bytes(self, tenant: str, url: URL, *, options: RequestOptions) -> bytes:
        """A body as bytes, whatever its type (documents, attachments, archives)."""
        response = await self.transport.request(
            "GET",
            url,
            tenant=tenant,
            retry=options.retry,
            timeouts=options.timeout,
            headers={"Accept": "*/*"},
            raw=True,
        )
        data: bytes = response.data
        return data

    async def post(
        self, tenant: str, url: URL, json_body: Any, *, options: RequestOptions
    ) -> Response:
        """``json_body`` as JSON; the decoded answer."""
        return await self.transport.request(
            "POST",
            url,
            tenant=tenant,
            retry=options.retry,
            timeouts=options.timeout,
            json_body=json_body,
        )
