"""Multi-tenant scans: one operation run for many tenants at once, its results streamed as they arrive.

::

    async with session.scan(tenant_ids, lambda t: t.current_status(), concurrency=100) as results:
        async for result in results:
            match result:
                case ScanItem(tenant_id=tenant, value=status): ...   # one model object
                case TenantDone(tenant_id=tenant, count=count): ...  # that tenant is complete
                case TenantFailed(tenant_id=tenant, error=error): ... # that tenant failed

Contract:

* **Items, in completion order.** Each item is delivered as soon as its page arrives, so the first
  result comes long before the slowest tenant finishes. A tenant's items keep their order.
* **Every tenant accounted for once.** Each distinct tenant (after normalisation: GUIDs in canonical
  form, domains in lower case; repeats are scanned once) ends with exactly one :class:`TenantDone` or
  :class:`TenantFailed`, after all of its items. An invalid tenant id is a :class:`TenantFailed` whose
  error is the ``ValueError`` or ``TypeError`` from validation; no request is sent for it.
* **Isolation.** A tenant's failure (any ``Exception`` from its requests or from ``operation``) is that
  tenant's result; the others carry on. Cancellation is never swallowed; but a ``CancelledError`` raised
  while nothing cancelled the scan (an operation or a credential that let one escape) is a failure of that
  tenant like any other: a :class:`TenantFailed` whose error is a ``RuntimeError`` saying so (a
  credential's is a :class:`~servicecomms_async.errors.CredentialError`).
* **Bounded.** At most ``concurrency`` tenants run at once, each making one request at a time (as a
  pager does), so no more than ``concurrency`` requests are in flight. Results go through a stream of
  ``buffer_size`` slots: a slow consumer slows the scan down instead of growing memory.
* **Clean exit.** Leaving the ``async with`` block early (``break``, an exception, cancellation)
  cancels the outstanding work; every connection goes back to the pool.
* **Deadline.** With ``tenant_timeout`` a tenant whose own work (its requests, retries and their waits)
  takes longer fails with :class:`~servicecomms_async.errors.RequestTimeoutError`; time spent waiting for
  a slow consumer does not count against it.
* **Progress.** :attr:`Scan.progress` is a live :class:`ScanProgress`; ``on_progress`` is called with it
  each time a tenant finishes. An ``on_progress`` that raises does not stop the scan: its first failure
  is logged as a warning with its traceback (later ones at debug level) and the scan goes on.
* **Pool.** While a scan runs (entered, not yet left) it holds ``concurrency`` connections of the
  session's pool (``reserve_connections``), so that scans running at once on one session never wait for
  each other's connections.
* **A broken operation stops the scan.** When the first tenants (three, or all of them if fewer) fail
  with the same programming error before delivering anything (an ``AttributeError``, ``TypeError`` or
  ``NameError``, or a ``ValueError`` from calling the operation itself: a typo, a method of the other
  API, a bad argument), the scan stops and raises that error from ``async for`` instead of reporting
  every tenant as failed with it. Their results are held back until that is decided; a tenant that
  succeeds or fails otherwise releases them.

The task group lives in the :class:`Scan` context manager, never in an async generator (see anyio's
notes on cancel scopes and async generators). It runs a fixed pool of ``min(concurrency, tenants)``
workers, each taking the next tenant until none is left; a worker puts a pager's page of results
into the scan's bounded channel at once (the tenant's final result with its last page), and
iterating a scan takes them from there one at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import anyio.lowlevel
import attrs
from anyio.abc import TaskGroup

from . import _constants, telemetry
from ._validate import validate_int, validate_seconds, validate_tenant_id
from .auth import cancellation_is_ours
from .errors import RequestTimeoutError, ServiceCommsError
from .paging import AsyncPager

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Operation",
    "Scan",
    "ScanItem",
    "ScanProgress",
    "ScanResult",
    "TenantDone",
    "TenantFailed",
]

logger = logging.getLogger("servicecomms_async.scan")

T = TypeVar("T")
C = TypeVar("C")

DEFAULT_CONCURRENCY = _constants.SCAN_CONCURRENCY

Operation = Callable[[C], AsyncIterable[T]]
"""What a scan runs per tenant: takes the tenant's client (a :class:`~servicecomms_async.TenantClient`
on a legacy session, a :class:`~servicecomms_async.GraphClient` on a Graph one) and returns its items
(e.g. a pager)."""

ClientFor = Callable[[str], C]
"""``tenant_id -> client``: how a scan gets each tenant's client (ids arrive validated and normalised)."""

# Raised by a broken operation rather than by a tenant's data; see "A broken operation stops the scan".
_PROGRAMMING_ERRORS = (AttributeError, TypeError, NameError)


@attrs.frozen
class ScanItem(Generic[T]):
    """One item (a model object) from one tenant."""

    tenant_id: str
    value: T

    error: ClassVar[None] = None
    final: ClassVar[bool] = False  # not the tenant's last result


@attrs.frozen
class TenantDone:
    """A tenant finished: all ``count`` of its items were delivered, in ``elapsed`` seconds."""

    tenant_id: str
    count: int
    elapsed: float

    value: ClassVar[None] = None
    error: ClassVar[None] = None
    final: ClassVar[bool] = True  # the tenant's last result


@attrs.frozen
class TenantFailed:
    """A tenant failed with ``error`` (usually a :class:`~servicecomms_async.errors.ServiceCommsError`)
    after ``count`` items had been delivered; no more will come for it."""

    tenant_id: str
    error: Exception
    count: int = 0
    elapsed: float = 0.0

    value: ClassVar[None] = None
    final: ClassVar[bool] = True  # the tenant's last result


ScanResult = ScanItem[T] | TenantDone | TenantFailed


@attrs.define(kw_only=True)
class ScanProgress:
    """Live counters of a scan (read them at any time; the scan updates them as results are delivered).

    ``active`` maps each tenant running now to the items it has delivered so far.
    """

    tenants_total: int
    tenants_succeeded: int = 0
    tenants_failed: int = 0
    items: int = 0
    active: dict[str, int] = attrs.field(factory=dict)
    started_at: float | None = attrs.field(default=None, repr=False)  # time.monotonic() at entry
    finished_at: float | None = attrs.field(
        default=None, repr=False
    )  # ... when the last tenant ended

    @property
    def tenants_finished(self) -> int:
        return self.tenants_succeeded + self.tenants_failed

    @property
    def tenants_remaining(self) -> int:
        return self.tenants_total - self.tenants_finished

    @property
    def elapsed(self) -> float:
        """Seconds since the scan started (frozen once it finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at

    @property
    def items_per_second(self) -> float:
        elapsed = self.elapsed
        return self.items / elapsed if elapsed > 0 else 0.0

    @property
    def tenants_per_second(self) -> float:
        elapsed = self.elapsed
        return self.tenants_finished / elapsed if elapsed > 0 else 0.0


@attrs.frozen
class _Planned:
    tenant_id: str
    invalid: Exception | None = None


def plan_tenants(tenant_ids: Iterable[object]) -> list[_Planned]:
    """Validate and normalise the input once, keeping the first of repeated tenants."""
    if isinstance(tenant_ids, (str, bytes)):
        raise TypeError(
            "tenant_ids must be an iterable of tenant ids (e.g. a list), not a single "
            f"{type(tenant_ids).__name__}"
        )
    if not isinstance(tenant_ids, Iterable):
        raise TypeError(
            f"tenant_ids must be an iterable of tenant ids, got {type(tenant_ids).__name__}"
        )
    planned: list[_Planned] = []
    seen: set[str] = set()
    for raw in tenant_ids:
        try:
            tenant = validate_tenant_id(raw)
        except (TypeError, ValueError) as exc:
            label = raw if isinstance(raw, str) else repr(raw)
            if label not in seen:
                seen.add(label)
                planned.append(_Planned(label, exc))
            continue
        if tenant not in seen:
            seen.add(tenant)
            planned.append(_Planned(tenant))
    return planned


class Scan(Generic[T]):
    """A running scan; make one with :meth:`ServiceCommsSession.scan` and enter it with ``async with``.

    Iterate it (once) for :data:`ScanResult` objects. Entering starts the work; leaving stops it.
    """

    def __init__(
        self,
        client_for: ClientFor[C],
        tenant_ids: Iterable[str],
        operation: Operation[C, T],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        tenant_timeout: float | None = None,
        buffer_size: int | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        reserve_connections: Callable[[int], AbstractContextManager[object]] | None = None,
    ) -> None:
        if not callable(operation):
            raise TypeError(
                "operation must be a callable taking a tenant's client and returning its items, "
                f"such as lambda t: t.current_status(); got {type(operation).__name__}"
            )
        concurrency = validate_int(concurrency, "concurrency")
        if tenant_timeout is not None:
            tenant_timeout = validate_seconds(tenant_timeout, "tenant_timeout")
            if tenant_timeout == math.inf:
                raise ValueError("tenant_timeout must be finite, or None for no limit")
        if buffer_size is None:
            buffer_size = max(_constants.SCAN_MIN_BUFFER, concurrency)
        buffer_size = validate_int(buffer_size, "buffer_size", minimum=0)
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
        self._plan = plan_tenants(tenant_ids)
        self._client_for = client_for
        self._operation = operation
        self.concurrency = concurrency
        self.tenant_timeout = tenant_timeout
        self._buffer_size = buffer_size
        self._on_progress = on_progress
        self._on_progress_failed = False
        self._reserve_connections = reserve_connections
        self.progress = ScanProgress(tenants_total=len(self._plan))
        self._exit_stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self._results: _Results[ScanResult[T]] | None = None
        self._receive: _Results[ScanResult[T]] | None = None
        self._entered = False
        # Programming errors from the first tenants, held back until it is clear whether the
        # operation itself is broken (None once a tenant has shown that it is not).
        valid = sum(1 for planned in self._plan if planned.invalid is None)
        self._suspects: list[TenantFailed] | None = []
        self._suspects_needed = min(_constants.SCAN_PROGRAMMING_ERROR_TENANTS, valid)
        self._broken: BaseException | None = None
        self._observer: telemetry.ScanObserver | None = None  # the scan's span, when traced

    @property
    def tenant_ids(self) -> list[str]:
        """The tenants this scan covers, normalised, in input order (invalid ids as given)."""
        return [planned.tenant_id for planned in self._plan]

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"Scan(tenants={p.tenants_total}, concurrency={self.concurrency}, "
            f"finished={p.tenants_finished}, failed={p.tenants_failed}, items={p.items})"
        )

    async def __aenter__(self) -> Scan[T]:
        if self._entered:
            raise RuntimeError("a Scan can be entered only once; call session.scan(...) again")
        self._entered = True
        results = self._results = _Results(self._buffer_size)
        async with AsyncExitStack() as stack:
            if self._reserve_connections is not None:
                # Entered first, so left last: the connections are held until every worker is done.
                stack.enter_context(self._reserve_connections(self.concurrency))
            task_group = await stack.enter_async_context(anyio.create_task_group())
            self._task_group = task_group
            self.progress.started_at = time.monotonic()
            # A fixed pool of workers, started once, each taking the next planned tenant until none
            # is left: no task, limiter slot or stream clone per tenant.
            pending = iter(self._plan)
            workers = min(self.concurrency, len(self._plan))
            results.producers = workers
            observer = self._observer = telemetry.scan_started(len(self._plan), self.concurrency)
            if observer is None:
                for _ in range(workers):
                    task_group.start_soon(self._work, pending, results)
            else:
                with observer.current():  # the workers (and their requests) run in its span
                    for _ in range(workers):
                        task_group.start_soon(self._work, pending, results)
            if not workers:
                results.close_one()
            self._receive = results
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is None:
            return None
        observer = self._observer
        if observer is None:
            return await self._exit(stack, exc_type, exc, tb)
        error: BaseException | None = None
        try:
            return await self._exit(stack, exc_type, exc, tb)
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._observer = None
            observer.finished(self.progress, error)

    async def _exit(
        self,
        stack: AsyncExitStack,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # Whatever the consumer did (finished, broke out, raised, was cancelled), nothing is left
        # to deliver to: stop the workers before waiting for the task group.
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        if self._results is not None:
            self._results.clear()  # nothing is delivered after the block
            self._results.close()
        try:
            suppressed = await stack.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            # The task group wraps the consumer's own exception in an exception group; workers never
            # raise, so give the caller back exactly what they raised (``except KeyError`` works).
            inner = getattr(raised, "exceptions", None)
            if exc is None or inner is None or len(inner) != 1 or inner[0] is not exc:
                raise
            raise exc from None
        if self._broken is not None and exc is not self._broken:
            # A worker stopped the scan, which also cancelled the consumer's wait inside this block.
            raise self._broken
        return suppressed

    def __aiter__(self) -> AsyncIterator[ScanResult[T]]:
        if self._receive is None:
            raise RuntimeError("enter the scan first: async with session.scan(...) as results")
        return self

    async def __anext__(self) -> ScanResult[T]:
        results = self._receive
        if results is None:
            raise RuntimeError("enter the scan first: async with session.scan(...) as results")
        index = results.index
        current = results.current
        if index < len(current):
            # The rest of a page is taken without a trip through the event loop.
            results.index = index + 1
            results.waiting -= 1
            return current[index]
        try:
            return await results.receive()
        except anyio.EndOfStream:
            if self._broken is not None:
                raise self._broken from None
            raise StopAsyncIteration from None

    # -- work ---------------------------------------------------------------------------------------

    async def _work(self, pending: Iterator[_Planned], results: _Results[ScanResult[T]]) -> None:
        """One worker: the next planned tenant, until there is none (the iterator is shared)."""
        try:
            for planned in pending:
                if planned.invalid is not None:
                    await self._finish(results, TenantFailed(planned.tenant_id, planned.invalid))
                else:
                    await self._run_tenant(planned.tenant_id, results)
        finally:
            results.close_one()  # the stream ends when every worker has ended

    async def _run_tenant(self, tenant: str, results: _Results[ScanResult[T]]) -> None:
        progress = self.progress
        started = time.monotonic()
        count = 0
        progress.active[tenant] = 0
        try:
            budget = self.tenant_timeout
            outcome: TenantDone | TenantFailed
            iterator: AsyncIterator[Any] | None = None
            batch: list[ScanResult[T]] | None = None
            try:
                source: Any = self._operation(self._client_for(tenant))
                # A pager is read a page at a time: one put per page, the tenant's final result
                # riding with its last page. Anything else is read an item at a time.
                by_page = isinstance(source, AsyncPager)
                iterator = source._batches() if by_page else aiter(source)
                while True:
                    step_started = time.monotonic()
                    try:
                        step: Any = await self._next_item(iterator, budget, tenant)
                    except StopAsyncIteration:
                        break
                    if budget is not None:
                        budget -= time.monotonic() - step_started
                    last = False
                    if by_page:
                        page_items, last = step
                        batch = [ScanItem(tenant, item) for item in page_items]
                    else:
                        batch = [ScanItem(tenant, step)]
                    if not batch:
                        batch = None
                        continue
                    if count == 0 and self._suspects is not None:
                        await self._release_suspects(results)
                    count += len(batch)
                    if last:
                        break  # the final result goes with this page
                    await results.put(batch)
                    progress.items += len(batch)
                    batch = None
                    progress.active[tenant] = count
            except Exception as exc:
                outcome = TenantFailed(tenant, exc, count, time.monotonic() - started)
            except anyio.get_cancelled_exc_class() as exc:
                if cancellation_is_ours():
                    raise
                # Nothing cancelled the scan: the operation let a CancelledError escape. Had it
                # propagated, the scan would have ended silently without this tenant's result.
                error = RuntimeError(
                    f"tenant {tenant}: the operation raised {type(exc).__name__} although the "
                    "scan was not cancelled"
                )
                error.__cause__ = exc
                outcome = TenantFailed(tenant, error, count, time.monotonic() - started)
            else:
                outcome = TenantDone(tenant, count, time.monotonic() - started)
            finally:
                if iterator is not None:
                    await _close(iterator)
            if self._suspects is not None:
                if self._is_suspect(outcome, called=iterator is not None):
                    assert isinstance(outcome, TenantFailed)
                    self._hold(outcome)
                    return
                await self._release_suspects(results)
            _log_unexpected(outcome)
            await self._finish(results, outcome, batch)
        finally:
            progress.active.pop(tenant, None)

    def _is_suspect(self, outcome: TenantDone | TenantFailed, *, called: bool) -> bool:
        """A failure before any item with the same programming error as the ones held (a ValueError
        counts only when calling the operation raised it, i.e. its arguments were wrong)."""
        if not isinstance(outcome, TenantFailed) or outcome.count:
            return False
        error = outcome.error
        if not isinstance(error, _PROGRAMMING_ERRORS) and not (
            isinstance(error, ValueError) and not called
        ):
            return False
        held = self._suspects
        return not held or _same_error(held[0].error, error)

    def _hold(self, outcome: TenantFailed) -> None:
        held = self._suspects
        assert held is not None
        held.append(outcome)
        if len(held) >= self._suspects_needed and self._broken is None:
            # The operation itself is broken: every tenant would fail the same way. Stop, and let
            # the consumer's ``async for`` raise the error once.
            self._broken = outcome.error
            logger.error(
                "stopping the scan: the operation raised %s for the first %d tenants",
                type(outcome.error).__name__,
                len(held),
            )
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()

    async def _release_suspects(self, results: _Results[ScanResult[T]]) -> None:
        """The operation works for some tenant: the failures held back are ordinary results."""
        held, self._suspects = self._suspects, None
        for outcome in held or ():
            _log_unexpected(outcome)
            await self._finish(results, outcome)

    async def _next_item(
        self, iterator: AsyncIterator[Any], budget: float | None, tenant: str
    ) -> Any:
        """The tenant's next item, within what is left of its ``tenant_timeout`` budget."""
        if budget is None:
            return await anext(iterator)
        with anyio.move_on_after(max(budget, 0.0)) as scope:
            return await anext(iterator)
        assert scope.cancelled_caught
        raise RequestTimeoutError(
            f"tenant {tenant} did not finish within the scan's tenant_timeout of "
            f"{self.tenant_timeout:g}s",
            tenant=tenant,
        )

    async def _finish(
        self,
        results: _Results[ScanResult[T]],
        outcome: TenantDone | TenantFailed,
        last_items: list[ScanResult[T]] | None = None,
    ) -> None:
        """Deliver a tenant's final result (after ``last_items``, its last page, in one put)."""
        progress = self.progress
        if last_items:
            last_items.append(outcome)
            await results.put(last_items)
            progress.items += len(last_items) - 1
        else:
            await results.put([outcome])
        if isinstance(outcome, TenantDone):
            progress.tenants_succeeded += 1
        else:
            progress.tenants_failed += 1
            if self._observer is not None:
                self._observer.tenant_failed(outcome.error)
        if progress.tenants_remaining == 0:
            progress.finished_at = time.monotonic()
        if self._on_progress is not None:
            try:
                self._on_progress(progress)
            except Exception as exc:
                # A progress display must not tear down the scan it reports on.
                if not self._on_progress_failed:
                    self._on_progress_failed = True
                    logger.warning(
                        "on_progress raised %s; the scan goes on (later failures are logged at "
                        "debug level)",
                        type(exc).__name__,
                        exc_info=exc,
                    )
                else:
                    logger.debug("on_progress raised %s again", type(exc).__name__)


def _log_unexpected(outcome: TenantDone | TenantFailed) -> None:
    if isinstance(outcome, TenantFailed) and not isinstance(outcome.error, ServiceCommsError):
        logger.warning(
            "tenant %s failed with an unexpected %s",
            outcome.tenant_id,
            type(outcome.error).__name__,
            exc_info=outcome.error,
        )


def _same_error(a: BaseException, b: BaseException) -> bool:
    return type(a) is type(b) and str(a) == str(b)


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


R = TypeVar("R")


class _Results(Generic[R]):
    """The scan's bounded channel between its workers and the consumer.

    A worker puts a page of results at once (one operation per page, not per item); the consumer
    takes them one at a time, and passes through the event loop only between pages (where a
    cancellation reaches it) or when nothing is waiting. At most ``capacity`` results wait: a put
    takes what fits and waits for room for the rest (with 0, it hands one result to a consumer
    already waiting). So a slow consumer slows the workers down instead of growing memory, exactly
    as a memory stream of ``capacity`` slots would.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.batches: deque[list[R]] = deque()
        self.waiting = 0  # results in ``batches`` and not yet taken from ``current``
        self.current: list[R] = []  # the batch the consumer is reading ...
        self.index = 0  # ... and how far
        # Workers waiting for room, with how many results each has left to put; those woken and
        # not yet run have ``reserved`` of the room (so that one free slot wakes one worker, not all).
        self.senders: deque[tuple[int, anyio.Event]] = deque()
        self.reserved = 0
        self.receiver: anyio.Event | None = None  # the consumer, waiting for a result
        self.producers = 0  # workers still running; the stream ends when none is left
        self.closed = False

    def room(self) -> int:
        room = self.capacity - self.waiting
        if room <= 0 and self.receiver is not None and not self.waiting:
            return 1  # no slots: a consumer waiting right now takes one at once
        return room

    async def put(self, batch: list[R]) -> None:
        start, size = 0, len(batch)
        while True:
            room = self.room()
            if room > 0:
                end = start + room
                chunk = batch if start == 0 and end >= size else batch[start:end]
                self.batches.append(chunk)
                self.waiting += len(chunk)
                start = end
                receiver = self.receiver
                if receiver is not None:
                    self.receiver = None
                    receiver.set()
                if start >= size:
                    return
            need = size - start
            event = anyio.Event()
            entry = (need, event)
            self.senders.append(entry)
            try:
                await event.wait()
            finally:
                if event.is_set():
                    self.reserved -= need
                else:
                    self.senders.remove(entry)

    def wake_senders(self) -> None:
        """Let waiting workers go on once there is room for what they hold (or for half the
        slots, for a page larger than that), not for every slot that frees up."""
        senders = self.senders
        while senders:
            need = senders[0][0]
            free = self.room() - self.reserved
            if free <= 0 or free < min(need, max(self.capacity // 2, 1)):
                return
            self.reserved += need
            senders.popleft()[1].set()

    async def receive(self) -> R:
        """The next result once the current batch is read: a pass through the event loop first.
        Waiting workers are woken here, a page at a time, not for every result taken."""
        if self.senders:
            self.wake_senders()
        await anyio.lowlevel.checkpoint_if_cancelled()
        batches = self.batches
        while not batches:
            if self.closed:
                raise anyio.EndOfStream
            event = self.receiver = anyio.Event()
            self.wake_senders()
            try:
                await event.wait()
            finally:
                if self.receiver is event:
                    self.receiver = None
        self.current, self.index = batches.popleft(), 1
        self.waiting -= 1
        return self.current[0]

    def close_one(self) -> None:
        """A worker ended (or, with no workers, the scan started with nothing to do)."""
        self.producers -= 1
        if self.producers <= 0:
            self.close()

    def close(self) -> None:
        self.closed = True
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.set()

    def clear(self) -> None:
        self.batches.clear()
        self.current, self.index, self.waiting = [], 0, 0
