"""Property tests: whatever a server sends, the caller gets models or one of the library's own errors.

Arbitrary JSON documents and mutated real payloads (tests/fixtures) go through the converter and, over
loopback HTTP, through the emulator to the pager. Lenient mode keeps a value of the wrong type in
``.extra`` under its wire name; strict mode raises InvalidFieldError naming the field. The retry
policy's arithmetic is checked here too. Example counts are kept modest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from servicecomms_async import (
    InvalidFieldError,
    Message,
    RetryPolicy,
    Service,
    ServiceCommsError,
    ServiceCommsSession,
    WorkloadStatus,
    models,
    retry,
)
from servicecomms_async._wire import converter, strict_converter, structure_items
from servicecomms_async.emulator import Emulator, EmulatorConfig

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "property-token"

# Which real payloads feed which model.
PAYLOADS: dict[type[Any], tuple[str, ...]] = {
    Service: ("services.json", "services_docs.json"),
    WorkloadStatus: (
        "currentstatus.json",
        "currentstatus_docs.json",
        "currentstatus_forms_odata.json",
        "historicalstatus.json",
        "historicalstatus_docs.json",
    ),
    Message: (
        "messages_all.json",
        "messages_docs.json",
        "messages_incident.json",
        "messages_messagecenter.json",
        "messages_workload_sharepoint.json",
    ),
}
REAL_ITEMS: dict[type[Any], list[dict[str, Any]]] = {
    model: [
        item for name in names for item in orjson.loads((FIXTURES / name).read_bytes())["value"]
    ]
    for model, names in PAYLOADS.items()
}
OPERATION_OF = {Service: "services", WorkloadStatus: "current_status", Message: "messages"}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can write
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2020-05-15T18:19:08.38Z", "2020-08-21T18:10:00.0000000Z", "", "Sev1"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def wire_names(model: type[Any]) -> dict[str, attrs.Attribute[Any]]:
    """Every wire key of a model's fields, mapped to the field."""
    return {
        name: f for f in attrs.fields(model) if "wire" in f.metadata for name in f.metadata["wire"]
    }


@st.composite
def mutated_items(draw: st.DrawFn, model: type[Any]) -> dict[str, Any]:
    """A real item with some keys replaced by arbitrary JSON, dropped, or added, at any depth."""
    item = orjson.loads(orjson.dumps(draw(st.sampled_from(REAL_ITEMS[model]))))  # a deep copy
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = item
        # Walk down into nested objects and lists now and then (Features, Messages, ...).
        while True:
            children = [
                v for v in target.values() if isinstance(v, dict) or (isinstance(v, list) and v)
            ]
            if not children or not draw(st.booleans()):
                break
            child = draw(st.sampled_from(children))
            if isinstance(child, list):
                child = draw(st.sampled_from(child))
            if not isinstance(child, dict):
                break
            target = child
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "add" or not target:
            target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        elif action == "drop":
            del target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
    return item


def models_and_items() -> st.SearchStrategy[tuple[type[Any], dict[str, Any]]]:
    return st.sampled_from(sorted(PAYLOADS, key=lambda m: m.__name__)).flatmap(
        lambda model: st.tuples(st.just(model), mutated_items(model))
    )


@pytest.fixture(autouse=True)
def quiet_lenient_warnings() -> Iterator[None]:
    # Lenient mode logs one warning per invalid field; thousands of them only slow the run down.
    logger = logging.getLogger("servicecomms_async.convert")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# -- the converter ----------------------------------------------------------------------------------


def test_real_payloads_structure_cleanly_in_strict_mode() -> None:
    for model, items in REAL_ITEMS.items():
        lenient = structure_items(items, model)
        strict = structure_items(items, model, conv=strict_converter)
        assert lenient == strict
        assert len(strict) == len(items)


@settings(max_examples=150, deadline=None)
@given(document=json_values, model=st.sampled_from([Service, WorkloadStatus, Message]))
def test_arbitrary_json_gives_models_or_a_typed_error(document: Any, model: type[Any]) -> None:
    for conv in (converter, strict_converter):
        try:
            items = structure_items(document, model, conv=conv)
        except ServiceCommsError:
            continue
        assert isinstance(document, list)
        assert all(isinstance(item, model) for item in items)
        assert len(items) == len(document)


@settings(max_examples=200, deadline=None)
@given(case=models_and_items())
def test_mutated_real_payloads_lenient_keeps_strict_names(
    case: tuple[type[Any], dict[str, Any]],
) -> None:
    model, item = case
    [lenient] = structure_items([item], model)  # lenient never raises for an object
    fields = wire_names(model)
    for key, value in item.items():
        if key not in fields:
            assert lenient.extra[key] == value  # unknown keys are kept untouched
    strict_error: InvalidFieldError | None = None
    try:
        strict = structure_items([item], model, conv=strict_converter)
    except InvalidFieldError as error:
        strict_error = error
    event("strict mode raised" if strict_error else "strict mode agreed")
    if strict_error is None:
        assert strict == [lenient]
        return
    # The error names a real field of the model it concerns (nested models included), by its
    # attribute and by its wire name, and says so in its text.
    owner = getattr(models, strict_error.model)
    field = attrs.fields_dict(owner)[strict_error.field]
    assert strict_error.wire_name in field.metadata["wire"]
    assert strict_error.field in str(strict_error)
    assert strict_error.wire_name in str(strict_error)
    if owner is model:
        # Lenient mode kept that very value in .extra, under the same wire name.
        assert lenient.extra[strict_error.wire_name] == strict_error.value


# -- through the emulator to the pager -----------------------------------------------------------------


@pytest.mark.anyio
async def test_whatever_the_server_sends_the_pager_gives_models_or_a_typed_error() -> None:
    served: list[bytes] = [b'{"value": []}']

    @web.middleware
    async def serve_the_example(request: web.Request, handler: Handler) -> web.StreamResponse:
        return web.Response(body=served[0], content_type="application/json")

    bodies = st.one_of(
        models_and_items().map(lambda case: orjson.dumps({"value": [case[1]]})),
        st.lists(json_values, max_size=4).map(lambda value: orjson.dumps({"value": value})),
        json_values.map(orjson.dumps),
        st.binary(max_size=64),
    )
    async with Emulator(EmulatorConfig(tenants=1), middlewares=[serve_the_example]) as emu:
        tenant_id = emu.tenant_ids[0]
        policy = RetryPolicy(attempts=2)
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url, retry=policy) as lenient:
            async with ServiceCommsSession(
                token=TOKEN, base_url=emu.base_url, retry=policy, strict=True
            ) as strict:

                async def fetch(body: bytes, model: type[Any]) -> None:
                    served[0] = body
                    for session in (lenient, strict):
                        pager = getattr(session.tenant(tenant_id), OPERATION_OF[model])()
                        try:
                            items = await pager.collect()
                        except ServiceCommsError:
                            pass
                        else:
                            assert all(isinstance(item, model) for item in items)
                        assert session.connections_in_use() == 0

                @settings(
                    max_examples=60,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                )
                @given(body=bodies, model=st.sampled_from([Service, WorkloadStatus, Message]))
                def run(body: bytes, model: type[Any]) -> None:
                    anyio.from_thread.run(fetch, body, model)

                await anyio.to_thread.run_sync(run)


# -- the retry policy's arithmetic -----------------------------------------------------------------


policies = st.builds(
    RetryPolicy,
    attempts=st.integers(min_value=1, max_value=12),
    deadline=st.floats(min_value=0.01, max_value=600) | st.just(math.inf),
    backoff_initial=st.floats(min_value=0, max_value=5),
    backoff_max=st.floats(min_value=0, max_value=60),
    retry_after_cap=st.floats(min_value=0, max_value=300),
)


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    attempt=st.integers(min_value=1, max_value=15),
    elapsed=st.floats(min_value=0, max_value=700),
    retry_after=st.none() | st.floats(min_value=0, max_value=1000),
)
def test_retry_decisions_stay_within_the_policy(
    policy: RetryPolicy, attempt: int, elapsed: float, retry_after: float | None
) -> None:
    retry.set_testing(False)
    try:
        decision = policy.decide(attempt=attempt, elapsed=elapsed, retry_after=retry_after)
    finally:
        retry.set_testing(True)
    if retry_after is not None and retry_after > policy.retry_after_cap:
        assert not decision.retry
        assert "retry_after_cap" in decision.reason
    if decision.retry:
        assert attempt < policy.attempts
        assert elapsed + decision.wait < policy.deadline
        if retry_after is not None:
            assert decision.wait == retry_after
        else:
            ceiling = min(policy.backoff_max, policy.backoff_initial * 2 ** (attempt - 1))
            assert 0 <= decision.wait <= ceiling
    elif attempt >= policy.attempts:
        assert decision.reason


@settings(max_examples=100, deadline=None)
@given(policy=policies, attempt=st.integers(min_value=1, max_value=15))
def test_the_test_switch_makes_every_wait_zero_but_keeps_the_limits(
    policy: RetryPolicy, attempt: int
) -> None:
    assert retry.is_testing()  # the autouse fixture in conftest.py
    decision = policy.decide(attempt=attempt, elapsed=0.0, retry_after=None)
    assert decision.wait == 0.0
    assert decision.retry == (attempt < policy.attempts)
