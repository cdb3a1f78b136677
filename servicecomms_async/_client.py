"""What both API clients are made of: one tenant's view of the engine, with its dialect and options.

:class:`~servicecomms_async.TenantClient` (legacy) and :class:`~servicecomms_async.GraphClient` are
subclasses that add one explicit, typed, documented method per operation; each method checks its
arguments, builds its filter and calls :meth:`ApiClient._list`, ``_get`` or ``_get_bytes``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from yarl import URL

from . import telemetry
from ._config import NO_OPTIONS, RequestOptions, Timeout
from ._engine import Engine, Select
from ._odata import Filter
from ._transport import Response
from .dialects import Dialect
from .paging import AsyncPager
from .retry import RetryPolicy

T = TypeVar("T")
_Client = TypeVar("_Client", bound="ApiClient")


class ApiClient:
    """One tenant's client for one API (:attr:`dialect`); it shares the session's pool and tokens."""

    dialect: ClassVar[Dialect]

    def __init__(
        self,
        engine: Engine,
        tenant_id: str,
        *,
        base_url: URL,
        options: RequestOptions = NO_OPTIONS,
    ) -> None:
        self._engine = engine
        self.tenant_id = tenant_id
        self._base_url = base_url
        self._root_text = _root_text(self.dialect, base_url, tenant_id)
        self._root_url: URL | None = None
        self._options = options

    @property
    def _root(self) -> URL:
        """Where this tenant's resources are (made on first use: a scan's list calls join text)."""
        root = self._root_url
        if root is None:
            root = self._root_url = URL(self._root_text, encoded=True)
        return root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tenant_id!r})"

    def with_options(
        self: _Client,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> _Client:
        """A copy of this client whose calls (Graph's viewpoint actions included) use ``retry`` and
        ``timeout`` unless a call gives its own. Both are checked here."""
        options = self._options.merged(retry, timeout)
        return type(self)(self._engine, self.tenant_id, base_url=self._base_url, options=options)

    def _list(
        self,
        path: str,
        model: type[T],
        retry: object,
        timeout: object,
        *,
        filters: Filter | None = None,
        params: dict[str, str] | None = None,
        select: Select = None,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> AsyncPager[T]:
        query = dict(params or {})
        filter_text = filters.build() if filters is not None else None
        if filter_text is not None:
            query["$filter"] = filter_text
        pager = self._engine.list(
            self.tenant_id,
            _join(self._root, self._root_text, path),
            model,
            paging=self.dialect.paging,
            options=self._options.merged(retry, timeout),
            params=query,
            select=select,
            page_size=page_size,
            max_items=max_items,
        )
        if telemetry.ENABLED:
            pager._operation = telemetry.list_operation(path, self.tenant_id, self.dialect.name)
        return pager

    async def _get(
        self,
        url: URL,
        model: type[T],
        retry: object,
        timeout: object,
        params: dict[str, str] | None = None,
    ) -> T:
        options = self._options.merged(retry, timeout)
        return await self._engine.get(self.tenant_id, url, model, options=options, params=params)

    async def _get_bytes(self, url: URL, retry: object, timeout: object) -> bytes:
        options = self._options.merged(retry, timeout)
        return await self._engine.get_bytes(self.tenant_id, url, options=options)

    async def _post(self, url: URL, json_body: Any) -> Response:
        return await self._engine.post(self.tenant_id, url, json_body, options=self._options)


# A tenant id that passed validate_tenant_id holds only ASCII letters, digits, hyphens and dots, so
# it needs no escaping: a tenant's root URL is the dialect's root for a stand-in tenant, with the
# stand-in replaced, made once per (dialect, base URL) instead of two URL joins per tenant.
_STAND_IN = "servicecomms-tenant.invalid"
_ROOTS: dict[tuple[str, URL], str] = {}
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")  # no dot segments


def _root_text(dialect: Dialect, base_url: URL, tenant_id: str) -> str:
    key = (dialect.name, base_url)
    template = _ROOTS.get(key)
    if template is None:
        template = str(dialect.root(base_url, _STAND_IN))
        if template.count(_STAND_IN) > 1 or len(_ROOTS) >= 64:
            return str(dialect.root(base_url, tenant_id))
        _ROOTS[key] = template
    if _STAND_IN not in template:
        return template  # the tenant is not in the path (Graph)
    return template.replace(_STAND_IN, tenant_id)


def _join(root: URL, root_text: str, path: str) -> URL:
    """``root`` joined with ``path``: from text when the path is plain, else by yarl."""
    if _PLAIN_PATH.fullmatch(path):
        return URL(f"{root_text.rstrip('/')}/{path}", encoded=True)
    return root.joinpath(*path.split("/"))
