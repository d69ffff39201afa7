"""The bounded hand-off between a camera's decoder and its publisher, with a named drop policy."""

from __future__ import annotations

import collections
import threading
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
DropPolicy = Literal["drop_oldest", "block"]


class FrameQueue(Generic[T]):
    """`drop_oldest` (live video: fresh frames matter) or `block` (file replay: lossless, in order)."""

    def __init__(self, maxsize: int, policy: DropPolicy) -> None:
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T, stop: threading.Event | None = None) -> bool:
        """Add an item; returns False only if the queue was closed (or stop set) while blocking."""
        with self._cond:
            while len(self._items) >= self.maxsize and not self._closed:
                if self.policy == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                    break
                self._cond.wait(0.1)
                if stop is not None and stop.is_set():
                    return False
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None after `timeout` or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self, final: T | None = None) -> None:
        """No more puts. `final` (e.g. an end-of-stream marker) is appended beyond the bound, so it
        is the last item handed out, after everything queued before it, and closing never blocks."""
        with self._cond:
            if final is not None and not self._closed:
                self._items.append(final)
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)
