"""The generated structure functions build the same objects attrs' own ``__init__`` builds, refuse the
classes they would build wrongly, and show their source in tracebacks."""

from __future__ import annotations

import linecache
import traceback
import weakref
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from servicecomms_async import InvalidFieldError, Message
from servicecomms_async._modeling import extra_field, wire
from servicecomms_async._wire import converter, make_converter, strict_converter
from servicecomms_async.graph import models as graph_models
from servicecomms_async.legacy import models

ALL_MODELS = [
    cls
    for module in (models, graph_models)
    for cls in vars(module).values()
    if isinstance(cls, type) and attrs.has(cls) and cls.__module__ == module.__name__
]


def test_every_model_is_found() -> None:
    assert {Message, models.Service, graph_models.ServiceUpdateMessage} <= set(ALL_MODELS)


@pytest.mark.parametrize("cls", ALL_MODELS, ids=lambda cls: cls.__name__)
def test_an_empty_object_builds_what_the_constructor_builds(cls: type[Any]) -> None:
    built = converter.structure({}, cls)
    made = cls()
    assert type(built) is cls
    assert built == made and hash(built) == hash(made)
    # Every attribute is set, ``extra`` (eq=False) included.
    assert attrs.asdict(built, recurse=False) == attrs.asdict(made, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.extra = {}


def test_models_can_be_weakly_referenced() -> None:
    # Models keep attrs' default __weakref__ slot now that the converter needs no slot-layout twin.
    message = converter.structure({"Id": "MO1", "Title": "t"}, Message)
    ref = weakref.ref(message)
    assert ref() is message
    assert message == Message(id="MO1", title="t")


@attrs.frozen(kw_only=True)
class WithFactory:
    name: str | None = wire("Name")
    tags: tuple[str, ...] = attrs.field(factory=tuple, kw_only=True, metadata={"wire": ("Tags",)})
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True, cache_hash=True)
class WithCachedHash:
    name: str | None = wire("Name")
    extra: Mapping[str, Any] = extra_field()


def test_a_factory_default_is_refused_when_the_function_is_built() -> None:
    # Before, an absent "Tags" came out as the attrs.Factory object itself.
    with pytest.raises(TypeError, match=r"WithFactory\.tags: .*attrs\.Factory"):
        make_converter().structure_fn(WithFactory)
    with pytest.raises(TypeError, match=r"WithFactory\.tags"):
        make_converter().structure({"Name": "a"}, WithFactory)


def test_cache_hash_is_refused_when_the_function_is_built() -> None:
    # Built without __init__, the cached-hash slot would be left unset and hash() would raise.
    with pytest.raises(TypeError, match=r"WithCachedHash: .*cache_hash=True"):
        make_converter().structure_fn(WithCachedHash)


def test_a_traceback_through_generated_code_shows_its_source() -> None:
    try:
        strict_converter.structure({"Id": "MO1", "Title": 12}, Message)
    except InvalidFieldError:
        text = traceback.format_exc()
    else:  # pragma: no cover - the strict converter must raise
        pytest.fail("the strict converter accepted a number as a title")
    assert 'File "<servicecomms generated structure Message (strict)>"' in text
    # The line itself, not just its location: linecache has the generated source.
    assert "bad = _on_invalid(bad, _cls, d, 1, v, exc)" in text


def _thing(wire_name: str) -> type[Any]:
    @attrs.frozen(kw_only=True)
    class Thing:
        value: str | None = wire(wire_name)
        extra: Mapping[str, Any] = extra_field()

    return Thing


def test_generated_sources_of_same_named_classes_are_kept_apart() -> None:
    first, second = _thing("First"), _thing("Second")
    assert first.__qualname__ == second.__qualname__
    conv = make_converter()
    names = [conv.structure_fn(cls).__code__.co_filename for cls in (first, second)]
    assert names[0].startswith("<servicecomms generated structure ") and names[0] != names[1]
    assert "'First'" in "".join(linecache.getlines(names[0]))
    assert "'Second'" in "".join(linecache.getlines(names[1]))
    assert conv.structure({"Second": "x", "First": 1}, second).extra == {"First": 1}
