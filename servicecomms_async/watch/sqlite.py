"""The default :class:`~servicecomms_async.watch.store.StateStore`: one SQLite file the user names.

::

    async with SQLiteStateStore("watch.db") as store:          # the watcher: the one writer
        await store.commit(PollCommit(state=..., snapshots=..., events=..., daily=...))
    async with SQLiteStateStore("watch.db", readonly=True) as store:   # `servicecomms watch status`
        print(await store.tenant_states(), await store.pending_counts())

**Threads.** All database work runs on one dedicated worker thread that owns the connection (stdlib
``sqlite3``; the event loop never waits on the database, only on a future). Calls are served in the order
they were made. A coroutine cancelled while its call runs does not stop the call: a cancelled
:meth:`~SQLiteStateStore.commit` has either committed whole or left nothing, like a crash.

**Durability.** WAL journal, ``synchronous=NORMAL`` by default: a commit survives the process being
killed (``kill -9``) at any moment, because it is in the operating system's cache once ``COMMIT``
returns, and the file is never corrupt. Only a power loss or an OS crash can roll back the last few
commits (never partially: WAL replays whole transactions), and that loses nothing either, because the
same transaction also holds the snapshots and the cursor: the next poll computes the same events with
the same ids. ``synchronous="full"`` adds an fsync per commit for those who want the last commit to
survive a power loss too (it costs one fsync per tenant per cycle).

**One writer.** Opening for writing takes an exclusive, non-blocking ``flock`` on ``<path>.lock`` (kept
beside the database, never deleted, holding the owner's pid); a second writer gets
:class:`StateStoreError` at once. The kernel drops the lock when the process dies, however it dies.
``readonly=True`` takes no lock, never creates or migrates anything, and reads while a watcher writes.

**Refusals.** A file that is not a database of ours (text, random bytes, a truncated database, another
application's SQLite database, one written by a newer version) raises :class:`StateStoreError` naming
the path and the reason, and is never written to: it is inspected read-only before anything else, and
the error never quotes its contents. A missing or empty (0-byte) file is created.

**Tenant ids** are stored as given and compared case-insensitively (GUIDs and domain names both are):
every table is keyed by the lower-cased id, and a :class:`TenantState` reads back with the spelling of
its last commit. Timestamps are stored as ISO 8601 UTC text (``2026-12-02T10:15:00.000000Z``, which
sorts) and read back as aware UTC datetimes; a naive datetime is taken as UTC (as in
:mod:`~servicecomms_async.watch.events`). Snapshots and events are stored as the exact JSON given
(orjson), so unknown keys, key order, unicode and nesting round-trip.

**Retention.** Acknowledged events are kept ``event_retention`` (default 7 days, for replay) after
their acknowledgement, daily records ``daily_retention`` (default 90 days) after their day; older ones
are deleted by :meth:`~SQLiteStateStore.prune`, which :meth:`~SQLiteStateStore.commit` runs on its own
at most once per ``prune_interval`` (default an hour), in a transaction of its own after the poll's.
Pending events are never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar

from ._sqlite_values import IN_CHUNK as _IN_CHUNK
from ._sqlite_values import dt as _dt
from ._sqlite_values import dumps as _dumps
from ._sqlite_values import key as _key
from ._sqlite_values import loads as _loads
from ._sqlite_values import now as _now
from ._sqlite_values import statements as _statements
from ._sqlite_values import ts as _ts
from .events import WatchEvent
from .sqlite_outbox import INSERT_DELIVERIES, OutboxMethods, migrate_v2
from .store import (
    ENTITY_KINDS,
    DailyStatus,
    EntityKind,
    PollCommit,
    Snapshot,
    StateStoreError,
    StoredEvent,
    TenantState,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStateStore"]

_T = TypeVar("_T")

#: ``PRAGMA application_id`` of every state file: "SCws" in ASCII. Another program's SQLite file has
#: another value (0 for most), and is refused.
APPLICATION_ID = 0x53435773

DEFAULT_EVENT_RETENTION = timedelta(days=7)
DEFAULT_DAILY_RETENTION = timedelta(days=90)
DEFAULT_PRUNE_INTERVAL = timedelta(hours=1)
BUSY_TIMEOUT_MS = 5_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL is truncated to this after a checkpoint
_SQLITE_MAGIC = b"SQLite format 3\x00"


# -- schema ---------------------------------------------------------------------------------------------
#
# A migration step takes the connection inside an open transaction and brings the schema from version
# N to N + 1, where N is its index in MIGRATIONS. To change the schema, append a step; never edit one
# that has shipped. ``open()`` runs every step the file has not had, in order, in ONE transaction, and
# sets ``user_version`` to len(MIGRATIONS): an upgrade happens whole or not at all.


_V1 = """
CREATE TABLE tenants (
    tenant_key        TEXT PRIMARY KEY,         -- lower-cased tenant id
    tenant_id         TEXT NOT NULL,            -- as given by the last commit
    cursor            TEXT,                     -- ISO UTC
    last_success      TEXT,
    last_attempt      TEXT,
    failures_in_a_row INTEGER NOT NULL DEFAULT 0,
    last_error        BLOB,                     -- JSON object or NULL
    last_full_resync  TEXT,
    updated_at        TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE snapshots (
    tenant_key TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('service', 'issue', 'message')),
    entity_id  TEXT NOT NULL,
    data       BLOB NOT NULL,                   -- the entity's JSON, as given
    active     INTEGER NOT NULL CHECK (active IN (0, 1)),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_key, kind, entity_id)
);
CREATE INDEX snapshots_active ON snapshots (tenant_key, kind) WHERE active = 1;

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, never reused after a prune
    event_id   TEXT NOT NULL UNIQUE,
    tenant_key TEXT NOT NULL,
    type       TEXT NOT NULL,
    body       BLOB NOT NULL,                   -- the structured CloudEvent's JSON
    created_at TEXT NOT NULL,
    acked_at   TEXT
);
CREATE INDEX events_pending ON events (seq, tenant_key) WHERE acked_at IS NULL;
CREATE INDEX events_acked ON events (acked_at) WHERE acked_at IS NOT NULL;

CREATE TABLE daily (
    tenant_key     TEXT NOT NULL,
    day            TEXT NOT NULL,               -- YYYY-MM-DD (UTC)
    service_id     TEXT NOT NULL,
    status         TEXT NOT NULL,
    incident_ids   BLOB NOT NULL,               -- JSON array
    feature_groups BLOB NOT NULL,               -- JSON object
    observed_at    TEXT,
    PRIMARY KEY (tenant_key, day, service_id)
) WITHOUT ROWID;
CREATE INDEX daily_day ON daily (day);
"""


def _migrate_v1_schema(conn: sqlite3.Connection) -> None:
    """v0 -> v1: tenants, snapshots, events, daily."""
    for statement in _statements(_V1):
        conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1_schema, migrate_v2]

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)

# The tables every version from 1 on has; a file of ours without one of them is refused as damaged.
_V1_TABLES = frozenset({"tenants", "snapshots", "events", "daily"})


# -- the file before SQLite sees it -----------------------------------------------------------------


def _inspect_file(path: Path) -> Literal["missing", "empty", "sqlite"]:
    """What is at ``path``, read-only. Raises on what is clearly not a state file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise StateStoreError(f"state file {path}: cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise StateStoreError(f"state file {path}: is not a regular file")
    if stat.st_size == 0:
        return "empty"
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise StateStoreError(f"state file {path}: cannot be read ({exc.strerror})") from None
    # The file's own bytes are never quoted: the user may have named a file holding a secret.
    if not header.startswith(_SQLITE_MAGIC[: len(header)]) or len(header) < len(_SQLITE_MAGIC):
        raise StateStoreError(
            f"state file {path}: is not an SQLite database ({stat.st_size} bytes of something else); "
            "refusing to overwrite it: name a new file, or move this one away"
        )
    if len(header) < 100:
        raise StateStoreError(
            f"state file {path}: is a truncated SQLite database ({stat.st_size} bytes, not even a header)"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise StateStoreError(
            f"state file {path}: is a damaged SQLite database (invalid page size)"
        )
    pages = int.from_bytes(header[28:32], "big")
    pages_valid = pages > 0 and header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    wal_has_frames = wal.exists() and wal.stat().st_size > 32
    # With WAL frames waiting, a checkpoint killed midway may have written page 1 before the pages after
    # it, and the WAL will redo them; without, a file shorter than its header says lost its tail.
    if pages_valid and not wal_has_frames and stat.st_size < pages * page_size:
        raise StateStoreError(
            f"state file {path}: is a truncated SQLite database ({stat.st_size} bytes, its header "
            f"says {pages * page_size})"
        )
    return "sqlite"


class _Lock:
    """An exclusive, non-blocking advisory lock on ``<path>.lock``, held while the file is open."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        try:
            file = open(self.path, "a+b")  # noqa: SIM115  (held open for as long as the lock is)
        except OSError as exc:
            raise StateStoreError(
                f"state file {self.db_path}: cannot create its lock file {self.path} "
                f"({exc.strerror})"
            ) from None
        try:
            if not _try_lock(file):
                file.seek(0)
                owner = file.read(64).decode("ascii", "replace").strip()
                pid = f" (pid {owner})" if owner.isdigit() else ""
                raise StateStoreError(
                    f"state file {self.db_path}: in use by "
                    f"another watcher{pid}; one watcher at a time may write it (reading with "
                    "readonly=True, e.g. `servicecomms watch status`, is fine)"
                )
            file.truncate(0)
            file.write(str(os.getpid()).encode())
            file.flush()
        except BaseException:
            file.close()
            raise
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.truncate(0)
            self._file.close()  # closing the descriptor releases the lock
            self._file = None


if sys.platform == "win32":  # pragma: no cover
    import msvcrt

    def _try_lock(file: IO[bytes]) -> bool:
        try:
            file.seek(0)
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(file: IO[bytes]) -> bool:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


# -- the store ------------------------------------------------------------------------------------------


class SQLiteStateStore(OutboxMethods):
    """A :class:`~servicecomms_async.watch.store.StateStore` (and
    :class:`~servicecomms_async.watch.store.OutboxStore`: see :mod:`.sqlite_outbox`) in one SQLite file (see the module's
    docstring for threads, durability, the lock, refusals and retention).

    ``path`` is created when missing (or 0 bytes long), unless ``readonly``. ``synchronous`` is
    ``"normal"`` (durable across a crash of the process) or ``"full"`` (also across a power loss).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        synchronous: Literal["normal", "full"] = "normal",
        event_retention: timedelta = DEFAULT_EVENT_RETENTION,
        daily_retention: timedelta = DEFAULT_DAILY_RETENTION,
        prune_interval: timedelta = DEFAULT_PRUNE_INTERVAL,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        for name, value in (
            ("event_retention", event_retention),
            ("daily_retention", daily_retention),
            ("prune_interval", prune_interval),
        ):
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"{name} must be a non-negative timedelta, not {value!r}")
        self.path = Path(path)
        self.readonly = readonly
        self._synchronous = synchronous.upper()
        self._event_retention = event_retention
        self._daily_retention = daily_retention
        self._prune_interval = prune_interval
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used on the worker thread only
        self._lock: _Lock | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._last_prune: datetime | None = None

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "writer"
        return f"<SQLiteStateStore {str(self.path)!r} {mode} {self._state}>"

    # -- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStateStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (creating and migrating unless ``readonly``); refuse what is not a store of ours."""
        if self._state != "new":
            raise StateStoreError(f"state file {self.path}: the store was already {self._state}ed")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="servicecomms-state")
        self._state = "open"
        try:
            await self._call(self._open_sync)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the database and release the lock; safe to call more than once."""
        if self._state == "closed":
            return
        self._state = "closed"
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            # Queued behind whatever is still running (a cancelled commit finishes first).
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            executor.shutdown(wait=False)

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._state != "open" or self._executor is None:
            raise StateStoreError(
                f"state file {self.path}: the store is {'closed' if self._state == 'closed' else 'not open'}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _writable(self) -> None:
        if self.readonly:
            raise StateStoreError(
                f"state file {self.path}: opened readonly=True; it cannot be written"
            )

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:  # pragma: no cover (every call goes through open first)
            raise StateStoreError(f"state file {self.path}: the store is not open")
        return self._conn

    def _error(self, doing: str, exc: sqlite3.Error) -> StateStoreError:
        # SQLite's messages never contain bound values, so no snapshot content can appear here.
        return StateStoreError(f"state file {self.path}: {doing} failed: {exc}")

    def _transaction(self, doing: str, run: Callable[[sqlite3.Connection], None]) -> None:
        """``run`` in one write transaction (on the worker thread): all of it or nothing."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                run(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error(doing, exc) from exc

    # -- worker thread: open and close -------------------------------------------------------------

    def _open_sync(self) -> None:
        path = self.path
        if self.readonly:
            kind = _inspect_file(path)
            if kind == "missing":
                raise StateStoreError(
                    f"state file {path}: does not exist (no watcher has written it)"
                )
            if kind == "empty":
                raise StateStoreError(
                    f"state file {path}: is empty (no watcher has written it yet)"
                )
            self._conn = self._connect(readonly=True)
            try:
                self._check_schema(self._conn, readonly=True)
                self._conn.execute("PRAGMA query_only = ON")
            except sqlite3.Error as exc:
                raise self._error("reading the schema", exc) from exc
            return

        self._lock = _Lock(path)
        self._lock.acquire()  # before looking at the file: another watcher may be creating it
        kind = _inspect_file(path)
        if kind == "sqlite":
            # Look at an existing database through a read-only connection first, so that nothing of a
            # file we refuse is written (not even a checkpoint of its WAL on close).
            probe = self._connect(readonly=True)
            try:
                self._check_schema(probe, readonly=False)
            except sqlite3.Error as exc:
                raise self._error("reading the schema", exc) from exc
            finally:
                probe.close()
        try:
            self._conn = self._connect(readonly=False)
            conn = self._conn
            # WAL first (it is a property of the file, kept across opens), then the schema in one
            # transaction: a kill in between leaves an SQLite file with no tables, which is adopted.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateStoreError(
                    f"state file {path}: SQLite cannot use WAL mode here (journal mode {mode}); "
                    "is it on a network file system?"
                )
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise self._error("opening", exc) from exc

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        uri = self.path.absolute().as_uri() + ("?mode=ro" if readonly else "?mode=rwc")
        try:
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise self._error("opening", exc) from exc
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    def _check_schema(self, conn: sqlite3.Connection, *, readonly: bool) -> None:
        path = self.path
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if app_id == 0 and version == 0 and not tables:
            if readonly:
                raise StateStoreError(
                    f"state file {path}: is empty (no watcher has written it yet)"
                )
            return  # an empty database: adopted
        if app_id != APPLICATION_ID:
            what = (
                f"application_id {app_id:#010x}"
                if app_id
                else f"tables {', '.join(sorted(tables)[:5])}" + ("..." if len(tables) > 5 else "")
            )
            raise StateStoreError(
                f"state file {path}: is another application's SQLite database ({what}), not a "
                "servicecomms watch state; refusing to touch it"
            )
        known = len(MIGRATIONS)
        if version > known:
            raise StateStoreError(
                f"state file {path}: was written by a newer servicecomms-async (schema version {version}; "
                f"this version knows up to {known}); upgrade servicecomms-async to use it"
            )
        if version < 1 or not tables >= _V1_TABLES:
            missing = ", ".join(sorted(_V1_TABLES - tables)) or "none"
            raise StateStoreError(
                f"state file {path}: is a damaged servicecomms watch state (schema version {version}, "
                f"missing tables: {missing})"
            )
        if readonly and version < known:
            raise StateStoreError(
                f"state file {path}: has schema version {version}, older than this version's "
                f"{known}; open it once for writing (run the watcher) to upgrade it"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again inside the write transaction: the probe ran before it.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                step(conn)
            if version < len(MIGRATIONS):
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                if not self.readonly:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA optimize")
                conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    # -- reads ------------------------------------------------------------------------------------------

    async def tenant_states(self) -> list[TenantState]:
        """Every tenant the store knows, by (lower-cased) tenant id."""
        return await self._call(self._tenant_states_sync, None)

    async def tenant_state(self, tenant_id: str) -> TenantState | None:
        """One tenant's state (None when it was never polled); ``tenant_id`` in any case."""
        found = await self._call(self._tenant_states_sync, _key(tenant_id))
        return found[0] if found else None

    def _tenant_states_sync(self, key: str | None) -> list[TenantState]:
        sql = (
            "SELECT tenant_id, cursor, last_success, last_attempt, failures_in_a_row, last_error, "
            "last_full_resync FROM tenants"
        )
        try:
            if key is None:
                rows = self._db().execute(sql + " ORDER BY tenant_key").fetchall()
            else:
                rows = self._db().execute(sql + " WHERE tenant_key = ?", (key,)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading tenant states", exc) from exc
        return [
            TenantState(
                tenant_id=row[0],
                cursor=_dt(row[1]),
                last_success=_dt(row[2]),
                last_attempt=_dt(row[3]),
                failures_in_a_row=row[4],
                last_error=None if row[5] is None else _loads(row[5]),
                last_full_resync=_dt(row[6]),
            )
            for row in rows
        ]

    async def snapshots(
        self, tenant_id: str, kind: EntityKind, entity_ids: Iterable[str] | None = None
    ) -> dict[str, Snapshot]:
        """The stored snapshots of ``kind`` for a tenant, by entity id: those of ``entity_ids`` (ids
        not stored are left out), or all of them when ``entity_ids`` is None. A few ids out of
        thousands cost a few index look-ups."""
        _check_kind(kind)
        ids = None if entity_ids is None else list(dict.fromkeys(entity_ids))
        return await self._call(self._snapshots_sync, _key(tenant_id), kind, ids, False)

    async def active_snapshots(self, tenant_id: str, kind: EntityKind) -> dict[str, Snapshot]:
        """The snapshots of ``kind`` stored with ``active=True``, by entity id (from a partial index
        of the active ones: the inactive are never read)."""
        _check_kind(kind)
        return await self._call(self._snapshots_sync, _key(tenant_id), kind, None, True)

    def _snapshots_sync(
        self, key: str, kind: EntityKind, ids: list[str] | None, active_only: bool
    ) -> dict[str, Snapshot]:
        sql = "SELECT entity_id, data, active FROM snapshots WHERE tenant_key = ? AND kind = ?"
        conn = self._db()
        try:
            if ids is None:
                where = " AND active = 1" if active_only else ""
                rows = conn.execute(sql + where, (key, kind)).fetchall()
            else:
                rows = []
                for start in range(0, len(ids), _IN_CHUNK):
                    chunk = ids[start : start + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(
                        f"{sql} AND entity_id IN ({marks})", (key, kind, *chunk)
                    ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading snapshots", exc) from exc
        return {
            row[0]: Snapshot(kind=kind, entity_id=row[0], data=_loads(row[1]), active=bool(row[2]))
            for row in rows
        }

    async def pending_events(self, *, limit: int | None = None) -> list[StoredEvent]:
        """Events not acknowledged yet, oldest first (insertion order), at most ``limit``."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, not {limit!r}")
        return await self._call(self._pending_sync, -1 if limit is None else limit)

    def _pending_sync(self, limit: int) -> list[StoredEvent]:
        try:
            rows = (
                self._db()
                .execute(
                    "SELECT seq, body, created_at FROM events WHERE acked_at IS NULL "
                    "ORDER BY seq LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error("reading pending events", exc) from exc
        return [_stored_event(row[0], row[1], row[2], None) for row in rows]

    async def events(self, *, after_seq: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Every stored event (pending or acknowledged and not yet pruned) with ``seq > after_seq``,
        in insertion order: for replay and inspection. Not part of the protocol."""
        return await self._call(self._events_sync, after_seq, -1 if limit is None else limit)

    def _events_sync(self, after_seq: int, limit: int) -> list[StoredEvent]:
        try:
            rows = (
                self._db()
                .execute(
                    "SELECT seq, body, created_at, acked_at FROM events WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error("reading events", exc) from exc
        return [_stored_event(*row) for row in rows]

    async def pending_counts(self) -> dict[str, int]:
        """Unacknowledged events per tenant (the spelling of the tenant's last commit; tenants with
        none left out)."""
        return await self._call(self._pending_counts_sync)

    def _pending_counts_sync(self) -> dict[str, int]:
        try:
            rows = (
                self._db()
                .execute(
                    "SELECT coalesce(t.tenant_id, p.tenant_key), p.n FROM "
                    "(SELECT tenant_key, count(*) AS n FROM events WHERE acked_at IS NULL "
                    "GROUP BY tenant_key) AS p LEFT JOIN tenants AS t USING (tenant_key) "
                    "ORDER BY p.tenant_key"
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error("counting pending events", exc) from exc
        return {row[0]: row[1] for row in rows}

    async def daily_statuses(
        self, tenant_id: str, since: date, until: date, service_id: str | None = None
    ) -> list[DailyStatus]:
        """The daily records of a tenant from ``since`` to ``until`` (both included), by day then
        service id."""
        return await self._call(self._daily_sync, tenant_id, since, until, service_id)

    def _daily_sync(
        self, tenant_id: str, since: date, until: date, service_id: str | None
    ) -> list[DailyStatus]:
        sql = (
            "SELECT coalesce(t.tenant_id, d.tenant_key), d.service_id, d.day, d.status, "
            "d.incident_ids, d.feature_groups, d.observed_at FROM daily AS d "
            "LEFT JOIN tenants AS t USING (tenant_key) "
            "WHERE d.tenant_key = ? AND d.day BETWEEN ? AND ?"
        )
        params: tuple[str, ...] = (_key(tenant_id), since.isoformat(), until.isoformat())
        if service_id is not None:
            sql += " AND d.service_id = ?"
            params += (service_id,)
        try:
            rows = self._db().execute(sql + " ORDER BY d.day, d.service_id", params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading daily records", exc) from exc
        return [
            DailyStatus(
                tenant_id=row[0],
                service_id=row[1],
                day=date.fromisoformat(row[2]),
                status=row[3],
                incident_ids=tuple(_loads(row[4])),
                feature_groups=_loads(row[5]),
                observed_at=_dt(row[6]),
            )
            for row in rows
        ]

    # -- writes -----------------------------------------------------------------------------------------

    async def commit(self, commit: PollCommit) -> None:
        """Write one poll's results in one transaction: the tenant state, the snapshots (inserted or
        replaced), the events (inserted unless one with the same id exists, so the same event computed
        twice is stored once) and the daily records (inserted or replaced), all or nothing. Everything
        is serialised before the transaction starts (a value that is not JSON raises ``TypeError``
        naming the entity and writes nothing). Runs :meth:`prune` afterwards when it is due."""
        self._writable()
        await self._call(self._commit_sync, commit)

    def _commit_sync(self, commit: PollCommit) -> None:
        rows = _commit_rows(
            commit, _ts(_now()) or ""
        )  # before BEGIN: the write lock is held briefly
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO tenants (tenant_key, tenant_id, cursor, last_success, last_attempt, "
                    "failures_in_a_row, last_error, last_full_resync, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_key) DO UPDATE SET "
                    "tenant_id = excluded.tenant_id, cursor = excluded.cursor, "
                    "last_success = excluded.last_success, last_attempt = excluded.last_attempt, "
                    "failures_in_a_row = excluded.failures_in_a_row, "
                    "last_error = excluded.last_error, last_full_resync = excluded.last_full_resync, "
                    "updated_at = excluded.updated_at",
                    rows.state,
                )
                conn.executemany(
                    "INSERT INTO snapshots (tenant_key, kind, entity_id, data, active, updated_at, "
                    "due_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_key, kind, entity_id) "
                    "DO UPDATE SET data = excluded.data, active = excluded.active, "
                    "updated_at = excluded.updated_at, due_at = excluded.due_at",
                    rows.snapshots,
                )
                conn.executemany(
                    "DELETE FROM snapshots WHERE tenant_key = ? AND kind = ? AND entity_id = ?",
                    rows.removed,
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO events (event_id, tenant_key, type, body, created_at, "
                    "rollup) VALUES (?, ?, ?, ?, ?, ?)",
                    rows.events,
                )
                # Each new event's deliveries, to the sinks registered now (none: pulled and acked).
                conn.executemany(INSERT_DELIVERIES, ((row[4], row[0]) for row in rows.events))
                conn.executemany(
                    "INSERT OR REPLACE INTO daily (tenant_key, day, service_id, status, incident_ids, "
                    "feature_groups, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows.daily,
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error("committing a poll", exc) from exc
        now = _now()
        if self._last_prune is None or now - self._last_prune >= self._prune_interval:
            self._prune_sync(now)

    async def ack(self, event_ids: Iterable[str]) -> int:
        """Mark events delivered; returns how many were pending (an id given twice, already
        acknowledged or unknown counts nothing). One transaction."""
        self._writable()
        ids = list(dict.fromkeys(event_ids))
        return await self._call(self._ack_sync, ids, _ts(_now()))

    def _ack_sync(self, ids: list[str], now: str) -> int:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.executemany(
                    "UPDATE events SET acked_at = ? WHERE event_id = ? AND acked_at IS NULL",
                    ((now, event_id) for event_id in ids),
                )
                count = max(cursor.rowcount, 0)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error("acknowledging events", exc) from exc
        return count

    async def prune(self, *, now: datetime | None = None) -> dict[str, int]:
        """Delete the events acknowledged more than ``event_retention`` before ``now`` and the daily
        records of days more than ``daily_retention`` before it; returns how many of each
        (``{"events": n, "daily": m}``). Pending events are kept however old."""
        self._writable()
        return await self._call(self._prune_sync, now or _now())

    def _prune_sync(self, now: datetime) -> dict[str, int]:
        conn = self._db()
        events_before = _ts(now - self._event_retention)
        day_before = (now.astimezone(timezone.utc) - self._daily_retention).date().isoformat()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                events = conn.execute(
                    "DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?",
                    (events_before,),
                ).rowcount
                daily = conn.execute("DELETE FROM daily WHERE day < ?", (day_before,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error("pruning", exc) from exc
        self._last_prune = _now()
        return {"events": events, "daily": daily}

    async def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: ``["ok"]``, or the problems found. It reads the
        whole file (seconds for a large one); the watcher does not run it on its own."""
        return await self._call(self._integrity_sync)

    def _integrity_sync(self) -> list[str]:
        try:
            return [str(row[0]) for row in self._db().execute("PRAGMA integrity_check")]
        except sqlite3.Error as exc:
            raise self._error("checking integrity", exc) from exc


# -- helpers --------------------------------------------------------------------------------------------


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls some failures back on its own (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM...); the
    # original error is the one to raise, never "cannot rollback - no transaction is active".
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _check_kind(kind: str) -> None:
    if kind not in ENTITY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ENTITY_KINDS)}, not {kind!r}")


def _stored_event(seq: int, body: bytes, created_at: str, acked_at: str | None) -> StoredEvent:
    return StoredEvent(
        seq=seq,
        event=WatchEvent.from_json(body),
        created_at=_dt(created_at) or _now(),
        acked_at=_dt(acked_at),
    )


class _CommitRows:
    """A :class:`PollCommit` as the rows it writes."""

    __slots__ = ("daily", "events", "removed", "snapshots", "state")

    def __init__(
        self,
        state: tuple[Any, ...],
        snapshots: Sequence[tuple[Any, ...]],
        removed: Sequence[tuple[Any, ...]],
        events: Sequence[tuple[Any, ...]],
        daily: Sequence[tuple[Any, ...]],
    ) -> None:
        self.state = state
        self.snapshots = snapshots
        self.removed = removed
        self.events = events
        self.daily = daily


def _commit_rows(commit: PollCommit, now: str) -> _CommitRows:
    state = commit.state
    key = _key(state.tenant_id)
    state_row = (
        key,
        state.tenant_id,
        _ts(state.cursor),
        _ts(state.last_success),
        _ts(state.last_attempt),
        int(state.failures_in_a_row),
        None
        if state.last_error is None
        else _dumps(state.last_error, f"the last error of tenant {state.tenant_id}"),
        _ts(state.last_full_resync),
        now,
    )
    snapshots = []
    for snapshot in commit.snapshots:
        _check_kind(snapshot.kind)
        data = _dumps(
            snapshot.data,
            f"snapshot {snapshot.kind} {snapshot.entity_id!r} of {state.tenant_id}",
        )
        snapshots.append(
            (
                key,
                snapshot.kind,
                snapshot.entity_id,
                data,
                int(snapshot.active),
                now,
                _ts(snapshot.due),
            )
        )
    events = []
    for event in commit.events:
        try:
            body = event.to_json()
        except TypeError as exc:
            raise TypeError(
                f"event {event.id} ({event.type}) cannot be stored as JSON: {exc}"
            ) from None
        events.append(
            (event.id, _key(event.tenant_id), str(event.type), body, now, int(event.rollup))
        )
    daily = []
    for record in commit.daily:
        daily.append(
            (
                _key(record.tenant_id),
                record.day.isoformat(),
                record.service_id,
                record.status,
                _dumps(list(record.incident_ids), f"daily record {record.service_id}"),
                _dumps(record.feature_groups, f"daily record {record.service_id}"),
                _ts(record.observed_at),
            )
        )
    removed = []
    for kind, entity_id in commit.removed:
        _check_kind(kind)
        removed.append((key, kind, entity_id))
    return _CommitRows(state_row, snapshots, removed, events, daily)
