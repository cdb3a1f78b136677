"""Watch: a durable change feed of what changed in each tenant's service health since the last poll.

:class:`Watcher` polls Microsoft Graph and stores its events in a :class:`StateStore` (SQLite by
default: :class:`SQLiteStateStore`); each event is a :class:`WatchEvent`, a CloudEvents 1.0 structured
event with a deterministic id.
"""

from .diff import Baseline
from .events import EventType, WatchEvent
from .memory import MemoryStateStore
from .sinks import JsonlSink, Sink
from .sqlite import SQLiteStateStore
from .store import (
    DailyStatus,
    PollCommit,
    Snapshot,
    StateStore,
    StateStoreError,
    StoredEvent,
    TenantState,
)
from .watcher import CycleReport, Watcher

__all__ = [
    "Baseline",
    "CycleReport",
    "DailyStatus",
    "EventType",
    "JsonlSink",
    "MemoryStateStore",
    "PollCommit",
    "SQLiteStateStore",
    "Sink",
    "Snapshot",
    "StateStore",
    "StateStoreError",
    "StoredEvent",
    "TenantState",
    "WatchEvent",
    "Watcher",
]
