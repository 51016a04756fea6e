"""Deadlines: every waiter woken at its own deadline, whatever the poller is doing.

One task the client owns (:class:`TaskHost`) watches a heap of deadlines on the client's clock — not
a cancel scope per waiter (memory), and not the poller, since a slow server can hold a tick but must
not hold a deadline. The scheduler adds each waiter when it registers; a waiter that leaves early is
dropped from the heap once such leftovers outnumber the live ones.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ._tasks import LoopJob

if TYPE_CHECKING:
    from ._clock import Clock
    from ._tasks import TaskHost

__all__ = ["Deadlines", "Timed"]


class _Alarm(Protocol):
    def set(self) -> None: ...


class Timed(Protocol):
    """What the watcher needs of a waiter: when it ends, whether it has already, and how to wake it."""

    @property
    def deadline(self) -> float: ...
    @property
    def done(self) -> bool: ...
    @property
    def wake(self) -> _Alarm: ...


W = TypeVar("W", bound=Timed)


class Deadlines(Generic[W]):
    """The deadline watcher of one scheduler: ``add`` a waiter as it registers, ``expire`` at any
    moment (the poller does too: an injected clock may run ahead of the event loop's)."""

    def __init__(self, clock: Clock, host: TaskHost, *, active: Callable[[], bool],
                 registered: Callable[[W], bool]) -> None:
        self._clock = clock
        self._host = host
        self._active = active  # anyone waiting, and the scheduler open
        self._registered = registered
        self._heap: list[tuple[float, int, W]] = []
        self._order = itertools.count()
        self._watcher = LoopJob("smsactivate_async deadlines")

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, waiter: W) -> None:
        """Watch ``waiter``'s deadline: the watcher runs, and wakes by then."""
        heapq.heappush(self._heap, (waiter.deadline, next(self._order), waiter))
        if self._active():
            self._watcher.wake(self._host, self._watch, waiter.deadline)

    def prune(self, live: int) -> None:
        """A waiter that left early would stay in the heap until its deadline: drop such leftovers
        once they outnumber the ``live`` waiters."""
        if len(self._heap) > 64 and len(self._heap) > 2 * live:
            self._heap = [item for item in self._heap if not item[2].done and self._registered(item[2])]
            heapq.heapify(self._heap)

    def expire(self, now: float) -> None:
        """Wake every waiter whose deadline has come on the client's clock."""
        heap = self._heap
        while heap and (heap[0][2].done or heap[0][0] <= now):
            _, _, waiter = heapq.heappop(heap)
            waiter.wake.set()

    async def _watch(self) -> None:
        with self._watcher.running():
            while self._active():
                now = self._clock.now()
                self.expire(now)
                await self._watcher.sleep(now, self._heap[0][0] if self._heap else now + 3600.0)
