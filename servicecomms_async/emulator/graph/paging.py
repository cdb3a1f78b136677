"""Graph's paging of issues and messages: the page size, and next links with signed skiptokens.

100 items a page by default; ``Prefer: odata.maxpagesize=N`` (answered with ``Preference-Applied``)
or ``$top=N`` (it wins over the preference), 1 to 1000, set the size. A non-final page carries an
absolute ``@odata.nextLink`` with the request's query and an opaque ``$skiptoken``, signed and bound
to the collection and the ``$filter``: an altered token, one from another emulator configuration, or
one used with another filter is a 400.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence

import orjson
from aiohttp import web
from yarl import URL

from ..config import EmulatorConfig
from ..data import Json
from ..errors import bad_request
from ..parsing import b64url_decode, b64url_encode

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Pager"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_PAGE_SIZE_RE = re.compile(r"[0-9]{1,9}")
_MAXPAGESIZE_RE = re.compile(r"(?:^|[,;\s])odata\.maxpagesize\s*=\s*\"?([^\",;\s]*)", re.I)


class Pager:
    """Cuts pages for one emulator configuration (whose tokens it alone accepts)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._skiptoken_key = hashlib.blake2b(
            f"skiptoken\x1f{config.seed}\x1f{config.now_utc.isoformat()}\x1f"
            f"{config.messages_per_tenant}".encode(),
            digest_size=32,
        ).digest()

    def page(
        self,
        request: web.Request,
        query: Mapping[str, str],
        collection: str,
        indices: Sequence[int],
        filter_text: str | None,
        *,
        url: URL,
    ) -> tuple[Sequence[int], Json, dict[str, str]]:
        """(indices of this page, a document holding the next link if any, response headers);
        ``url`` is the request's public URL, without its query, that the next link extends."""
        top = _page_size(query.get("$top"), "$top")
        preferred = _preferred_page_size(request.headers.getall("Prefer", []))
        offset, token_size = 0, None
        token = query.get("$skiptoken")
        if token is not None:
            offset, token_size = self._read_skiptoken(token, collection, filter_text)
        size = top or preferred or token_size or DEFAULT_PAGE_SIZE
        headers: dict[str, str] = {}
        if preferred is not None and top is None:
            headers["Preference-Applied"] = f"odata.maxpagesize={preferred}"
        doc: Json = {}
        end = offset + size
        # The real /issues drops the next link when $top is given (microsoftgraph/microsoft-graph-docs
        # issue 16424, microsoftgraph/microsoft-graph-docs-contrib issue 2305).
        if end < len(indices) and not (collection == "issues" and top is not None):
            skiptoken = self._skiptoken(collection, filter_text, end, size)
            params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            params["$skiptoken"] = skiptoken
            doc["@odata.nextLink"] = str(url.with_query(params))
        return indices[offset:end], doc, headers

    def _skiptoken(self, collection: str, filter_text: str | None, offset: int, size: int) -> str:
        payload = orjson.dumps([collection, offset, size, _fingerprint(filter_text)])
        mac = hmac.new(self._skiptoken_key, payload, "sha256").digest()[:16]
        return b64url_encode(payload + mac)

    def _read_skiptoken(
        self, token: str, collection: str, filter_text: str | None
    ) -> tuple[int, int]:
        invalid = bad_request(
            "The $skiptoken is not valid or has expired: follow the @odata.nextLink of the "
            "previous page as it is, or start again from the first page."
        )
        try:
            raw = b64url_decode(token)
        except ValueError:
            raise invalid from None
        payload, mac = raw[:-16], raw[-16:]
        expected = hmac.new(self._skiptoken_key, payload, "sha256").digest()[:16]
        if len(raw) <= 16 or not hmac.compare_digest(mac, expected):
            raise invalid
        kind, offset, size, fingerprint = orjson.loads(payload)
        if kind != collection or fingerprint != _fingerprint(filter_text):
            raise bad_request(
                "The $skiptoken belongs to another query: keep the $filter of the request that "
                "returned it."
            )
        return int(offset), int(size)


def _page_size(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    if not _PAGE_SIZE_RE.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise bad_request(
            f"Invalid value {raw[:32]!r} for {name}: expected an integer from 1 to {MAX_PAGE_SIZE}."
        )
    return int(text)


def _preferred_page_size(prefer_headers: Iterable[str]) -> int | None:
    for header in prefer_headers:
        match = _MAXPAGESIZE_RE.search(header)
        if match is not None:
            return _page_size(match.group(1), "the Prefer header's odata.maxpagesize")
    return None


def _fingerprint(filter_text: str | None) -> str:
    if filter_text is None:
        return ""
    return hashlib.sha256(filter_text.encode()).hexdigest()[:16]
