"""The one cattrs converter: wire JSON (PascalCase, enums, dates) to models and back.

For each model class a structure function is generated once, as Python source compiled on first use
(the same technique cattrs and attrs use for their own generated code), so structuring an item does
no reflection: one ``dict.get`` per field, a type check, then the object built as attrs' frozen
``__init__`` builds it (``object.__new__`` and one store per attribute) without its keyword parsing.
The source is registered with :mod:`linecache`, so a traceback through it shows its lines. A class
that ``__init__`` would build differently (an ``attrs.Factory`` default, ``cache_hash=True``, a
validator, a converter, a post-init hook) is refused with a :class:`TypeError` when its function is
built, instead of coming out wrong.

Rules, the same for every model:

* a field is read from the first of its wire names present (real shape first, spec shape after);
* keys the model does not know, and an alias that lost to another alias, are kept in ``extra``;
* datetimes become timezone-aware UTC (``Z``, offsets, naive = UTC, 0 to 7 fractional digits);
* enums keep unknown values (see :class:`~servicecomms_async._modeling.OpenStrEnum`);
* lenient (default): a known field whose value has the wrong type becomes ``None`` (or an empty tuple),
  its raw value is kept in ``extra`` under its wire name and a warning is logged;
  strict: :class:`~servicecomms_async.errors.InvalidFieldError` names the item, the field and its wire name.
"""

from __future__ import annotations

import linecache
import logging
import operator
import re
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType, MemberDescriptorType, NoneType, UnionType
from typing import Any, TypeVar

import attrs
import cattrs

from ._modeling import EMPTY_EXTRA
from .errors import InvalidFieldError, UnexpectedResponseError

__all__ = [
    "InvalidValue",
    "WireConverter",
    "converter",
    "format_datetime",
    "make_converter",
    "parse_datetime",
    "strict_converter",
    "structure_items",
]

# The name callers already configure (the converter lived in ``convert`` until it moved here).
logger = logging.getLogger("servicecomms_async.convert")

T = TypeVar("T")
UTC = timezone.utc
_MISSING = object()


class InvalidValue(ValueError):
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


_fromisoformat = datetime.fromisoformat


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
    # parse_datetime inlined: this runs several times per message, and a call is not free.
    if value.__class__ is not str:
        raise InvalidValue("expected an ISO 8601 date-time string")
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        parsed = _parse_datetime_slow(value)
    tz = parsed.tzinfo
    if tz is UTC:
        return parsed
    try:
        return parsed.replace(tzinfo=UTC) if tz is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # out of range once moved to UTC
        raise InvalidValue(str(exc)) from None


_MAX_INT_DIGITS = 40  # far beyond any count or id the services send


def _to_int(value: Any) -> int:
    if value.__class__ is int:
        return value
    if value.__class__ is str:  # the PnP model types AnnouncementId as a string
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        # ASCII only ("²".isdigit() is true) and short: int() refuses 4,300+ digits with a ValueError.
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_INT_DIGITS:
            return int(text)
    raise InvalidValue("expected an integer")


def _to_bool(value: Any) -> bool:
    if value.__class__ is bool:
        return value
    if value.__class__ is str and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidValue("expected a boolean")


def _to_str_tuple(value: Any) -> tuple[str, ...]:
    if value.__class__ is not list:
        raise InvalidValue("expected a list of strings")
    for item in value:
        if item.__class__ is not str:
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


# -- code generation -------------------------------------------------------------------------------


def _is_model(cls: Any) -> bool:
    """A wire model: an attrs class whose fields name their wire keys (legacy or Graph models)."""
    return (
        isinstance(cls, type)
        and attrs.has(cls)
        and any("wire" in f.metadata for f in attrs.fields(cls))
    )


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, UnionType)) and NoneType in args:
        rest = [a for a in args if a is not NoneType]
        return rest[0] if len(rest) == 1 else tp
    return tp


# How many key shapes of one class get a fast path of their own (see _Gen.learner), per converter: a
# page's items come in a few shapes (a legacy incident has 24 keys, a Message Center post 40), and
# hostile input must not make the converter compile without end.
_MAX_SHAPES = 16
# A shape gets its path the second time its keys are seen; this many key sequences wait for that.
_MAX_PENDING = 64


class _Gen:
    """Builds the source of one class's structure functions.

    The general function reads each field with one ``dict.get`` (a sentinel only where aliases or a
    non-null default make "absent" differ from ``null``), converts it inline or with one call, and
    checks for unknown keys (and aliases) with one C-level keys-view test, not a count per field.
    It then builds the object the way attrs' own frozen ``__init__`` does, minus the keyword
    parsing: ``object.__new__`` and one store per attribute that bypasses the frozen
    ``__setattr__`` (see :func:`_store_code`). Classes whose ``__init__`` would do more than store
    its arguments are refused when the function is built (see :func:`_check_buildable`).

    Most items of a page have the same keys, so a key shape seen twice gets a function of its own
    (see :meth:`shape_function`), which the general one calls first for a dict of that length. It
    reads exactly the shape's keys with one ``itemgetter`` call (which also proves the dict has that
    shape), converts them like the general function, stores the defaults of the absent fields as
    constants and needs no unknown-key test.
    """

    def __init__(self, cls: type, strict: bool, structure_model: Callable[[type], Any]) -> None:
        self.cls = cls
        self.strict = strict
        self.structure_model = structure_model
        self.globals: dict[str, Any] = {
            "_M": _MISSING,
            "_Invalid": InvalidValue,
            "_cls": cls,
            "_new": object.__new__,
            "_str": str,
            "_list": list,
            "_dict": dict,
            "_tuple": tuple,
            "_len": len,
            "_keys_of": tuple,
        }
        attrs.resolve_types(cls)
        self.all_fields = attrs.fields(cls)
        self.fields = [f for f in self.all_fields if "wire" in f.metadata]
        _check_buildable(cls, self.all_fields, self.fields)
        self.known = frozenset(n for f in self.fields for n in f.metadata["wire"])

    def const(self, name: str, value: Any) -> str:
        self.globals[name] = value
        return name

    def field_value_code(
        self, index: int, field: attrs.Attribute[Any], target: str, v: str
    ) -> list[str]:
        """Lines that convert ``v`` (present, not None) into ``target``; may raise _Invalid."""
        tp = _unwrap_optional(field.type)
        if tp is str:
            return [
                f"if {v}.__class__ is _str: {target} = {v}",
                "else: raise _Invalid('expected a string')",
            ]
        if tp is Any or tp is object:
            return [f"{target} = {v}"]
        origin = typing.get_origin(tp)
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            if item_tp is str:
                conv = self.const(f"_c{index}", _to_str_tuple)
            elif _is_model(item_tp):
                return self.nested_list_code(index, item_tp, target, v)
            else:
                conv = self.const(f"_c{index}", _to_raw_tuple)
            return [f"{target} = {conv}({v})"]
        if _is_model(tp):  # one nested object, e.g. a Graph message's body
            structure = self.nested_structure(index, tp)
            return [
                f"if {v}.__class__ is _dict: {target} = {structure}({v})",
                f"else: raise _Invalid({f'expected a {tp.__name__} object'!r})",
            ]
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
        return [f"{target} = {conv}({v})"]

    @staticmethod
    def null_value(field: attrs.Attribute[Any]) -> Any:
        """What a JSON ``null`` becomes: an empty tuple for list fields, else None."""
        return () if typing.get_origin(_unwrap_optional(field.type)) is tuple else None

    def nested_structure(self, index: int, cls: type) -> str:
        """The global name, ``_s<index>``, of the structure function of the nested model ``cls``.

        It is resolved on first use (a model may, one day, nest itself, and its own function would
        not exist yet): until then the name is bound to a stand-in that resolves it, rebinds the
        name to the real function and calls that.
        """
        name, shapes = f"_s{index}", f"_sh{index}"
        structure_model, namespace = self.structure_model, self.globals

        def resolve_then_structure(value: dict[str, Any]) -> Any:
            structure = namespace[name] = structure_model(cls)
            # Its key shapes' paths, so that a list of these is read without the general
            # function's call in between (see nested_list_code).
            namespace[shapes] = getattr(structure, "shape_of", _no_shape)
            return structure(value)

        self.const(shapes, _no_shape)  # until resolved: every item takes the general function
        return self.const(name, resolve_then_structure)

    def nested_list_code(self, index: int, item_cls: type, target: str, v: str) -> list[str]:
        """Lines that structure a list of nested models (a message's posts) without a call per list."""
        structure = self.nested_structure(index, item_cls)
        expected = f"expected a list of {item_cls.__name__} objects"
        # A model the wire may send as a bare string says how (see _modeling).
        from_string = getattr(item_cls, "from_wire_string", None)
        if from_string is not None:  # Service.features: the spec sends bare names
            make = self.const(f"_from{index}", from_string)
            other = f"elif i.__class__ is _str: x.append({make}(i))"
        else:
            other = ""
        return [
            f"if {v}.__class__ is not _list: raise _Invalid({expected!r})",
            "x = []",
            f"for i in {v}:",
            "    if i.__class__ is _dict:",
            # The path of the item's key shape when it has one, as the general function would
            # take it; the general function itself otherwise (it learns new shapes).
            f"        p = _sh{index}(_keys_of(i))",
            "        n = p(i) if p else _M",
            f"        x.append(n if n is not _M else {structure}(i))",
            *([f"    {other}"] if other else []),
            f"    else: raise _Invalid({expected!r})",
            f"{target} = _tuple(x)",
        ]

    def build(self) -> Callable[[dict[str, Any]], Any]:
        fields = self.fields
        aliases = tuple((f.name, f.metadata["wire"], f.default) for f in fields)
        self.const("_aliases", aliases)
        self.const("_extra_of", _extra_of)
        self.const("_on_invalid", _strict_invalid if self.strict else _lenient_invalid)
        self.const("_E", EMPTY_EXTRA)
        # "Every key is a field's first name": no unknown key and no alias, so extra is empty. An
        # alias that lost to another name of its field belongs in extra; _extra_of sorts that out,
        # so this test needs only "no alias at all" (the real service never sends one). A keys view
        # compared with a frozenset looks each key up, building no temporary set.
        self.const("_first_names", frozenset(f.metadata["wire"][0] for f in fields))
        shapes: dict[tuple[str, ...], Callable[[dict[str, Any]], Any] | bool] = {}
        self.const("_shape", shapes.get)
        self.const("_seen", self.learner(shapes))
        lines = [
            "def structure(d):",
            "    if d.__class__ is _dict:  # the path of this key shape, when it has been seen before",
            "        fast = _shape(_keys_of(d))",
            "        if fast:",
            "            o = fast(d)",
            "            if o is not _M: return o",
            "        elif fast is None: _seen(d)",
            "    bad = None",
            "    _g = d.get",
        ]
        for index, field in enumerate(fields):
            lines.extend(f"    {line}" for line in self.field_code(index, field, f"a{index}"))
        lines.append("    if bad is None and d.keys() <= _first_names: extra = _E")
        lines.append("    else: extra = _extra_of(d, _aliases, bad)")
        lines.append("    o = _new(_cls)")
        local = {f.name: f"a{index}" for index, f in enumerate(fields)} | {"extra": "extra"}
        lines.extend(f"    {_store_code(self, f.name, local[f.name])}" for f in self.all_fields)
        lines.append("    return o")
        fn = _compile(self.cls.__qualname__, self.strict, lines, self.globals)
        fn.shape_of = shapes.get  # type: ignore[attr-defined]
        return fn

    def learner(
        self, shapes: dict[tuple[str, ...], Callable[[dict[str, Any]], Any] | bool]
    ) -> Callable[[dict[str, Any]], None]:
        """``_seen(d)``: called by the general function for a dict whose keys have no path yet.

        The second time a key sequence is seen, it gets a path of its own (or ``False`` when it
        names two wire names of one field). The keys in their order index the paths: real pages
        hold many shapes of the same length (an incident and a Message Center post), and a JSON
        source writes one shape's keys in one order, so ``tuple(d)`` finds the path without a
        miss. At most ``_MAX_SHAPES`` paths are made per class.
        """
        pending: set[tuple[str, ...]] = set()

        def seen(d: dict[str, Any]) -> None:
            key = tuple(d)
            if len(shapes) >= _MAX_SHAPES or key in shapes:
                return
            if key not in pending:
                if len(pending) < _MAX_PENDING:
                    pending.add(key)
                return
            pending.discard(key)
            shapes[key] = self.shape_function(key) or False

        return seen

    def shape_function(self, keys: tuple[str, ...]) -> Callable[[dict[str, Any]], Any] | None:
        """The path of the dicts whose keys are ``keys`` (any order), or None when two of them name
        one field (the general function decides which one wins, and keeps the other in extra).

        ``itemgetter`` raises ``KeyError`` when one of the keys is missing; as the caller chose the
        path by length, a dict it reads has exactly these keys. It reads them all before converting
        anything, so a dict of another shape leaves no trace (a warning, an exception) behind.
        """
        present = set(keys)
        reads: list[tuple[str, str]] = []  # (local, wire name), in field order, then unknown keys
        values: dict[str, str] = {}  # field name -> local or constant the store takes
        body: list[str] = []
        for index, field in enumerate(self.fields):
            names = [n for n in field.metadata["wire"] if n in present]
            if len(names) > 1:
                return None
            if not names:  # absent: its default, as the general function gives it
                default = field.default
                values[field.name] = (
                    "None" if default is None else self.const(f"_d{index}", default)
                )
                continue
            reads.append((f"v{index}", names[0]))
            values[field.name] = f"a{index}"
            body.extend(self.convert_code(index, field, f"a{index}", f"v{index}", "if"))
        unknown = [key for key in keys if key not in self.known]
        reads.extend(("_", key) for key in unknown)
        n = len(keys)
        lines = [f"def structure_{n}_keys(d):", "    bad = None"]
        if len(reads) == 1:
            local, key = reads[0]
            lines += ["    try:", f"        {local} = d[{key!r}]"]
            lines.append("    except KeyError: return _M  # other keys: the general function")
        elif reads:
            getter = self.const(f"_keys{n}", operator.itemgetter(*(key for _, key in reads)))
            lines += ["    try:", "        ("]
            lines.extend(f"            {local},  # {key!r}" for local, key in reads)
            lines.append(f"        ) = {getter}(d)")
            lines.append("    except KeyError: return _M  # other keys: the general function")
        lines.extend(f"    {line}" for line in body)
        if unknown:  # the order of d, as _extra_of keeps it
            self.const("_unknown_of", _unknown_of)
            self.const("_known", self.known)
            lines.append("    if bad is None: extra = _unknown_of(d, _known)")
        else:
            lines.append("    if bad is None: extra = _E")
        lines.append("    else: extra = _extra_of(d, _aliases, bad)")
        lines.append("    o = _new(_cls)")
        values["extra"] = "extra"
        lines.extend(f"    {_store_code(self, f.name, values[f.name])}" for f in self.all_fields)
        lines.append("    return o")
        what = f"{self.cls.__qualname__}, {n} keys"
        return _compile(what, self.strict, lines, self.globals, f"structure_{n}_keys")

    def field_code(self, index: int, field: attrs.Attribute[Any], target: str) -> list[str]:
        """Lines that set ``target`` from the wire object ``d`` (default, null, value or invalid)."""
        names: tuple[str, ...] = field.metadata["wire"]
        default = "None" if field.default is None else self.const(f"_d{index}", field.default)
        # When "absent" and "null" give the same value, one plain get() covers both.
        if len(names) == 1 and field.default == self.null_value(field):
            lines = [f"v = _g({names[0]!r})"]
            branch = "if"
        else:
            lines = [f"v = _g({names[0]!r}, _M)", *_alias_lookup(names, depth=0)]
            lines.append(f"if v is _M: {target} = {default}")
            branch = "elif"
        return lines + self.convert_code(index, field, target, "v", branch)

    def convert_code(
        self, index: int, field: attrs.Attribute[Any], target: str, v: str, branch: str
    ) -> list[str]:
        """Lines that set ``target`` from the present value ``v`` (null, value or invalid); the
        first starts with ``branch`` ("if", or "elif" after an "absent" test)."""
        null = "()" if self.null_value(field) == () else "None"
        default = "None" if field.default is None else self.const(f"_d{index}", field.default)
        invalid = f"{target} = {default}; bad = _on_invalid(bad, _cls, d, {index}, {v}, exc)"
        tp = _unwrap_optional(field.type)
        lines: list[str] = []
        if tp is str:  # the commonest field: checked inline, no call
            lines.append(f"{branch} {v} is None or {v}.__class__ is _str: {target} = {v}")
            lines.append(f"else: exc = _Invalid('expected a string'); {invalid}")
            return lines
        if null == "()":  # most lists the service sends are empty: no call for those
            lines.append(
                f"{branch} {v} is None or ({v}.__class__ is _list and not {v}): {target} = ()"
            )
        else:
            lines.append(f"{branch} {v} is None: {target} = None")
        lines.append("else:")
        convert = self.field_value_code(index, field, target, v)
        fast: list[str] = []
        if tp is datetime:
            # The service's own form ("...Z") parses in C to an aware UTC datetime; anything else
            # (an offset, naive, 7 digits before 3.11, not a string) goes through _to_datetime.
            self.const("_fromiso", _fromisoformat)
            self.const("_UTC", UTC)
            fast = [
                f"try: x = _fromiso({v})",
                "except (TypeError, ValueError): x = None",
                f"if x is not None and x.tzinfo is _UTC: {target} = x",
            ]
        elif isinstance(tp, type) and issubclass(tp, Enum):  # a known member: one C-level lookup
            known = self.const(f"_k{index}", tp._value2member_map_.get)
            fast = [
                f"x = {known}({v}) if {v}.__class__ is _str else None",
                f"if x is not None: {target} = x",
            ]
        slow = ["try:", *(f"    {code}" for code in convert), f"except _Invalid as exc: {invalid}"]
        if fast:
            lines.extend(f"    {code}" for code in fast)
            lines.append("    else:")
            lines.extend(f"        {code}" for code in slow)
        else:
            lines.extend(f"    {code}" for code in slow)
        return lines


def _alias_lookup(names: tuple[str, ...], depth: int) -> list[str]:
    """After ``v = _g(names[0], _M)``: when absent, try the next alias, and so on."""
    rest = names[1:]
    if not rest:
        return []
    pad = "    " * depth
    lines = [f"{pad}if v is _M:", f"{pad}    v = _g({rest[0]!r}, _M)"]
    lines.extend(_alias_lookup(rest, depth + 1))
    return lines


# attrs keeps a cached hash in this attribute (cache_hash=True); no public API names it.
_ATTRS_HASH_CACHE = "_attrs_cached_hash"


def _check_buildable(
    cls: type,
    all_fields: tuple[attrs.Attribute[Any], ...],
    wire_fields: list[attrs.Attribute[Any]],
) -> None:
    """Refuse, when its function is built, a class the generated code would build wrongly.

    The generated code stores each attribute itself, as attrs' ``__init__`` would, so whatever else
    that ``__init__`` does would silently not happen: a ``Factory`` default would be stored as the
    ``Factory`` object, a cached hash would be left unset. Such a class is a :class:`TypeError`
    naming it (and the field), not a wrong object later.
    """
    name = cls.__qualname__
    for field in all_fields:
        where = f"{name}.{field.name}"
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            raise TypeError(
                f"{where}: the wire converter cannot build a field whose default is an "
                "attrs.Factory (it would store the Factory object itself); use a constant default"
            )
        if not field.init or field.validator is not None or field.converter is not None:
            raise TypeError(
                f"{where}: the wire converter builds models without __init__, so it refuses a "
                "field with init=False, a validator or a converter"
            )
        if field not in wire_fields and field.name != "extra":
            raise TypeError(
                f"{where}: the wire converter sets only wire fields and 'extra'; this field has "
                "no wire names"
            )
    if not any(f.name == "extra" for f in all_fields):
        raise TypeError(
            f"{name}: a wire model needs an 'extra' field for the keys it does not know"
        )
    if _caches_hash(cls):
        raise TypeError(
            f"{name}: the wire converter cannot build a class with cache_hash=True (the cached "
            "hash is set by attrs' __init__, which the converter does not call)"
        )
    for hook in ("__attrs_pre_init__", "__attrs_post_init__"):
        if hasattr(cls, hook):
            raise TypeError(f"{name}: the wire converter does not call {hook}; remove it")


def _caches_hash(cls: type) -> bool:
    if _ATTRS_HASH_CACHE in getattr(cls, "__slots__", ()):
        return True
    code = getattr(cls.__dict__.get("__hash__"), "__code__", None)
    return code is not None and _ATTRS_HASH_CACHE in code.co_names


def _store_code(gen: _Gen, name: str, local: str) -> str:
    """The line that stores ``local`` as attribute ``name`` of the new object ``o``.

    A frozen class's ``__setattr__`` raises, so attrs' ``__init__`` stores with
    ``object.__setattr__``. For a slot, that finds the slot's descriptor on the class and calls its
    ``__set__``; calling that ``__set__`` directly skips the lookup and halves the cost of a store,
    and is the same store. Anything else (an instance ``__dict__``) goes through
    ``object.__setattr__``.
    """
    descriptor = next((k.__dict__[name] for k in gen.cls.__mro__ if name in k.__dict__), None)
    if isinstance(descriptor, MemberDescriptorType):
        return f"{gen.const(f'_set_{name}', descriptor.__set__)}(o, {local})"
    gen.const("_setattr", object.__setattr__)
    return f"_setattr(o, {name!r}, {local})"


def _compile(
    what: str, strict: bool, lines: list[str], namespace: dict[str, Any], name: str = "structure"
) -> Callable[[dict[str, Any]], Any]:
    """Compile the generated function ``name``, its source registered with :mod:`linecache` under
    a name of its own, so a traceback through it shows the line that raised."""
    source = "\n".join(lines) + "\n"
    filename = _unique_filename(f"{what}{' (strict)' if strict else ''}", source)
    local: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace, local)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    fn: Callable[[dict[str, Any]], Any] = local[name]
    return fn


def _unique_filename(what: str, source: str) -> str:
    """``<servicecomms generated structure Message>``, numbered when another source has that name
    (two classes with one name, or two converters with different rules)."""
    base = f"<servicecomms generated structure {what}"
    filename, count = f"{base}>", 1
    while True:
        cached = linecache.cache.get(filename)
        if cached is None or (len(cached) == 4 and "".join(cached[2]) == source):
            return filename
        count += 1
        filename = f"{base}-{count}>"


def _no_shape(keys: tuple[str, ...]) -> None:
    return None


def _matched_wire_name(d: Mapping[str, Any], names: tuple[str, ...]) -> str:
    return next((name for name in names if name in d), names[0])


def _invalid_field(cls: type, d: Mapping[str, Any], index: int) -> tuple[str, str, Any]:
    """The field ``index`` of ``cls`` whose value was invalid: its name, the wire name it came under,
    and the item's id (``Id`` for legacy models, ``id`` for Graph ones) for the message."""
    fields = [f for f in attrs.fields(cls) if "wire" in f.metadata]
    field = fields[index]
    id_names = next((f.metadata["wire"] for f in fields if f.name == "id"), ())
    item_id = next((d[name] for name in id_names if name in d), None)
    return field.name, _matched_wire_name(d, field.metadata["wire"]), item_id


def _lenient_invalid(
    bad: dict[str, Any] | None,
    cls: type,
    d: Mapping[str, Any],
    index: int,
    value: Any,
    exc: InvalidValue,
) -> dict[str, Any]:
    field, wire_name, item_id = _invalid_field(cls, d, index)
    logger.warning(
        "%s %r: field %r (wire name %r) has an invalid value (%s); kept the raw value in .extra",
        cls.__name__,
        item_id,
        field,
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
    field, wire_name, item_id = _invalid_field(cls, d, index)
    raise InvalidFieldError(
        model=cls.__name__,
        field=field,
        wire_name=wire_name,
        value=value,
        item_id=item_id,
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
    return MappingProxyType(extra) if extra else EMPTY_EXTRA


def _unknown_of(d: Mapping[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    """``_extra_of`` for a dict whose known keys all name different fields and converted cleanly."""
    return MappingProxyType({key: value for key, value in d.items() if key not in known})


def _make_unstructure_fn(cls: type) -> Callable[[Any], dict[str, Any]]:
    """The wire dict of a model, made once per class: real-shape names, then ``extra`` on top."""
    cached = _UNSTRUCTURE_FNS.get(cls)
    if cached is not None:
        return cached
    fields = [(f.name, f.metadata["wire"][0]) for f in attrs.fields(cls) if "wire" in f.metadata]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, wire_name in fields:
            value = getattr(obj, name)
            out[wire_name] = (
                value if value is None or value.__class__ in _PLAIN else _to_wire_value(value)
            )
        out.update(obj.extra)
        return out

    _UNSTRUCTURE_FNS[cls] = unstructure
    return unstructure


_UNSTRUCTURE_FNS: dict[type, Callable[[Any], dict[str, Any]]] = {}
_PLAIN = frozenset({str, int, bool, float})


def _to_wire_value(value: Any) -> Any:
    if value is None or value.__class__ in _PLAIN:
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
    """ISO 8601 in UTC with a ``Z`` and no trailing zero digits (``2020-08-21T18:59:16.387Z``), the
    form the service itself sends; naive datetimes are taken as UTC."""
    tz = value.tzinfo
    if tz is not UTC:
        value = value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 on glibc ("1-01-01"), which neither an OData
    # literal nor parse_datetime accepts.
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


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
    structure: Callable[[dict[str, Any]], Any] = (
        _as_is if cls is dict else conv.structure_fn(cls)  # dict: Graph's JSON objects untouched
    )
    out: list[T] = []
    for position, item in enumerate(items):
        if item.__class__ is not dict:
            raise UnexpectedResponseError(
                f"item {position} of 'value' is {type(item).__name__}, expected a "
                f"{cls.__name__} object"
            )
        out.append(structure(item))
    return out


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item
