"""The reliability soak at a larger size (``python benchmarks/soak.py [N] [--dialect herosms]``).

N activations through ``client.activation()`` against the simulator with 10 % of requests faulted
(every kind: drops, lost answers, HTML 5xx, truncated bodies, 429 bursts, ERROR_SQL, lost purchase
answers) under a server rate budget; prints what was injected and what came out of it.
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

import anyio

from smsactivate_async import RetryPolicy, SMSActivate, SMSActivateError
from smsactivate_async.simulator import CodeSchedule, Faults, Simulator

BUDGET = 400


async def soak(size: int, dialect: str, fault_rate: float) -> list[tuple[str, object]]:
    sim = Simulator(
        provider=dialect,
        codes=CodeSchedule.within(0.05, 2.0), early_cancel_seconds=0.5,
        faults=Faults.uniform(fault_rate, rps_budget=BUDGET, retry_after=0.2),
        api_keys={"soak": Decimal(10**7)}, seed=5,
    )
    start_balance = sim.balance()
    client = SMSActivate("soak", provider=dialect, transport=sim.transport(), rate_limit=BUDGET * 0.8, burst=10,
                         poll_interval=0.2, early_cancel_window=0.5,
                         retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5))
    got: dict[int, str] = {}
    failures: list[str] = []

    async def one() -> None:
        try:
            async with client.activation(service="tg", country=2) as act:
                got[act.activation_id] = await act.wait_for_code(timeout=120)
        except SMSActivateError as error:
            failures.append(error.code)

    started = time.perf_counter()
    async with client:
        async with anyio.create_task_group() as group:
            for _ in range(size):
                group.start_soon(one)
    wall = time.perf_counter() - started
    bought = [p.id for p in sim.ledger.purchases]
    faults = sum(1 for r in sim.ledger.requests if r.fault)
    return [
        ("activations", size),
        ("requests", len(sim.ledger.requests)),
        ("faults injected", f"{faults} ({faults / len(sim.ledger.requests):.1%})"),
        ("retries made", client.stats.retries),
        ("429s honoured", client.stats.rate_limited),
        ("lost purchase answers reconciled", client.stats.reconciliations),
        ("purchases", len(bought)),
        ("bought twice / orphan purchases", f"{len(bought) - len(set(bought))} / {len(set(bought) - set(got))}"),
        ("left active (leaks)", len(sim.open_activations())),
        ("codes delivered", f"{len(got)} of {size}"),
        ("failed activations", len(failures)),
        ("balance adds up", sim.balance() == start_balance - sim.ledger.spent() + sim.ledger.refunded()),
        ("over the server's rate budget", sum(1 for r in sim.ledger.requests if r.status == 429 and r.fault is None)),
        ("wall time", f"{wall:.1f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", nargs="?", type=int, default=5000)
    parser.add_argument("--dialect", default="sms-activate", choices=["sms-activate", "herosms"])
    parser.add_argument("--faults", type=float, default=0.10)
    args = parser.parse_args()
    rows = anyio.run(soak, args.size, args.dialect, args.faults)
    print(f"### Soak: {args.size} activations, {args.dialect}, {args.faults:.0%} faults\n")
    print("| | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
