"""One account, one budget: shared pacing under HeroSMS's limit (``python benchmarks/fleet_pacing.py``).

600 activations (buy → code → 6) against the simulator with HeroSMS's published limit (50
requests/s per account, a 10 s block past it, re-blocked by any request during it, 429 without
Retry-After), the herosms preset's adaptive pacing. Rows: one client keeping 300 in flight; three
clients ("workers") of one account keeping 100 each, sharing no store, sharing a sqlite journal,
and sharing a Redis store. The workers run in one process with separate clients (separate limiters,
as separate processes would have); the rows without a socket run on trio's virtual clock (their
wall time is the simulated one), the Redis row on real time against a real redis-server. Truth from
the simulator's ledger: requests, blocks, 429s, the most requests in any one second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from smsactivate_async import SMSActivate, SMSActivateError
from smsactivate_async.simulator import CodeSchedule, Faults, LoopSimClock, Simulator

TOTAL = 600


async def _workers(sim: Simulator, clients: list[SMSActivate], per_client: int, in_flight: int) -> int:
    done = 0

    async def worker(client: SMSActivate) -> None:
        nonlocal done
        gate = anyio.Semaphore(in_flight)

        async def one() -> None:
            nonlocal done
            async with gate:
                try:
                    async with client.activation(service="tg", country=2) as act:
                        await act.wait_for_code(timeout=300)
                    done += 1
                except SMSActivateError as exc:
                    print(f"  failed: {exc.code}", file=sys.stderr)

        async with client, anyio.create_task_group() as group:
            for _ in range(per_client):
                group.start_soon(one)

    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(worker, client)
    return done


def _sim() -> Simulator:
    return Simulator(provider="herosms", codes=CodeSchedule.within(1.0, 10.0), faults=Faults.herosms_limits(),
                     api_keys={"bench": Decimal(10**6)}, clock=LoopSimClock(), early_cancel_seconds=0, seed=5)


def row(name: str, workers: int, store: str | None, virtual: bool, total: int) -> dict[str, Any]:
    sim = _sim()
    result: dict[str, Any] = {}

    async def main() -> None:
        clients = [SMSActivate("bench", provider="herosms", transport=sim.transport(), poll_interval=1.0,
                               early_cancel_window=0, store=store, owner=f"w{i}", close_timeout=0)
                   for i in range(workers)]
        started = anyio.current_time()
        result["done"] = await _workers(sim, clients, total // workers, 300 // workers)
        result["wall"] = anyio.current_time() - started

    if virtual:
        import trio.testing

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    else:
        anyio.run(main)
    ledger = sim.ledger
    seconds = max(result["wall"], 1e-9)
    return {"row": name, "done": result["done"], "wall": result["wall"], "requests": len(ledger.requests),
            "blocks": len(ledger.blocks), "429s": sum(1 for r in ledger.requests if r.status == 429),
            "peak": ledger.max_requests_in_window(1.0), "mean": len(ledger.requests) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=TOTAL)
    parser.add_argument("--redis", help="redis:// URL (default: a redis-server started here, if there is one)")
    args = parser.parse_args()
    rows = [row("1 process (300 in flight)", 1, None, True, args.total)]
    print(f"... {rows[-1]}", file=sys.stderr, flush=True)
    rows.append(row("3 workers, no shared store", 3, None, True, args.total))
    print(f"... {rows[-1]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        url = args.redis or _start_redis(Path(folder))
        sqlite = f"sqlite:///{Path(folder) / 'journal.db'}"
        rows.append(row("3 workers, sqlite journal", 3, sqlite, False, args.total))
        print(f"... {rows[-1]}", file=sys.stderr, flush=True)
        if url:
            started = time.monotonic()
            rows.append(row("3 workers, Redis store", 3, url, False, args.total))
            print(f"... {rows[-1]} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    print(f"\n#### One HeroSMS account (50 req/s, 10 s block), {args.total} activations\n")
    print("| | done | wall | requests | blocks / 429s | peak in 1 s | mean req/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['done']} | {r['wall']:.1f} s | {r['requests']} | {r['blocks']} / {r['429s']} | "
              f"{r['peak']} | {r['mean']:.1f} |")


def _start_redis(folder: Path) -> str | None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from tests.conftest import start_redis
    except ImportError:
        return None
    process, url = start_redis(folder)
    import atexit

    atexit.register(process.terminate)
    return url


if __name__ == "__main__":
    main()
