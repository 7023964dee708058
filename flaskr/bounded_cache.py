"""A least-recently-used store bounded by the bytes it holds, not by its number of entries.

A cache bounded by entries is bounded in memory only while every entry is small: one user
who posts a body that renders to megabytes makes each entry that size. Here every key and
value is weighed when stored (``sys.getsizeof``: what CPython holds for it), the oldest
entries go until the total fits, and an entry heavier than ``max_item_bytes`` is not kept at
all, so one huge page can neither take the whole budget nor push everything else out.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


def size_of(value: Any) -> int:
    """Count the bytes CPython holds for ``value``.

    That is strings and bytes themselves, and the parts of the tuples and dicts (a view's
    ``(body, status, headers)``) that hold them.
    """
    size = sys.getsizeof(value)
    if isinstance(value, tuple):
        size += sum(size_of(item) for item in value)
    elif isinstance(value, dict):
        size += sum(size_of(k) + size_of(v) for k, v in value.items())
    return size


class BoundedCache:
    """Least recently used goes first; safe for gthread workers' threads."""

    def __init__(self, max_bytes: int, max_entries: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = max_bytes // 8
        self.max_entries = max_entries
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value stored under ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any) -> bool:
        """Keep ``value`` unless it alone weighs more than ``max_item_bytes``; say if kept."""
        size = size_of(key) + size_of(value)
        if size > self.max_item_bytes:
            return False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes or (
                self.max_entries is not None and len(self._entries) > self.max_entries
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return True

    def __len__(self) -> int:
        return len(self._entries)
