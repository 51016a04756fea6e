"""Soak: activations through ``client.activation()`` against the simulator with 10 % injected faults
of every kind (lost purchases and 429 bursts included). Short in CI; ``nox -s soak`` runs it long
(``SOAK_ACTIVATIONS``)."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
import trio.testing

from smsactivate_async import RetryPolicy, SMSActivate
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, Simulator

from .conftest import run_activations

pytestmark = pytest.mark.anyio

SIZE = int(os.environ.get("SOAK_ACTIVATIONS", "400"))  # nox -s soak: 5 000; the slow run: 1 000
BUDGET = 250  # the server's requests-per-second budget



# On virtual time: the client and the simulator read trio's MockClock, which jumps whenever every task
# waits, so HeroSMS's 10 s holds after a 429 and the early-cancel windows cost no wall time.
@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})])
@pytest.mark.parametrize(("dialect", "size"), [("sms-activate", SIZE), ("herosms", max(250, SIZE // 4)),
                                              pytest.param("sms-activate", max(SIZE, 1000), marks=pytest.mark.slow)])
async def test_soak(dialect: str, size: int) -> None:
    sim = Simulator(
        clock=LoopSimClock(),
        provider=dialect,
        codes=CodeSchedule.within(0.05, 1.0),
        early_cancel_seconds=0.5,
        faults=Faults.uniform(0.10, rps_budget=BUDGET, retry_after=0.2),
        api_keys={"soak": Decimal(100_000)},
        seed=11,
    )
    start_balance = sim.balance()
    client = SMSActivate(
        "soak", provider=dialect, transport=sim.transport(), rate_limit=BUDGET * 0.8, burst=10, poll_interval=0.1,
        early_cancel_window=0.5, retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5), seed=3,
    )
    got, failures = await run_activations(client, size)

    faults = sum(1 for r in sim.ledger.requests if r.fault)
    assert faults > len(sim.ledger.requests) * 0.05, "the run must actually have injected faults"
    assert {r.fault for r in sim.ledger.requests} >= {"drop", "timeout", "html_5xx", "truncate", "rate_limit", "error_sql"}
    assert failures == []
    assert len(got) == size                                             # 0 codes lost
    bought = [p.id for p in sim.ledger.purchases]
    assert sorted(bought) == sorted(got)                                # 0 bought twice, 0 orphan purchases
    assert sim.ledger.duplicate_orders() == {}
    assert sim.open_activations() == []                                 # 0 left active
    for activation_id, code in got.items():
        assert sim.activations[activation_id].messages[0].code == code
    assert sim.balance() == start_balance - sim.ledger.spent() + sim.ledger.refunded()
    budget_429 = [r for r in sim.ledger.requests if r.status == 429 and r.fault is None]
    assert budget_429 == []                                             # the server's budget was never exceeded
    assert client.stats.retries > 0
