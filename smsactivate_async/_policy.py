"""Retry policy (as data) and the client-wide rate limiter."""

from __future__ import annotations

import bisect
import collections
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
import attrs

from ._clock import Clock
from ._exceptions import InvalidArgumentError, StoreError

if TYPE_CHECKING:
    from ._tasks import TaskHost

__all__ = ["AdaptiveRateLimiter", "Limiter", "RateLimiter", "RetryPolicy", "SharedBudget", "SharedRateLimiter"]


@attrs.frozen
class RetryPolicy:
    """How safe actions are retried: ``attempts`` in all, capped exponential backoff with full jitter.

    A ``Retry-After`` (or a ban's ``retry_after``) longer than ``max_retry_after`` is not waited
    out: the error is raised instead.

    ``settle``: a purchase without idempotency whose answer was lost is bought again only when two
    listings of the account, the second at least ``settle`` seconds after the failure, both show
    that it did not happen (the server may still be committing it when the first is read).

    ``stray_watch``: for this long after such a purchase, the client looks now and then for it to be
    committed after all — a *stray* — and hands that number to the next purchase of its kind, or
    closes it (0: never look). See "Strays" in the reliability docs.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    jitter: bool = True
    max_retry_after: float = 60.0
    settle: float = 5.0
    stray_watch: float = 600.0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidArgumentError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.settle < 0 or self.stray_watch < 0:
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

    @property
    def rate(self) -> float | None:
        """Requests per second in force (``None``: unpaced)."""

    async def acquire(self) -> None: ...

    def block(self, seconds: float) -> None: ...

    def settled(self) -> None:
        """An answer came that was not a throttle (the probe after a block, if one was out)."""


@attrs.define(eq=False)
class _Slot:
    """One caller's reserved moment in a :class:`RateLimiter`, while it waits for it."""

    start: float
    #: the scope of its current sleep: cancelled to wake it when it is given an earlier slot
    sleep: anyio.CancelScope | None = None


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
        #: callers waiting for their slot, earliest first
        self._waiting: list[_Slot] = []

    async def acquire(self) -> None:
        now = self._clock.now()
        start = max(now, self._blocked_until)
        if self.rate is not None:
            start = max(start, self._tat - self._tolerance)
            self._tat = max(self._tat, start) + self._interval
        shift = self._shift
        if start > now:
            await self._wait_for_slot(_Slot(start))
        # A block set while waiting delays the whole queue by its length, keeping the spacing.
        while self._shift > shift:
            extra, shift = self._shift - shift, self._shift
            await self._clock.sleep(extra)

    async def _wait_for_slot(self, slot: _Slot) -> None:
        self._waiting.append(slot)
        try:
            while (left := slot.start - self._clock.now()) > 0:
                with anyio.CancelScope() as slot.sleep:
                    await self._clock.sleep(left)
        except BaseException:
            self._give_back(slot)
            raise
        finally:
            if slot in self._waiting:
                self._waiting.remove(slot)

    def _give_back(self, slot: _Slot) -> None:
        """A caller that stops waiting (cancelled, timed out) gives its slot to the last in the queue,
        whose own slot, the latest reserved, is released: a slot reserved for nobody would leave the
        budget unused while others wait (the simulation harness found it, seed 292)."""
        if self.rate is None or slot not in self._waiting or slot.start <= self._clock.now():
            return  # (a slot already due is spent: giving it back now would send two at once)
        last = self._waiting[-1]
        self._waiting.remove(slot)
        if last is not slot:
            self._waiting.remove(last)
            last.start = slot.start
            self._waiting.insert(bisect.bisect(self._waiting, slot.start, key=lambda s: s.start), last)
            if last.sleep is not None:
                last.sleep.cancel()  # it wakes and waits again, for its earlier slot
        self._tat -= self._interval

    def set_rate(self, rate: float) -> None:
        """Change the pace from now on (the adaptive limiter's lever); the burst stays."""
        burst = 1 + (self._tolerance / self._interval if self._interval else 0.0)
        self.rate = rate
        self._interval = 1.0 / rate
        self._tolerance = self._interval * (burst - 1)

    def settled(self) -> None:
        """Nothing to do: a fixed rate has no probe."""

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


class AdaptiveRateLimiter:
    """A token bucket whose rate follows the provider's answers (``rate_limit="adaptive"``).

    After botocore's adaptive mode (``retries/adaptive.py``, ``throttling.py``): the rate grows on a
    CUBIC curve while answers are clean and is cut by ``beta`` at once on a throttle (a 429, a
    provider's rate block), whose ``Retry-After`` (or the provider's block length) holds every request
    back. Where botocore is blind we are not: the provider publishes its limit, so the rate never
    goes above ``ceiling`` less the burst (the server counts requests in a sliding second, and a burst
    lands in one), and growth is capped at twice the rate actually used, so that an idle client does
    not climb to a rate it never tried. Throttles that arrive together (one block answering many
    requests in flight) cut once. Unlike a GCRA, no slot is reserved ahead: callers queue (first
    come, first served) and each is let go at the rate in force when its turn comes, so a rate that
    rises or falls applies to the whole queue at once.
    """

    #: CUBIC's scale, requests/s per s³ (botocore's value): from 4 to 50 in about 4.5 s
    C = 0.4

    def __init__(self, start: float, ceiling: float, burst: int, clock: Clock, *, beta: float = 0.7,
                 floor: float = 0.5) -> None:
        if not 0 < start <= ceiling:
            raise InvalidArgumentError(f"adaptive pacing needs 0 < start <= ceiling, got {start} and {ceiling}")
        if burst < 1:
            raise InvalidArgumentError(f"burst must be at least 1, got {burst}")
        self._clock = clock
        self._burst = float(burst)
        self.ceiling = ceiling
        self.max_rate = max(floor, ceiling * 0.95 - (burst - 1))
        #: the published ceiling's safe rate; ``max_rate`` is lowered below it by blocks (learned share)
        self._published_max = self.max_rate
        self._learned_max = self.max_rate
        self._last_block = float("-inf")
        self._shared_blocks = 0
        #: learn a share of the limit from blocks one client could not cause; off when a shared store
        #: keeps the account's budget (the fleet's rate is one GCRA there, not a share per client)
        self.learns_share = True
        self.floor = floor
        self.beta = beta
        self.rate: float | None = min(start, self.max_rate)
        self.throttles = 0
        self._lock = anyio.Lock()
        self._tokens = self._burst
        self._last = clock.now()
        self._blocked_until = float("-inf")
        self._w_max = self._current
        self._k = 0.0  # the curve starts on its plateau: growth is slow at first, then quick
        self._epoch = self._last
        self._last_cut = float("-inf")
        self._sent: collections.deque[float] = collections.deque()  # send times of the last second
        self._streak = 0  # blocks one after another, without a clean answer between them
        self._hold = 0.0
        self._probing = False  # the next request after a hold is the probe
        self._probe: anyio.Event | None = None  # set when the probe out has been answered
        self._jitter = random.Random()

    @property
    def _current(self) -> float:
        assert self.rate is not None
        return self.rate

    def _grow(self, now: float, capped: bool = True) -> None:
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        if self._learned_max < self._published_max:
            # a share learned from blocks is tried higher again slowly: 5 % a minute without a block
            self.max_rate = min(self._published_max, self._learned_max * 1.05 ** ((now - self._last_block) / 60.0))
            if self.max_rate >= self._published_max:
                self._learned_max, self._shared_blocks = self._published_max, 0
        target = self.C * (now - self._epoch - self._k) ** 3 + self._w_max
        rate = min(self.max_rate, max(self.floor, target))
        if capped:
            rate = min(rate, max(self._current, 2.0 * max(1, len(self._sent))))
        if rate > self._current:
            self.rate = rate

    def rate_now(self, *, capped: bool = True) -> float:
        """The rate in force now (grown along the curve). A fleet's share of one budget is not capped
        by this process's own use, which is only a part of it."""
        self._grow(self._clock.now(), capped)
        return self._current

    def note_sent(self) -> None:
        """A request left under a budget kept elsewhere (the fleet's): counted as this process's use."""
        self._sent.append(self._clock.now())

    def cut(self, hold: float = 0.0) -> bool:
        """Cut the rate by ``beta`` unless it was cut within the last second; ``True`` if it was cut now."""
        now = self._clock.now()
        if now - self._last_cut <= 1.0:
            return False
        self._last_cut = now
        self._w_max = self._current
        self.rate = max(self.floor, self._current * self.beta)
        # restart the curve from the cut: back to w_max after K seconds, above it only after
        self._k = (self._w_max * (1 - self.beta) / self.C) ** (1 / 3)
        self._epoch = now + hold  # no growth while blocked
        return True

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock.now()
                if now < self._blocked_until:
                    await self._clock.sleep(self._blocked_until - now)
                    continue
                if self._probe is not None:
                    # After a block one probe tests the water; the rest follow once it is answered.
                    probe = self._probe
                    with anyio.move_on_after(max(1.0, self._hold)):
                        await probe.wait()
                    if self._probe is probe:  # never answered (the caller went away): go on
                        self._probe = None
                    continue
                self._grow(now)
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._current)
                self._last = now
                if self._tokens >= 1.0 - 1e-9:  # (a tolerance: float time must not wait forever for 1e-16)
                    self._tokens = max(0.0, self._tokens - 1.0)
                    self._sent.append(now)
                    if self._probing:
                        self._probing = False
                        self._probe = anyio.Event()
                    return
                await self._clock.sleep((1.0 - self._tokens) / self._current)

    def block(self, seconds: float) -> None:
        """A throttle: cut the rate, hold every request, then let one probe go first.

        Holds grow with the blocks that follow one another without a clean answer between them, and
        carry jitter, so that workers that share no store do not all come back at once and re-block
        each other. A throttle right after our own hold (the probe's) is another worker's block: it
        cuts the rate again at once."""
        now = self._clock.now()
        self.throttles += 1
        # The probe's own throttle (only the probe is out after a hold): another worker blocked the
        # account meanwhile. Throttles of requests already in flight when the block began are one event.
        unexpected = self._probe is not None
        self._streak = self._streak + 1 if unexpected else 0
        if not self.cut(seconds) and unexpected:
            self._last_cut = float("-inf")
            self.cut(seconds)
        self._tokens = 0.0
        if self.learns_share and now - self._last_block > seconds + 1.0:
            # A block this client alone could not cause (its rate stays under the published limit): the
            # account is shared with clients we cannot see. After the n-th such block, assume n + 1
            # others as busy as we are: our share is at most 1 / (n + 2) of the limit (less our burst,
            # since bursts of several clients can meet in one second), and below the rate we were
            # blocked at. Tried higher again slowly (5 % a minute) while no block comes.
            self._shared_blocks += 1
            share = self.ceiling * 0.9 / (self._shared_blocks + 2) - (self._burst - 1)
            self._learned_max = max(self.floor, min(self.max_rate, self._w_max * 0.9, share))
            self.max_rate = self._learned_max
            self.rate = min(self._current, self.max_rate)
            self._w_max = min(self._w_max, self.max_rate)
        self._last_block = now
        self._hold = seconds * (1.5 ** min(self._streak, 4)) * (1.0 + self._jitter.uniform(0.2, 1.0))
        self._blocked_until = max(self._blocked_until, now + self._hold)
        self._probing = True
        if self._probe is not None:
            probe, self._probe = self._probe, None
            probe.set()

    def settled(self) -> None:
        """A clean answer (anything but a throttle): the probe, if one was out, lets the rest go."""
        self._streak = 0
        if self._probe is not None:
            probe, self._probe = self._probe, None
            probe.set()


@runtime_checkable
class SharedBudget(Protocol):
    """What the fleet's limiter needs of a shared store: one GCRA of the account's budget."""

    async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
        """A slot now: ``(0, cut)``; else ``(seconds until one may be free, cut)``. ``cut``: when the
        fleet's rate was last cut."""

    async def block(self, seconds: float) -> None:
        """Hold every client of the account back ``seconds``."""


class SharedRateLimiter:
    """The client's rate limiter when the budget is the account's, kept in a shared store (Redis across
    machines, a sqlite journal across the processes of one machine): same interface as ``RateLimiter``.

    Every client on the store takes its slots from one GCRA in the store, each as its request is about
    to leave, so W workers at the account's limit send at the limit together, not W times it. With
    adaptive pacing the rate is the fleet's too: a throttle seen by any client blocks all of them (in
    the store) and cuts every client's rate when it next asks for a slot. If the store cannot be
    reached the client falls back to pacing itself at its share of that rate: the rate divided by the
    clients whose leases it last saw alive (``sharers``), so that a fleet keeps to the account's
    budget while its store restarts. When the store is back, its budget knows nothing of what was sent
    meanwhile (restarted empty, its state is gone; from its file, it is old) and would grant a burst on
    top of the last second's requests: for one more second (``HANDOVER``) each client keeps to its
    share as well as to the store's grants; and with adaptive pacing the rate is cut and grows back
    (the held-back work of every process leaves together: the moment most exposed to their jitter).
    """

    #: how long after the store's return a client still keeps to its share of the budget
    HANDOVER = 1.0

    def __init__(self, store: SharedBudget, rate: float | None, burst: int, clock: Clock, local: Limiter,
                 host: TaskHost, sharers: Callable[[], int] = lambda: 1) -> None:
        self._host = host  # the client's TaskHost: telling the fleet of a block is the client's own work
        self._adaptive = local if isinstance(local, AdaptiveRateLimiter) else None
        if self._adaptive is not None:
            self._adaptive.learns_share = False
        self._fixed = rate
        self._burst = burst
        self._store = store
        self._clock = clock
        self._local = local  # the process's own limiter: the fallback, and the holder of local blocks
        self._seen_cut: float | None = None
        self._queue: anyio.Lock | None = None
        self._sharers = sharers
        self._alone_next = 0.0  # while the store is unreachable: when this client's next share is due
        #: the clients seen sharing the budget when the store was last unreachable (a store back empty
        #: holds no lease but this client's at first: its count would be too low for the hand-over)
        self._outage_sharers: int | None = None
        self._handover_until = float("-inf")
        self._fell_back = False

    @property
    def rate(self) -> float | None:
        return self._adaptive.rate if self._adaptive is not None else self._fixed

    async def acquire(self) -> None:
        # This process's callers queue here (first come, first served); the head asks the fleet's
        # budget for a slot when it is about to send, at the rate in force then.
        if self._queue is None:
            self._queue = anyio.Lock()
        async with self._queue:
            while True:
                rate = self._adaptive.rate_now(capped=False) if self._adaptive is not None else self._fixed
                assert rate is not None
                interval = 1.0 / rate
                try:
                    wait, cut = await self._store.grant(interval, interval * (self._burst - 1))
                except StoreError:
                    self._fell_back = True
                    self._outage_sharers = max(self._outage_sharers or 1, self._sharers())
                    await self._local.acquire()
                    await self._take_share(interval)
                    return
                if self._adaptive is not None and cut != self._seen_cut:
                    if self._seen_cut is not None:
                        self._adaptive.cut()  # another client was throttled: the account's rate is lower
                    self._seen_cut = cut
                if wait <= 0:
                    now = self._clock.now()
                    if self._fell_back:  # the store is back
                        self._fell_back = False
                        self._handover_until = now + self.HANDOVER
                        if self._adaptive is not None:
                            # the fleet's held-back work leaves at once now, every process catching up
                            # together: the rate is cut and grows back along its curve (about 3 s), as
                            # after a throttle, so that their jitter does not tip the account over
                            self._adaptive.cut()
                    if now < self._handover_until:
                        await self._take_share(interval)
                    else:
                        self._outage_sharers = None
                    if self._adaptive is not None:
                        self._adaptive.note_sent()
                    return
                await self._clock.sleep(wait)

    async def _take_share(self, interval: float) -> None:
        now = self._clock.now()
        start = max(now, self._alone_next)
        self._alone_next = start + interval * max(1, self._sharers(), self._outage_sharers or 1)
        if start > now:
            await self._clock.sleep(start - now)

    def settled(self) -> None:
        self._local.settled()

    def block(self, seconds: float) -> None:
        self._local.block(seconds)

        async def tell_the_fleet() -> None:
            try:
                await self._store.block(seconds)
            except StoreError:
                pass

        # A 429 holds back every client of the account: the fleet learns it through the store.
        self._host.start_soon(tell_the_fleet, "smsactivate_async block for the fleet")
