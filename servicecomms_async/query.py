"""Old module path, kept for one release: OData building lives in ``_odata``, argument checks in ``_validate``."""

from __future__ import annotations

from ._constants import LEGACY_MAX_PAGE_SIZE as MAX_PAGE_SIZE
from ._odata import Filter, build_select, format_datetime_literal, quote_string
from ._validate import (
    validate_enum,
    validate_max_items,
    validate_tenant_id,
    validate_text,
)
from ._validate import (
    validate_page_size as _validate_page_size,
)

FilterBuilder = Filter


def validate_page_size(page_size: object, *, maximum: int = MAX_PAGE_SIZE) -> int:
    return _validate_page_size(page_size, maximum=maximum)


__all__ = [
    "MAX_PAGE_SIZE",
    "FilterBuilder",
    "build_select",
    "format_datetime_literal",
    "quote_string",
    "validate_enum",
    "validate_max_items",
    "validate_page_size",
    "validate_tenant_id",
    "validate_text",
]
