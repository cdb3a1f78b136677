"""Real captured payloads, both shapes, structure into the typed models; nothing is dropped."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from servicecomms_async import (
    InvalidFieldError,
    Message,
    MessageType,
    Service,
    Status,
    UnexpectedResponseError,
    WorkloadStatus,
)
from servicecomms_async._wire import converter, parse_datetime, strict_converter, structure_items

FIXTURES = Path(__file__).parent / "fixtures"
UTC = timezone.utc


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def test_real_services_have_feature_objects() -> None:
    services = structure_items(load("services.json")["value"], Service)
    assert [s.id for s in services] == ["Bookings", "DynamicsCRM"]
    crm = services[1]
    assert crm.display_name == "Dynamics 365"
    assert [(f.name, f.display_name) for f in crm.features][:2] == [
        ("signin", "Sign In"),
        ("admin", "Sign up and administration"),
    ]
    assert all(not s.extra for s in services)


def test_documented_services_feature_names_become_features() -> None:
    services = structure_items(load("services_docs.json")["value"], Service)
    exchange = services[0]
    assert exchange.id == "Exchange"
    assert exchange.features[0].name == exchange.features[0].display_name == "Sign-in"
    assert len(services[1].features) == 10


@pytest.mark.parametrize("name", ["currentstatus.json", "currentstatus_forms_odata.json"])
def test_real_current_status(name: str) -> None:
    rows = structure_items(load(name)["value"], WorkloadStatus)
    forms = next(r for r in rows if r.workload == "Forms")
    assert forms.status is Status.SERVICE_OPERATIONAL
    assert forms.status_display_name == "Normal service"
    assert forms.status_time is not None and forms.status_time.tzinfo is not None
    assert forms.feature_statuses[0].name == "service"
    assert forms.feature_statuses[0].status is Status.SERVICE_OPERATIONAL
    assert forms.feature_statuses[0].status_display_name == "Normal service"
    assert all(not r.extra for r in rows)


def test_real_current_status_keeps_seven_fractional_digits_to_the_microsecond() -> None:
    rows = structure_items(load("currentstatus.json")["value"], WorkloadStatus)
    raw = {r["Id"]: r["StatusTime"] for r in load("currentstatus.json")["value"]}
    for row in rows:
        assert row.id is not None
        text = raw[row.id]
        assert row.status_time == datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)


def test_documented_status_shape_maps_to_the_same_fields() -> None:
    rows = structure_items(load("currentstatus_docs.json")["value"], WorkloadStatus)
    exchange = rows[0]
    assert exchange.status_time == datetime(2015, 4, 11, tzinfo=UTC)
    assert exchange.feature_statuses[0].name == "Signin"
    assert exchange.feature_statuses[0].display_name == "Sign-in"
    assert exchange.feature_statuses[0].status is Status.SERVICE_OPERATIONAL


def test_documented_historical_sample_keeps_information_available() -> None:
    rows = structure_items(load("historicalstatus_docs.json")["value"], WorkloadStatus)
    statuses = {r.status for r in rows} | {f.status for r in rows for f in r.feature_statuses}
    assert all(isinstance(s, Status) for s in statuses)
    assert all(s is not None and s.is_known for s in statuses)


def test_real_historical_status_is_one_row_per_day_newest_first() -> None:
    rows = structure_items(load("historicalstatus.json")["value"], WorkloadStatus)
    times = [r.status_time for r in rows]
    assert len(rows) == 7
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]
    assert times[0] == datetime(2020, 9, 17, tzinfo=UTC)


def test_real_messages_carry_every_field() -> None:
    raw = load("messages_all.json")["value"]
    messages = structure_items(raw, Message)
    assert [m.id for m in messages] == ["EX213379", "LY220759", "SP220211", "TM218696", "MC198615"]
    assert all(not m.extra for m in messages), [dict(m.extra) for m in messages]
    incident = messages[0]
    assert incident.message_type is MessageType.INCIDENT
    assert incident.status == "Extended recovery"
    assert incident.end_time is None and incident.is_active
    assert incident.severity == "Sev2" and incident.classification == "Advisory"
    assert incident.messages[0].message_text is not None
    assert incident.messages[0].message_text.startswith("Title:")
    assert incident.last_updated_time == datetime(2020, 8, 21, 18, 59, 16, 387000, tzinfo=UTC)
    sharepoint = messages[2]
    assert [(d.name, d.value) for d in sharepoint.additional_details] == [("NotifyInApp", "True")]
    center = messages[4]
    assert center.message_type is MessageType.MESSAGE_CENTER
    assert center.workload is None and center.status == ""
    assert center.affected_workload_names == ("Forms",)
    assert center.affected_workload_display_names == ("Microsoft Forms",)
    assert center.announcement_id == 0 and center.is_major_change is False
    assert center.category == "Stay Informed"
    assert center.milestone_date == datetime(2019, 12, 19, 23, 26, 1, tzinfo=UTC)
    assert not center.is_active


@pytest.mark.parametrize(
    "name",
    ["messages_incident.json", "messages_messagecenter.json", "messages_workload_sharepoint.json"],
)
def test_real_message_subsets_parse_completely(name: str) -> None:
    raw = load(name)["value"]
    messages = structure_items(raw, Message, conv=strict_converter)
    assert len(messages) == len(raw)
    for message, item in zip(messages, raw, strict=True):
        assert message.id == item["Id"]
        assert not message.extra
        assert len(message.messages) == len(item["Messages"])


def test_documented_messages_keep_their_undocumented_keys_in_extra() -> None:
    messages = structure_items(load("messages_docs.json")["value"], Message)
    assert messages[0].extra == {"Name": "EX20119"}
    assert messages[0].title is None


def test_unstructure_writes_wire_names_that_structure_back_to_an_equal_object() -> None:
    for item in load("messages_all.json")["value"]:
        message = converter.structure(item, Message)
        wire = converter.unstructure(message)
        assert set(item) <= set(wire)
        assert wire["Id"] == item["Id"] and wire["MessageType"] == item["MessageType"]
        assert converter.structure(wire, Message) == message


def test_unknown_enum_value_is_kept_with_its_exact_string() -> None:
    item = {
        "Id": "X",
        "Status": "BrandNewStatus",
        "FeatureStatus": [{"FeatureServiceStatus": "Odd"}],
    }
    row = converter.structure(item, WorkloadStatus)
    assert row.status is not None and row.status.value == "BrandNewStatus"
    assert not row.status.is_known and isinstance(row.status, Status)
    assert row.feature_statuses[0].status == "Odd"
    assert Status("ServiceOperational") is Status.SERVICE_OPERATIONAL


def test_unknown_fields_are_kept_untouched() -> None:
    item = {
        "Id": "Exchange",
        "DisplayName": "Exchange Online",
        "Brand": {"New": [1, 2]},
        "Features": [],
    }
    service = converter.structure(item, Service)
    assert service.extra == {"Brand": {"New": [1, 2]}}


def test_an_alias_that_loses_is_kept_in_extra() -> None:
    item = {"StatusTime": "2020-01-01T00:00:00Z", "StatusDate": "2015-01-01T00:00:00Z"}
    row = converter.structure(item, WorkloadStatus)
    assert row.status_time == datetime(2020, 1, 1, tzinfo=UTC)
    assert row.extra == {"StatusDate": "2015-01-01T00:00:00Z"}


def test_lenient_mode_keeps_an_invalid_value_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    item = dict(load("messages_incident.json")["value"][0])
    item["StartTime"] = "last tuesday"
    item["AffectedTenantCount"] = "many"
    with caplog.at_level(logging.WARNING, logger="servicecomms_async.convert"):
        message = converter.structure(item, Message)
    assert message.id == "EX213379"
    assert message.start_time is None and message.affected_tenant_count is None
    assert message.extra == {"StartTime": "last tuesday", "AffectedTenantCount": "many"}
    assert "start_time" in caplog.text and "StartTime" in caplog.text


def test_strict_mode_names_the_item_field_and_wire_name() -> None:
    item = dict(load("messages_incident.json")["value"][0])
    item["Messages"] = [{"PublishedTime": 12}]
    with pytest.raises(InvalidFieldError) as info:
        structure_items([item], Message, conv=strict_converter)
    assert info.value.model == "MessageHistory"
    assert info.value.wire_name == "PublishedTime"
    assert "published_time" in str(info.value)


def test_an_item_that_is_not_an_object_is_an_unexpected_response() -> None:
    with pytest.raises(UnexpectedResponseError, match="item 1"):
        structure_items([{"Id": "A"}, 42], Service)
    with pytest.raises(UnexpectedResponseError, match="JSON array"):
        structure_items({"Id": "A"}, Service)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-09-18T13:15:36.6847769Z", datetime(2020, 9, 18, 13, 15, 36, 684776, tzinfo=UTC)),
        ("2020-05-15T18:19:08.38Z", datetime(2020, 5, 15, 18, 19, 8, 380000, tzinfo=UTC)),
        ("2020-08-21T18:10:00Z", datetime(2020, 8, 21, 18, 10, tzinfo=UTC)),
        ("2020-08-21T18:10:00", datetime(2020, 8, 21, 18, 10, tzinfo=UTC)),
        ("2020-08-21T20:10:00+02:00", datetime(2020, 8, 21, 18, 10, tzinfo=UTC)),
        ("2020-08-21T18:10:00.1234567-01:30", datetime(2020, 8, 21, 19, 40, 0, 123456, tzinfo=UTC)),
    ],
)
def test_datetimes_become_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
