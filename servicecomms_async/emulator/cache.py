"""A bounded least-recently-used mapping used for all emulator caches."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Keeps at most ``max_items`` entries and at most ``max_weight`` total weight.

    ``weigh`` gives an entry's weight (default 1 per entry, so both limits count
    entries). A single entry heavier than ``max_weight`` is not stored at all, so one
    huge response cannot evict everything else. Not thread-safe: the emulator only
    touches it from the event loop thread.
    """

    def __init__(
        self,
        max_items: int,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._max_items = max_items
        self._max_weight = max_weight
        self._weigh = weigh
        self._weight = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh is not None else 1
        if self._max_weight is not None and weight > self._max_weight:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self._weight -= old[1]
        self._data[key] = (value, weight)
        self._weight += weight
        while len(self._data) > self._max_items or (
            self._max_weight is not None and self._weight > self._max_weight
        ):
            _, (_, w) = self._data.popitem(last=False)
            self._weight -= w

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = factory()
            self.put(key, value)
        return value

    def clear(self) -> None:
        self._data.clear()
        self._weight = 0
