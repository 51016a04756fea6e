"""What the client learns about the numbers it bought: one choke point per kind of news.

The session, the scheduler and the handles *report* news here; whoever keeps state about numbers
*subscribes* (the scheduler, the client's spending guards and handles, counters). Each kind of news
is reported in one place per route and reaches every subscriber once, in the order they subscribed:

- :meth:`NumberNews.status` — a getStatus answer, whoever asked (a user's ``get_status`` too);
- :meth:`NumberNews.closed` — a number closed (``"finished"``, 6, or ``"cancelled"``, 8), by
  whatever route: the session for every setStatus 6 / 8 that succeeded, the scheduler or a handle for
  a number found closed without one (announced once per close);
- :meth:`NumberNews.bought` — a purchase settled with numbers (answered, reconciled, adopted, found
  as a stray or by recovery), each as a :class:`Bought` (kind, id, service, country, the price its
  answer named), once per number (a stray found, then handed to a purchase, is news once);
- :meth:`NumberNews.code` — a code seen for an activation (a getStatus, a scan's row, a push
  confirmed): the scheduler reports every sighting, whoever listens keeps what is new.

``closed`` says how: ``"finished"`` (6), ``"cancelled"`` (8), or ``"expired"`` — found closed at the
server without a setStatus of this client's (its lifetime ended, or someone else closed it).

It sits below the session and the scheduler and knows neither: they are wired to it once, when the
client is built, instead of being set on each other afterwards.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from ._models import ActivationStatus

__all__ = ["Bought", "NumberNews"]


@attrs.frozen
class Bought:
    """One number a purchase settled with. ``country`` as sent or answered (``""`` when neither says);
    ``cost`` as the answer named it (``None``: it named none)."""

    kind: str  # "activation" | "rent"
    id: int
    service: str = ""
    country: str = ""
    cost: Decimal | None = None

T = TypeVar("T")
#: purchases remembered as announced (far more than are bought within a stray's watch)
_REMEMBERED = 20_000


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

    __slots__ = ("_announced", "_bought", "_closed", "_code", "_rent_closed", "_status")

    def __init__(self) -> None:
        self._status: _Channel[ActivationStatus] = _Channel()
        self._closed: _Channel[str] = _Channel()
        self._rent_closed: _Channel[str] = _Channel()
        self._bought: list[Callable[[Bought], None]] = []
        self._code: _Channel[str] = _Channel()
        #: the numbers announced bought and not yet closed: a stray is news when found, not again when a
        #: purchase takes it (bounded: a number nobody closes is forgotten after ``_REMEMBERED`` others)
        self._announced: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    def on_status(self, subscriber: Callable[[int, ActivationStatus], None]) -> None:
        """Call ``subscriber(activation_id, status)`` for every getStatus answer."""
        self._status.subscribe(subscriber)

    def on_closed(self, subscriber: Callable[[int, str], None]) -> None:
        """Call ``subscriber(activation_id, state)`` for every close (``"finished"`` / ``"cancelled"`` /
        ``"expired"``)."""
        self._closed.subscribe(subscriber)

    def on_bought(self, subscriber: Callable[[Bought], None]) -> None:
        """Call ``subscriber(bought)`` for every number a purchase settled with."""
        self._bought.append(subscriber)

    def on_rent_closed(self, subscriber: Callable[[int, str], None]) -> None:
        """Call ``subscriber(rent_id, state)`` for every rent closed (``"finished"`` / ``"cancelled"``
        by a setRentStatus, ``"expired"``: found over at the server)."""
        self._rent_closed.subscribe(subscriber)

    def on_code(self, subscriber: Callable[[int, str], None]) -> None:
        """Call ``subscriber(activation_id, code)`` for every sighting of a code (repeats included)."""
        self._code.subscribe(subscriber)

    def status(self, activation_id: int, status: ActivationStatus) -> None:
        self._status.report(activation_id, status)

    def closed(self, number_id: int, state: str, kind: str = "activation") -> None:
        self._announced.pop((kind, number_id), None)
        if kind == "rent":
            self._rent_closed.report(number_id, state)
        else:
            self._closed.report(number_id, state)

    def code(self, activation_id: int, code: str) -> None:
        self._code.report(activation_id, code)

    def bought(self, purchase: Bought) -> None:
        key = (purchase.kind, purchase.id)
        if key in self._announced:
            return
        self._announced[key] = None
        if len(self._announced) > _REMEMBERED:
            self._announced.popitem(last=False)
        for subscriber in self._bought:
            subscriber(purchase)
