"""Typed models of what the Service Communications API returns.

Every model is a frozen, slotted attrs class whose fields are the snake_case form of the wire's PascalCase
keys. A field's metadata names its wire keys: the first is the one the real service sent, the others are
aliases from the documented ("spec") shape, so both shapes structure into the same classes. Keys a model
does not know are kept, untouched, in ``extra``. See :mod:`servicecomms_async.convert`.

All fields are optional because ``$select`` may leave any of them out; lists default to an empty tuple.

Models have no ``__weakref__`` slot: without it the converter can fill a plain twin of the class and then
give it the model's class, several times faster than a frozen ``__init__`` (see ``convert._slot_builder``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

EMPTY_EXTRA: Mapping[str, Any] = MappingProxyType({})

# Unknown enum values get a pseudo-member each; this caps how many a hostile server can make us keep.
_MAX_UNKNOWN_MEMBERS = 256


class OpenStrEnum(str, enum.Enum):
    """A ``str`` enum that keeps values it does not know instead of raising.

    ``Status("SomethingNew")`` returns a member whose ``.value`` is ``"SomethingNew"`` and whose
    ``.is_known`` is false, so a new service value never breaks a scan and nothing is lost.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenStrEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        if len(cls._value2member_map_) < len(cls.__members__) + _MAX_UNKNOWN_MEMBERS:
            cls._value2member_map_[value] = member
        return member

    @property
    def is_known(self) -> bool:
        """Whether the value is one this library version knows."""
        return self._name_ != "UNKNOWN"

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {self.value!r}>"


class Status(OpenStrEnum):
    """A workload's or feature's status, as CurrentStatus and HistoricalStatus send it."""

    SERVICE_OPERATIONAL = "ServiceOperational"
    INVESTIGATING = "Investigating"
    SERVICE_DEGRADATION = "ServiceDegradation"
    SERVICE_INTERRUPTION = "ServiceInterruption"
    RESTORING_SERVICE = "RestoringService"
    EXTENDED_RECOVERY = "ExtendedRecovery"
    INVESTIGATION_SUSPENDED = "InvestigationSuspended"
    SERVICE_RESTORED = "ServiceRestored"
    FALSE_POSITIVE = "FalsePositive"
    POST_INCIDENT_REPORT_PUBLISHED = "PostIncidentReportPublished"
    VERIFYING_SERVICE = (
        "VerifyingService"  # deprecated by Microsoft in 2020, still seen in old data
    )
    INFORMATION_AVAILABLE = (
        "InformationAvailable"  # only in the documentation's sample and the spec
    )

    @property
    def is_healthy(self) -> bool:
        """True when the status means users are not affected right now."""
        return self in _HEALTHY


_HEALTHY = frozenset(
    {
        Status.SERVICE_OPERATIONAL,
        Status.SERVICE_RESTORED,
        Status.FALSE_POSITIVE,
        Status.POST_INCIDENT_REPORT_PUBLISHED,
        Status.INFORMATION_AVAILABLE,
    }
)


class MessageType(OpenStrEnum):
    """The kind of a message (the ``MessageType`` filter takes the same values)."""

    INCIDENT = "Incident"
    PLANNED_MAINTENANCE = "PlannedMaintenance"
    MESSAGE_CENTER = "MessageCenter"


def wire(*names: str, default: Any = None) -> Any:
    """An attrs field read from the first of ``names`` present in the wire object."""
    return attrs.field(default=default, kw_only=True, metadata={"wire": names})


def extra_field() -> Any:
    """The ``extra`` attribute every model has: wire keys it does not know, kept untouched."""
    return attrs.field(default=EMPTY_EXTRA, kw_only=True, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class Feature:
    """A feature of a service (``Features[]`` in real traffic; one of ``FeatureNames`` in the spec)."""

    name: str | None = wire("Name")
    display_name: str | None = wire("DisplayName")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class Service:
    """A service the tenant subscribes to (``/Services``)."""

    id: str | None = wire("Id")
    display_name: str | None = wire("DisplayName")
    features: tuple[Feature, ...] = wire("Features", "FeatureNames", default=())
    extra: Mapping[str, Any] = extra_field()

    WIRE_OPERATION: ClassVar[str] = "Services"


@attrs.frozen(kw_only=True)
class FeatureStatus:
    """The status of one feature of a workload."""

    name: str | None = wire("FeatureName", "Feature")
    display_name: str | None = wire("FeatureDisplayName", "FeatureGroupDisplayName")
    status: Status | None = wire("FeatureServiceStatus", "FeatureStatus")
    status_display_name: str | None = wire("FeatureServiceStatusDisplayName")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class WorkloadStatus:
    """A workload's status now (``/CurrentStatus``) or on one day (``/HistoricalStatus``)."""

    id: str | None = wire("Id")
    workload: str | None = wire("Workload")
    workload_display_name: str | None = wire("WorkloadDisplayName")
    status: Status | None = wire("Status")
    status_display_name: str | None = wire("StatusDisplayName")
    status_time: datetime | None = wire("StatusTime", "StatusDate")
    incident_ids: tuple[str, ...] = wire("IncidentIds", default=())
    feature_statuses: tuple[FeatureStatus, ...] = wire(
        "FeatureStatus", "FeatureGroupStatusCollection", default=()
    )
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class MessageHistory:
    """One post in a message's history."""

    published_time: datetime | None = wire("PublishedTime")
    message_text: str | None = wire("MessageText")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class NameValue:
    """A ``{"Name", "Value"}`` pair, as in ``AdditionalDetails``."""

    name: str | None = wire("Name")
    value: str | None = wire("Value")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class Message:
    """An incident, planned maintenance or Message Center post (``/Messages``).

    ``status`` is display text such as ``"Service restored"`` (``""`` for Message Center posts), not a
    :class:`Status`. A Message Center post names its services only in ``affected_workload_names``.
    """

    id: str | None = wire("Id")
    title: str | None = wire("Title")
    message_type: MessageType | None = wire("MessageType")
    workload: str | None = wire("Workload")
    workload_display_name: str | None = wire("WorkloadDisplayName")
    feature: str | None = wire("Feature")
    feature_display_name: str | None = wire("FeatureDisplayName")
    status: str | None = wire("Status")
    start_time: datetime | None = wire("StartTime")
    end_time: datetime | None = wire("EndTime")
    last_updated_time: datetime | None = wire("LastUpdatedTime")
    messages: tuple[MessageHistory, ...] = wire("Messages", default=())
    classification: str | None = wire("Classification")
    severity: str | None = wire("Severity")
    action_type: str | None = wire("ActionType")
    affected_workload_names: tuple[str, ...] = wire("AffectedWorkloadNames", default=())
    affected_workload_display_names: tuple[str, ...] = wire(
        "AffectedWorkloadDisplayNames", default=()
    )
    affected_tenant_count: int | None = wire("AffectedTenantCount")
    affected_user_count: int | None = wire("AffectedUserCount")
    impact_description: str | None = wire("ImpactDescription")
    user_functional_impact: str | None = wire("UserFunctionalImpact")
    post_incident_document_url: str | None = wire("PostIncidentDocumentUrl")
    additional_details: tuple[NameValue, ...] = wire("AdditionalDetails", default=())
    tenant_params: tuple[Any, ...] = wire("TenantParams", default=())
    action_details: str | None = wire("ActionDetails")
    # Message Center posts only.
    category: str | None = wire("Category")
    action_required_by_date: datetime | None = wire("ActionRequiredByDate")
    announcement_id: int | None = wire("AnnouncementId")
    is_major_change: bool | None = wire("IsMajorChange")
    is_read: bool | None = wire("IsRead")
    is_dismissed: bool | None = wire("IsDismissed")
    milestone: str | None = wire("Milestone")
    milestone_date: datetime | None = wire("MilestoneDate")
    external_link: str | None = wire("ExternalLink")
    blog_link: str | None = wire("BlogLink")
    help_link: str | None = wire("HelpLink")
    message_tag_names: tuple[str, ...] = wire("MessageTagNames", default=())
    applies_to: Any = wire("AppliesTo")
    flight_name: str | None = wire("FlightName")
    feature_name: str | None = wire("FeatureName")
    preview_duration: Any = wire("PreviewDuration")
    extra: Mapping[str, Any] = extra_field()

    @property
    def is_active(self) -> bool:
        """An incident or maintenance that has not ended (no ``EndTime`` yet)."""
        return self.end_time is None and self.message_type is not MessageType.MESSAGE_CENTER


def wire_names(cls: type) -> dict[str, tuple[str, ...]]:
    """Map each field of a model to its wire names (first = the real service's)."""
    return {f.name: f.metadata["wire"] for f in attrs.fields(cls) if "wire" in f.metadata}
