"""What the client learns about the numbers it bought: one choke point per kind of news.

The session, the scheduler and the handles *report* news here; whoever keeps state about numbers
*subscribes* (the scheduler, the client's spending guards and handles, counters). Each kind of news
is reported in one place per route and reaches every subscriber once, in the order they subscribed:

- :meth:`NumberNews.status` — a getStatus answer, whoever asked (a user's ``get_status`` too);
- :meth:`NumberNews.closed` — a number closed (``"finished"``, 6, or ``"cancelled"``, 8), by
  whatever route: the session for every setStatus 6 / 8 that succeeded, the scheduler or a handle for
  a number found closed without one (announced once per close);
- :meth:`NumberNews.bought` — a purchase settled with numbers (answered, reconciled, adopted).

It sits below the session and the scheduler and knows neither: they are wired to it once, when the
client is built, instead of being set on each other afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from ._models import ActivationStatus

__all__ = ["NumberNews"]

T = TypeVar("T")


class _Channel(Generic[T]):
    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[Callable[[int, T], None]] = []

    def subscribe(self, subscriber: Callable[[int, T], None]) -> None:
        self._subscribers.append(subscriber)

    def report(self, number_id: int, news: T) -> None:
        for subscriber in self._subscribers:
            subscriber(number_id, news)


class NumberNews:
    """The channels of news about bought numbers (see the module)."""

    __slots__ = ("_bought", "_closed", "_status")

    def __init__(self) -> None:
        self._status: _Channel[ActivationStatus] = _Channel()
        self._closed: _Channel[str] = _Channel()
        self._bought: _Channel[str] = _Channel()

    def on_status(self, subscriber: Callable[[int, ActivationStatus], None]) -> None:
        """Call ``subscriber(activation_id, status)`` for every getStatus answer."""
        self._status.subscribe(subscriber)

    def on_closed(self, subscriber: Callable[[int, str], None]) -> None:
        """Call ``subscriber(activation_id, state)`` for every close (``"finished"`` / ``"cancelled"``)."""
        self._closed.subscribe(subscriber)

    def on_bought(self, subscriber: Callable[[int, str], None]) -> None:
        """Call ``subscriber(number_id, kind)`` for every number a purchase settled with
        (``"activation"`` / ``"rent"``)."""
        self._bought.subscribe(subscriber)

    def status(self, activation_id: int, status: ActivationStatus) -> None:
        self._status.report(activation_id, status)

    def closed(self, activation_id: int, state: str) -> None:
        self._closed.report(activation_id, state)

    def bought(self, number_id: int, kind: str) -> None:
        self._bought.report(number_id, kind)
