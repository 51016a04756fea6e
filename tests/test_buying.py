"""Buying policies: price stepping, Free Price levels, fallbacks, ranking, the spending guard,
a pool of providers and the bulk runner — against the simulator's moving prices and stock."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import anyio
import pytest

from smsactivate_async import (
    BuyingPolicy,
    Choice,
    InvalidArgumentError,
    NoNumbersError,
    ProviderPool,
    SMSActivate,
    SpendingGuard,
    SpendingGuardError,
    WaitTimeoutError,
    WrongMaxPriceError,
)
from smsactivate_async.simulator import CodeSchedule, Simulator

pytestmark = pytest.mark.anyio


def make(codes: CodeSchedule | None = None, **sim_options: Any) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(codes=codes or CodeSchedule.never(), early_cancel_seconds=0, **sim_options)
    client = SMSActivate(sim.api_key, provider=sim.provider, transport=sim.transport(), rate_limit=None,
                         poll_interval=0.02, early_cancel_window=0)
    return sim, client


def paid(sim: Simulator) -> list[Decimal]:
    return [purchase.cost for purchase in sim.ledger.purchases]


# --- bad input: refused before anything is bought ------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"ceiling": "-1"}, "ceiling must be a positive amount"),
    ({"ceiling": 0}, "ceiling must be a positive amount"),
    ({"ceiling": 0.5}, "not float"),
    ({"max_price": "abc"}, "max_price must be an amount"),
    ({"max_price": "0.6", "ceiling": "0.5"}, "above the ceiling"),
    ({"fallbacks": []}, "fallbacks is empty"),
    ({"fallbacks": [-1]}, "country id"),
    ({"fallbacks": "2,3"}, "fallbacks must be a list"),
    ({"free_price": True}, "free_price needs a ceiling"),
    ({"rank": "random"}, "rank must be"),
    ({"price_ttl": -1}, "price_ttl"),
    ({"guard": "yes"}, "guard must be a SpendingGuard"),
])
def test_bad_policies_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        BuyingPolicy(**options)


@pytest.mark.parametrize(("options", "message"), [
    ({"budget": "-5"}, "budget must be a positive amount"),
    ({"max_no_code_streak": 0}, "max_no_code_streak must be a positive int"),
    ({"min_success_rate": 1.5}, "min_success_rate must be in"),
    ({"window": 0}, "window must be a positive int"),
])
def test_bad_guards_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        SpendingGuard(**options)


async def test_bad_calls_send_nothing() -> None:
    sim, client = make()
    policy = BuyingPolicy(ceiling="0.5")
    async with client:
        with pytest.raises(InvalidArgumentError, match="max_price comes from the policy"):
            await client.buy(service="tg", country=0, policy=policy, max_price="0.2")
        with pytest.raises(InvalidArgumentError, match="needs a country or fallbacks"):
            await client.buy(service="tg", policy=policy)
        with pytest.raises(InvalidArgumentError, match="policy must be a BuyingPolicy"):
            client.activation(service="tg", country=0, policy={"ceiling": 1})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="unknown argument"):
            client.run_many(3, service="tg", country=0, colour="red")
        with pytest.raises(InvalidArgumentError, match="concurrency"):
            client.run_many(3, service="tg", country=0, concurrency=0)
        with pytest.raises(InvalidArgumentError, match="order_id"):
            client.activation(service="tg", country=0, policy=policy, order_id="x")
    assert sim.ledger.requests == []


def test_a_pool_refuses_one_account_twice_and_nothing() -> None:
    a = SMSActivate("key-1", rate_limit=None)
    with pytest.raises(InvalidArgumentError, match="same account"):
        ProviderPool([a, SMSActivate("key-1", rate_limit=None)])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        ProviderPool([])
    ProviderPool([a, SMSActivate("key-1", provider="herosms", rate_limit=None)])  # one key, two providers: fine
    with pytest.raises(InvalidArgumentError, match="transport_failures"):
        ProviderPool([a], transport_failures=0)
    with pytest.raises(InvalidArgumentError, match="cooldown"):
        ProviderPool([a], cooldown=-1)


# --- stepping and fallbacks ------------------------------------------------------------------------------


async def test_wrong_max_price_steps_to_the_minimum_within_the_ceiling() -> None:
    sim, client = make()
    sim.set_price("tg", 0, "0.30")
    async with client:
        number = await client.buy(service="tg", country=0, policy=BuyingPolicy(max_price="0.10", ceiling="0.50"))
        assert number.activation_id in sim.activations and client.stats.price_steps == 1
        with pytest.raises(WrongMaxPriceError) as beyond:
            await client.buy(service="tg", country=0, policy=BuyingPolicy(max_price="0.10", ceiling="0.20"))
        assert beyond.value.min_price == Decimal("0.3")
    assert paid(sim) == [Decimal("0.30")]  # once, at the minimum; never above a ceiling


async def test_the_ceiling_is_what_is_offered_when_no_price_is_given() -> None:
    sim, client = make()
    sim.set_price("tg", 0, "0.70")
    async with client:
        with pytest.raises(WrongMaxPriceError):
            await client.buy(service="tg", country=0, policy=BuyingPolicy(ceiling="0.50"))
    assert paid(sim) == [] and [r.action for r in sim.ledger.requests] == ["getNumberV2"]


async def test_free_price_steps_through_levels_up_to_the_ceiling() -> None:
    sim, client = make()
    # the freePriceMap offers 1 // 100 = 0 below the base price, 1 // 2 = 0 at it, 1 at three times it
    sim.set_stock("tg", 0, 1)
    async with client:
        number = await client.buy(service="tg", country=0, policy=BuyingPolicy(ceiling="1", free_price=True))
        assert number.activation_cost == Decimal("0.30") and client.stats.price_steps == 2
        sim.set_stock("tg", 0, 1)
        with pytest.raises(NoNumbersError):  # the level that has numbers is above this ceiling
            await client.buy(service="tg", country=0, policy=BuyingPolicy(ceiling="0.2", free_price=True))
    assert paid(sim) == [Decimal("0.30")]


async def test_fallbacks_on_no_numbers_and_on_prices_beyond_the_ceiling() -> None:
    sim, client = make()
    sim.set_stock("tg", 0, 0)
    sim.set_price("tg", 2, "0.90")
    policy = BuyingPolicy(ceiling="0.5", fallbacks=[2, Choice(6, "any")])
    async with client:
        async with client.activation(service="tg", country=0, policy=policy) as act:
            assert act.country == 6 and sim.activations[act.activation_id].country == 6
            await act.cancel()
        assert client.stats.fallbacks == 2
        sim.set_stock("tg", 6, 0)
        with pytest.raises(NoNumbersError):
            await client.buy(service="tg", country=0, policy=policy)
    assert len(paid(sim)) == 1


async def test_ranked_by_live_price_with_a_cache() -> None:
    sim, client = make()
    sim.set_price("tg", 0, "0.40")
    sim.set_price("tg", 2, "0.35")
    sim.set_price("tg", 6, "0.20")
    sim.set_stock("tg", 16, 0)
    sim.set_stock("tg", 0, 10)
    sim.set_stock("tg", 2, 500)
    sim.set_stock("tg", 6, 50)
    policy = BuyingPolicy(ceiling="0.5", fallbacks=[16, 2, 6], rank="price", price_ttl=60)
    async with client:
        first = await client.buy(service="tg", country=0, policy=policy)
        second = await client.buy(service="tg", country=0, policy=policy)
        by_stock = await client.buy(service="tg", country=0, policy=BuyingPolicy(ceiling="0.5", fallbacks=[2, 6],
                                                                                  rank="stock", price_ttl=60))
    assert sim.activations[first.activation_id].country == sim.activations[second.activation_id].country == 6
    assert sim.activations[by_stock.activation_id].country == 2  # the most stock
    assert sim.ledger.requests_for("getPrices") == 1  # one getPrices for all three, within price_ttl


# --- the spending guard --------------------------------------------------------------------------------


async def test_budget_stops_before_it_is_exceeded() -> None:
    sim, client = make()
    sim.set_price("tg", 0, "0.30")
    guard = SpendingGuard(budget="1.00")
    policy = BuyingPolicy(ceiling="0.30", guard=guard)
    async with client:
        for _ in range(3):
            await client.buy(service="tg", country=0, policy=policy)
        with pytest.raises(SpendingGuardError) as stopped:
            await client.buy(service="tg", country=0, policy=policy)
    assert stopped.value.reason == "budget" and stopped.value.spent == Decimal("0.90")
    assert sum(paid(sim)) == Decimal("0.90") and guard.bought == 3  # a 4th would pass the budget: not sent


async def test_no_code_streak_stops_buying() -> None:
    sim, client = make()
    guard = SpendingGuard(max_no_code_streak=3)
    policy = BuyingPolicy(ceiling="0.5", guard=guard)
    async with client:
        for _ in range(3):
            with pytest.raises(WaitTimeoutError):
                async with client.activation(service="tg", country=0, policy=policy) as act:
                    await act.wait_for_code(timeout=0.05)
        with pytest.raises(SpendingGuardError, match="3 numbers in a row"):
            async with client.activation(service="tg", country=0, policy=policy):
                pass
    assert len(paid(sim)) == 3 and sim.open_activations() == []


async def test_a_pair_under_the_success_floor_is_left_for_the_fallbacks() -> None:
    sim, client = make(codes=CodeSchedule.within(0.01, 0.03))
    sim.set_success_rate("tg", 0, 0.0)  # FACTS §18: HeroSMS bans pairs under 6 %: stop before it does
    guard = SpendingGuard(min_success_rate=0.5, window=4)
    policy = BuyingPolicy(ceiling="0.5", fallbacks=[2], guard=guard)
    countries = []
    async with client:
        for _ in range(8):
            try:
                async with client.activation(service="tg", country=0, policy=policy) as act:
                    countries.append(act.country)
                    await act.wait_for_code(timeout=0.2)
            except WaitTimeoutError:
                pass
        assert guard.success_rate("tg", 0) == 0.0 and guard.success_rate("tg", 2) == 1.0
        only_zero = BuyingPolicy(ceiling="0.5", guard=guard)
        with pytest.raises(SpendingGuardError) as stopped:
            await client.buy(service="tg", country=0, policy=only_zero)
    assert countries == [0, 0, 0, 0, 2, 2, 2, 2] and stopped.value.reason == "success_rate"


async def test_a_number_sold_above_the_ceiling_is_cancelled() -> None:
    sim, client = make()
    sim.set_price("tg", 0, "0.30")
    # a provider that ignores maxPrice ([LIVE] garbage maxPrice is ignored): simulated by Free Price's
    # "pay what you declare" with a declared price above the policy's own idea of the ceiling
    async with client:
        policy = BuyingPolicy(ceiling="0.5")
        number = await client.buy(service="tg", country=0, policy=policy)
        assert number.activation_cost == Decimal("0.30")

        real_call = client._settlement.call

        async def overcharging(action: Any, args: dict[str, Any], **options: Any) -> Any:
            result = await real_call(action, args, **options)
            if action.wire == "getNumberV2":
                import attrs

                return attrs.evolve(result, activation_cost=Decimal("0.75"))
            return result

        client._settlement.call = overcharging  # type: ignore[method-assign,assignment]
        with pytest.raises(SpendingGuardError) as refused:
            await client.buy(service="tg", country=0, policy=policy)
    assert refused.value.reason == "above_ceiling"
    assert sim.activations[max(sim.activations)].state.value == "8"  # cancelled at once


# --- several providers -----------------------------------------------------------------------------------


async def test_pool_sets_a_broke_provider_aside_and_keeps_each_number_with_its_buyer() -> None:
    broke, first = make(api_keys={"broke-key": 0})
    rich, second = make(codes=CodeSchedule.within(0.01, 0.03), api_keys={"rich-key": 100})
    pool = ProviderPool([first, second], cooldown=60)
    async with first, second:
        async with pool.activation(service="tg", country=0) as act:
            assert act.client is second
            await act.wait_for_code(timeout=2)
        assert pool.available() == [second]  # NO_BALANCE: set aside for the cool-down
        client, number = await pool.buy(service="tg", country=0)
        assert client is second and number.activation_id in rich.activations
        await client.set_status(number.activation_id, 8)
    assert broke.ledger.requests_for("getNumberV2") == 1  # asked once, then left alone
    assert rich.ledger.requests_for("setStatus") >= 1 and broke.ledger.requests_for("setStatus") == 0
    assert rich.open_activations() == []


async def test_pool_by_price_and_exhaustion() -> None:
    dear, a = make()
    cheap, b = make(provider="herosms")
    dear.set_price("tg", 2, "0.50")
    cheap.set_price("tg", 2, "0.20")
    pool = ProviderPool([a, b], order="price")
    async with a, b:
        client, _ = await pool.buy(service="tg", country=2)
        assert client is b
        pool.set_aside(a)
        pool.set_aside(b)
        with pytest.raises(NoNumbersError, match="set aside"):
            await pool.buy(service="tg", country=2)
    assert dear.ledger.requests_for("getNumberV2") == 0


# --- many at once ---------------------------------------------------------------------------------------


async def test_run_many_closes_every_number_and_reports_each() -> None:
    sim, client = make(codes=CodeSchedule.within(0.01, 0.05))
    handled: list[str] = []

    async def handler(act: Any, code: str) -> None:
        if len(handled) % 5 == 4:
            handled.append("boom")
            raise RuntimeError("the user's handler failed")
        handled.append(code)

    async with client:
        results = [r async for r in client.run_many(40, service="tg", country=0, concurrency=8, handler=handler,
                                                    timeout=5)]
    assert sorted(r.index for r in results) == list(range(40))
    failed = [r for r in results if not r.ok]
    assert len(failed) == 8 and all(isinstance(r.error, RuntimeError) for r in failed)
    assert sim.open_activations() == []
    # a failing handler's number had its code already: no refund is possible, so it is finished too
    assert all(r.code is not None for r in failed)
    assert [sim.activations[r.activation_id].state.value for r in results if r.activation_id] == ["6"] * 40


async def test_run_many_stops_at_the_guard_and_can_be_left_early() -> None:
    sim, client = make(codes=CodeSchedule.within(0.01, 0.05))
    sim.set_price("tg", 0, "0.25")
    guard = SpendingGuard(budget="2.00")
    async with client:
        results = [r async for r in client.run_many(20, service="tg", country=0, concurrency=1,
                                                    policy=BuyingPolicy(ceiling="0.25", guard=guard))]
        assert sum(r.ok for r in results) == 8
        assert all(isinstance(r.error, SpendingGuardError) and r.activation_id is None for r in results if not r.ok)
        async with client.run_many(50, service="tg", country=0, concurrency=5) as early:
            async for result in early:
                assert result.ok
                break
    assert sim.open_activations() == [] and sum(paid(sim)[:8]) == Decimal("2.00")


# --- the proof: 1 000 purchases under moving stock and prices ---------------------------------------------


async def test_a_thousand_purchases_never_above_the_ceiling_and_the_guard_stops_in_time() -> None:
    sim, client = make(codes=CodeSchedule.within(0.005, 0.03))
    rng = random.Random(12)
    ceiling = Decimal("0.40")
    guard = SpendingGuard(budget="50")
    policy = BuyingPolicy(max_price="0.15", ceiling=ceiling, fallbacks=[2, 6, 16], guard=guard)
    done = anyio.Event()

    async def move_the_market() -> None:
        while not done.is_set():
            for country in (0, 2, 6, 16):
                sim.set_price("tg", country, Decimal(rng.randint(5, 60)) / 100)
                sim.set_stock("tg", country, rng.choice([0, 0, 3, 50, 1000]))
            await anyio.sleep(0.002)

    async with client, anyio.create_task_group() as group:
        group.start_soon(move_the_market)
        results = [r async for r in client.run_many(1000, service="tg", country=0, concurrency=20, policy=policy,
                                                    timeout=5)]
        done.set()
    bought = paid(sim)
    assert len(results) == 1000 and max(bought) <= ceiling  # never above the ceiling
    assert guard.spent == sum(bought) <= guard.budget  # type: ignore[operator]
    stopped = [r for r in results if isinstance(r.error, SpendingGuardError)]
    assert stopped and all(r.activation_id is None for r in stopped)  # stopped, and nothing bought after
    assert guard.budget - guard.spent < ceiling  # type: ignore[operator]  # within one purchase of its limit
    assert sum(r.ok for r in results) > 200
    assert client.stats.price_steps > 0 and client.stats.fallbacks > 0
    assert sim.open_activations() == []


def test_a_policy_is_plain_data_made_anywhere() -> None:
    """Made at import time, outside any event loop, and inspectable."""
    policy = BuyingPolicy(max_price="0.10", ceiling=Decimal("0.5"), fallbacks=[2, (6, "any")],
                          guard=SpendingGuard(budget=10, max_no_code_streak=3))
    assert policy.limit == Decimal("0.5") and policy.fallbacks == (Choice(2), Choice(6, "any"))
    assert BuyingPolicy(max_price=1).limit == Decimal(1) and BuyingPolicy().limit is None
    assert "budget=10" in repr(policy) and policy == BuyingPolicy(max_price="0.10", ceiling="0.5",
                                                                  fallbacks=[2, (6, "any")], guard=policy.guard)


@pytest.mark.slow
def test_cli_bulk_runs_under_a_policy() -> None:
    import json

    from click.testing import CliRunner

    from smsactivate_async._cli import cli
    from smsactivate_async.simulator import serve_in_thread

    sim = Simulator(codes=CodeSchedule.fixed(0), early_cancel_seconds=0)
    sim.set_stock("tg", 0, 0)
    sim.set_price("tg", 2, "0.30")
    runner = CliRunner()
    with serve_in_thread(sim) as url:
        base = ["--api-key", sim.api_key, "--base-url", url]
        lines = runner.invoke(cli, [*base, "--json", "bulk", "--service", "tg", "--country", "0", "-n", "6",
                                    "--max-price", "0.2", "--ceiling", "0.4", "--fallback", "2", "--budget", "1.0"])
        table = runner.invoke(cli, [*base, "bulk", "--service", "tg", "--country", "2", "-n", "2", "--ceiling", "0.1"])
        bad = runner.invoke(cli, [*base, "bulk", "--service", "tg", "--country", "2", "--ceiling", "-1"])
    results = [json.loads(line) for line in lines.output.splitlines()]
    assert lines.exit_code == 0 and len(results) == 6
    assert sum(r["code"] is not None for r in results) == 3 and {r["country"] for r in results if r["code"]} == {2}
    assert all("SPENDING_GUARD" in r["error"] for r in results if r["code"] is None)  # 3 at 0.30 of a 1.00 budget
    assert table.exit_code == 0 and "WRONG_MAX_PRICE ×2" in table.output
    assert bad.exit_code == 2 and "ceiling must be a positive amount" in bad.output
    assert sim.open_activations() == []


async def test_pool_sets_aside_a_provider_that_keeps_failing_at_the_transport() -> None:
    import httpx

    from smsactivate_async import RetryPolicy

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = SMSActivate("down-key", rate_limit=None, transport=httpx.MockTransport(unreachable),
                       retry=RetryPolicy(attempts=1))
    sim, up = make(api_keys={"up-key": 100})
    pool = ProviderPool([down, up], transport_failures=2)
    async with down, up:
        for _ in range(2):
            client, number = await pool.buy(service="tg", country=0)
            assert client is up
            await up.set_status(number.activation_id, 8)
        assert pool.available() == [up]  # two transport failures in a row: set aside
        client, _ = await pool.buy(service="tg", country=0)
    assert client is up and len(sim.ledger.purchases) == 3


async def test_an_uncertain_purchase_counts_against_the_budget() -> None:
    import httpx

    from smsactivate_async import PurchaseUncertainError, RetryPolicy, TransportError

    def lost(request: httpx.Request) -> httpx.Response:
        if request.url.params["action"] == "getNumberV2":
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(200, text="<html>captive portal</html>")  # a listing that is not one

    guard = SpendingGuard(budget="1.00")
    policy = BuyingPolicy(ceiling="0.40", guard=guard)
    client = SMSActivate("k", rate_limit=None, transport=httpx.MockTransport(lost),
                         retry=RetryPolicy(attempts=2, base_delay=0, max_delay=0, settle=0))
    async with client:
        with pytest.raises((PurchaseUncertainError, TransportError)):  # every try's answer lost
            await client.buy(service="tg", country=0, policy=policy)
    assert guard.spent == Decimal("0.40")  # it may have been bought: the guard counts it


async def test_a_purchase_sends_the_callers_order_id_and_only_a_purchase_gets_one() -> None:
    """Found by mutmut over ``_session`` (issue 37): ``encode`` could overwrite the caller's ``order_id``
    with one of its own (the provider then cannot tell a retry of the caller's order from a new one),
    or give every action an ``orderId``, and pass every test."""
    import httpx

    sim = Simulator(codes=CodeSchedule.never())
    inner = sim.transport()
    sent: list[dict[str, str]] = []

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(dict(request.url.params))
            return await inner.handle_async_request(request)

    async with SMSActivate(sim.api_key, transport=Recording(), rate_limit=None) as client:
        await client.get_balance()
        await client.get_number_v2(service="tg", country=0, order_id="mine-1")
        await client.get_number_v2(service="tg", country=0)
    assert [params["action"] for params in sent] == ["getBalance", "getNumberV2", "getNumberV2"]
    assert "orderId" not in sent[0]
    assert sent[1]["orderId"] == "mine-1"
    assert len(sent[2]["orderId"]) == 32 and sent[2]["orderId"] != "mine-1"  # made for the caller
