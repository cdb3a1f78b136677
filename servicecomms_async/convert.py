"""The one cattrs converter: wire JSON (PascalCase, enums, dates) to models and back.

For each model class a structure function is generated once, as Python source compiled on first use
(the same technique cattrs uses for its own generated hooks), so structuring an item does no
reflection: one ``dict.get`` per field, a type check, and the class constructor.

Rules, the same for every model:

* a field is read from the first of its wire names present (real shape first, spec shape after);
* keys the model does not know, and an alias that lost to another alias, are kept in ``extra``;
* datetimes become timezone-aware UTC (``Z``, offsets, naive = UTC, 0 to 7 fractional digits);
* enums keep unknown values (see :class:`~servicecomms_async.models.OpenStrEnum`);
* lenient (default): a known field whose value has the wrong type becomes ``None`` (or an empty tuple),
  its raw value is kept in ``extra`` under its wire name and a warning is logged;
  strict: :class:`~servicecomms_async.errors.InvalidFieldError` names the item, the field and its wire name.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType, NoneType, UnionType
from typing import Any, TypeVar

import attrs
import cattrs

from . import models
from .errors import InvalidFieldError, UnexpectedResponseError

__all__ = [
    "WireConverter",
    "converter",
    "make_converter",
    "parse_datetime",
    "strict_converter",
    "structure_items",
]

logger = logging.getLogger("servicecomms_async.convert")

T = TypeVar("T")
UTC = timezone.utc
_MISSING = object()


class InvalidValue(Exception):
    """Raised by a value converter; the generated code turns it into lenient or strict handling."""


# -- value converters -------------------------------------------------------------------------------

_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 timestamp into an aware UTC datetime (naive input is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_datetime_slow(value)
    tz = parsed.tzinfo
    if tz is None:
        return parsed.replace(tzinfo=UTC)
    if tz is not UTC:
        return parsed.astimezone(UTC)
    return parsed


def _parse_datetime_slow(value: str) -> datetime:
    # Python 3.10's fromisoformat rejects "Z" and 7 fractional digits; the service sends both.
    match = _ISO_RE.fullmatch(value.strip())
    if match is None:
        raise InvalidValue(f"not an ISO 8601 date-time: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    tz: timezone | None = None
    if zone in ("Z", "z"):
        tz = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micros,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def _to_datetime(value: Any) -> datetime:
    if value.__class__ is not str:
        raise InvalidValue("expected an ISO 8601 date-time string")
    try:
        return parse_datetime(value)
    except ValueError as exc:  # out-of-range parts that passed the pattern
        raise InvalidValue(str(exc)) from None


def _to_int(value: Any) -> int:
    if value.__class__ is int:
        return value
    if value.__class__ is str and value.strip().lstrip("+-").isdigit():
        return int(value)  # the PnP model types AnnouncementId as a string
    raise InvalidValue("expected an integer")


def _to_bool(value: Any) -> bool:
    if value.__class__ is bool:
        return value
    if value.__class__ is str and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidValue("expected a boolean")


def _to_str_tuple(value: Any) -> tuple[str, ...]:
    if value.__class__ is not list or any(item.__class__ is not str for item in value):
        raise InvalidValue("expected a list of strings")
    return tuple(value)


def _to_raw_tuple(value: Any) -> tuple[Any, ...]:
    if value.__class__ is not list:
        raise InvalidValue("expected a list")
    return tuple(value)


def _enum_converter(enum_cls: type[Enum]) -> Callable[[Any], Any]:
    known = enum_cls._value2member_map_

    def to_enum(value: Any) -> Any:
        if value.__class__ is not str:
            raise InvalidValue(f"expected a {enum_cls.__name__} string")
        member = known.get(value)
        return member if member is not None else enum_cls(value)

    return to_enum


# The spec's Services shape lists features as bare names: FeatureNames: ["Sign-in", ...].
_FROM_STRING: Mapping[type, Callable[[str], Any]] = {
    models.Feature: lambda name: models.Feature(name=name, display_name=name),
}


# -- code generation -------------------------------------------------------------------------------


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls) and cls.__module__ == models.__name__


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, UnionType)) and NoneType in args:
        rest = [a for a in args if a is not NoneType]
        return rest[0] if len(rest) == 1 else tp
    return tp


class _Gen:
    """Builds the source of one class's structure function."""

    def __init__(self, cls: type, strict: bool, structure_model: Callable[[type], Any]) -> None:
        self.cls = cls
        self.strict = strict
        self.structure_model = structure_model
        self.globals: dict[str, Any] = {
            "_M": _MISSING,
            "_Invalid": InvalidValue,
            "_cls": cls,
            "_str": str,
            "_list": list,
            "_dict": dict,
            "_tuple": tuple,
            "_len": len,
        }
        self.lines: list[str] = []

    def const(self, name: str, value: Any) -> str:
        self.globals[name] = value
        return name

    def field_value_code(self, index: int, field: attrs.Attribute[Any], target: str) -> list[str]:
        """Lines that convert ``v`` (present, maybe None) into ``target``; may raise _Invalid."""
        tp = _unwrap_optional(field.type)
        if tp is str:
            return [
                f"if v is None or v.__class__ is _str: {target} = v",
                "else: raise _Invalid('expected a string')",
            ]
        if tp is Any or tp is object:
            return [f"{target} = v"]
        origin = typing.get_origin(tp)
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            none_default = f"if v is None: {target} = ()"
            if item_tp is str:
                conv = self.const(f"_c{index}", _to_str_tuple)
                return [none_default, f"else: {target} = {conv}(v)"]
            if _is_model(item_tp):
                conv = self.const(f"_c{index}", self.nested_list_converter(item_tp))
                return [none_default, f"else: {target} = {conv}(v)"]
            conv = self.const(f"_c{index}", _to_raw_tuple)
            return [none_default, f"else: {target} = {conv}(v)"]
        if isinstance(tp, type) and issubclass(tp, Enum):
            conv = self.const(f"_c{index}", _enum_converter(tp))
        elif tp is datetime:
            conv = self.const(f"_c{index}", _to_datetime)
        elif tp is bool:
            conv = self.const(f"_c{index}", _to_bool)
        elif tp is int:
            conv = self.const(f"_c{index}", _to_int)
        else:  # pragma: no cover - a model declared a type this module does not know
            raise TypeError(f"{self.cls.__name__}.{field.name}: unsupported type {field.type!r}")
        return [f"{target} = None if v is None else {conv}(v)"]

    def nested_list_converter(self, item_cls: type) -> Callable[[Any], tuple[Any, ...]]:
        from_string = _FROM_STRING.get(item_cls)
        structure_model = self.structure_model

        def convert(value: Any) -> tuple[Any, ...]:
            if value.__class__ is not list:
                raise InvalidValue(f"expected a list of {item_cls.__name__} objects")
            structure = structure_model(item_cls)
            out = []
            for item in value:
                if item.__class__ is dict:
                    out.append(structure(item))
                elif from_string is not None and item.__class__ is str:
                    out.append(from_string(item))
                else:
                    raise InvalidValue(f"expected a list of {item_cls.__name__} objects")
            return tuple(out)

        return convert

    def build(self) -> Callable[[dict[str, Any]], Any]:
        attrs.resolve_types(self.cls)
        fields = [f for f in attrs.fields(self.cls) if "wire" in f.metadata]
        aliases = tuple((f.name, f.metadata["wire"], f.default) for f in fields)
        self.const("_aliases", aliases)
        self.const("_extra_of", _extra_of)
        self.const("_on_invalid", _strict_invalid if self.strict else _lenient_invalid)
        lines = ["def structure(d):", "    n = 0", "    bad = None"]
        for index, field in enumerate(fields):
            names = field.metadata["wire"]
            target = f"a{index}"
            lines.append(f"    v = d.get({names[0]!r}, _M)")
            for alias in names[1:]:
                lines.append("    if v is _M:")
                lines.append(f"        v = d.get({alias!r}, _M)")
            default = self.const(f"_d{index}", field.default)
            lines.append("    if v is _M:")
            lines.append(f"        {target} = {default}")
            lines.append("    else:")
            lines.append("        n += 1")
            lines.append("        try:")
            for code in self.field_value_code(index, field, target):
                lines.append(f"            {code}")
            lines.append("        except _Invalid as exc:")
            lines.append(
                f"            {target} = {default}; bad = _on_invalid(bad, _cls, d, {index}, v, exc)"
            )
        lines.append("    extra = _extra_of(d, _aliases, bad) if n != _len(d) or bad else _E")
        self.const("_E", models.EMPTY_EXTRA)
        args = ", ".join(f"{f.name}=a{i}" for i, f in enumerate(fields))
        lines.append(f"    return _cls({args}, extra=extra)")
        source = "\n".join(lines)
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<structure {self.cls.__name__}>", "exec"), self.globals, namespace)
        fn: Callable[[dict[str, Any]], Any] = namespace["structure"]
        return fn


def _matched_wire_name(d: Mapping[str, Any], names: tuple[str, ...]) -> str:
    return next((name for name in names if name in d), names[0])


def _lenient_invalid(
    bad: dict[str, Any] | None,
    cls: type,
    d: Mapping[str, Any],
    index: int,
    value: Any,
    exc: InvalidValue,
) -> dict[str, Any]:
    field = [f for f in attrs.fields(cls) if "wire" in f.metadata][index]
    wire_name = _matched_wire_name(d, field.metadata["wire"])
    logger.warning(
        "%s %r: field %r (wire name %r) has an invalid value (%s); kept the raw value in .extra",
        cls.__name__,
        d.get("Id"),
        field.name,
        wire_name,
        exc,
    )
    bad = bad if bad is not None else {}
    bad[wire_name] = value
    return bad


def _strict_invalid(
    bad: dict[str, Any] | None,
    cls: type,
    d: Mapping[str, Any],
    index: int,
    value: Any,
    exc: InvalidValue,
) -> dict[str, Any]:
    field = [f for f in attrs.fields(cls) if "wire" in f.metadata][index]
    raise InvalidFieldError(
        model=cls.__name__,
        field=field.name,
        wire_name=_matched_wire_name(d, field.metadata["wire"]),
        value=value,
        item_id=d.get("Id"),
        reason=str(exc),
    )


def _extra_of(
    d: Mapping[str, Any],
    aliases: tuple[tuple[str, tuple[str, ...], Any], ...],
    bad: dict[str, Any] | None,
) -> Mapping[str, Any]:
    """The keys of ``d`` that no field consumed, plus raw values of fields that failed to convert."""
    consumed = {
        _matched_wire_name(d, names) for _, names, _ in aliases if any(n in d for n in names)
    }
    extra = {key: value for key, value in d.items() if key not in consumed}
    if bad:
        extra.update(bad)
    return MappingProxyType(extra) if extra else models.EMPTY_EXTRA


def _make_unstructure_fn(cls: type) -> Callable[[Any], dict[str, Any]]:
    fields = [(f.name, f.metadata["wire"][0]) for f in attrs.fields(cls) if "wire" in f.metadata]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, wire_name in fields:
            out[wire_name] = _to_wire_value(getattr(obj, name))
        out.update(obj.extra)
        return out

    return unstructure


def _to_wire_value(value: Any) -> Any:
    if value is None or value.__class__ in (str, int, bool, float):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, tuple):
        return [_to_wire_value(item) for item in value]
    if attrs.has(type(value)):
        return _make_unstructure_fn(type(value))(value)
    return value


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the form OData filters and JSON output use."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


# -- the converter ---------------------------------------------------------------------------------


class WireConverter(cattrs.Converter):
    """A cattrs converter with a generated structure hook per model class.

    ``strict`` chooses what a known field with a wrongly typed value does (see the module docstring).
    """

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict
        self._structure_fns: dict[type, Callable[[dict[str, Any]], Any]] = {}
        self.register_structure_hook_factory(_is_model, self._hook_factory)
        self.register_unstructure_hook_factory(_is_model, _make_unstructure_fn)

    def structure_fn(self, cls: type[T]) -> Callable[[dict[str, Any]], T]:
        """The generated function for ``cls``: takes a dict, trusts that it is one."""
        fn: Callable[[dict[str, Any]], Any] | None = self._structure_fns.get(cls)
        if fn is None:
            fn = self._structure_fns[cls] = _Gen(cls, self.strict, self.structure_fn).build()
        return fn

    def _hook_factory(self, cls: type) -> Callable[[Any, type], Any]:
        fn: Callable[[dict[str, Any]], Any] = self.structure_fn(cls)

        def hook(value: Any, _: type) -> Any:
            if value.__class__ is not dict:
                raise UnexpectedResponseError(
                    f"expected a JSON object for {cls.__name__}, got {type(value).__name__}"
                )
            return fn(value)

        return hook


def make_converter(*, strict: bool = False) -> WireConverter:
    """A new converter; the library shares :data:`converter` and :data:`strict_converter`."""
    return WireConverter(strict=strict)


converter = make_converter()
strict_converter = make_converter(strict=True)


def structure_items(items: Any, cls: type[T], *, conv: WireConverter = converter) -> list[T]:
    """Structure a page's ``value`` array; anything but a list of objects is an unexpected response."""
    if items.__class__ is not list:
        raise UnexpectedResponseError(
            f"expected 'value' to be a JSON array, got {type(items).__name__}"
        )
    structure = conv.structure_fn(cls)
    out: list[T] = []
    for position, item in enumerate(items):
        if item.__class__ is not dict:
            raise UnexpectedResponseError(
                f"item {position} of 'value' is {type(item).__name__}, expected a "
                f"{cls.__name__} object"
            )
        out.append(structure(item))
    return out
