"""Retry policy (as data) and the client-wide rate limiter."""

from __future__ import annotations

import random
from typing import Protocol

import attrs

from ._clock import Clock
from ._exceptions import InvalidArgumentError

__all__ = ["Limiter", "RateLimiter", "RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """How safe actions are retried: ``attempts`` in all, capped exponential backoff with full jitter.

    A ``Retry-After`` (or a ban's ``retry_after``) longer than ``max_retry_after`` is not waited
    out: the error is raised instead.

    ``settle``: a purchase without idempotency whose answer was lost is bought again only when two
    listings of the account, the second at least ``settle`` seconds after the failure, both show
    that it did not happen (the server may still be committing it when the first is read).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    jitter: bool = True
    max_retry_after: float = 60.0
    settle: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidArgumentError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.settle < 0:
            raise InvalidArgumentError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        if self.jitter:
            backoff = rng.uniform(0, backoff)
        if retry_after is not None:
            return float(max(backoff, retry_after))
        return float(backoff)


NO_RETRY = RetryPolicy(attempts=1)


class Limiter(Protocol):
    """What the session needs of a rate limiter (this process's, or the fleet's in Redis)."""

    rate: float | None

    async def acquire(self) -> None: ...

    def block(self, seconds: float) -> None: ...


class RateLimiter:
    """A token bucket (GCRA) shared by every request of a client.

    ``rate`` requests per second with bursts of ``burst``; ``None`` disables pacing. ``block``
    holds every request back until a moment (a 429's Retry-After slows the whole client).
    """

    def __init__(self, rate: float | None, burst: int, clock: Clock) -> None:
        if rate is not None and rate <= 0:
            raise InvalidArgumentError(f"rate_limit must be positive, got {rate}")
        if burst < 1:
            raise InvalidArgumentError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self._clock = clock
        self._interval = 1.0 / rate if rate else 0.0
        self._tolerance = self._interval * (burst - 1)
        self._tat = 0.0
        self._blocked_until = 0.0
        self._shift = 0.0

    async def acquire(self) -> None:
        now = self._clock.now()
        start = max(now, self._blocked_until)
        if self.rate is not None:
            start = max(start, self._tat - self._tolerance)
            self._tat = max(self._tat, start) + self._interval
        shift = self._shift
        if start > now:
            await self._clock.sleep(start - now)
        # A block set while waiting delays the whole queue by its length, keeping the spacing.
        while self._shift > shift:
            extra, shift = self._shift - shift, self._shift
            await self._clock.sleep(extra)

    def block(self, seconds: float) -> None:
        """Hold every request back ``seconds`` from now (a 429's Retry-After)."""
        now = self._clock.now()
        until = now + seconds
        extension = until - max(now, self._blocked_until)
        if extension <= 0:
            return
        self._blocked_until = until
        self._shift += extension
        self._tat = max(self._tat, now) + extension
