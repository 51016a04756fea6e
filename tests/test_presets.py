"""Every provider preset against the simulator speaking that provider's profile: the core actions,
waiting and reliability, so that a new provider is one profile (simulator), one preset (client) and
its evidence. The quirk each profile declares is pinned where the client must cope with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from smsactivate_async import (
    PROVIDERS,
    ActivationCancelledError,
    ActivationNotFoundError,
    AuthenticationError,
    NoNumbersError,
    RetryPolicy,
    SMSActivate,
    WrongMaxPriceError,
)
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, Simulator

from .conftest import on_virtual_time, run_activations

pytestmark = pytest.mark.anyio

PRESETS = sorted(PROVIDERS)


def pair(name: str, *, key: str | None = None, codes: CodeSchedule | None = None, **sim_options: Any,
         ) -> tuple[Simulator, SMSActivate]:
    sim = Simulator(provider=name, codes=codes or CodeSchedule.within(0.01, 0.05), early_cancel_seconds=0,
                    **sim_options)
    client = SMSActivate(key or sim.api_key, provider=name, transport=sim.transport(), rate_limit=None,
                         poll_interval=0.02, early_cancel_window=0,
                         retry=RetryPolicy(attempts=6, base_delay=0.001, max_delay=0.01, settle=0.01))
    return sim, client


def test_every_simulator_profile_has_a_preset() -> None:
    from smsactivate_async.simulator import Simulator
    from smsactivate_async.simulator._dialects import PROFILES

    assert set(PROFILES) == set(PROVIDERS)  # no other list of names: a new preset adds its profile
    with pytest.raises(ValueError, match="unknown provider"):
        Simulator(provider="nosuchprovider")


def test_every_list_of_presets_in_the_docs_names_each_preset() -> None:
    """Adding a preset touches the preset and its profile (issue 38): the lists of presets in the docs
    are checked here, so a list that forgets one fails instead of drifting."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    numbers = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    for page in ("README.md", "docs/index.md"):
        listed = re.search(r"`--provider` takes (.*?)\.\)", (root / page).read_text(), re.S)
        assert listed is not None, page
        assert set(re.findall(r"`([\w-]+)`", listed[1])) == set(PROVIDERS), page
    simulator = (root / "docs/simulator.md").read_text().split("\n\n")[1]
    assert {name for name in PROVIDERS if f'"{name}"' in simulator} == set(PROVIDERS)
    comparison = re.search(r"(\w+) presets \((.*?)\)", (root / "docs/comparison.md").read_text())
    assert comparison is not None
    assert comparison[1] == numbers[len(PROVIDERS)]
    assert {name.lower() for name in comparison[2].split(", ")} == set(PROVIDERS)


@pytest.mark.parametrize("name", PRESETS)
async def test_core_actions(name: str) -> None:
    sim, client = pair(name)
    async with client:
        assert await client.get_balance() == sim.balance()
        prices = await client.get_prices(service="tg", country=2)
        assert isinstance(prices[2]["tg"].cost, Decimal)
        async with client.activation(service="tg", country=2) as act:
            code = await act.wait_for_code(timeout=5)
        assert code == sim.activations[act.activation_id].last_code
        assert sim.activations[act.activation_id].state.value == "6"
        async with client.activation(service="tg", country=2) as cancelled:
            pass  # left without a code: cancelled
        assert sim.activations[cancelled.activation_id].state.value == "8"
        sim.set_stock("tg", 2, 0)
        with pytest.raises(NoNumbersError):
            await client.get_number_v2(service="tg", country=2)
        sim.set_stock("tg", 2, 100)
        sim.set_price("tg", 2, "0.50")
        with pytest.raises(WrongMaxPriceError) as too_low:  # SMSHub: the client sends max_price
            await client.get_number_v2(service="tg", country=2, max_price="0.10")
        assert too_low.value.min_price in (Decimal("0.5"), None)
        with pytest.raises(ActivationNotFoundError):
            await client.get_status(999)
    async with SMSActivate("wrong-key", provider=name, transport=sim.transport(), rate_limit=None) as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.get_balance()
    assert sim.open_activations() == []


@pytest.mark.parametrize("name", PRESETS)
async def test_waiting_for_many(name: str) -> None:
    sim, client = pair(name)
    codes: list[str] = []

    async def one() -> None:
        async with client.activation(service="tg", country=2) as act:
            codes.append(await act.wait_for_code(timeout=10))

    async with client, anyio.create_task_group() as group:
        for _ in range(60):
            group.start_soon(one)
    assert len(codes) == 60 and sim.open_activations() == []


@on_virtual_time()
@pytest.mark.parametrize("name", PRESETS)
async def test_reliability_under_faults(name: str) -> None:
    """The soak's scenario (tests/test_soak.py) on every preset, smaller: 10 % faults of every kind."""
    sim = Simulator(provider=name, clock=LoopSimClock(), codes=CodeSchedule.within(0.05, 1.0), early_cancel_seconds=0.5,
                    faults=Faults.uniform(0.10, retry_after=0.2), api_keys={"soak": Decimal(100_000)}, seed=11)
    client = SMSActivate("soak", provider=name, transport=sim.transport(), rate_limit=None, poll_interval=0.1,
                         early_cancel_window=0.5, retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5), seed=3)
    got, failures = await run_activations(client, 60)
    assert sum(1 for r in sim.ledger.requests if r.fault) > 0, "the run must actually have injected faults"
    assert failures == [] and len(got) == 60  # 0 codes lost
    assert sorted(p.id for p in sim.ledger.purchases) == sorted(got)  # 0 bought twice, 0 orphans
    assert sim.open_activations() == []


async def test_tiger_says_access_cancel_for_a_cancelled_activation() -> None:
    """[RUSTX-TIGER] getStatus answers ACCESS_CANCEL, not STATUS_CANCEL: still a cancel to the client."""
    sim, client = pair("tiger", codes=CodeSchedule.never())
    assert sim.profile.cancelled_token == "ACCESS_CANCEL"  # what the wire says below
    async with client:
        number = await client.get_number_v2(service="tg", country=2)
        await client.set_status(number.activation_id, 8)
        assert (await client.get_status(number.activation_id)).status.value == "STATUS_CANCEL"
        with pytest.raises(ActivationCancelledError):
            await client.wait_for_code(number.activation_id, timeout=2, cancel_on_timeout=False)


async def test_each_profiles_declared_quirk_on_the_wire() -> None:
    import httpx

    async def raw(sim: Simulator, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=sim.transport()) as http:
            return await http.get("http://sim/stubs/handler_api.php", params={"api_key": sim.api_key, **params})

    tiger = Simulator(provider="tiger")
    bad_key = await raw(tiger, api_key="nope", action="getBalance")
    assert (bad_key.status_code, bad_key.text) == (401, "BAD_KEY")  # [RUSTX-TIGER] plain, on every action
    assert (await raw(tiger, action="getPrices", service="tg", country=2)).json()["2"]["tg"]["cost"] == "0.1200"
    assert (await raw(tiger, action="getStatus", id="abc")).text == "NO_ACTIVATION"
    grizzly = Simulator(provider="grizzly")
    assert (await raw(grizzly, action="getBalance")).text == "ACCESS_BALANCE:1000.00000000"  # [GRIZ-TEST]
    v2 = (await raw(grizzly, action="getNumberV2", service="tg", country=2)).json()
    assert v2["currency"] == 643 and v2["activationCancel"] > v2["activationTime"]
    smshub = Simulator(provider="smshub")
    assert (await raw(smshub, api_key="nope", action="getBalance")).text == "API_KEY_NOT_VALID"  # [SMSHUB]
    too_low = await raw(smshub, action="getNumber", service="tg", country=2, max_price="0.01")
    assert too_low.text.startswith("WRONG_MAX_PRICE:")
    bower = Simulator(provider="smsbower")
    assert "" in (await raw(bower, action="getPrices", service="tg")).json()  # [RUSTX] the row keyed ""


async def test_a_provider_that_cancels_with_minus_one() -> None:
    """The cancel status is declared: -1 where a provider takes the old docs' cancel [GRIZ-DOC]."""
    import attrs

    from smsactivate_async import InvalidArgumentError
    from smsactivate_async._providers import GRIZZLY

    sim = Simulator(provider="grizzly", codes=CodeSchedule.never(), early_cancel_seconds=0)
    legacy = attrs.evolve(GRIZZLY, name="grizzly-legacy", cancel_status=-1)
    async with SMSActivate(sim.api_key, provider=legacy, transport=sim.transport(), rate_limit=None,
                           early_cancel_window=0) as client:
        async with client.activation(service="tg", country=2) as act:
            pass  # no code: cancelled, with -1
        assert sim.activations[act.activation_id].state.value == "8"
    classic_sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(classic_sim.api_key, transport=classic_sim.transport(), rate_limit=None) as classic:
        number = await classic.get_number_v2(service="tg", country=0)
        with pytest.raises(InvalidArgumentError, match="legacy cancel"):
            await classic.set_status(number.activation_id, -1)
    assert classic_sim.ledger.requests_for("setStatus") == 0


def test_each_simulator_profile_agrees_with_its_preset_on_idempotency() -> None:
    """A preset that reconciles where its simulator would answer ORDER_ALREADY_EXISTS (or the other way
    round) tests neither: the two declarations of one provider must agree."""
    from smsactivate_async.simulator._dialects import PROFILES

    for name, preset in PROVIDERS.items():
        assert PROFILES[name].order_id_idempotent == preset.honours_order_id, name
        assert PROFILES[name].accepts_ready == preset.supports_ready, name
