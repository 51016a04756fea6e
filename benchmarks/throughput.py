"""End-to-end throughput under HeroSMS's real limit (``python benchmarks/throughput.py [--total 1000]``).

Activations buy → code → 6 through ``client.activation()`` on the HeroSMS dialect, against the
simulator served on loopback with HeroSMS's published limit (50 requests/s per account; beyond it a
10 s block, started again by every request during it; 429 without Retry-After). Codes arrive within
0.2–1.2 s. For each pacing — the old fixed 4/s preset, a fixed 50/s, and adaptive — it prints the
wall time against the floor (the requests it needed ÷ the 50/s budget), requests per code, blocks and
429s. The fixed 4/s row runs fewer activations (``--slow-total``): at 4/s, 1 000 take a quarter hour.
Progress goes to stderr every 15 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from typing import Any

import anyio

from smsactivate_async import SMSActivate, SMSActivateError
from smsactivate_async.simulator import CodeSchedule, Faults, Simulator
from smsactivate_async.simulator._transport import serve_in_thread

BUDGET = 50.0


async def run(rate: Any, total: int, concurrency: int) -> dict[str, Any]:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(0.2, 1.2), faults=Faults.herosms_limits(),
                    api_keys={"bench": Decimal(10**6)}, seed=3)
    failures: list[str] = []
    limiter = anyio.Semaphore(concurrency)
    with serve_in_thread(sim) as url:
        client = SMSActivate("bench", provider="herosms", base_url=url, rate_limit=rate, poll_interval=0.5,
                             timeout=15)

        async def one() -> None:
            async with limiter:
                try:
                    async with client.activation(service="tg", country=2) as act:
                        await act.wait_for_code(timeout=120)
                except SMSActivateError as error:
                    failures.append(error.code)

        started = time.perf_counter()

        async def progress() -> None:
            while True:
                await anyio.sleep(15)
                codes = sum(1 for c in sim.ledger.status_changes if c.new == "FINISHED")
                print(f"  [{rate}] {time.perf_counter() - started:5.0f} s: {codes}/{total} done, "
                      f"{len(sim.ledger.blocks)} blocks", file=sys.stderr, flush=True)

        async with client:
            async with anyio.create_task_group() as watch:
                watch.start_soon(progress)
                async with anyio.create_task_group() as group:
                    for _ in range(total):
                        group.start_soon(one)
                watch.cancel_scope.cancel()
        wall = time.perf_counter() - started
        stats = client.stats
    requests = len(sim.ledger.requests)
    floor = requests / BUDGET
    first = sim.ledger.requests[0].at if sim.ledger.requests else 0.0
    late_blocks = sum(1 for start, _ in sim.ledger.blocks if start - first > 60.0)
    return {
        "activations": total,
        "codes": total - len(failures),
        "wall": wall,
        "floor": floor,
        "ratio": wall / floor if floor else 0.0,
        "requests per code": requests / max(1, total - len(failures)),
        "blocks": len(sim.ledger.blocks),
        "blocks after the first minute": late_blocks,
        "429s": sum(1 for r in sim.ledger.requests if r.status == 429),
        "rate at the end": stats.rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--slow-total", type=int, default=100, help="activations for the fixed 4/s row")
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    rows = [("fixed 4/s (the old preset)", anyio.run(run, 4.0, args.slow_total, args.concurrency)),
            ("fixed 50/s", anyio.run(run, 50.0, args.total, args.concurrency)),
            ("adaptive (the preset now)", anyio.run(run, "adaptive", args.total, args.concurrency))]
    print(f"#### Throughput: HeroSMS dialect, budget {BUDGET:g} requests/s with 10 s re-blocking, "
          f"{args.concurrency} activations at a time\n")
    print("| pacing | activations | codes | wall | floor | wall ÷ floor | requests per code | blocks (after 1 min) "
          "| 429s | rate at the end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        rate = f"{r['rate at the end']:.1f}/s" if r["rate at the end"] else "–"
        print(f"| {name} | {r['activations']} | {r['codes']} | {r['wall']:.1f} s | {r['floor']:.1f} s | "
              f"{r['ratio']:.2f} | {r['requests per code']:.2f} | {r['blocks']} ({r['blocks after the first minute']}) "
              f"| {r['429s']} | {rate} |")


if __name__ == "__main__":
    main()
