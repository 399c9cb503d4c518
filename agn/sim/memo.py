"""Results remembered by the identity of the objects they were built from (LRU, bounded)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class IdentityMemo:
    """``memo(objs, build, tag)``: ``build()`` once per (``tag``, identities of ``objs``).

    The objects are kept alive with the result (so their ids stay theirs); past ``size``
    entries the least recently used goes. For values derived from frozen objects (IR arrays,
    multipliers, term splits) that are built again and again otherwise.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"IdentityMemo: size expected >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[tuple, tuple[tuple[object, ...], object]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, objs: tuple[object, ...], build: Callable[[], T], tag: object = 0) -> T:
        key = (tag, *(id(o) for o in objs))
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and all(a is b for a, b in zip(hit[0], objs)):
                self._items.move_to_end(key)
                return hit[1]  # type: ignore[return-value]
        value = build()
        with self._lock:
            self._items[key] = (objs, value)
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
