"""Injectable time: the library measures timeouts and paces requests on a :class:`Clock`."""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


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
