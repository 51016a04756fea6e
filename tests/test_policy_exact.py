"""The pacing and retry arithmetic, exactly (issue 37: tests written for the survivors of two mutmut
passes over ``_policy.py`` — each asserts a number a changed operator or constant would change)."""

from __future__ import annotations

import itertools
import math
import random

import anyio
import pytest

from smsactivate_async import InvalidArgumentError, RetryPolicy
from smsactivate_async._policy import AdaptiveRateLimiter, RateLimiter

from .conftest import DownStore, FakeClock, on_virtual_time

pytestmark = pytest.mark.anyio


class _Top(random.Random):
    """A jitter that always draws the top of its range, and remembers the ranges asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


@pytest.mark.parametrize("field", ["base_delay", "max_delay", "settle", "stray_watch"])
def test_each_negative_delay_is_refused(field: str) -> None:
    with pytest.raises(InvalidArgumentError, match="negative"):
        RetryPolicy(**{field: -0.1})  # type: ignore[arg-type]
    RetryPolicy(**{field: 0.0})  # type: ignore[arg-type]  # zero is fine


def test_backoff_doubles_from_the_base_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=False)
    assert [policy.delay(n, None, random.Random(0)) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    top = _Top()
    jittered = RetryPolicy(base_delay=0.5, max_delay=10.0)
    assert [jittered.delay(n, None, top) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert top.ranges == [(0, 0.5), (0, 1.0), (0, 2.0)]  # full jitter: from nothing up to the backoff
    assert policy.delay(1, 7.5, random.Random(0)) == 7.5  # a Retry-After longer than the backoff wins
    assert policy.delay(4, 1.0, random.Random(0)) == 3.0


@pytest.mark.parametrize("rate", [0, -1.0])
def test_a_rate_must_be_positive_and_may_be_below_one(rate: float) -> None:
    with pytest.raises(InvalidArgumentError, match="positive"):
        RateLimiter(rate, 1, FakeClock())
    assert RateLimiter(0.5, 1, FakeClock()).rate == 0.5


async def test_an_unpaced_limiter_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, 1, clock)
    for _ in range(100):
        await limiter.acquire()
    assert clock.sleeps == [] and clock.t == 0.0


async def test_a_slot_exactly_due_is_not_waited_for() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, 1, clock)
    await limiter.acquire()
    clock.t = 0.5  # the next slot is due now
    await limiter.acquire()
    assert clock.sleeps == []


async def test_a_block_holds_every_request_until_it_ends_and_shifts_the_schedule_by_its_extension() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, 1, clock)
    await limiter.acquire()                      # t=0, next slot 0.1
    limiter.block(2.0)                           # until t=2
    await limiter.acquire()
    assert clock.t == pytest.approx(2.1)         # the slot at 0.1, moved by the block's 2 s
    limiter.block(1.0)                           # until 3.1: extends nothing already past… a new block
    before = clock.t
    await limiter.acquire()
    assert clock.t - before == pytest.approx(1.0 + 0.1)
    clock.t = 10.0
    limiter.block(1.0)
    limiter.block(0.5)                           # inside the first: no extension, nothing moves
    await limiter.acquire()
    assert clock.t == pytest.approx(11.0)
    limiter.block(0.0)                           # a zero block holds nothing
    await limiter.acquire()
    assert clock.t == pytest.approx(11.1)


async def test_a_block_set_while_waiting_delays_the_waiter_by_its_length() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 1, clock)
    await limiter.acquire()
    limiter.block(0.0)
    assert limiter._shift == 0.0
    limiter.block(3.0)
    assert limiter._shift == pytest.approx(3.0)
    limiter.block(5.0)                           # extends the first by 2 s: the shift grows by 2, not 5
    assert limiter._shift == pytest.approx(5.0)


def test_adaptive_pacing_checks_its_start_and_ceiling() -> None:
    for start, ceiling in ((0.0, 10.0), (11.0, 10.0), (-1.0, 10.0)):
        with pytest.raises(InvalidArgumentError, match="start <= ceiling"):
            AdaptiveRateLimiter(start, ceiling, 1, FakeClock())
    assert AdaptiveRateLimiter(10.0, 10.0, 1, FakeClock()).rate_now() <= 10.0  # start may be the ceiling
    assert AdaptiveRateLimiter(0.5, 10.0, 1, FakeClock()).rate_now() == pytest.approx(0.5)  # and below 1


async def test_adaptive_cut_is_by_beta_once_per_throttle_burst_and_never_below_the_floor() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(8.0, 50.0, 1, clock, beta=0.5, floor=1.0)
    limiter.cut()
    assert limiter.rate_now() == pytest.approx(4.0)
    limiter.cut()  # the same burst of throttles (no time passed): cut once
    assert limiter.rate_now() == pytest.approx(4.0)
    for _ in range(6):
        clock.t += 10.0
        limiter.cut()
    assert limiter.rate_now() == pytest.approx(1.0)  # the floor
    assert not math.isnan(limiter.rate_now())


async def test_anyio_is_not_needed_for_the_arithmetic() -> None:
    await anyio.lowlevel.checkpoint()  # (the module's async tests run on the anyio plugin)


def test_cut_says_whether_it_cut_and_throttles_within_a_second_are_one() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(8.0, 50.0, 1, clock, beta=0.5, floor=0.5)
    assert limiter.cut() is True
    clock.t = 1.0
    assert limiter.cut() is False and limiter.rate_now() == pytest.approx(4.0)  # a second later: the same burst
    clock.t = 1.01
    assert limiter.cut() is True and limiter.rate_now() == pytest.approx(2.0)


def test_after_a_cut_the_curve_climbs_back_to_the_old_rate_in_k_seconds_and_not_while_held() -> None:
    """CUBIC: w(t) = C (t - K)^3 + w_max with K = (w_max (1 - beta) / C)^(1/3) — back at w_max after K
    seconds, slowly near it, quickly after; a hold (a block's length) delays the whole curve."""
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(8.0, 50.0, 1, clock, beta=0.5, floor=0.5)
    limiter.cut(hold=3.0)
    k = (8.0 * 0.5 / AdaptiveRateLimiter.C) ** (1 / 3)
    clock.t = 3.0  # held: no growth yet
    assert limiter.rate_now(capped=False) == pytest.approx(4.0)
    clock.t = 3.0 + k / 2
    half = limiter.rate_now(capped=False)
    assert half == pytest.approx(AdaptiveRateLimiter.C * (-k / 2) ** 3 + 8.0)
    clock.t = 3.0 + k
    assert limiter.rate_now(capped=False) == pytest.approx(8.0)
    clock.t = 3.0 + k + 2.0
    assert limiter.rate_now(capped=False) == pytest.approx(AdaptiveRateLimiter.C * 8.0 + 8.0)


# --- the adaptive limiter's learning, exactly (the survivors the first pass left) ---------------------


def _adaptive(start: float = 40.0, burst: int = 1) -> tuple[FakeClock, AdaptiveRateLimiter, _Top]:
    clock, jitter = FakeClock(), _Top()
    limiter = AdaptiveRateLimiter(start, 50.0, burst, clock, beta=0.7, floor=0.5)
    limiter._jitter = jitter
    return clock, limiter, jitter


@pytest.mark.parametrize("burst", [1, 3])
def test_a_block_one_client_could_not_cause_teaches_it_a_share_of_the_limit(burst: int) -> None:
    """After the n-th block it could not cause alone, a client takes at most 1 / (n + 2) of 90 % of the
    limit, less its burst, and below 90 % of the rate it was blocked at; a block within a block's length
    and a second of the last is the same event and teaches nothing."""
    clock, limiter, _ = _adaptive(burst=burst)
    assert limiter.max_rate == pytest.approx(50 * 0.95 - (burst - 1))
    limiter.block(10.0)  # the cut: 40 → 28; the first share: 45 / 3 = 15, less the burst
    share = 15.0 - (burst - 1)
    assert (limiter.max_rate, limiter.rate, limiter._w_max) == pytest.approx((share, share, share))
    clock.t = 11.0  # not more than 10 + 1 s after: one event, cut again (a second has passed) but nothing learnt
    limiter.block(10.0)
    assert (limiter.max_rate, limiter.rate) == pytest.approx((share, share * 0.7))
    clock.t = 22.01
    limiter.block(10.0)  # cut from share * 0.7; the second share 45 / 4 = 11.25 is above 90 % of that rate
    blocked_at = share * 0.7
    assert limiter.max_rate == pytest.approx(min(11.25 - (burst - 1), blocked_at * 0.9))
    assert limiter.rate == pytest.approx(blocked_at * 0.7) and limiter._w_max == pytest.approx(limiter.max_rate)


def test_a_fleets_limiter_learns_no_share() -> None:
    _, limiter, _ = _adaptive()
    limiter.learns_share = False
    limiter.block(10.0)
    assert (limiter.max_rate, limiter.rate) == pytest.approx((47.5, 28.0))


def test_a_learned_share_is_tried_higher_by_five_percent_a_minute_and_forgotten_at_the_ceiling() -> None:
    clock, limiter, _ = _adaptive()
    clock.t = 100.0
    limiter.block(10.0)
    assert limiter.max_rate == pytest.approx(15.0)
    clock.t = 160.0  # a minute after the block
    limiter.rate_now()
    assert limiter.max_rate == pytest.approx(15.0 * 1.05)
    clock.t = 190.0
    limiter.rate_now()
    assert limiter.max_rate == pytest.approx(15.0 * 1.05 ** 1.5)
    clock.t = 100.0 + 60.0 * math.log(47.5 / 15.0, 1.05) + 1.0  # past the published ceiling's safe rate
    limiter.rate_now()
    assert limiter.max_rate == pytest.approx(47.5)
    # forgotten: the next block is a first one again (45 / 3, not 45 / 4); the rate held at 15 meanwhile
    # (growth is capped at twice the use, and nothing was sent)
    assert limiter.rate == pytest.approx(15.0)
    limiter.block(10.0)
    assert limiter.max_rate == pytest.approx(min(15.0, 15.0 * 0.9))


def test_a_blocks_hold_carries_jitter_up_to_twice_its_length() -> None:
    _, limiter, jitter = _adaptive()
    limiter.block(10.0)
    assert jitter.ranges == [(0.2, 1.0)]
    assert limiter._blocked_until == pytest.approx(10.0 * 2.0)  # the jitter's top: twice the block


async def test_a_block_on_the_probe_holds_longer_and_a_clean_answer_resets_it() -> None:
    clock, limiter, _ = _adaptive()
    limiter.block(2.0)
    await limiter.acquire()  # after the hold: the probe
    assert clock.t == pytest.approx(4.0) and limiter._probe is not None
    limiter.block(2.0)  # the probe's own throttle: another worker's block
    assert limiter._blocked_until == pytest.approx(4.0 + 2.0 * 1.5 * 2.0)
    await limiter.acquire()
    limiter.block(2.0)
    assert limiter._blocked_until == pytest.approx(clock.t + 2.0 * 1.5 ** 2 * 2.0)
    await limiter.acquire()
    limiter.settled()  # a clean answer: the streak is over
    limiter.block(2.0)
    assert limiter._blocked_until == pytest.approx(clock.t + 2.0 * 2.0)


async def test_after_a_block_one_probe_goes_first_and_the_rest_follow_its_clean_answer() -> None:
    clock, limiter, _ = _adaptive(burst=5)
    with anyio.fail_after(0.5):  # no probe before any block: one request after another at once
        await limiter.acquire()
        await limiter.acquire()
    limiter.block(1.0)
    order: list[str] = []

    async def one(name: str) -> None:
        await limiter.acquire()
        order.append(name)

    with anyio.fail_after(0.5):  # (the rest would follow an unanswered probe only after a second)
        async with anyio.create_task_group() as group:
            group.start_soon(one, "probe")
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            group.start_soon(one, "next")
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            assert order == ["probe"]  # the next waits on the probe's answer
            limiter.settled()
    assert order == ["probe", "next"] and clock.t == pytest.approx(2.0)


def test_a_second_shared_block_takes_a_quarter_share_when_that_is_what_binds() -> None:
    clock, limiter, _ = _adaptive()
    limiter.block(10.0)
    clock.t = 30.0  # half a minute later the rate has grown back to the share tried 2.5 % higher
    assert limiter.rate_now(capped=False) == pytest.approx(15.0 * 1.05 ** 0.5)
    limiter.block(10.0)  # the second shared block: 45 / 4 = 11.25, under 90 % of the rate blocked at
    assert limiter.max_rate == pytest.approx(11.25)


def test_the_curve_starts_on_its_plateau_and_a_cut_without_a_hold_climbs_back_in_k_seconds() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(8.0, 50.0, 1, clock, beta=0.5, floor=0.5)
    clock.t = 2.0
    assert limiter.rate_now(capped=False) == pytest.approx(8.0 + AdaptiveRateLimiter.C * 2.0 ** 3)
    w_max = limiter.rate_now(capped=False)
    limiter.cut()  # another client's throttle: no hold of this client's own
    k = (w_max * 0.5 / AdaptiveRateLimiter.C) ** (1 / 3)
    clock.t = 2.0 + k
    assert limiter.rate_now(capped=False) == pytest.approx(w_max)


def test_growth_is_capped_at_twice_the_requests_of_the_last_second() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(1.0, 50.0, 1, clock, floor=0.5)
    clock.t = 10.0  # the curve is far above: only the cap holds the rate
    assert limiter.rate_now() == pytest.approx(2.0)  # nothing sent: twice one request a second
    clock.t = 20.0
    for _ in range(5):
        limiter.note_sent()
    clock.t = 20.5
    assert limiter.rate_now() == pytest.approx(10.0)  # five in the last second
    for _ in range(10):
        limiter.note_sent()
    clock.t = 22.0  # those fifteen are more than a second old: forgotten
    assert limiter.rate_now() == pytest.approx(10.0)  # (the cap never lowers the rate)
    limiter.cut()
    clock.t = 40.0
    assert limiter.rate_now() == pytest.approx(7.0)  # 10 cut to 7; nothing sent lately: no growth past it


async def test_pacing_waits_for_the_missing_part_of_a_token_and_a_burst_goes_at_once() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4.0, 50.0, 5, clock)
    for _ in range(5):
        await limiter.acquire()
    assert clock.sleeps == []  # the burst
    clock.t = 0.1  # 0.4 of a token since
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.15, rel=1e-3)]  # the 0.6 missing, at 4 a second (grown 0.01 %)


async def test_the_probes_own_throttle_cuts_once_more_even_within_a_second_of_the_last_cut() -> None:
    for hold in (2.0, 0.1):  # the probe comes after 4 s, or after 0.2 s (within a second of the first cut)
        _, limiter, _ = _adaptive()
        limiter.learns_share = False
        limiter.block(hold)
        assert limiter.rate == pytest.approx(28.0) and limiter._tokens == 0.0
        await limiter.acquire()  # the probe
        limiter.block(hold)
        assert limiter.rate == pytest.approx(28.0 * 0.7), hold


async def test_a_hold_grows_with_at_most_four_blocks_in_a_row() -> None:
    clock, limiter, _ = _adaptive()
    limiter.learns_share = False
    limiter.block(1.0)
    for streak in range(1, 7):
        await limiter.acquire()  # the probe, throttled again
        limiter.block(1.0)
        assert limiter._blocked_until == pytest.approx(clock.t + 1.5 ** min(streak, 4) * 2.0), streak


@on_virtual_time()
async def test_a_probe_never_answered_lets_the_rest_go_after_a_second_or_the_hold() -> None:
    for seconds, waited in ((0.1, 1.0), (1.0, 2.0)):  # holds of 0.2 s and 2 s (the jitter's top)
        _, limiter, _ = _adaptive(burst=5)
        limiter.block(seconds)
        await limiter.acquire()  # the probe: its caller goes away without an answer
        sent = len(limiter._sent)
        started = anyio.current_time()
        with anyio.fail_after(10):
            await limiter.acquire()
        assert anyio.current_time() - started == pytest.approx(waited)
        assert len(limiter._sent) == sent + 1 and limiter._probe is None  # it took its token, and is no probe


@on_virtual_time()
@pytest.mark.parametrize("first, second", [("a", "b"), ("b", "a")])
async def test_a_slot_given_back_keeps_the_queue_in_slot_order(first: str, second: str) -> None:
    """mutmut over ``_policy`` (issue 37): the waiter moved to an earlier slot could be put back in the
    queue anywhere, and no test saw it. Out of slot order, the next give-back takes the wrong waiter
    for the last: one waits a second more than it should, and a slot goes to nobody."""
    from .conftest import VirtualWall

    limiter = RateLimiter(1.0, 1, VirtualWall())
    started = anyio.current_time()  # (the virtual clock goes on from the test before)
    await limiter.acquire()  # slot 0
    done: dict[str, float] = {}
    scopes: dict[str, anyio.CancelScope] = {}

    async def one(name: str) -> None:
        with anyio.CancelScope() as scopes[name]:
            await limiter.acquire()
            done[name] = anyio.current_time() - started

    async with anyio.create_task_group() as group:
        for name in ("a", "b", "c"):  # slots 1, 2, 3
            group.start_soon(one, name)
            await anyio.lowlevel.checkpoint()
        await anyio.sleep(0.5)
        scopes[first].cancel()  # c, the last, takes its slot: c@1 before b@2, or a@1 before c@2
        await anyio.sleep(0.1)
        scopes[second].cancel()  # the last is now the one cancelled (c keeps slot 1), or c (moved to slot 1)
    assert done == {"c": pytest.approx(1.0)}


@pytest.mark.parametrize("counts, gaps", [([1], [0.1] * 5), ([3], [0.3] * 5), ([3, 1], [0.3] * 5),
                                          ([1, 4], [0.1, 0.1, 0.1, 0.4, 0.4])])
async def test_a_fleet_member_paces_itself_at_its_share_while_the_store_is_down(counts: list[int],
                                                                              gaps: list[float]) -> None:
    """Its share of 10 requests/s: the rate over the most clients seen sharing it since the outage
    began (a count that drops meanwhile — leases expire while the store cannot renew them — is not
    believed until the store is back)."""
    from smsactivate_async._policy import SharedRateLimiter
    from smsactivate_async._tasks import TaskHost

    clock = FakeClock()
    seen = iter(counts)
    current = [next(seen)]
    limiter = SharedRateLimiter(DownStore(), rate=10.0, burst=1, clock=clock, local=RateLimiter(None, 1, clock),
                                host=TaskHost(), sharers=lambda: current[0])
    sent = []
    for n in range(6):
        if n == 3:
            current[0] = next(seen, current[0])
        await limiter.acquire()
        sent.append(clock.now())
    assert [b - a for a, b in itertools.pairwise(sent)] == [pytest.approx(gap) for gap in gaps]
