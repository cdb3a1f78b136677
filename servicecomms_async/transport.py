"""Old module path, kept for one release: the transport is ``_transport``, the option objects ``_config``."""

from __future__ import annotations

from ._config import Limits, Timeout
from ._odata import encode_query
from ._transport import DEFAULT_MAX_BODY_BYTES, Response, Transport, same_origin

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Limits",
    "Response",
    "Timeout",
    "Transport",
    "encode_query",
    "same_origin",
]
