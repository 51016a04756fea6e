"""One account, one budget (issue 24): no slot booked ahead on Redis, no spiral of blocks without a
shared store, a start that serves a burst, and a store whose connections are waited for."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from smsactivate_async import SMSActivate, SMSActivateError, StoreError, SystemClock
from smsactivate_async._policy import AdaptiveRateLimiter
from smsactivate_async._store_redis import RedisStore
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, Simulator

from .conftest import on_virtual_time

pytestmark = pytest.mark.anyio


def herosms_world(**client: object) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(1.0, 5.0), faults=Faults.herosms_limits(),
                    api_keys={"k": Decimal(10**6)}, clock=LoopSimClock(), early_cancel_seconds=0)
    return sim, SMSActivate("k", provider="herosms", transport=sim.transport(), early_cancel_window=0,
                            poll_interval=1.0, **client)  # type: ignore[arg-type]


@on_virtual_time()
async def test_after_a_block_one_probe_goes_first_and_the_rest_follow_its_answer() -> None:
    limiter = AdaptiveRateLimiter(40.0, 50.0, 4, SystemClock())
    limiter.block(10.0)
    left: list[float] = []
    start = anyio.current_time()

    async def request() -> None:
        await limiter.acquire()
        left.append(anyio.current_time() - start)

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(request)
        await anyio.sleep(limiter._hold + 0.5)
        assert len(left) == 1 and left[0] >= 12.0  # the probe, after a hold past the 10 s block
        limiter.settled()  # its answer came back clean
    assert len(left) == 5


async def test_holds_grow_and_carry_jitter_while_probes_are_throttled() -> None:
    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

        async def sleep(self, seconds: float) -> None:
            self.t += seconds

    holds = []
    for _ in range(20):
        limiter = AdaptiveRateLimiter(40.0, 50.0, 4, Clock())
        limiter.block(10.0)
        first = limiter._hold
        limiter._probe = anyio.Event()  # a probe is out…
        limiter.block(10.0)  # …and throttled: another worker's block
        holds.append((first, limiter._hold))
    assert all(12.0 <= first <= 20.0 and 18.0 <= second <= 30.0 for first, second in holds)
    assert len({round(first, 3) for first, _ in holds}) > 10  # jittered: workers do not come back together


@on_virtual_time()
async def test_a_burst_of_fifty_purchases_leaves_within_about_a_second_never_blocked() -> None:
    sim, client = herosms_world()
    async with client:
        start = anyio.current_time()
        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(lambda: client.get_number_v2(service="tg", country=2))
        took = anyio.current_time() - start
    assert took <= 1.2 and sim.ledger.blocks == [] and sim.ledger.max_requests_in_window(1.0) <= 50


@on_virtual_time()
async def test_three_clients_sharing_no_store_learn_their_share_instead_of_spiralling() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(1.0, 10.0), faults=Faults.herosms_limits(),
                    api_keys={"k": Decimal(10**6)}, clock=LoopSimClock(), early_cancel_seconds=0, seed=5)
    clients = [SMSActivate("k", provider="herosms", transport=sim.transport(), early_cancel_window=0,
                           poll_interval=1.0) for _ in range(3)]
    done: list[int] = []

    async def worker(client: SMSActivate) -> None:
        async def one() -> None:
            async with client.activation(service="tg", country=2) as act:
                await act.wait_for_code(timeout=300)
            done.append(1)

        async with client, anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)

    start = anyio.current_time()
    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(worker, client)
    assert len(done) == 300 and len(sim.ledger.blocks) <= 2, sim.ledger.blocks
    assert anyio.current_time() - start < 120


@pytest.mark.slow
async def test_the_redis_budget_books_no_slot_ahead(redis_url: str) -> None:
    """90 concurrent purchases: with a Redis store within 1.5x of the same without (slots booked at the
    starting rate made them 4x slower)."""
    times = {}
    for store in (None, redis_url):
        sim = Simulator(provider="herosms", faults=Faults.herosms_limits(), api_keys={"k": Decimal(10**6)})
        async with SMSActivate("k", provider="herosms", transport=sim.transport(), store=store) as client:
            start = anyio.current_time()
            async with anyio.create_task_group() as group:
                for _ in range(90):
                    group.start_soon(lambda: client.get_number_v2(service="tg", country=2))
            times[store is None] = anyio.current_time() - start
        assert sim.ledger.blocks == []
    assert times[False] <= 1.5 * times[True] + 0.3, times


@pytest.mark.slow
async def test_a_thousand_concurrent_calls_on_one_redis_client_wait_for_connections(redis_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), api_keys={"k": Decimal(10**6)}, early_cancel_seconds=0)
    errors: list[SMSActivateError] = []
    store = RedisStore.from_url(redis_url)
    store.max_connections = 8  # far fewer than the calls in flight
    async with SMSActivate("k", transport=sim.transport(), store=store, rate_limit=None,
                           early_cancel_window=0) as client:

        async def one() -> None:
            try:
                number = await client.get_number_v2(service="tg", country=2)
                await client.set_status(number.activation_id, 8)
            except SMSActivateError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(1000):
                group.start_soon(one)
    assert not [e for e in errors if isinstance(e, StoreError)], errors[:3]
    assert errors == [] and len(sim.ledger.purchases) == 1000


def test_a_fleet_on_a_shared_store_keeps_its_rate_after_a_block() -> None:
    """On a shared store the account's budget is one GCRA: a block cuts it, it does not make each client
    take a third of the limit as clients sharing no store do."""
    from smsactivate_async._policy import SharedRateLimiter
    from smsactivate_async._tasks import TaskHost

    alone = AdaptiveRateLimiter(40.0, 50.0, 4, SystemClock())
    fleet_local = AdaptiveRateLimiter(40.0, 50.0, 4, SystemClock())
    class UnusedStore:
        async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
            raise AssertionError("not asked")

        async def block(self, seconds: float) -> None:
            raise AssertionError("not asked")

    SharedRateLimiter(store=UnusedStore(), rate=None, burst=4, clock=SystemClock(), local=fleet_local, host=TaskHost())
    for limiter in (alone, fleet_local):
        limiter.block(10.0)
    assert alone.max_rate < 20.0  # learned a share
    assert fleet_local.max_rate == pytest.approx(50.0 * 0.95 - 3)  # kept the published ceiling
    assert fleet_local.rate == pytest.approx(40.0 * 0.7)  # but was cut


async def test_while_the_store_is_down_each_client_takes_its_share_of_the_budget() -> None:
    """Found by `benchmarks/fleet.py --restart`: while Redis was down every worker paced itself at the
    fleet's whole rate, and three went up to 20 requests over the account's budget. Each now takes
    the rate divided by the clients whose leases it last saw alive."""
    from smsactivate_async._policy import RateLimiter, SharedRateLimiter
    from smsactivate_async._tasks import TaskHost

    from .conftest import DownStore, FakeClock

    clock = FakeClock()
    sent: list[float] = []
    limiter = SharedRateLimiter(DownStore(), rate=10.0, burst=1, clock=clock, local=RateLimiter(10.0, 1, clock),
                                host=TaskHost(), sharers=lambda: 3)
    for _ in range(20):
        await limiter.acquire()
        sent.append(clock.now())
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) == pytest.approx(0.3)  # a third of 10/s: three clients together keep to 10/s


async def test_a_journal_counts_the_clients_it_shares_the_budget_with(tmp_path: Path) -> None:
    from smsactivate_async._journal import Journal
    from smsactivate_async._store_sqlite import SqliteStore

    journals = [Journal(SqliteStore(tmp_path / "journal.db"), owner=f"w{i}", lease=30.0, stale_after=10.0)
                for i in range(3)]
    for journal in journals:
        await journal.open("ns")
    try:
        await journals[0].store.renew("gone", 1.0)  # a lease that expired long ago is nobody's share
        for journal in journals:
            await journal.renew()
        assert [journal.sharers for journal in journals] == [3, 3, 3]
    finally:
        for journal in journals:
            await journal.aclose()


async def test_a_store_back_from_an_outage_grants_no_burst_on_top_of_the_shares() -> None:
    """Found by `benchmarks/fleet.py --limits herosms --restart empty|data`: a 10 s block 0.6-1.0 s after
    Redis came back, in 5 of 8 runs — the store's budget knew nothing of what the clients had sent on
    their shares meanwhile (restarted empty, or from an old file) and granted a burst on top of them.
    For a second after the store's return each client keeps to its share as well (the share counted as
    during the outage: a store back empty shows no other lease at first)."""
    from smsactivate_async._policy import RateLimiter, SharedRateLimiter
    from smsactivate_async._tasks import TaskHost

    from .conftest import FakeClock

    clock = FakeClock()

    class RestartingStore:
        down_until = 2.0

        async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
            if clock.now() < self.down_until:
                raise StoreError("connection refused", unreachable=True)
            return 0.0, 0.0  # back, and empty: every slot granted at once

        async def block(self, seconds: float) -> None:
            pass

    seen = {"sharers": 3}
    limiter = SharedRateLimiter(RestartingStore(), rate=10.0, burst=4, clock=clock,
                                local=RateLimiter(10.0, 4, clock), host=TaskHost(), sharers=lambda: seen["sharers"])
    sent: list[float] = []
    while clock.now() < 4.0 and len(sent) < 200:
        await limiter.acquire()
        sent.append(clock.now())
        if clock.now() >= 2.0:
            seen["sharers"] = 1  # the first renewal on an empty store sees this client's lease alone
    during = [t for t in sent if t < 2.0]
    handover = [t for t in sent if 2.0 <= t < 3.0]
    after = [t for t in sent if t >= 3.0]
    assert min(b - a for a, b in itertools.pairwise(during)) == pytest.approx(0.3)  # a third of 10/s
    assert len(handover) <= 4 and min(b - a for a, b in itertools.pairwise(handover)) == pytest.approx(0.3)
    assert len(after) > 100  # the store's budget alone again (this fake one grants everything)


async def test_an_adaptive_fleet_slows_when_its_store_comes_back_and_grows_again() -> None:
    """After the hand-over a block still came in 1 of 5 runs, 2 s after the store's return, while the
    held-back work of five processes drained at the full rate (their jitter at the account's edge): the
    rate is now cut when the store comes back, as after a throttle, and grows back along its curve."""
    from smsactivate_async._policy import SharedRateLimiter
    from smsactivate_async._tasks import TaskHost

    from .conftest import FakeClock

    clock = FakeClock()

    class RestartingStore:
        down = True

        async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
            if self.down:
                raise StoreError("connection refused", unreachable=True)
            return 0.0, 0.0

        async def block(self, seconds: float) -> None:
            pass

    store = RestartingStore()
    local = AdaptiveRateLimiter(44.0, 50.0, 4, clock)
    limiter = SharedRateLimiter(store, rate=None, burst=4, clock=clock, local=local, host=TaskHost())
    before = local.rate
    assert before is not None
    await limiter.acquire()  # on its share: the store is down
    assert local.rate == before
    store.down = False
    await limiter.acquire()  # back
    assert local.rate == pytest.approx(before * 0.7)
    clock.t += 10.0
    assert local.rate_now(capped=False) == pytest.approx(local.max_rate)  # grown back
