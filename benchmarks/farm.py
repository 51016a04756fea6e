"""The farm workload, side by side with the peers (``python benchmarks/farm.py [--total 300]``).

300 activations, 100 at a time, each bought → its code awaited → finished, against the simulator
served on loopback with HeroSMS's published limits (50 requests/s per account; beyond it a 10 s
block, started again by every request during it; 429 without Retry-After). Codes come 2–20 s after
purchase. Each client is written the way its README shows; a peer that is not installed is skipped
(``pip install -e ".[bench,conformance]"``). Columns: codes received, wall time, requests per code,
rate blocks, and numbers left open at the end (bought, paid for, neither finished nor cancelled).
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio

from smsactivate_async import SMSActivate, SMSActivateError
from smsactivate_async.simulator import CodeSchedule, Faults, Simulator, serve_in_thread

__all__ = ["farm", "main"]

#: each peer gets this long per activation, and the whole run this long at most
WAIT = 60.0
RUN_CAP = 300.0


#: client options of ours for an experiment (``--option poll_interval=1``); the published run gives none
OPTIONS: dict[str, Any] = {}


async def ours(url: str, key: str, run: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> None:
    async with SMSActivate(key, provider="herosms", base_url=url, **OPTIONS) as client:

        async def one() -> None:
            async with client.activation(service="tg", country=2) as act:  # finished (6) on leaving
                await act.wait_for_code(timeout=WAIT)

        await run(one)


async def herosms_peer(url: str, key: str, run: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> None:
    from herosms import HeroSMSClient  # type: ignore[import-not-found, unused-ignore]

    async with HeroSMSClient(api_key=key, base_url=url) as client:

        async def one() -> None:
            activation = await client.activations.create(service="tg", country=2)
            await activation.wait_for_sms(timeout=WAIT)
            await activation.complete()

        await run(one)


async def aiosmsactivate_peer(url: str, key: str,
                              run: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> None:
    from aiosmsactivate import SmsActivate  # type: ignore[import-not-found, unused-ignore]

    sa = SmsActivate(key, base_url=url)

    async def one() -> None:
        number = await sa.purchase("tg", country=2)
        await number.wait_sms_code(timeout=WAIT)
        await number.set_activation_status(6)

    await run(one)


CLIENTS: list[tuple[str, str | None, Any]] = [
    ("smsactivate_async (this library)", None, ours),
    ("herosms 0.1.1", "herosms", herosms_peer),
    ("aiosmsactivate 1.5.1", "aiosmsactivate", aiosmsactivate_peer),
]


async def farm(name: str, client: Any, total: int, concurrency: int) -> list[Any]:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(2.0, 20.0), faults=Faults.herosms_limits(),
                    api_keys={"farm": Decimal(10**6)}, seed=11)
    done: list[bool] = []
    errors: dict[str, int] = {}
    gate = anyio.Semaphore(concurrency)

    async def run(one: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            async with gate:
                try:
                    with anyio.fail_after(WAIT * 2):
                        await one()
                    done.append(True)
                except Exception as exc:  # a peer raises what it raises: counted, by type
                    label = exc.code if isinstance(exc, SMSActivateError) else type(exc).__name__
                    errors[label] = errors.get(label, 0) + 1

        with anyio.move_on_after(RUN_CAP):
            async with anyio.create_task_group() as group:
                for _ in range(total):
                    group.start_soon(guarded)

    with serve_in_thread(sim) as url:
        started = time.perf_counter()
        try:
            await client(url, "farm", run)
        except Exception as exc:  # a client that cannot even start
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + total
        wall = time.perf_counter() - started
    left_open = sum(1 for a in sim.activations.values() if a.state.active)
    codes = len(done)
    requests = len(sim.ledger.requests)
    top = ", ".join(f"{label} ×{count}" for label, count in sorted(errors.items(), key=lambda e: -e[1])[:2])
    bound = floor(sim, concurrency) if codes == total else None
    print(f"  {name}: {codes}/{total} codes in {wall:.1f} s" + (f" (floor {bound:.1f} s)" if bound else ""),
          file=sys.stderr, flush=True)
    return [name, f"{codes}/{total}", f"{wall:.1f} s", f"{bound:.1f} s" if bound else "—",
            f"{wall / bound:.2f}×" if bound else "—",
            f"{requests / codes:.2f}" if codes else f"— ({requests} sent)", len(sim.ledger.blocks), left_open, top or "—"]


def floor(sim: Simulator, concurrency: int) -> float:
    """The run's physical floor: its own numbers, in the order they were bought, each taking the first
    free slot and giving it back the instant its code arrived (no time to buy, poll or finish) — the
    same code delays (seeded) as the run that is measured against it."""
    slots = [0.0] * concurrency
    for activation in sorted(sim.activations.values(), key=lambda a: a.bought_at):
        if not activation.messages or not activation.code_due:
            continue
        delay = activation.code_due[0] - activation.bought_at
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + delay)
    return max(slots)


async def rows(total: int, concurrency: int, runs: int = 1) -> list[list[Any]]:
    """One row per client; ours is run ``runs`` times (seeded alike): its row is the median run by
    wall / floor, with every run's ratio in the last column."""
    out = []
    for name, module, client in CLIENTS:
        if module is not None and importlib.util.find_spec(module) is None:
            out.append([name, "not installed", "", "", "", "", "", "", "", ""])
            continue
        print(f"farm: {name} …", file=sys.stderr, flush=True)
        if client is not ours:
            out.append([*await farm(name, client, total, concurrency), "—"])
            continue
        done = [await farm(name, client, total, concurrency) for _ in range(runs)]
        done.sort(key=lambda row: float(row[4].rstrip("×")) if row[4] != "—" else float("inf"))
        out.append([*done[len(done) // 2], " ".join(row[4] for row in done)])
    return out


HEADER = ["client", "codes", "wall", "floor", "wall / floor", "requests per code", "rate blocks", "left open",
          "errors (top two)", "wall / floor, each run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=SECONDS",
                        help="a client option of ours for an experiment (poll_interval=1); none in the published run")
    parser.add_argument("--only-ours", action="store_true", help="skip the peers")
    parser.add_argument("--runs", type=int, default=3, help="runs of ours (its row: the median run)")
    args = parser.parse_args()
    for option in args.option:
        name, _, value = option.partition("=")
        OPTIONS[name] = float(value)
    if args.only_ours:
        del CLIENTS[1:]
    table = anyio.run(rows, args.total, args.concurrency, args.runs)
    print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER))
    for row in table:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
