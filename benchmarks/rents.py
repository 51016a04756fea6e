"""Rents over hours, on virtual time (``python benchmarks/rents.py``; prints a Markdown table).

50 rents of 4 hours, each receiving 10 SMS from the simulator's :class:`RentSchedule` (one at a time,
or in bursts of five), waited on by one or five tasks per rent with ``wait_for_rent_sms``. Runs on
trio's ``MockClock`` (time jumps whenever every task waits): four simulated hours take seconds.
Checks every message is handed over exactly once, in order, per rent; counts the getRentStatus
requests: the cost is one per waited rent per ``rent_poll_interval``, whatever the waiters.
``--quick`` runs 10 rents (the test suite uses it to keep this script working).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio
import trio
import trio.testing
from run import table  # benchmarks/run.py's Markdown table (this folder is on the path of a script run)

from smsactivate_async import SMSActivate, WaitTimeoutError
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, RentSchedule, Simulator

HOURS = 4
MESSAGES = 10


async def one_run(rents: int, waiters: int, interval: float, schedule: RentSchedule) -> list[Any]:
    sim = Simulator(codes=CodeSchedule.never(), clock=LoopSimClock(), rent_sms=schedule, seed=3,
                    api_keys={"bench-key": 10**6})
    started = time.perf_counter()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None,
                           rent_poll_interval=interval) as client:
        ids = [(await client.get_rent_number(service="tg", rent_time=HOURS)).id for _ in range(rents)]
        before = sim.ledger.requests_for("getRentStatus")
        handed: dict[int, list[str]] = {rent: [] for rent in ids}
        began = anyio.current_time()

        async def waiter(rent: int, scope: anyio.CancelScope) -> None:
            while len(handed[rent]) < MESSAGES:
                try:
                    message = await client.wait_for_rent_sms(rent, timeout=HOURS * 3600)
                except WaitTimeoutError:
                    return
                handed[rent].append(message.text or "")
            scope.cancel()  # the rent's last message: its other waiters are done

        async def waiters_of(rent: int) -> None:
            async with anyio.create_task_group() as rent_group:
                for _ in range(waiters):
                    rent_group.start_soon(waiter, rent, rent_group.cancel_scope)

        async with anyio.create_task_group() as group:
            for rent in ids:
                group.start_soon(waiters_of, rent)
        hours = (anyio.current_time() - began) / 3600
        polls = sim.ledger.requests_for("getRentStatus") - before
    exact = all(handed[rent] == [m.text for m in sim.rents[rent].messages] for rent in ids)
    count = sum(len(v) for v in handed.values())
    ticks = hours * 3600 / interval
    kind = "one by one" if schedule.burst == 1 else f"bursts of {schedule.burst}"
    return [rents, waiters, kind, f"{interval:g} s", f"{count}/{rents * MESSAGES}", "yes" if exact else "**no**",
            f"{hours:.2f} h", polls, f"{polls / ticks:.1f}", f"{polls / ticks / rents:.2f}",
            f"{time.perf_counter() - started:.1f} s"]


async def main(quick: bool) -> None:
    rents = 10 if quick else 50
    rows = []
    runs = [(1, 10.0, RentSchedule.within(600, 1190, count=MESSAGES)),
            (5, 10.0, RentSchedule.within(600, 1190, count=MESSAGES)),
            (1, 10.0, RentSchedule.within(600, 1190, burst=5, count=MESSAGES)),
            (1, 60.0, RentSchedule.within(600, 1190, count=MESSAGES))]
    for waiters, interval, schedule in runs[:2] if quick else runs:
        print(f"[{time.strftime('%H:%M:%S')}] {rents} rents, {waiters} waiter(s) each, every {interval:g} s, "
              f"burst {schedule.burst}", file=sys.stderr, flush=True)
        rows.append(await one_run(rents, waiters, interval, schedule))
    print(table(f"8. Rents: {rents} rents of {HOURS} h, {MESSAGES} SMS each (gaps 10–20 min), virtual time",
                ["rents", "waiters per rent", "SMS", "rent_poll_interval", "handed over", "each once, in order",
                 "until the last", "getRentStatus", "per interval", "per rent per interval", "wall"], rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 rents, two runs")
    quick = parser.parse_args().quick
    trio.run(main, quick, clock=trio.testing.MockClock(autojump_threshold=0))
