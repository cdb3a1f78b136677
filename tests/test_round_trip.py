"""Structuring the emulator's JSON and unstructuring it back gives the same wire document.

"The same" here means: apart from key order; keys the model declares but the item did not carry come back
as ``null`` (or ``[]``); timestamps come back in the service's own form with up to 6 fractional digits
(a 7th digit, as CurrentStatus sends, is beyond what a Python datetime holds); and a spec-shape alias
comes back under the real service's name (``StatusDate`` as ``StatusTime``; the spec's ``FeatureNames``
strings as the real ``Features`` objects, each name as both ``Name`` and ``DisplayName``). Unknown keys
come back untouched from ``extra``.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import pytest

from servicecomms_async import Message, Service, WorkloadStatus
from servicecomms_async._modeling import wire_names
from servicecomms_async._wire import converter, parse_datetime
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.graph.models import ServiceHealth, ServiceHealthIssue, ServiceUpdateMessage

pytestmark = pytest.mark.anyio


def nested_model(model: type, field_name: str) -> type | None:
    """The model a field holds (alone or in a tuple), if any."""
    attrs.resolve_types(model)
    tp = next(f.type for f in attrs.fields(model) if f.name == field_name)
    for candidate in (
        tp,
        *typing.get_args(tp),
        *(a for t in typing.get_args(tp) for a in typing.get_args(t)),
    ):
        if isinstance(candidate, type) and attrs.has(candidate):
            return candidate
    return None


def same_time_or_value(sent: Any, back: Any) -> bool:
    if isinstance(sent, str) and isinstance(back, str) and sent != back:
        try:
            return parse_datetime(sent) == parse_datetime(back)  # sub-microsecond digits
        except ValueError:
            return False
    if isinstance(sent, list) and isinstance(back, list):
        return len(sent) == len(back) and all(
            same_time_or_value(a, b) for a, b in zip(sent, back, strict=True)
        )
    return bool(sent == back)


def assert_round_trip(
    item: Mapping[str, Any], model: type, back: Mapping[str, Any] | None = None
) -> None:
    if back is None:
        back = converter.unstructure(converter.structure(dict(item), model))
    fields = {
        alias: (name, aliases[0])
        for name, aliases in wire_names(model).items()
        for alias in aliases
    }
    written_keys = set()
    for key, value in item.items():
        field, written = fields.get(key, (None, key))
        written_keys.add(written)
        assert written in back, (model.__name__, key)
        inner = nested_model(model, field) if field else None
        if key == "FeatureNames":  # the spec's bare names become the real Features objects
            value = [{"DisplayName": name, "Name": name} for name in value]
        if inner is not None and isinstance(value, list):
            assert len(value) == len(back[written]), (model.__name__, key)
            for sent_item, back_item in zip(value, back[written], strict=True):
                assert_round_trip(sent_item, inner, back_item)
        elif inner is not None and isinstance(value, dict):
            assert_round_trip(value, inner, back[written])
        else:
            assert same_time_or_value(value, back[written]), (
                model.__name__,
                key,
                value,
                back[written],
            )
    for key, value in back.items():
        if key not in written_keys:
            assert value in (None, []), (model.__name__, key, value)


@pytest.fixture(params=["real", "spec"])
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    async with Emulator(
        EmulatorConfig(seed=3, tenants=2, shape=request.param, messages_per_tenant=300)
    ) as emu:
        yield emu


async def test_legacy_models_round_trip(emulator: Emulator) -> None:
    for tenant in emulator.tenant_ids:
        data = emulator.dataset(tenant)
        for item in data.services:
            assert_round_trip(item, Service)
        for item in [*data.current_status, *data.historical_status]:
            assert_round_trip(item, WorkloadStatus)
        for item in data.messages:
            assert_round_trip(item, Message)


async def test_unknown_keys_come_back_untouched(emulator: Emulator) -> None:
    item = {**emulator.dataset(emulator.tenant_ids[0]).messages[0], "Brand": {"New": [1, None]}}
    assert converter.unstructure(converter.structure(item, Message))["Brand"] == {"New": [1, None]}


async def test_graph_models_round_trip() -> None:
    async with Emulator(EmulatorConfig(seed=3, tenants=2, messages_per_tenant=300)) as emu:
        for tenant in emu.tenant_ids:
            data = emu.graph_dataset(tenant)
            for item in data.health_overviews:
                assert_round_trip(item, ServiceHealth)
            for item in data.issues:
                assert_round_trip(item, ServiceHealthIssue)
            for item in data.messages:
                assert_round_trip(item, ServiceUpdateMessage)
