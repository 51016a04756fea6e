"""Simulator state: clock, catalogue, accounts, activations, rents, code schedules, faults, ledger.

Written from the protocol documents (``ACTIONS.md``, ``FACTS.md``, ``REAL_RESPONSES.md``), not
from the client: nothing here imports the client's parsing or models. Behaviour marked
``[LIVE]`` follows a captured answer, ``[DOC]`` the vendor's text, ``[INFER]`` our reading of both.
"""

from __future__ import annotations

import collections
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
    "FaultKind",
    "Faults",
    "Ledger",
    "ManualClock",
    "Rent",
    "SimClock",
    "SystemSimClock",
]

Dialect = Literal["sms-activate", "herosms"]


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


@attrs.define
class Account:
    """One API key's account on the simulator: balance, cashback, ban."""

    key: str
    balance: Decimal
    cashback: Decimal = Decimal("0")
    banned_until: _dt.datetime | None = None


class FaultKind(enum.Enum):
    """The faults the simulator can inject."""

    DROP = "drop"  # connection closed before the request is handled
    TIMEOUT = "timeout"  # handled, then the answer never comes (the client times out)
    HTML_5XX = "html_5xx"  # a 502/503 HTML page from the edge
    TRUNCATE = "truncate"  # the body cut short (at ``truncate_at`` bytes or a fraction)
    RATE_LIMIT = "rate_limit"  # a 429 burst
    ERROR_SQL = "error_sql"  # the server's own SQL error
    LOST_PURCHASE = "lost_purchase"  # a purchase carried out whose answer is lost


_PURCHASES = frozenset({"getNumber", "getNumberV2", "getMultiServiceNumber", "getRentNumber", "getExtraActivation",
                        "getAdditionalService", "continueRentNumber", "buyPartnerProduct"})


@attrs.define
class Faults:
    """Faults on demand: by rate (``rates``, probability per request and kind, seeded) or by
    script (``inject(kind, action=…, times=…)``: the next matching requests get it).

    ``rps_budget``: more requests than this within one second (per key) get 429 + Retry-After.
    ``block_seconds``: going over the budget blocks the account this long, and every request during
    the block answers 429 and starts it again ([DOC HeroSMS rules: 50 RPS, 10 s, repeats re-block]).
    ``retry_after_header``: whether 429s carry ``Retry-After``; ``None``, the default, follows the
    dialect: HeroSMS's live 429 fixture has none (it documents one only on
    ``/api/v1/activations/offers``), the classic edges (Tiger's) send one [LIVE].
    ``block_page``: answer a block with the edge's ``403 error code: 1020`` page instead of the 429.
    ``purchase_rps``: purchases per second per key+service+country beyond which the edge answers
    429 ``Too Many Requests`` + ``Retry-After`` [LIVE Tiger].
    """

    rates: dict[FaultKind, float] = attrs.field(factory=dict)
    truncate_at: int | None = 18323  # [LIVE] HeroSMS bodies cut at exactly 18,323 bytes
    truncate_fraction: float = 0.5
    hang_seconds: float = 30.0
    retry_after: float = 1.0
    rps_budget: float | None = None
    block_seconds: float | None = None
    retry_after_header: bool | None = None
    block_page: bool = False
    purchase_rps: float | None = None
    actions: frozenset[str] | None = None  # limit rate faults to these actions
    _script: collections.deque[tuple[FaultKind, str | None]] = attrs.field(factory=collections.deque)

    @classmethod
    def herosms_limits(cls, **kwargs: object) -> Faults:
        """HeroSMS's published limit: 50 requests/s per account, a 10 s block beyond it, re-blocked by
        requests during it, answered 429 ``RATE_LIMIT`` without ``Retry-After`` [LIVE fixture]."""
        options: dict[str, object] = {"rps_budget": 50.0, "block_seconds": 10.0, "retry_after_header": False}
        options.update(kwargs)
        return cls(**options)  # type: ignore[arg-type]

    @classmethod
    def tiger_limits(cls, **kwargs: object) -> Faults:
        """Tiger's edge: purchases limited per user+service+country, 429 + ``Retry-After`` [LIVE]."""
        options: dict[str, object] = {"purchase_rps": 1.0, "retry_after": 1.0, "retry_after_header": True}
        options.update(kwargs)
        return cls(**options)  # type: ignore[arg-type]

    @classmethod
    def uniform(cls, rate: float, **kwargs: object) -> Faults:
        """Every kind at ``rate / 7`` each: ``rate`` is the total share of faulty requests."""
        share = rate / len(FaultKind)
        return cls(rates={kind: share for kind in FaultKind}, **kwargs)  # type: ignore[arg-type]

    def inject(self, kind: FaultKind | str, *, action: str | None = None, times: int = 1) -> None:
        """Give the next ``times`` matching requests (``action``, or any) this fault."""
        for _ in range(times):
            self._script.append((FaultKind(kind), action))

    def pick(self, action: str, rng: random.Random) -> FaultKind | None:
        """The fault for one request, if any: a scripted one first, else by rate."""
        for index, (kind, wanted) in enumerate(self._script):
            if wanted is None or wanted == action:
                del self._script[index]
                return kind
        if self.actions is not None and action not in self.actions:
            return None
        for kind, rate in self.rates.items():
            if kind is FaultKind.LOST_PURCHASE and action not in _PURCHASES:
                continue
            if rate and rng.random() < rate:
                return kind
        return None


@attrs.frozen
class RequestRecord:
    at: float
    action: str
    status: int
    fault: str | None


@attrs.frozen
class PurchaseRecord:
    at: float
    kind: str  # "activation" | "rent" | "product"
    id: int
    key: str
    cost: Decimal
    service: str
    order_id: str | None


@attrs.frozen
class StatusRecord:
    at: float
    id: int
    old: str
    new: str
    cause: str


@attrs.frozen
class RefundRecord:
    at: float
    id: int
    amount: Decimal
    reason: str


@attrs.define
class Ledger:
    """Everything that happened, for assertions: requests, purchases, status changes, refunds."""

    requests: list[RequestRecord] = attrs.field(factory=list)
    purchases: list[PurchaseRecord] = attrs.field(factory=list)
    status_changes: list[StatusRecord] = attrs.field(factory=list)
    refunds: list[RefundRecord] = attrs.field(factory=list)
    webhook_deliveries: list[tuple[float, int, int]] = attrs.field(factory=list)
    #: requests refused for going over the account's budget (the first of a block included)
    over_budget: int = 0
    #: (start, end) of each block of the account, as finally extended
    blocks: list[list[float]] = attrs.field(factory=list)

    def requests_for(self, action: str) -> int:
        """How many requests of ``action`` were answered."""
        return sum(1 for r in self.requests if r.action == action)

    def max_requests_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(r.at for r in self.requests)
        best = 0
        start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def duplicate_orders(self) -> dict[str, int]:
        """Order ids bought more than once (must be empty)."""
        counts = collections.Counter(p.order_id for p in self.purchases if p.order_id)
        return {order: n for order, n in counts.items() if n > 1}

    def spent(self) -> Decimal:
        """Money spent on purchases in all."""
        return sum((p.cost for p in self.purchases), Decimal("0"))

    def refunded(self) -> Decimal:
        """Money refunded in all."""
        return sum((r.amount for r in self.refunds), Decimal("0"))


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
