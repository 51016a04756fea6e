"""Pacing to the provider's real limit: the adaptive limiter, the simulator's model of each
provider's limit, rate blocks, and codes delivered from rows without a confirming getStatus."""

from __future__ import annotations

import itertools
import re
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smsactivate_async import InvalidArgumentError, Provider, RateLimitedError, RetryPolicy, SMSActivate
from smsactivate_async._convert import to_id
from smsactivate_async._parse import UnexpectedAnswer, active_rows
from smsactivate_async._policy import AdaptiveRateLimiter
from smsactivate_async._scan import scan_rows as _scan_rows
from smsactivate_async._wire import decode_answer
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, ManualClock, Simulator

from .conftest import FakeClock, mock_client, on_virtual_time

pytestmark = pytest.mark.anyio


# --- the adaptive limiter ---------------------------------------------------------------------------


async def _send(limiter: AdaptiveRateLimiter, clock: FakeClock, seconds: float) -> int:
    sent, end = 0, clock.t + seconds
    while clock.t < end:
        await limiter.acquire()
        sent += 1
    return sent


async def test_adaptive_rises_from_the_safe_rate_and_never_above_the_ceiling() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4.0, 50.0, 4, clock)
    assert limiter.rate == 4.0
    first_second = await _send(limiter, clock, 1.0)
    assert first_second <= 4 + 5  # the burst, then the safe rate (growing slowly at first)
    await _send(limiter, clock, 10.0)
    assert limiter.rate == limiter.max_rate <= 50.0 - 3  # the burst lands in the server's one-second window
    assert await _send(limiter, clock, 1.0) <= 50


async def test_a_throttle_cuts_once_holds_the_block_and_grows_back() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4.0, 50.0, 1, clock)
    await _send(limiter, clock, 10.0)
    top = limiter.rate
    assert top is not None
    for _ in range(5):  # one block answers many requests in flight: one cut
        limiter.block(10.0)
    # one cut, and the share learned (a block one client under the published limit cannot cause):
    # at most a third of the limit after the first such block
    share = 50.0 * 0.9 / 3
    assert limiter.rate == pytest.approx(min(top * 0.7, share)) and limiter.throttles == 5
    assert limiter.max_rate == pytest.approx(min(top * 0.9, share))
    before = clock.t
    await limiter.acquire()
    assert clock.t >= before + 10.0 * 1.2  # nothing leaves during the block (a jittered hold past it)
    assert limiter.rate == pytest.approx(min(top * 0.7, share))  # and nothing grew during it
    limiter.settled()  # the probe came back clean
    await _send(limiter, clock, 8.0)
    assert limiter.rate == pytest.approx(limiter.max_rate, rel=0.02)  # back up to the share learned
    learned = limiter.max_rate
    await _send(limiter, clock, 120.0)
    assert learned < limiter.max_rate <= 50.0 * 0.95  # and the share is tried higher again, slowly


async def test_an_idle_client_does_not_climb_to_a_rate_it_never_used() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4.0, 50.0, 1, clock)
    for _ in range(20):
        await clock.sleep(1.0)
        await limiter.acquire()  # one request a second
    assert limiter.rate is not None and limiter.rate <= 4.0


@pytest.mark.parametrize("bad", ["fast", -1, 0, True, float("nan"), float("inf"), [5]])
def test_rate_limit_must_be_a_positive_number_none_or_adaptive(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="rate_limit"):
        SMSActivate("k", rate_limit=bad)


async def test_herosms_is_adaptive_by_default_and_stats_show_the_rate() -> None:
    sim = Simulator(provider="herosms")
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport()) as client:
        assert isinstance(client._session.limiter, AdaptiveRateLimiter)
        await client.get_balance()
        assert client.stats.rate == 44.0  # the most one client may send under its published 50/s
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=7) as fixed:
        await fixed.get_balance()
        assert fixed.stats.rate == 7


# --- rate blocks seen by the client -----------------------------------------------------------------


async def test_a_429_without_retry_after_holds_the_provider_block() -> None:
    clock = FakeClock()
    answers = [httpx.Response(429, json={"title": "RATE_LIMIT", "details": ""}),
               httpx.Response(200, text="ACCESS_BALANCE:1")]
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.t)
        return answers.pop(0)

    async with mock_client(handler, provider="herosms", clock=clock, rate_limit="adaptive") as client:
        await client.get_balance()
        # cut, and the account's share learned: a third of the limit less the burst (4)
        assert client.stats.throttles == 1 and client.stats.rate == pytest.approx(50.0 * 0.9 / 3 - 3)
    assert sent[1] - sent[0] >= 10.0  # HeroSMS blocks 10 s and re-blocks on any request during it


async def test_the_edges_1020_page_is_a_rate_limit_not_a_server_error() -> None:
    body = b"<html><head><title>Access denied | error code: 1020</title></head><body>error code: 1020</body></html>"
    with pytest.raises(RateLimitedError):
        decode_answer(action="getBalance", status_code=403, body=body, headers={})


# --- the simulator's model of each provider's limit --------------------------------------------------


async def test_simulated_herosms_blocks_for_10s_and_reblocks() -> None:
    clock = ManualClock()
    sim = Simulator(provider="herosms", clock=clock, faults=Faults.herosms_limits())
    params = {"api_key": sim.api_key, "action": "getBalance"}
    statuses = [(await sim.handle(params)).status for _ in range(51)]
    assert statuses[:50] == [200] * 50 and statuses[50] == 429
    assert sim.ledger.over_budget == 1 and sim.ledger.blocks == [[0.0, 10.0]]
    clock.advance(9.0)
    blocked = await sim.handle(params)  # during the block: refused, and the block starts again
    assert blocked.status == 429 and b"RATE_LIMIT" in blocked.body and not blocked.headers
    assert sim.ledger.blocks == [[0.0, 19.0]]
    clock.advance(9.5)
    assert (await sim.handle(params)).status == 429
    clock.advance(10.1)
    assert (await sim.handle(params)).status == 200


async def test_simulated_block_page_1020() -> None:
    sim = Simulator(provider="herosms", clock=ManualClock(), faults=Faults.herosms_limits(rps_budget=1, block_page=True))
    params = {"api_key": sim.api_key, "action": "getBalance"}
    await sim.handle(params)
    reply = await sim.handle(params)
    assert reply.status == 403 and b"1020" in reply.body


async def test_simulated_tiger_limits_purchases_per_service_and_country() -> None:
    sim = Simulator(clock=ManualClock(), faults=Faults.tiger_limits())
    buy = {"api_key": sim.api_key, "action": "getNumber", "service": "tg", "country": "0"}
    assert (await sim.handle(buy)).status == 200
    limited = await sim.handle(buy)
    assert limited.status == 429 and limited.body == b"Too Many Requests" and limited.headers == [(b"retry-after", b"1")]
    assert (await sim.handle({**buy, "service": "wa"})).status == 200  # another pair has its own budget
    assert (await sim.handle({**buy, "action": "getBalance"})).status == 200  # reads are not limited


@on_virtual_time()
async def test_adaptive_client_against_a_faithful_limit_is_never_blocked_after_it_learns() -> None:
    sim = Simulator(provider="herosms", faults=Faults.herosms_limits(rps_budget=40, block_seconds=1.0), clock=LoopSimClock())
    provider = Provider(name="limited", base_url="https://x.example/stubs/handler_api.php", dialect="herosms",
                        rate_limit="adaptive", rate_ceiling=40, burst=2, rate_block_seconds=1.0)
    async with SMSActivate(sim.api_key, provider=provider, transport=sim.transport(),
                           retry=RetryPolicy(attempts=5)) as client:
        with anyio.fail_after(30):
            for _ in range(150):
                await client.get_balance()
    assert sim.ledger.blocks == [] and sim.ledger.over_budget == 0
    assert sim.ledger.max_requests_in_window(1.0) <= 40


# --- codes from rows ---------------------------------------------------------------------------------


def test_a_row_code_is_exact_only_as_one_string_or_integer() -> None:
    rows = _scan_rows({"activeActivations": [
        {"activationId": "1", "activationStatus": "2", "smsCode": "8932"},
        {"activationId": "2", "activationStatus": "4", "smsCode": ["111", "222"]},
        {"activationId": "3", "activationStatus": "4", "smsCode": None},
        {"activationId": "4", "activationStatus": "2", "smsCode": 8932},
        # what orjson makes of a code of 20 digits: its digits are lost, so it only means "look"
        {"activationId": "5", "activationStatus": "2", "smsCode": 1.8446744073709552e+19}]})
    assert rows == {1: ("2", "8932", True), 2: ("4", "222", False), 3: ("4", None, True), 4: ("2", "8932", True),
                    5: ("2", "1.8446744073709552e+19", False)}


def _scan_rows_plainly(answer: Any) -> Any:
    """What the scan's rows mean, written plainly (the scan's fast paths must agree with it)."""
    result = {}
    for row in active_rows(answer):
        code = row.get("smsCode")
        exact = code is None or (isinstance(code, (str, int)) and not isinstance(code, bool))
        if isinstance(code, list):
            code = code[-1] if code else None
        status = row.get("activationStatus")
        result[to_id(row["activationId"])] = (None if status is None else str(status),
                                              None if code in (None, "") else str(code), exact)
    return result


_IDS = st.one_of(st.integers(-3, 2**40), st.integers(-3, 2**40).map(str), st.sampled_from(["0", "007", " 12", "1.0", "²", "x"]))
_CODES = st.one_of(st.none(), st.just(""), st.text(max_size=6), st.integers(0, 10**6), st.floats(), st.booleans(),
                   st.lists(st.one_of(st.text(max_size=6), st.none()), max_size=3))
_STATUSES = st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4", "6", "8", "99"]), st.integers(0, 120))


_ROWS = st.one_of(
    st.fixed_dictionaries({"activationId": _IDS, "activationStatus": _STATUSES, "smsCode": _CODES}),
    st.fixed_dictionaries({"activationId": _IDS}, optional={"activationStatus": _STATUSES, "smsCode": _CODES}),
    st.sampled_from([None, "activationId", ["activationId"], 7, {"id": "1"}]),  # not a row
)


# statuses outside the shared quiet rows, and numbers, without a code
@example([{"activationId": "1", "activationStatus": 4}, {"activationId": "2", "activationStatus": 99},
          {"activationId": "3", "activationStatus": "99"}, {"activationId": 4, "activationStatus": "x", "smsCode": None}])
@given(st.lists(_ROWS, max_size=8))
def test_the_scans_fast_paths_read_every_row_as_the_plain_reading_does(rows: list[Any]) -> None:
    answer = {"activeActivations": rows}
    try:
        expected = _scan_rows_plainly(answer)
    except UnexpectedAnswer:
        with pytest.raises((UnexpectedAnswer, ValueError)):  # a bad id before the bad row: either says so
            _scan_rows(answer)
        return
    except ValueError as exc:
        with pytest.raises((UnexpectedAnswer, ValueError), match=re.escape(str(exc)) + "|getActiveActivations rows"):
            _scan_rows(answer)
        return
    assert _scan_rows(answer) == expected


@pytest.mark.parametrize(("dialect", "confirmations"), [("sms-activate", 0), ("herosms", 20)])
async def test_codes_from_rows_where_the_dialect_is_exact(dialect: str, confirmations: int) -> None:
    sim = Simulator(provider=dialect, codes=CodeSchedule.within(0.05, 0.3))
    async with SMSActivate(sim.api_key, provider=dialect, transport=sim.transport(), rate_limit=None,
                           poll_interval=0.05) as client:
        numbers = [await client.get_number_v2(service="tg", country=2) for _ in range(20)]
        codes: dict[int, str] = {}

        async def wait(activation_id: int) -> None:
            codes[activation_id] = await client.wait_for_code(activation_id, timeout=10)

        async with anyio.create_task_group() as group:
            for number in numbers:
                group.start_soon(wait, number.activation_id)
        assert client._get_scheduler().row_deliveries == 20 - confirmations
    assert codes == {n.activation_id: sim.activations[n.activation_id].messages[0].code for n in numbers}
    assert sim.ledger.requests_for("getStatus") == confirmations


async def test_after_a_re_request_the_code_is_confirmed_even_where_rows_are_exact() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=0.02) as client:
        async with client.activation(service="tg", country=0) as act:
            sim.deliver_sms(act.activation_id, "code 11111")
            assert await act.wait_for_code(timeout=5) == "11111"
            await act.request_another_code()
            before = sim.ledger.requests_for("getStatus")
            sim.deliver_sms(act.activation_id, "code 22222")
            assert await act.wait_for_code(timeout=5) == "22222"
            assert sim.ledger.requests_for("getStatus") > before


@pytest.mark.slow
async def test_on_redis_the_adapted_rate_is_the_fleets(redis_url: str) -> None:
    """Three adaptive clients of one account on Redis: together they stay within the account's budget,
    and a throttle seen by one cuts them all."""
    sim = Simulator(provider="herosms", faults=Faults.herosms_limits(rps_budget=30, block_seconds=1.0))
    provider = Provider(name="limited", base_url="https://x.example/stubs/handler_api.php", dialect="herosms",
                        rate_limit="adaptive", rate_ceiling=30, burst=2, rate_block_seconds=1.0)
    clients = [SMSActivate(sim.api_key, provider=provider, transport=sim.transport(), store=redis_url, owner=f"c{i}",
                           retry=RetryPolicy(attempts=5)) for i in range(3)]

    async def work(client: SMSActivate) -> None:
        for _ in range(50):
            await client.get_balance()

    async with clients[0], clients[1], clients[2]:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for client in clients:
                    group.start_soon(work, client)
        rates = [c.stats.rate for c in clients]
        # a throttle seen by one client is the fleet's: every client's rate follows
        clients[0]._session.limiter.block(1.0)
        await anyio.sleep(0.05)
        for client in clients[1:]:
            await client.get_balance()
        cut = [c._session.limiter.rate for c in clients]
    assert sim.ledger.blocks == [] and sim.ledger.over_budget == 0
    assert sim.ledger.max_requests_in_window(1.0) <= 30
    assert all(after is not None and before is not None and after < before for before, after in zip(rates, cut, strict=True))


def test_a_fixed_rate_at_the_whole_published_limit_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """At exactly the budget any jitter puts a request too many into some second (throughput.py's
    fixed 50/s row: blocked after every saturated second); below it by the burst, no warning."""
    with caplog.at_level("WARNING", "smsactivate_async"):
        SMSActivate("k", provider="herosms", rate_limit=50)
        assert "reaches herosms's whole published limit (50/s)" in caplog.text
        caplog.clear()
        SMSActivate("k", provider="herosms", rate_limit=46, burst=4)
        SMSActivate("k", provider="herosms")  # adaptive
        assert "published limit" not in caplog.text


@on_virtual_time()
async def test_purchases_held_by_a_store_outage_leave_at_the_accounts_pace() -> None:
    """Issue 39: purchases that waited for the store (their intents could not be written) took their
    slots of the budget before the wait, and all left at once when it came back — a burst that gets an
    account blocked. They take a fresh slot after the wait."""
    from smsactivate_async import MemoryStore, StoreError
    from smsactivate_async.simulator import LoopSimClock, Simulator

    back = anyio.current_time() + 5.0
    refused: list[float] = []

    class Outage(MemoryStore):
        async def add_intent(self, intent: Any) -> int:
            if anyio.current_time() < back:
                refused.append(anyio.current_time())
                raise StoreError("connection refused", unreachable=True)
            return await super().add_intent(intent)

    sim = Simulator(clock=LoopSimClock())
    async with SMSActivate(sim.api_key, transport=sim.transport(), store=Outage(), rate_limit=5.0, burst=1,
                           store_wait=30.0) as client:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(lambda: client.get_number_v2(service="tg", country=0))
    sent = sorted(r.at for r in sim.ledger.requests if r.action == "getNumberV2")
    assert len(sent) == 20 and len(refused) >= 20  # every purchase waited for the store
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= 0.2 - 1e-6, gaps  # 5 per second, as configured: no burst when the store came back


@on_virtual_time()
@pytest.mark.anyio
async def test_a_caller_that_stops_waiting_gives_its_slot_to_the_queue() -> None:
    """Issue 37 (the harness's slowness finding, seed 292): a caller cancelled while it waited for its
    reserved slot kept it, and the budget sat unused for an interval while others waited. The last in
    the queue takes the freed slot, and the pace still holds."""
    from smsactivate_async._clock import SystemClock
    from smsactivate_async._policy import RateLimiter

    limiter = RateLimiter(5.0, 1, SystemClock())
    start = anyio.current_time()
    granted: dict[str, float] = {}

    async def take(name: str, give_up_after: float | None = None) -> None:
        with anyio.move_on_after(give_up_after if give_up_after is not None else float("inf")):
            await limiter.acquire()
            granted[name] = anyio.current_time() - start

    async with anyio.create_task_group() as group:
        for name, give_up in (("first", None), ("impatient", 0.1), ("second", None), ("third", None)):
            group.start_soon(take, name, give_up)
            await anyio.lowlevel.checkpoint()
    assert "impatient" not in granted
    # slots at 0, 0.2, 0.4, 0.6: the impatient one's 0.2 goes to the last ("third"), 0.6 is released
    assert granted == pytest.approx({"first": 0.0, "third": 0.2, "second": 0.4})
    await limiter.acquire()  # the next caller is served at the freed pace, not after a hole
    assert anyio.current_time() - start == pytest.approx(0.6)


@on_virtual_time()
@pytest.mark.anyio
async def test_a_slot_already_due_is_not_given_back_twice() -> None:
    from smsactivate_async._clock import SystemClock
    from smsactivate_async._policy import RateLimiter

    limiter = RateLimiter(5.0, 1, SystemClock())
    start = anyio.current_time()
    await limiter.acquire()
    with anyio.move_on_after(0.2):  # gives up exactly as its slot comes due
        await limiter.acquire()
    await limiter.acquire()
    assert anyio.current_time() - start >= 0.4 - 1e-9  # the due slot counted: no two requests within 0.2 s
