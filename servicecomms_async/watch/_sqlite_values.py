"""What the SQLite store and its outbox write and read: SQL scripts, timestamps and JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

IN_CHUNK = 500  # ids per "IN (...)" (SQLite's variable limit is 999 in old builds)


def statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


# -- values ---------------------------------------------------------------------------------------------


def ts(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)


def key(tenant_id: str) -> str:
    return tenant_id.lower()


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, what: str) -> bytes:
    try:
        return orjson.dumps(value, default=_json_default)
    except TypeError as exc:  # orjson.JSONEncodeError; its text names the type, never the value
        raise TypeError(f"{what} cannot be stored as JSON: {exc}") from None


def loads(blob: bytes | str) -> Any:
    return orjson.loads(blob)
