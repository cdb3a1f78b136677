"""Static catalogue: workloads, features and the text templates messages are built from.

Workload ids, display names and feature names/display names come from the real
captures (tests/fixtures: services.json, currentstatus.json, messages_*.json, with their
sources in tests/fixtures/SOURCES.md), the documentation samples, and the GitHub issues
cited beside them. Where no real feature list is known, the features are marked ``# invented``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Workload:
    id: str
    display_name: str
    prefix: str  # incident id prefix, e.g. "EX" in EX213379
    features: tuple[Feature, ...]


def _f(*pairs: tuple[str, str]) -> tuple[Feature, ...]:
    return tuple(Feature(name, display) for name, display in pairs)


CATALOGUE: tuple[Workload, ...] = (
    Workload(
        "Exchange",
        "Exchange Online",
        "EX",
        # Feature names as seen in real CurrentStatus (pnp/cli-microsoft365#1272); note the
        # real "Networking Issues" name contains a space.
        _f(
            ("Signin", "Sign-in"),
            ("Access", "E-Mail and calendar access"),
            ("Delivery", "E-Mail timely delivery"),
            ("Provisioning", "Management and Provisioning"),
            ("Networking Issues", "Networking Issues"),
        ),
    ),
    Workload(
        "microsoftteams", "Microsoft Teams", "TM", _f(("TeamsComponents", "Teams Components"))
    ),
    Workload(
        "SharePoint",
        "SharePoint Online",
        "SP",
        _f(
            ("provisioning", "Provisioning"),
            ("spofeatures", "SharePoint Features"),
            ("tenantadmin", "Tenant Admin"),
            ("search", "Search and Delve"),
            ("customsolutionsworkflows", "Custom Solutions and Workflows"),
            ("projectonline", "Project Online"),
            ("officewebapps", "Office Web Apps"),
            ("spdesigner", "SP Designer"),
            ("accessservices", "Access Services"),
            ("infopathonline", "InfoPath Online"),
        ),
    ),
    Workload(
        "Lync",
        "Skype for Business",
        "LY",
        _f(
            ("AudioVideo", "Audio and Video"),
            ("Federation", "Federation"),
            ("ManagementandProvisioning", "Management and Provisioning"),
            ("Sign-In", "Sign-In"),
            ("All", "All Features"),
            ("DialInConferencing", "Dial-In Conferencing"),
            ("OnlineMeetings", "Online Meetings"),
            ("InstantMessaging", "Instant Messaging"),
            ("Presence", "Presence"),
            ("Mobility", "Mobility"),
        ),
    ),
    Workload(
        "OneDriveForBusiness",
        "OneDrive for Business",
        "OD",
        _f(("OneDriveForBusiness", "OneDrive for Business"), ("sync", "Sync")),  # invented
    ),
    Workload(
        "Forms",
        "Microsoft Forms",
        "FM",
        _f(
            ("service", "Service"),
            ("functionality", "Form functionality"),
            ("integration", "Integration"),
        ),
    ),
    Workload("Planner", "Planner", "PL", _f(("Planner", "Planner"))),
    Workload(
        "Stream",
        "Microsoft Stream",
        "ST",
        _f(
            ("Playback", "Playback"),
            ("Live Events", "Live Events"),
            ("Stream website", "Stream website"),
        ),
    ),
    Workload(
        "Bookings", "Microsoft Bookings", "BK", _f(("MicrosoftBookings", "Microsoft Bookings"))
    ),
    Workload(
        "DynamicsCRM",
        "Dynamics 365",
        "CR",
        _f(
            ("signin", "Sign In"),
            ("admin", "Sign up and administration"),
            ("orgaccess", "Organization access"),
            ("orgperf", "Organization performance"),
            ("crmcomponents", "Components/Features"),
        ),
    ),
    Workload(
        "Intune",
        "Microsoft Intune",
        "IT",
        _f(
            ("Administration", "Administration"), ("DeviceManagement", "Device management")
        ),  # invented
    ),
    Workload(
        "yammer",
        "Yammer Enterprise",
        "YA",
        _f(("Yammer.Core", "Yammer Core"), ("Yammer.Integrations", "Integrations")),  # invented
    ),
    Workload(
        "PowerBIcom",
        "Power BI",
        "PB",
        _f(("Reports", "Reports"), ("Dataflows", "Dataflows")),  # invented
    ),
    Workload(
        "OSDPPlatform",
        "Microsoft 365 suite",
        "MO",
        # "Portal" is the featureGroup of the real Graph issue MO226784.
        _f(("Portal", "Portal"), ("Access", "Access")),
    ),
)

MIN_WORKLOADS_PER_TENANT = 6

# --- incident text ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentTemplate:
    """Sections of a real-style incident post; ``{service}``/``{feature}`` are filled in."""

    title: str
    impact: str
    more_info: str
    scope: str
    root_cause: str
    next_step: str


INCIDENT_TEMPLATES: tuple[IncidentTemplate, ...] = (
    IncidentTemplate(
        "Users may be unable to access {feature} in {service}",
        "Users may be unable to access {feature}.",
        "Users may be able to access {feature} by refreshing the page or using the desktop client.",
        "This issue could potentially affect any user attempting to access {feature}.",
        "A recent update to the infrastructure that supports {feature} contained a code issue "
        "that caused impact.",
        "We're reviewing our update validation procedures to better identify similar issues "
        "during our development and testing cycles.",
    ),
    IncidentTemplate(
        "Some users may experience delays when using {feature} in {service}",
        "Users may experience delays when using {feature}.",
        "Requests are eventually processed, but may take longer than expected.",
        "Some users routed through the affected infrastructure may experience impact.",
        "A section of infrastructure responsible for processing {feature} requests became "
        "degraded, resulting in delays.",
        "We're analyzing performance data to help prevent similar impact in the future.",
    ),
    IncidentTemplate(
        "Users may intermittently receive errors in {service}",
        "Users may intermittently receive errors when using {feature} in {service}.",
        "Retrying the action may succeed.",
        "This issue may intermittently affect any user served through the affected environment.",
        "A configuration change to a component of {feature} caused requests to fail "
        "intermittently.",
        "We're reviewing our configuration change procedures to help prevent similar issues.",
    ),
    IncidentTemplate(
        "Admins may be unable to manage {feature} settings",
        "Admins may be unable to view or modify {feature} settings in the admin center.",
        "Admins may be able to use PowerShell to manage the affected settings.",
        "Any admin attempting to manage {feature} settings may be affected.",
        "A recent change to the admin center introduced a code regression that prevented "
        "{feature} settings from loading.",
        "We're improving our testing to catch regressions of this kind before deployment.",
    ),
    IncidentTemplate(
        "Users may be unable to sign in to {service}",
        "Users may be unable to sign in to {service}.",
        "Users who were already signed in may not experience impact.",
        "This issue could potentially affect any user attempting to sign in to {service}.",
        "An authentication component became unresponsive after a routine update.",
        "We're reviewing the update process for the authentication component.",
    ),
    IncidentTemplate(
        "Some users may see degraded performance in {service}",
        "Users may notice slow performance or timeouts when using {feature}.",
        "",
        "Some users hosted on the affected infrastructure may experience impact.",
        "Higher than expected load on a portion of the infrastructure caused performance to "
        "degrade.",
        "We're adding capacity and tuning our load balancing to help prevent recurrence.",
    ),
    IncidentTemplate(
        "Users may see outdated information in {feature}",
        "Users may see outdated or missing information in {feature}.",
        "Changes made during the impact window are not lost and will appear once processing "
        "completes.",
        "Any user viewing {feature} may be affected.",
        "A backlog in a data synchronization process delayed updates to {feature}.",
        "We're improving monitoring of the synchronization process.",
    ),
    IncidentTemplate(
        "Users may be unable to load {feature} in the {service} web app",
        "Users may be unable to load {feature} when using the web app.",
        "Users may be able to use the desktop or mobile client as a workaround.",
        "This issue may potentially affect any user attempting to use the web app.",
        "An incompatibility introduced by a recent web app update caused {feature} to fail to "
        "load.",
        "We're reviewing our browser compatibility procedures to find ways to prevent this "
        "problem from happening again.",
    ),
)

CURRENT_STATUS_TEXTS: tuple[str, ...] = (
    "We're investigating a potential issue and checking for impact to your organization. "
    "We'll provide an update within 30 minutes.",
    "We're reviewing available diagnostic data to isolate the source of this issue and "
    "identify optimal troubleshooting actions.",
    "We're analyzing errors in system logs associated with the impact to better understand "
    "the underlying cause of this issue.",
    "We've identified the cause of the issue and we're developing a fix to remediate impact.",
    "We're deploying the fix to the affected environment and monitoring its progress.",
    "The fix has reached most of the affected environment and we're monitoring the service "
    "to confirm that impact is remediated.",
)

FINAL_STATUS_RESTORED = (
    "We've completed monitoring the affected environment and confirmed that the issue is resolved."
)
FINAL_STATUS_FALSE_POSITIVE = (
    "We've determined that this event is a false positive and there is no impact to your "
    "organization."
)

# Message Center: (title, intro, how it affects, how to prepare, tags, category)
MC_TEMPLATES: tuple[tuple[str, str, str, str, tuple[str, ...], str], ...] = (
    (
        "Updated Feature: {service} improvements to {feature}",
        "We are updating {feature} in {service} to improve reliability.",
        "Users will notice a refreshed experience when using {feature}.",
        "There is nothing you need to do to prepare for this change, but you may wish to update "
        "your training and documentation as appropriate.",
        ("Updated message", "User impact"),
        "Stay Informed",
    ),
    (
        "New Feature: {feature} is coming to {service}",
        "A new capability for {feature} will be available in {service}.",
        "The feature will be enabled by default for all users in your organization.",
        "Review the feature documentation and inform your helpdesk.",
        ("New feature", "User impact"),
        "Plan For Change",
    ),
    (
        "Plan for change: Retirement of a legacy {feature} option in {service}",
        "We will retire a legacy option of {feature} in {service}.",
        "After the retirement, the legacy option will no longer be available.",
        "Move affected users and processes to the supported option before the retirement date.",
        ("Retirement", "Admin impact"),
        "Plan For Change",
    ),
    (
        "Action required: Update {service} configuration for {feature}",
        "A configuration change is required to continue using {feature} in {service}.",
        "If no action is taken, some {feature} scenarios may stop working.",
        "Review your configuration in the admin center and apply the recommended settings.",
        ("Admin impact",),
        "Prevent Or Fix Issues",
    ),
    (
        "Reminder: {service} {feature} rollout begins",
        "This is a reminder that the rollout of the {feature} update in {service} is starting.",
        "Users may see the change gradually over the coming weeks.",
        "There is nothing you need to do to prepare for this change.",
        ("Feature update",),
        "Stay Informed",
    ),
)
