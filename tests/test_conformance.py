"""The emulator checked against the documented contract with schemathesis, in both shapes.

Every operation of ``tests/fixtures/servicecomms-openapi.yml`` (a copy of the shared spec) gets generated
parameters (``$select``, and the spec's plain ``Workload``/``StatusTime``/``StartTime``/``EndTime``/
``MessageType``/``Id`` parameters). Where the spec and real traffic disagree, the spec shape follows the
spec and the real shape follows real traffic; the checks below apply only what holds for each shape, and
the README's compatibility notes list each disagreement:

* the spec documents only HTTP 200, but values the spec's loose schemas allow are 400 OData errors
  (``AF20002``) in both shapes, as OData services answer: an unknown ``$select`` property, and a
  negative ``$top`` or ``$skip`` (the spec gives ``$top`` a maximum but neither a minimum);
* in the real shape, items carry ``null`` where the spec declares plain strings (a Message Center post's
  ``Workload``, an ongoing incident's ``EndTime``) and keys the spec does not name; so the real shape is
  checked by structuring every response strictly into the models instead of against the spec's schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from servicecomms_async import Message, Service, WorkloadStatus
from servicecomms_async._wire import strict_converter, structure_items
from servicecomms_async.emulator import EmulatorConfig

from .conftest import ThreadedEmulator

SPEC = Path(__file__).parent / "fixtures" / "servicecomms-openapi.yml"
CONFIG = SchemathesisConfig.from_str(
    """
[generation]
mode = "positive"
max-examples = 20
deterministic = true
database = "none"
[phases.coverage]
enabled = false
"""
)
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)
MODELS = {"Services": Service, "CurrentStatus": WorkloadStatus, "HistoricalStatus": WorkloadStatus}
AUTH = {"Authorization": "Bearer conformance"}


@pytest.fixture(scope="module", params=["spec", "real"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, requests.Session]]:
    with (
        ThreadedEmulator(
            EmulatorConfig(tenants=1, shape=request.param, messages_per_tenant=150)
        ) as emulator,
        requests.Session() as http,
    ):
        yield request.param, f"{emulator.base_url}/contoso.onmicrosoft.com/ServiceComms", http


def assert_documented_error(response: schemathesis.Response) -> None:
    """The status the spec leaves out: a 400 OData error naming the query option it refused."""
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "AF20002"
    assert any(option in error["message"] for option in ("$select", "$top", "$skip")), error


@schema.parametrize()
def test_emulator_conforms(
    case: schemathesis.Case[Any], server: tuple[str, str, requests.Session]
) -> None:
    shape, base_url, http = server
    response = case.call(base_url=base_url, headers=AUTH, session=http)
    applicable = [checks.not_a_server_error, checks.content_type_conformance]
    if shape == "spec" and response.status_code == 200:
        applicable.append(checks.response_schema_conformance)
    case.validate_response(response, checks=applicable)
    if response.status_code != 200:
        assert_documented_error(response)
        return
    operation = case.operation.path.strip("/")
    items = orjson.loads(response.content)["value"]
    if operation == "Messages":
        assert len(items) <= 100
        model: type = Message
    else:
        model = MODELS[operation]
    # Every item, in either shape, structures strictly into the library's models.
    structure_items(items, model, conv=strict_converter)


def test_spec_shape_honours_the_documented_plain_filter_parameters(
    server: tuple[str, str, requests.Session],
) -> None:
    shape, base_url, http = server
    every = http.get(f"{base_url}/CurrentStatus", headers=AUTH).json()["value"]
    wanted = every[-1]["Workload"]
    response = http.get(f"{base_url}/CurrentStatus", params={"Workload": wanted}, headers=AUTH)
    workloads = {row["Workload"] for row in response.json()["value"]}
    if shape == "spec":
        assert workloads == {wanted}
    else:  # real clients filtered with $filter; a plain parameter changes nothing there
        assert len(workloads) > 1
