"""Argument validation and OData building happen before any request and name what is wrong."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from servicecomms_async import Message, Service, WorkloadStatus
from servicecomms_async.query import (
    FilterBuilder,
    build_select,
    format_datetime_literal,
    quote_string,
    validate_page_size,
    validate_tenant_id,
)

GUID = "8b5f0d5c-3b3a-4e0e-9d1f-1f2a3b4c5d6e"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ("Contoso.SharePoint.com", "contoso.sharepoint.com"),
        ("contoso.com.", "contoso.com"),
        (GUID.upper(), GUID),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_valid_tenant_ids(given: str, expected: str) -> None:
    assert validate_tenant_id(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x",
        "a/b",
        "a?b.com",
        "a#b.com",
        "%2e%2e",
        "contoso .com",
        "contoso.com\n",
        "contoso\x00.com",
        "localhost",
        "-bad.com",
        "bad-.com",
        "a" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com",
        "contoso.123",
        "c\u03bfntoso.com",  # Greek omicron
        "\u212aelvin.com",  # Kelvin sign, which case-insensitive matching would fold to k
        "1.2.3.4",
    ],
)
def test_invalid_tenant_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="tenant must be"):
        validate_tenant_id(bad)


def test_tenant_id_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="tenant must be a str"):
        validate_tenant_id(42)


def test_quotes_are_doubled() -> None:
    assert quote_string("O'Brien") == "'O''Brien'"
    assert quote_string("''") == "''''''"


def test_filters_combine_with_and() -> None:
    since = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    text = (
        FilterBuilder()
        .equals("Workload", "O'Brien", parameter="workload")
        .compare("StartTime", "ge", since, parameter="start_time")
        .equals("Id", None, parameter="message_id")
        .build()
    )
    assert text == "Workload eq 'O''Brien' and StartTime ge 2024-01-02T01:04:05Z"


def test_no_filters_build_nothing() -> None:
    assert FilterBuilder().equals("Workload", None, parameter="workload").build() is None


@pytest.mark.parametrize("bad", ["", " Exchange", "Ex\tchange"])
def test_bad_filter_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="workload"):
        FilterBuilder().equals("Workload", bad, parameter="workload")


def test_filter_string_type_is_checked() -> None:
    with pytest.raises(TypeError, match="workload must be a str"):
        FilterBuilder().equals("Workload", 5, parameter="workload")  # type: ignore[arg-type]


def test_datetime_literals() -> None:
    assert format_datetime_literal(date(2024, 5, 6), parameter="since") == "2024-05-06T00:00:00Z"
    aware = datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=timezone.utc)
    assert format_datetime_literal(aware, parameter="since") == "2024-05-06T07:08:09.12Z"
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        format_datetime_literal(datetime(2024, 5, 6), parameter="since")
    with pytest.raises(TypeError, match="since must be a datetime"):
        format_datetime_literal("2024-05-06", parameter="since")  # type: ignore[arg-type]


def test_select_accepts_field_and_wire_names() -> None:
    assert build_select(["id", "Title", "last_updated_time"], Message) == "Id,Title,LastUpdatedTime"
    assert build_select("Id, DisplayName", Service) == "Id,DisplayName"
    assert build_select(["StatusDate"], WorkloadStatus) == "StatusTime"
    assert build_select(None, Message) is None


def test_select_rejects_unknown_fields_and_lists_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError, match=r"'Nope' is not a field of Service; choose from: .*display_name"
    ):
        build_select(["Nope"], Service)
    with pytest.raises(ValueError, match="at least one"):
        build_select([], Service)


@pytest.mark.parametrize("bad", [0, 101, -1])
def test_page_size_range(bad: int) -> None:
    with pytest.raises(ValueError, match="page_size must be from 1 to 100"):
        validate_page_size(bad)


@pytest.mark.parametrize("bad", [True, 10.0, "10"])
def test_page_size_type(bad: object) -> None:
    with pytest.raises(TypeError, match="page_size must be an int"):
        validate_page_size(bad)
