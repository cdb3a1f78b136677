"""What every model is made of: open enums that keep values they do not know, fields that name their wire
keys, and the ``extra`` mapping that keeps keys a model does not know.

Every model, legacy or Graph, is a frozen, slotted attrs class whose fields are the snake_case form of
the wire's keys. A field's metadata names its wire keys: the first is the one the real service sent,
the others are aliases from the documented ("spec") shape, so both shapes structure into the same
classes. Keys a model does not know are kept, untouched, in ``extra``. A model that the wire may also
send as a bare string (the spec's ``FeatureNames``) has a ``from_wire_string`` classmethod. The converter
(:mod:`servicecomms_async._wire`) reads these declarations once per class and generates its code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

EMPTY_EXTRA: Mapping[str, Any] = MappingProxyType({})

# Unknown enum values get a pseudo-member each; this caps how many a hostile server can make us keep.
_MAX_UNKNOWN_MEMBERS = 256


class OpenStrEnum(str, enum.Enum):
    """A ``str`` enum that keeps values it does not know instead of raising.

    ``Status("SomethingNew")`` returns a member whose ``.value`` is ``"SomethingNew"`` and whose
    ``.is_known`` is false, so a new service value never breaks a scan and nothing is lost.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenStrEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        if len(cls._value2member_map_) < len(cls.__members__) + _MAX_UNKNOWN_MEMBERS:
            cls._value2member_map_[value] = member
        return member

    @property
    def is_known(self) -> bool:
        """Whether the value is one this library version knows."""
        return self._name_ != "UNKNOWN"

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {self.value!r}>"


def wire(*names: str, default: Any = None) -> Any:
    """An attrs field read from the first of ``names`` present in the wire object."""
    return attrs.field(default=default, kw_only=True, metadata={"wire": names})


def extra_field() -> Any:
    """The ``extra`` attribute every model has: wire keys it does not know, kept untouched."""
    return attrs.field(default=EMPTY_EXTRA, kw_only=True, repr=False, eq=False)


class CaseInsensitiveEnum(OpenStrEnum):
    """An :class:`OpenStrEnum` that also matches its values whatever their case."""

    @classmethod
    def _missing_(cls, value: object) -> OpenStrEnum | None:
        if isinstance(value, str):
            lowered = value.lower()
            for member in cls:
                if member.value.lower() == lowered:
                    return member
        return super()._missing_(value)


def wire_names(cls: type) -> dict[str, tuple[str, ...]]:
    """Map each field of a model to its wire names (first = the real service's)."""
    return {f.name: f.metadata["wire"] for f in attrs.fields(cls) if "wire" in f.metadata}
