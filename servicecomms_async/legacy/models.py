"""Typed models of what the legacy Service Communications API returns.

The rules every model follows are in :mod:`servicecomms_async._modeling`. All fields are optional
because ``$select`` may leave any of them out; lists default to an empty tuple.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .._modeling import OpenStrEnum, extra_field, wire


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


@attrs.frozen(kw_only=True)
class Feature:
    """A feature of a service (``Features[]`` in real traffic; one of ``FeatureNames`` in the spec)."""

    name: str | None = wire("Name")
    display_name: str | None = wire("DisplayName")
    extra: Mapping[str, Any] = extra_field()

    @classmethod
    def from_wire_string(cls, name: str) -> Feature:
        """The spec's Services shape lists features as bare names: ``FeatureNames: ["Sign-in", ...]``."""
        return cls(name=name, display_name=name)


@attrs.frozen(kw_only=True)
class Service:
    """A service the tenant subscribes to (``/Services``)."""

    id: str | None = wire("Id")
    display_name: str | None = wire("DisplayName")
    features: tuple[Feature, ...] = wire("Features", "FeatureNames", default=())
    extra: Mapping[str, Any] = extra_field()


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
