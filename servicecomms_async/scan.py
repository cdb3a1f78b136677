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
notes on cancel scopes and async generators); iterating a scan just receives from a memory stream.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _constants
from ._validate import validate_int, validate_seconds, validate_tenant_id
from .auth import cancellation_is_ours
from .errors import RequestTimeoutError, ServiceCommsError

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
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._exit_stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[ScanResult[T]] | None = None
        self._entered = False
        # Programming errors from the first tenants, held back until it is clear whether the
        # operation itself is broken (None once a tenant has shown that it is not).
        valid = sum(1 for planned in self._plan if planned.invalid is None)
        self._suspects: list[TenantFailed] | None = []
        self._suspects_needed = min(_constants.SCAN_PROGRAMMING_ERROR_TENANTS, valid)
        self._broken: BaseException | None = None

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
        send, receive = anyio.create_memory_object_stream[ScanResult[T]](self._buffer_size)
        async with AsyncExitStack() as stack:
            if self._reserve_connections is not None:
                # Entered first, so left last: the connections are held until every worker is done.
                stack.enter_context(self._reserve_connections(self.concurrency))
            stack.push_async_callback(receive.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            self._task_group = task_group
            self.progress.started_at = time.monotonic()
            task_group.start_soon(self._feed, task_group, send)
            self._receive = receive
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
        # Whatever the consumer did (finished, broke out, raised, was cancelled), nothing is left
        # to deliver to: stop the workers before waiting for the task group.
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
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
        receive = self._receive
        if receive is None:
            raise RuntimeError("enter the scan first: async with session.scan(...) as results")
        try:
            # receive() makes every item cost a trip through the event loop; take what is already
            # buffered directly, and wait only when the buffer is empty.
            return receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._broken is not None:
                raise self._broken from None
            raise StopAsyncIteration from None
        try:
            return await receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._broken is not None:
                raise self._broken from None
            raise StopAsyncIteration from None

    # -- work ---------------------------------------------------------------------------------------

    async def _feed(
        self, task_group: TaskGroup, send: MemoryObjectSendStream[ScanResult[T]]
    ) -> None:
        """Start one worker per tenant, never more than ``concurrency`` at a time.

        The feeder takes a limiter slot before it starts a worker (the worker gives it back), so a
        scan of 100,000 tenants has at most ``concurrency`` tasks, not 100,000 waiting ones.
        """
        async with send:
            for planned in self._plan:
                if planned.invalid is not None:
                    await self._finish(send, TenantFailed(planned.tenant_id, planned.invalid))
                    continue
                borrower = object()
                await self._limiter.acquire_on_behalf_of(borrower)
                task_group.start_soon(
                    self._run_tenant,
                    planned.tenant_id,
                    send.clone(),
                    borrower,
                    name=planned.tenant_id,
                )
        # The stream ends when the feeder's and every worker's send side are closed.

    async def _run_tenant(
        self, tenant: str, send: MemoryObjectSendStream[ScanResult[T]], borrower: object
    ) -> None:
        progress = self.progress
        started = time.monotonic()
        count = 0
        progress.active[tenant] = 0
        try:
            async with send:
                budget = self.tenant_timeout
                outcome: TenantDone | TenantFailed
                iterator: AsyncIterator[T] | None = None
                try:
                    iterator = aiter(self._operation(self._client_for(tenant)))
                    while True:
                        step_started = time.monotonic()
                        try:
                            item = await self._next_item(iterator, budget, tenant)
                        except StopAsyncIteration:
                            break
                        if budget is not None:
                            budget -= time.monotonic() - step_started
                        if count == 0 and self._suspects is not None:
                            await self._release_suspects(send)
                        await _send(send, ScanItem(tenant, item))
                        count += 1
                        progress.items += 1
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
                    await self._release_suspects(send)
                _log_unexpected(outcome)
                await self._finish(send, outcome)
        finally:
            progress.active.pop(tenant, None)
            self._limiter.release_on_behalf_of(borrower)

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

    async def _release_suspects(self, send: MemoryObjectSendStream[ScanResult[T]]) -> None:
        """The operation works for some tenant: the failures held back are ordinary results."""
        held, self._suspects = self._suspects, None
        for outcome in held or ():
            _log_unexpected(outcome)
            await self._finish(send, outcome)

    async def _next_item(self, iterator: AsyncIterator[T], budget: float | None, tenant: str) -> T:
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
        self, send: MemoryObjectSendStream[ScanResult[T]], outcome: TenantDone | TenantFailed
    ) -> None:
        await _send(send, outcome)
        progress = self.progress
        if isinstance(outcome, TenantDone):
            progress.tenants_succeeded += 1
        else:
            progress.tenants_failed += 1
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


async def _send(send: MemoryObjectSendStream[ScanResult[T]], result: ScanResult[T]) -> None:
    """Put ``result`` in the stream, waiting only when the buffer is full (that wait is the
    backpressure). send() would also yield to the event loop for every item, which about doubled the
    scan's CPU time per item; the pager already yields at every page."""
    try:
        send.send_nowait(result)
    except anyio.WouldBlock:
        await send.send(result)
