"""A budget is a budget (issue 41): a spending guard holds whatever the concurrency, with a ceiling
or without, faults on or off — the simulator's ledger is the referee — and says why it stopped."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from smsactivate_async import (
    BuyingPolicy,
    InvalidArgumentError,
    NoNumbersError,
    RetryPolicy,
    SMSActivate,
    SMSActivateError,
    SpendingGuard,
    SpendingGuardError,
    WrongMaxPriceError,
)
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, Simulator

from .conftest import on_virtual_time

pytestmark = pytest.mark.anyio


def make(*, faults: float = 0.0, codes: CodeSchedule | None = None, **options: Any) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(codes=codes or CodeSchedule.never(), early_cancel_seconds=0, clock=LoopSimClock(),
                    faults=Faults.uniform(faults, retry_after=0.2, hang_seconds=2.0) if faults else None, seed=7)
    sim.set_price("tg", 0, "0.10")
    client = SMSActivate(sim.api_key, provider=sim.provider, transport=sim.transport(), rate_limit=None,
                         poll_interval=0.5, early_cancel_window=0, timeout=3.0,
                         retry=RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.5), **options)
    return sim, client


def charged(sim: Simulator) -> Decimal:
    return sum((p.cost for p in sim.ledger.purchases), Decimal(0))


async def _buy_concurrently(client: SMSActivate, policy: BuyingPolicy, n: int) -> tuple[list[int], list[BaseException]]:
    bought: list[int] = []
    refused: list[BaseException] = []

    async def one() -> None:
        try:
            number = await client.buy(service="tg", country=0, policy=policy)
            bought.append(number.activation_id)
        except SMSActivateError as exc:
            refused.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    return bought, refused


@on_virtual_time()
@pytest.mark.parametrize("faults", [0.0, 0.15], ids=["clean", "faults"])
@pytest.mark.parametrize("ceiling", [None, "0.10"], ids=["no-ceiling", "ceiling"])
async def test_two_hundred_concurrent_purchases_charge_at_most_the_budget(faults: float, ceiling: str | None) -> None:
    sim, client = make(faults=faults)
    guard = SpendingGuard(budget="5")
    policy = BuyingPolicy(ceiling=ceiling, guard=guard)
    async with client:
        bought, refused = await _buy_concurrently(client, policy, 200)
        for activation_id in bought:
            try:
                await client.set_status(activation_id, 8)
            except SMSActivateError:
                pass
    assert charged(sim) <= Decimal("5"), f"charged {charged(sim)} for a budget of 5"
    guard_stops = [e for e in refused if isinstance(e, SpendingGuardError)]
    assert guard_stops and all(e.reason == "budget" for e in guard_stops)
    if not faults:
        assert charged(sim) == Decimal("5.00") and len(bought) == 50 and len(guard_stops) == 150
    assert guard.spent <= Decimal("5") and guard.reserved == 0


@on_virtual_time()
@pytest.mark.parametrize("faults", [0.0, 0.15], ids=["clean", "faults"])
async def test_run_many_at_concurrency_200_keeps_the_budget_without_a_ceiling(faults: float) -> None:
    sim, client = make(faults=faults, codes=CodeSchedule.within(0.5, 2.0))
    guard = SpendingGuard(budget="5")
    async with client:
        async with anyio.create_task_group():
            results = [r async for r in client.run_many(200, service="tg", country=0, concurrency=200, timeout=20,
                                                        policy=BuyingPolicy(guard=guard))]
    assert charged(sim) <= Decimal("5")
    assert sum(r.ok for r in results) <= 50
    assert any(isinstance(r.error, SpendingGuardError) for r in results)
    assert not sim.open_activations()


@on_virtual_time()
async def test_refunds_return_to_the_budget_only_when_asked() -> None:
    for count_refunds, expected in ((False, 10), (True, 20)):
        _sim, client = make()
        guard = SpendingGuard(budget="1.00", count_refunds=count_refunds)
        policy = BuyingPolicy(guard=guard)
        bought = 0
        async with client:
            for _ in range(20):
                try:
                    number = await client.buy(service="tg", country=0, policy=policy)
                except SpendingGuardError:
                    break
                bought += 1
                await client.set_status(number.activation_id, 8)  # cancelled before a code: refunded
        assert bought == expected, (count_refunds, bought)
        assert guard.refunded == Decimal("0.10") * bought and guard.spent == Decimal("0.10") * bought
        assert "refunded=" in repr(guard) and "reserved=0" in repr(guard)


@on_virtual_time()
async def test_a_streak_stop_refuses_purchases_already_queued() -> None:
    """At concurrency 20, once the streak is reached the purchases queued behind the rate limiter are
    refused before they leave: at most the ones on the wire then are bought past it."""
    sim, client = make(codes=CodeSchedule.never())
    guard = SpendingGuard(max_no_code_streak=5)
    client = SMSActivate(sim.api_key, provider=sim.provider, transport=sim.transport(), rate_limit=5.0, burst=1,
                         poll_interval=0.2, early_cancel_window=0)
    async with client:
        results = [r async for r in client.run_many(60, service="tg", country=0, concurrency=20, timeout=0.5,
                                                    policy=BuyingPolicy(guard=guard))]
    bought = [r for r in results if r.activation_id is not None]
    stopped = [r for r in results if isinstance(r.error, SpendingGuardError)]
    assert stopped and all(r.activation_id is None for r in stopped)
    # 5 to reach the streak, and only those on the wire beyond it: not the 15 queued behind the rate limiter
    assert len(bought) <= 5 + 2, len(bought)
    assert len(sim.ledger.purchases) == len(bought)
    assert not sim.open_activations()


async def test_a_policy_that_ran_out_of_choices_says_why_for_each() -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    sim.set_price("tg", 0, "0.10")
    sim.set_price("tg", 6, "0.50")
    sim.set_stock("tg", 0, 0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        with pytest.raises((NoNumbersError, WrongMaxPriceError)) as caught:
            await client.buy(service="tg", country=0, policy=BuyingPolicy(ceiling="0.20", fallbacks=[6]))
    text = str(caught.value)
    assert "country 0: out of stock" in text and "country 6: its minimum price 0.5" in text and "ceiling 0.20" in text
    assert caught.value.info["passed_over"][0].startswith("country 0")
    assert text.count("WRONG_MAX_PRICE") <= 1


async def test_an_error_code_is_not_written_twice() -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    sim.set_price("tg", 0, "0.50")
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        with pytest.raises(WrongMaxPriceError) as caught:
            await client.get_number_v2(service="tg", country=0, max_price="0.10")
    assert str(caught.value).count("WRONG_MAX_PRICE") == 1, str(caught.value)


async def test_cancel_activation_on_a_dialect_without_it_says_what_to_call() -> None:
    async with SMSActivate("k" * 32, transport=Simulator().transport(), rate_limit=None) as client:
        with pytest.raises(InvalidArgumentError, match=r"set_status\(activation_id, 8\)"):
            await client.cancel_activation(123)
