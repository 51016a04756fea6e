"""Issue 45: poll as often as a share of the spare request budget allows, never slower than the
configured interval, backing off when the budget is needed or the provider throttles."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest

from smsactivate_async import InvalidArgumentError, SMSActivate, WaitTimeoutError
from smsactivate_async._polling import PollBudget, PollPace
from smsactivate_async._telemetry import SessionStats
from smsactivate_async.simulator import CodeSchedule, ManualClock, Simulator

pytestmark = pytest.mark.anyio


def _budget(rate: float | None, *, share: float = 0.25, least: float = 0.5, sharers: int = 1,
            shared: bool = False) -> tuple[PollBudget, Any, ManualClock]:
    clock = ManualClock()
    session: Any = SimpleNamespace(
        stats=SessionStats(), limiter=SimpleNamespace(rate=rate), last_throttle=float("-inf"),
        journal=SimpleNamespace(store=SimpleNamespace(shared=shared), sharers=sharers))
    return PollBudget(session, cast(Any, clock), PollPace(share, least)), session, clock


def _work(session: Any, clock: ManualClock, per_second: float, seconds: float, action: str = "getStatus") -> None:
    """``per_second`` requests of ``action`` for ``seconds`` (a second at a time)."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        session.stats.requests += int(per_second)
        session.stats.by_action[action] += int(per_second)


def test_the_rule_cost_over_share_of_spare_clamped_between_the_floor_and_the_configured_interval() -> None:
    budget, session, clock = _budget(40.0)
    assert budget.interval(5.0, 1) == 0.5          # 1 / (0.25 * 40) = 0.1: the floor
    assert budget.interval(5.0, 30) == 3.0         # 30 / 10
    assert budget.interval(5.0, 100) == 5.0        # 100 / 10 = 10: never above the configured interval
    assert budget.interval(0.2, 1) == 0.2          # configured below the floor: as configured
    _work(session, clock, 36, 30)                  # the other work uses 36 of 40 a second
    assert budget.spare() == pytest.approx(4, abs=0.4)
    assert budget.other_rate == pytest.approx(36, rel=0.01)
    assert budget.interval(5.0, 1) == pytest.approx(1 / (0.25 * 4), rel=0.02)
    _work(session, clock, 40, 30)                  # nothing spare: the configured interval
    assert budget.interval(5.0, 1) == 5.0


def test_polling_itself_is_not_the_other_work() -> None:
    budget, session, clock = _budget(40.0)
    _work(session, clock, 39, 30, action="getActiveActivations")
    _work(session, clock, 5, 5, action="getRentStatus")
    assert budget.spare() == 40.0
    assert budget.other_rate == pytest.approx(0.0)
    assert budget.interval(5.0, 1) == 0.5


def test_no_adapting_without_a_rate_with_share_zero_or_after_a_throttle() -> None:
    assert _budget(None)[0].interval(5.0, 1) == 5.0
    assert _budget(40.0, share=0.0)[0].interval(5.0, 1) == 5.0
    budget, session, clock = _budget(40.0)
    session.last_throttle = clock.now()
    clock.advance(59.0)
    assert budget.interval(5.0, 1) == 5.0          # a minute at the configured interval
    clock.advance(2.0)
    assert budget.interval(5.0, 1) == 0.5


def test_a_fleet_shares_the_account_budget() -> None:
    budget = _budget(40.0, sharers=4, shared=True)[0]
    assert budget.interval(10.0, 10) == 4.0        # 10 / (0.25 * 40 / 4)


def test_the_fleets_poller_pays_its_ticks_from_the_whole_accounts_spare_budget() -> None:
    """It scans for every client of the account: with four sharers, its ticks cost what one client's
    alone would (a quarter of the account's spare), not four times its own share (issue 45, the fleet
    of 8 at 1.10×)."""
    budget, session, clock = _budget(40.0, sharers=4, shared=True)
    assert budget.interval(10.0, 10, for_account=True) == 1.0      # 10 / (0.25 * 40)
    _work(session, clock, 6, 30)                                    # each sharer's other work: 6 a second
    assert budget.interval(10.0, 10, for_account=True) == pytest.approx(10 / (0.25 * (40 - 4 * 6)), rel=0.02)
    alone = _budget(40.0)[0]
    assert alone.interval(10.0, 10, for_account=True) == alone.interval(10.0, 10) == 1.0  # no fleet: no change


@pytest.mark.parametrize(("options", "message"), [({"poll_share": 1.5}, "poll_share"),
                                                  ({"poll_share": -0.1}, "poll_share"),
                                                  ({"min_poll_interval": 0}, "min_poll_interval"),
                                                  ({"min_poll_interval": float("inf")}, "min_poll_interval")])
def test_bad_knobs_are_refused_before_anything_is_sent(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        SMSActivate("k", **options)


async def _wait(client: SMSActivate, activation_id: int) -> None:
    with pytest.raises(WaitTimeoutError):
        await client.wait_for_code(activation_id, timeout=1.5, cancel_on_timeout=False)


async def _scans(**options: Any) -> int:
    """getActiveActivations sent while 20 numbers wait 1.5 s with a 1 s configured interval."""
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), poll_interval=1.0,
                           early_cancel_window=0, rate_limit=40, **options) as client:
        numbers = [await client.get_number_v2(service="tg", country=2) for _ in range(20)]
        before = sim.ledger.requests_for("getActiveActivations")
        async with anyio.create_task_group() as group:
            for number in numbers:
                group.start_soon(_wait, client, number.activation_id)
        return sim.ledger.requests_for("getActiveActivations") - before


async def test_the_poller_ticks_sooner_while_the_budget_has_room() -> None:
    fixed = await _scans(poll_share=0.0)
    adaptive = await _scans(min_poll_interval=0.1)
    assert fixed <= 3                               # about one a second
    assert adaptive >= 8                            # about ten a second: one request a tick of 40/s
    assert adaptive <= 17


async def test_a_throttle_puts_polling_back_to_the_configured_interval() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), poll_interval=1.0,
                           early_cancel_window=0, rate_limit=40, min_poll_interval=0.1) as client:
        number = await client.get_number_v2(service="tg", country=2)
        sim.faults.inject("rate_limit", action="getBalance")
        with anyio.move_on_after(0.5):
            await client.get_balance()  # throttled: held for the block, then the probe
        assert client._session.last_throttle > float("-inf")
        before = sim.ledger.requests_for("getActiveActivations")
        await _wait(client, number.activation_id)
        assert sim.ledger.requests_for("getActiveActivations") - before <= 3


async def test_rents_are_polled_sooner_while_the_budget_has_room() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rent_poll_interval=1.0,
                           rate_limit=40, min_poll_interval=0.1) as client:
        rent = await client.get_rent_number(service="tg", rent_time=4, country=2)
        with anyio.move_on_after(1.5):
            await client.wait_for_rent_sms(rent.id, timeout=10)
        polls = sim.ledger.requests_for("getRentStatus")
        await client.set_rent_status(rent.id, 2)
    assert polls >= 8


async def test_what_frees_a_slot_goes_ahead_of_queued_purchases() -> None:
    """Item 2: a code's confirmation and finish wait behind at most the one purchase already in the
    limiter, never behind the purchases queued after it."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=4, burst=1,
                           early_cancel_window=0) as client:
        first = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(first.activation_id, "code 12345")
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(lambda: client.get_number_v2(service="tg", country=0))
            await anyio.sleep(0.05)  # the purchases are queued
            assert (await client.get_status(first.activation_id)).code == "12345"
            await client.set_status(first.activation_id, 6)
    order = [r.action for r in sim.ledger.requests]
    finish = order.index("setStatus")
    assert order[:finish + 1].count("getNumberV2") <= 1 + 2  # the first, and at most one ahead of each
    assert order[finish + 1:].count("getNumberV2") >= 4
