"""Injectable time: the library measures timeouts and paces requests on a :class:`Clock`."""

from __future__ import annotations

import collections
import time
from typing import Protocol

import anyio

__all__ = ["RETENTION", "Clock", "Recent", "SystemClock"]

#: how long an activation's record (codes handed out, a push remembered, its purchase) outlives its
#: last use: longer than any provider keeps an activation open (20 minutes, 25 for some)
RETENTION = 30 * 60.0


class Clock(Protocol):
    """Time for the client (injectable: tests pass a fake that moves only when asked)."""

    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""


class SystemClock:
    """The event loop's clock (``anyio.current_time()``, monotonic) and ``anyio.sleep``: real time,
    or virtual time where the loop's clock is (trio's ``MockClock``, ``looptime``)."""

    def now(self) -> float:
        """Monotonic seconds of the running event loop (``time.monotonic`` outside one)."""
        try:
            return anyio.current_time()
        except Exception:  # no event loop running
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep in the event loop."""
        await anyio.sleep(max(0.0, seconds))


class Recent:
    """Ids remembered for a while: bounded by age (``retention`` of ``clock`` time) and by count."""

    __slots__ = ("_clock", "_items", "limit", "retention")

    def __init__(self, clock: Clock, retention: float = RETENTION, limit: int = 100_000) -> None:
        self._clock = clock
        self._items: collections.OrderedDict[int, float] = collections.OrderedDict()
        self.retention = retention
        self.limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: int) -> float | None:
        return self._items.get(key)

    def __setitem__(self, key: int, when: float) -> None:
        self._items[key] = when
        self._items.move_to_end(key)
        self.prune()

    def add(self, key: int) -> None:
        self[key] = self._clock.now()

    def pop(self, key: int) -> float | None:
        return self._items.pop(key, None)

    def prune(self) -> None:
        items, horizon = self._items, self._clock.now() - self.retention
        while items and (len(items) > self.limit or next(iter(items.values())) < horizon):
            items.popitem(last=False)
            if not items:
                self._items = collections.OrderedDict()  # a dict never shrinks: give back its peak
