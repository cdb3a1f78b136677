"""The generated structure functions build the same objects attrs' own ``__init__`` builds, refuse the
classes they would build wrongly, and show their source in tracebacks."""

from __future__ import annotations

import linecache
import re
import traceback
import weakref
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from servicecomms_async import InvalidFieldError, Message, _wire
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
    assert re.search(
        r'File "<servicecomms generated structure Message(, 2 keys)? \(strict\)(-\d+)?>"', text
    )
    # The line itself, not just its location: linecache has the generated source (the general
    # function's, or its path for this key shape when an earlier test showed the shape twice).
    assert re.search(r"bad = _on_invalid\(bad, _cls, d, 1, v1?, exc\)", text)


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


# -- the key-shape paths ----------------------------------------------------------------------------


def _shapes(conv: Any, cls: type[Any]) -> dict[tuple[str, ...], Any]:
    """The per-key-sequence paths a converter has made for ``cls`` (behind its ``_shape`` lookup)."""
    shapes: dict[tuple[str, ...], Any] = conv.structure_fn(cls).__globals__["_shape"].__self__
    return shapes


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a == b
    assert attrs.asdict(a, recurse=False).keys() == attrs.asdict(b, recurse=False).keys()
    for name in attrs.fields_dict(type(a)):
        left, right = getattr(a, name), getattr(b, name)
        if name == "extra":  # not compared by ==; its order is the wire's
            assert list(left.items()) == list(right.items())
        elif isinstance(left, tuple) and left and attrs.has(type(left[0])):
            for x, y in zip(left, right, strict=True):
                _same(x, y)


SHAPES: list[tuple[type[Any], dict[str, Any]]] = [
    (
        Message,
        {
            "Id": "MO1",
            "Title": "t",
            "MessageType": "Incident",
            "StartTime": "2024-01-02T03:04:05Z",
            "EndTime": None,
            "Messages": [
                {"PublishedTime": "2024-01-02T03:04:05.1234567+02:00", "MessageText": "x"}
            ],
            "AffectedWorkloadNames": ["Exchange"],
            "AnnouncementId": "12",
            "IsMajorChange": "true",
        },
    ),
    (Message, {"Id": "MO2", "MessageType": "SomethingNew", "Brand": "new", "Title": "t"}),
    (Message, {"Id": "MO3", "Title": 12, "Messages": "no", "StartTime": "yesterday"}),
    (Message, {"Id": None, "Messages": None, "AdditionalDetails": [{"Name": "n", "Value": "v"}]}),
    (Message, {"Messages": [{"MessageText": "x"}, 3]}),
    (Message, {}),
    (models.Service, {"Id": "S", "FeatureNames": ["Sign-in", "Mail"]}),
    (models.Service, {"Id": "S", "Features": [{"Name": "a"}], "FeatureNames": ["b"]}),
    (models.WorkloadStatus, {"Id": "W", "StatusDate": "2024-01-02", "Feature": "x"}),
    (
        models.WorkloadStatus,
        {"FeatureGroupStatusCollection": [{"Feature": "f", "FeatureStatus": "Investigating"}]},
    ),
    (
        graph_models.ServiceHealthIssue,
        {
            "id": "MO4",
            "status": "serviceDegradation",
            "posts": [{"postType": "regular", "description": {"content": "c", "x": 1}}],
            "isResolved": "false",
        },
    ),
    (graph_models.ServiceUpdateMessage, {"id": "MC1", "body": "not an object", "tags": [1]}),
]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize(("cls", "raw"), SHAPES, ids=lambda x: getattr(x, "__name__", ""))
def test_a_shape_seen_again_builds_what_the_general_function_builds(
    cls: type[Any], raw: dict[str, Any], strict: bool
) -> None:
    def outcome(conv: Any) -> Any:
        try:
            return conv.structure_fn(cls)(dict(raw))
        except InvalidFieldError as exc:
            return (exc.model, exc.field, exc.wire_name, exc.value, exc.item_id, str(exc))

    general = outcome(make_converter(strict=strict))  # first sight: the general function
    conv = make_converter(strict=strict)
    results = [outcome(conv) for _ in range(4)]  # the second sight makes the shape's path
    assert tuple(raw) in _shapes(conv, cls)
    for result in results:
        if isinstance(general, tuple):
            assert result == general
        else:
            _same(result, general)


def test_a_shape_with_two_names_of_one_field_gets_no_path() -> None:
    conv = make_converter()
    raw = {"Id": "S", "Features": [{"Name": "a"}], "FeatureNames": ["b"]}
    for _ in range(3):
        service = conv.structure(raw, models.Service)
        assert service.features == (models.Feature(name="a"),)
        assert service.extra == {"FeatureNames": ["b"]}
    assert _shapes(conv, models.Service) == {tuple(raw): False}


def test_a_dict_with_other_keys_of_the_same_length_is_structured_right(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conv = make_converter()
    for _ in range(2):
        conv.structure({"Id": "MO1", "Title": "t"}, Message)
    assert ("Id", "Title") in _shapes(conv, Message)
    # Same length, other keys, an invalid value: one warning, from the general function.
    with caplog.at_level("WARNING", logger="servicecomms_async.convert"):
        message = conv.structure({"Id": "MO2", "AffectedUserCount": "many"}, Message)
    assert len(caplog.records) == 1
    assert message.affected_user_count is None and message.extra == {"AffectedUserCount": "many"}
    assert message.title is None


def test_a_dict_subclass_is_read_with_get_only() -> None:
    conv = make_converter()
    for _ in range(2):
        conv.structure({"Id": "MO1", "Title": "t"}, Message)
    raw: defaultdict[str, Any] = defaultdict(lambda: "made up", {"Id": "MO1", "Severity": "High"})
    message = conv.structure_fn(Message)(raw)
    assert message.title is None and message.severity == "High"
    assert dict(raw) == {"Id": "MO1", "Severity": "High"}


def test_the_paths_of_one_class_are_capped() -> None:
    conv = make_converter()
    for n in range(1, 40):  # 39 key sequences, each seen twice
        raw = {f"Unknown{i}": i for i in range(n)}
        for _ in range(2):
            assert dict(conv.structure(raw, Message).extra) == raw
    assert len(_shapes(conv, Message)) == _wire._MAX_SHAPES == 16
    raw = {f"Unknown{i}": i for i in range(45)}
    for _ in range(3):  # past the cap: still right, through the general function
        assert dict(conv.structure(raw, Message).extra) == raw
    assert tuple(raw) not in _shapes(conv, Message)


def test_a_traceback_through_a_shape_path_shows_its_source() -> None:
    conv = make_converter(strict=True)
    conv.structure({"Id": "MO1", "Title": "t"}, Message)
    conv.structure({"Id": "MO1", "Title": "t"}, Message)
    with pytest.raises(InvalidFieldError) as info:
        conv.structure({"Id": "MO1", "Title": 12}, Message)
    text = "".join(traceback.format_exception(info.value))
    # Numbered when another converter made a path of another two keys first.
    assert re.search(
        r'File "<servicecomms generated structure Message, 2 keys \(strict\)(-\d+)?>"', text
    )
    assert "bad = _on_invalid(bad, _cls, d, 1, v1, exc)" in text


def test_two_shapes_of_one_length_each_get_a_path() -> None:
    # Real pages mix an incident and a Message Center post with as many keys; a path per length
    # sent every other shape of that length through a KeyError and the general function.
    conv = make_converter()
    incident = {"Id": "MO1", "Title": "t"}
    post = {"Id": "MC1", "Severity": "High"}
    for _ in range(2):
        conv.structure(incident, Message)
        conv.structure(post, Message)
    assert {tuple(incident), tuple(post)} <= set(_shapes(conv, Message))
    assert conv.structure(post, Message) == Message(id="MC1", severity="High")
