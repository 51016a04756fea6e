"""Simulator state, with no HTTP and no dialect: clocks, accounts, activations, rents, code
schedules and timed events. Faults live in ``_faults``, the ledger in ``_ledger``.

Written from the protocol documents (``ACTIONS.md``, ``FACTS.md``, ``REAL_RESPONSES.md``), not
from the client: nothing here imports the client's parsing or models. Behaviour marked
``[LIVE]`` follows a captured answer, ``[DOC]`` the vendor's text, ``[INFER]`` our reading of both.
"""

from __future__ import annotations

import datetime as _dt
import enum
import heapq
import itertools
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

import attrs

__all__ = [
    "Account",
    "Activation",
    "ActivationState",
    "CodeSchedule",
    "ManualClock",
    "Rent",
    "LoopSimClock",
    "SimClock",
    "SystemSimClock",
]

#: the name of a server profile (``_dialects.PROFILES``): how one provider's server behaves — one per
#: client preset, checked when a ``Simulator`` is made. Not the client's ``Provider.dialect``, which
#: is the wire family a client decodes ("sms-activate" or "herosms"); kept a plain name so that a new
#: preset adds its profile and nothing else.
ProfileName = str


class SimClock:
    """The simulator's time: ``now()`` monotonic seconds, ``wall()`` the matching UTC datetime."""

    def now(self) -> float:
        """Monotonic seconds."""
        raise NotImplementedError

    def wall(self) -> _dt.datetime:
        """The wall time (UTC)."""
        raise NotImplementedError


class SystemSimClock(SimClock):
    """The simulator's real clock (monotonic seconds, and the wall time)."""

    def __init__(self) -> None:
        self._origin = time.monotonic()
        self._wall_origin = _dt.datetime.now(_dt.UTC)

    def now(self) -> float:
        """Seconds since the simulator started (monotonic)."""
        return time.monotonic() - self._origin

    def wall(self) -> _dt.datetime:
        """The wall time (UTC)."""
        return self._wall_origin + _dt.timedelta(seconds=self.now())


class LoopSimClock(SimClock):
    """The event loop's clock (``anyio.current_time()``): virtual under trio's ``MockClock`` or
    ``looptime``, so that the simulator and a client on the same loop share one time."""

    def __init__(self, start: _dt.datetime | None = None) -> None:
        self._origin: float | None = None
        self._start = start or _dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=_dt.UTC)

    def now(self) -> float:
        """Seconds since the clock was first read."""
        import anyio

        current = anyio.current_time()
        if self._origin is None:
            self._origin = current
        return current - self._origin

    def wall(self) -> _dt.datetime:
        """The wall time (UTC) that goes with ``now``."""
        return self._start + _dt.timedelta(seconds=self.now())


class ManualClock(SimClock):
    """Time that moves only when told: ``advance(121)`` jumps past the early-cancel window."""

    def __init__(self, start: _dt.datetime | None = None) -> None:
        self._now = 0.0
        self._start = start or _dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=_dt.UTC)

    def now(self) -> float:
        """Seconds since the clock was made (moves only by ``advance``)."""
        return self._now

    def wall(self) -> _dt.datetime:
        """The wall time (UTC) that goes with ``now``."""
        return self._start + _dt.timedelta(seconds=self._now)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds


@attrs.frozen
class CodeSchedule:
    """When codes arrive for new activations: after ``delay`` seconds, or uniformly within
    ``[low, high]``, or never (``kind="never"``: only ``Simulator.deliver_sms`` delivers).
    ``via="call"`` delivers the code as a voice call (visible through getStatusV2).
    """

    kind: Literal["fixed", "random", "never"] = "random"
    delay: float = 10.0
    low: float = 5.0
    high: float = 60.0
    via: Literal["sms", "call"] = "sms"

    @classmethod
    def fixed(cls, delay: float, via: Literal["sms", "call"] = "sms") -> CodeSchedule:
        return cls(kind="fixed", delay=delay, via=via)

    @classmethod
    def within(cls, low: float, high: float, via: Literal["sms", "call"] = "sms") -> CodeSchedule:
        return cls(kind="random", low=low, high=high, via=via)

    @classmethod
    def never(cls) -> CodeSchedule:
        return cls(kind="never")

    def next_delay(self, rng: random.Random) -> float | None:
        """Seconds until the next code (``None``: it never comes)."""
        if self.kind == "never":
            return None
        if self.kind == "fixed":
            return self.delay
        return rng.uniform(self.low, self.high)


@attrs.frozen
class RentSchedule:
    """When SMS arrive on new rents: every ``every`` seconds, or at random gaps within ``[low, high]``,
    ``burst`` at a time, at most ``count`` per rent (``None``: until the rent ends) — or never
    (``kind="never"``, the default: only ``Simulator.deliver_rent_sms`` delivers).

    A rent with no SMS within ``rent_cancel_seconds`` is revoked by the provider (``STATUS_REVOKE``,
    refunded), as the protocol documents: a schedule whose first SMS comes later loses its rents.
    """

    kind: Literal["every", "random", "never"] = "never"
    every: float = 600.0
    low: float = 60.0
    high: float = 900.0
    burst: int = 1
    count: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.burst < 1 or (self.count is not None and self.count < 1):
            raise ValueError("a rent schedule's burst and count must be at least 1")
        if self.kind == "every" and not self.every > 0:
            raise ValueError("a rent schedule's interval must be positive")
        if self.kind == "random" and not 0 <= self.low <= self.high:
            raise ValueError("a rent schedule needs 0 <= low <= high")

    @classmethod
    def periodic(cls, every: float, *, burst: int = 1, count: int | None = None) -> RentSchedule:
        return cls(kind="every", every=every, burst=burst, count=count)

    @classmethod
    def within(cls, low: float, high: float, *, burst: int = 1, count: int | None = None) -> RentSchedule:
        return cls(kind="random", low=low, high=high, burst=burst, count=count)

    @classmethod
    def never(cls) -> RentSchedule:
        return cls(kind="never")

    def next_delay(self, rng: random.Random, delivered: int) -> float | None:
        """Seconds until the next burst, after ``delivered`` messages (``None``: no more)."""
        if self.kind == "never" or (self.count is not None and delivered >= self.count):
            return None
        if self.kind == "every":
            return self.every
        return rng.uniform(self.low, self.high)


class ActivationState(enum.Enum):
    """An activation's state on the simulator, as its wire status code."""

    WAIT_CODE = "4"  # [DOC] sms-activate examples use "4" for a waiting row
    CODE_RECEIVED = "2"  # [LIVE] "2" with a code
    WAIT_RETRY = "3"
    FINISHED = "6"
    CANCELLED = "8"
    REFUNDED = "10"  # [DOC HeroSMS] auto-refund at the end of the lifetime

    @property
    def active(self) -> bool:
        """Whether the activation is still open (waiting, or with a code not yet finished)."""
        return self in (ActivationState.WAIT_CODE, ActivationState.CODE_RECEIVED, ActivationState.WAIT_RETRY)


@attrs.define
class Message:
    text: str
    code: str | None
    at: _dt.datetime
    via: str = "sms"
    phone_from: str = "Telegram"


@attrs.define
class Activation:
    """One activation on the simulator: its state, messages and timings."""

    id: int
    key: str
    service: str
    country: int
    operator: str
    phone: str
    cost: Decimal
    bought_at: float
    bought_wall: _dt.datetime
    order_id: str | None = None
    forward: bool = False
    state: ActivationState = ActivationState.WAIT_CODE
    ready: bool = False
    messages: list[Message] = attrs.field(factory=list)
    parse_count: int = 0
    parent: int | None = None
    call_task: bool = False
    via: str = "sms"
    #: committed late (``FaultKind.LATE_PURCHASE``): out of the account's listings until then
    listed_from: float = 0.0
    #: when (clock time) each code was scheduled to arrive, as drawn (a benchmark's floor reads them:
    #: ``messages[].at`` is when the simulator next looked, which may be later)
    code_due: list[float] = attrs.field(factory=list)

    @property
    def last_code(self) -> str | None:
        """The newest code received, if any."""
        return self.messages[-1].code if self.messages else None


@attrs.define
class RentSmsRecord:
    phone_from: str
    text: str
    service: str
    at: _dt.datetime


@attrs.define
class Rent:
    """One rent on the simulator: its state, messages and timings."""

    id: int
    key: str
    service: str
    country: int
    phone: str
    cost: Decimal
    hours: int
    started_at: float
    ends_at: float
    end_wall: _dt.datetime
    state: Literal["active", "finished", "cancelled", "revoked"] = "active"
    messages: list[RentSmsRecord] = attrs.field(factory=list)
    url: str | None = None
    #: (when, price, hours) of each continueRentNumber, for continueRentInfo's history
    extensions: list[tuple[_dt.datetime, Decimal, int]] = attrs.field(factory=list)
    #: committed late (``FaultKind.LATE_PURCHASE``): out of the account's rent list until then
    listed_from: float = 0.0


@attrs.define
class Account:
    """One API key's account on the simulator: balance, cashback, ban."""

    key: str
    balance: Decimal
    cashback: Decimal = Decimal("0")
    banned_until: _dt.datetime | None = None


@attrs.frozen(order=True)
class _Event:
    at: float
    seq: int
    kind: str = attrs.field(order=False)
    target: int = attrs.field(order=False)
    token: int = attrs.field(order=False, default=0)


class EventQueue:
    """Timed events (code arrivals, expiries) popped lazily as the clock passes them."""

    def __init__(self) -> None:
        self._heap: list[_Event] = []
        self._seq = itertools.count()

    def push(self, at: float, kind: str, target: int, token: int = 0) -> None:
        heapq.heappush(self._heap, _Event(at, next(self._seq), kind, target, token))

    def due(self, now: float) -> Iterator[_Event]:
        while self._heap and self._heap[0].at <= now:
            yield heapq.heappop(self._heap)

    def next_at(self) -> float | None:
        return self._heap[0].at if self._heap else None
