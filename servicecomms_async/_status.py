"""Graph's ``serviceHealthStatus`` as the legacy ``Status``, and which status is worse than which.

Both the legacy operations rebuilt over Graph and the watcher's daily status records rank statuses the
same way, so the order lives here, once::

    ServiceInterruption > ServiceDegradation > Investigating > RestoringService > ExtendedRecovery
    > InvestigationSuspended > VerifyingService > ServiceRestored > PostIncidentReportPublished
    > FalsePositive > (any status this library does not know) > ServiceOperational

A status the library does not know (Graph's reserved ``resolved``, ``mitigated``, ``confirmed``,
``reported``, ``mitigatedExternal``, ``resolvedExternal``, or anything new) ranks above
``ServiceOperational`` and below every known status: it says something happened, not how bad it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from .legacy.models import Status

__all__ = ["WORST_FIRST", "legacy_status", "rank", "worst"]

WORST_FIRST: tuple[Status, ...] = (
    Status.SERVICE_INTERRUPTION,
    Status.SERVICE_DEGRADATION,
    Status.INVESTIGATING,
    Status.RESTORING_SERVICE,
    Status.EXTENDED_RECOVERY,
    Status.INVESTIGATION_SUSPENDED,
    Status.VERIFYING_SERVICE,
    Status.SERVICE_RESTORED,
    Status.POST_INCIDENT_REPORT_PUBLISHED,
    Status.FALSE_POSITIVE,
)
_UNKNOWN_RANK = 1  # above ServiceOperational (0), below every known status
_RANK = {status: len(WORST_FIRST) + 1 - n for n, status in enumerate(WORST_FIRST)}
_RANK[Status.SERVICE_OPERATIONAL] = 0

# Graph's camelCase value, lower-cased -> the legacy member; one name differs.
# InformationAvailable is legacy only: Graph has no such value.
_BY_GRAPH: dict[str, Status] = {
    s.value.lower(): s
    for s in Status
    if s not in (Status.POST_INCIDENT_REPORT_PUBLISHED, Status.INFORMATION_AVAILABLE)
}
_BY_GRAPH["postincidentreviewpublished"] = Status.POST_INCIDENT_REPORT_PUBLISHED


def legacy_status(graph_status: str) -> Status:
    """The legacy :class:`Status` of a Graph status value, whatever its case (``serviceRestored``,
    ``ServiceRestored``); ``postIncidentReviewPublished`` is ``PostIncidentReportPublished``. Graph's
    reserved and unknown values come back as unknown members keeping the Graph string."""
    known = _BY_GRAPH.get(str(graph_status).lower())
    return known if known is not None else Status(str(graph_status))


def rank(status: Status | str) -> int:
    """How bad ``status`` (a legacy :class:`Status` or Graph value) is: higher is worse."""
    member = status if isinstance(status, Status) else legacy_status(status)
    found = _RANK.get(member)
    return _UNKNOWN_RANK if found is None else found


def worst(statuses: Iterable[Status | str]) -> Status:
    """The worst of ``statuses`` (ServiceOperational when there are none)."""
    best: Status = Status.SERVICE_OPERATIONAL
    best_rank = 0
    for status in statuses:
        member = status if isinstance(status, Status) else legacy_status(status)
        found = rank(member)
        if found > best_rank:
            best, best_rank = member, found
    return best
