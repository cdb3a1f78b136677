"""The converter's old home: it lives in :mod:`servicecomms_async._wire` now; these names stay importable
from here."""

from __future__ import annotations

from ._wire import (
    InvalidValue,
    WireConverter,
    converter,
    format_datetime,
    make_converter,
    parse_datetime,
    strict_converter,
    structure_items,
)

__all__ = [
    "InvalidValue",
    "WireConverter",
    "converter",
    "format_datetime",
    "make_converter",
    "parse_datetime",
    "strict_converter",
    "structure_items",
]
