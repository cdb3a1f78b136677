"""Microsoft Graph's real sample payloads structure into the Graph models; nothing is dropped."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from servicecomms_async._wire import converter, strict_converter, structure_items
from servicecomms_async.graph.models import (
    BodyType,
    PostType,
    ServiceHealth,
    ServiceHealthClassification,
    ServiceHealthIssue,
    ServiceHealthOrigin,
    ServiceHealthStatus,
    ServiceUpdateCategory,
    ServiceUpdateMessage,
    ServiceUpdateSeverity,
)

from .conftest import FIXTURES

UTC = timezone.utc


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    data.pop("@odata.context", None)
    return data


def test_health_overviews() -> None:
    rows = structure_items(
        load("graph_healthoverviews.json")["value"], ServiceHealth, conv=strict_converter
    )
    assert rows
    assert all(r.id and r.service and isinstance(r.status, ServiceHealthStatus) for r in rows)
    assert all(not r.extra and r.issues == () for r in rows)


def test_health_overviews_with_issues() -> None:
    rows = structure_items(
        load("graph_healthoverviews_expand_issues.json")["value"],
        ServiceHealth,
        conv=strict_converter,
    )
    issue = rows[0].issues[0]
    assert issue.id == "EX226574"
    assert issue.status is ServiceHealthStatus.SERVICE_RESTORED  # sent as "ServiceRestored"
    assert issue.classification is ServiceHealthClassification.ADVISORY
    assert issue.origin is ServiceHealthOrigin.MICROSOFT
    assert issue.is_resolved is True
    post = issue.posts[0]
    assert post.post_type is PostType.REGULAR
    assert post.description is not None and post.description.content_type is BodyType.HTML  # "Html"
    assert post.created_date_time == datetime(2020, 11, 12, 7, 7, 38, 970000, tzinfo=UTC)


def test_issues_list_and_single_issue() -> None:
    page = load("graph_issues.json")
    issues = structure_items(page["value"], ServiceHealthIssue, conv=strict_converter)
    assert issues[0].feature_group == "E-Mail timely delivery"
    assert [(d.name, d.value) for d in issues[0].details] == [("NotifyInApp", "True")]
    single = strict_converter.structure_fn(ServiceHealthIssue)(load("graph_issue_MO226784.json"))
    assert single.id == "MO226784" and single.service == "Microsoft 365 suite"
    assert not single.extra


@pytest.mark.parametrize("name", ["graph_messages.json", "graph_message_MC172851.json"])
def test_messages(name: str) -> None:
    data = load(name)
    raw = data["value"][0] if "value" in data else data
    message = strict_converter.structure_fn(ServiceUpdateMessage)(raw)
    assert message.id == "MC172851"
    assert message.category is ServiceUpdateCategory.STAY_INFORMED  # sent as "StayInformed"
    assert message.severity is ServiceUpdateSeverity.NORMAL
    assert message.services == ("SharePoint Online", "OneDrive for Business")
    assert message.tags == ("Updated message",)
    assert message.is_major_change is True and message.view_point is None
    assert message.detail("ExternalLink") is not None
    assert message.body is not None and message.body.content is not None
    assert message.action_required_by_date_time is None
    assert not message.extra


def test_camel_and_pascal_case_enums_are_one_member_and_unknown_values_are_kept() -> None:
    assert ServiceHealthStatus("serviceOperational") is ServiceHealthStatus("ServiceOperational")
    assert ServiceHealthStatus.SERVICE_OPERATIONAL.value == "serviceOperational"
    novel = ServiceHealthStatus("somethingNew")
    assert not novel.is_known and novel.value == "somethingNew"


def test_graph_round_trip() -> None:
    raw = load("graph_issue_MO226784.json")
    issue = converter.structure_fn(ServiceHealthIssue)(raw)
    assert converter.structure_fn(ServiceHealthIssue)(converter.unstructure(issue)) == issue
