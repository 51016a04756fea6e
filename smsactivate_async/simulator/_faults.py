"""Faults on demand: by rate or by script, and the provider's rate limits.

Written from the protocol documents, not from the client.
"""

from __future__ import annotations

import collections
import enum
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import attrs

__all__ = ["FaultKind", "Faults"]


class FaultKind(enum.Enum):
    """The faults the simulator can inject."""

    DROP = "drop"  # connection closed before the request is handled
    TIMEOUT = "timeout"  # handled, then the answer never comes (the client times out)
    HTML_5XX = "html_5xx"  # a 502/503 HTML page from the edge
    TRUNCATE = "truncate"  # the body cut short (at ``truncate_at`` bytes or a fraction)
    RATE_LIMIT = "rate_limit"  # a 429 burst
    ERROR_SQL = "error_sql"  # the server's own SQL error
    LOST_PURCHASE = "lost_purchase"  # a purchase carried out whose answer is lost
    #: a purchase whose answer is lost and which the server commits late: listings (the active
    #: activations, the rent list) show it only ``late_commit_seconds`` later (a client that reconciles
    #: sooner judges it never happened)
    LATE_PURCHASE = "late_purchase"


#: the kinds ``Faults.uniform`` spreads its rate over (a late commit is asked for by name)
_UNIFORM = tuple(kind for kind in FaultKind if kind is not FaultKind.LATE_PURCHASE)


_PURCHASES = frozenset({"getNumber", "getNumberV2", "getMultiServiceNumber", "getRentNumber", "getExtraActivation",
                        "getAdditionalService", "continueRentNumber", "buyPartnerProduct"})


#: the ASGI interface, as the simulator's app and its transports speak it
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SimulatedFault(Exception):
    """Raised through the ASGI app for faults a status code cannot express (drop, timeout)."""

    def __init__(self, kind: FaultKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


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
    ``late_commit_seconds``: how long a ``LATE_PURCHASE`` stays out of the account's listings.
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
    late_commit_seconds: float = 30.0
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
        """Every kind but ``LATE_PURCHASE`` at ``rate / 7`` each: ``rate`` is the total share of faulty
        requests."""
        share = rate / len(_UNIFORM)
        return cls(rates={kind: share for kind in _UNIFORM}, **kwargs)  # type: ignore[arg-type]

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
            if kind in (FaultKind.LOST_PURCHASE, FaultKind.LATE_PURCHASE) and action not in _PURCHASES:
                continue
            if rate and rng.random() < rate:
                return kind
        return None
