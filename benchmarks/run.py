"""Benchmarks against the simulator on loopback; prints Markdown tables (``python benchmarks/run.py``).

1. requests per poll tick at N = 10, 100, 1 000 waiters: ours vs one getStatus per waiter vs the
   ``herosms`` 0.1.1 package's ``wait_for_sms`` (``pip install -e '.[bench]'``);
2. per-call overhead of ``get_balance()`` / ``get_status()`` vs a bare ``httpx.AsyncClient.get``;
3. 10 000 waiters in one process: client CPU per poll tick and memory per waiter;
4. parsing large getPrices / getActiveActivations bodies vs ``json.loads`` alone;
5. code latency: delivery at random moments to ``wait_for_code`` returning (median, p99), polling vs
   an external notification;
6. webhooks: 1 000 waiters with codes pushed by the simulator to ``client.webhook_app()`` over
   loopback — latency, requests per code and scans per minute vs polling, and with 20 % dropped.

``--quick`` runs smaller sizes (used by the test suite to keep this script working). Progress goes
to stderr. ``python benchmarks/run_all.py`` runs this and ``farm.py`` and writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
import httpx

from smsactivate_async import SMSActivate
from smsactivate_async._actions import GET_ACTIVE_ACTIVATIONS, GET_PRICES, Action
from smsactivate_async._wire import decode_answer
from smsactivate_async.simulator import CodeSchedule, Simulator, free_port, serve_in_thread

HERO_PAGE = 100


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- 1. requests per tick ---------------------------------------------------------------------


async def _buy(client: SMSActivate, n: int) -> list[int]:
    ids: list[int] = []

    async def one() -> None:
        ids.append((await client.get_number_v2(service="tg", country=2)).activation_id)

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    return ids


async def _window(sim: Simulator, seconds: float, work: Callable[[], Any]) -> tuple[int, int]:
    """Run ``work`` for ``seconds``; return (requests, codes delivered) in that window."""
    before = len(sim.ledger.requests)
    codes_before = sum(1 for c in sim.ledger.status_changes if c.new == "CODE_RECEIVED")
    with anyio.move_on_after(seconds):
        await work()
    codes = sum(1 for c in sim.ledger.status_changes if c.new == "CODE_RECEIVED") - codes_before
    return len(sim.ledger.requests) - before, codes


async def requests_per_tick(n: int, interval: float, ticks: int) -> list[Any]:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(interval * 2, interval * 40),
                    api_keys={"bench": Decimal(10**7)})
    seconds = interval * ticks
    with serve_in_thread(sim) as url:
        async with SMSActivate("bench", provider="herosms", base_url=url, rate_limit=None,
                               poll_interval=interval) as ours:
            ids = await _buy(ours, n)

            resolved: list[int] = []  # each code handed out costs one confirming getStatus

            async def ours_one(activation_id: int) -> None:
                await ours.wait_for_code(activation_id, timeout=3600, cancel_on_timeout=False)
                resolved.append(activation_id)

            async def ours_wait() -> None:
                async with anyio.create_task_group() as group:
                    for activation_id in ids:
                        group.start_soon(ours_one, activation_id)

            ours_requests, _ = await _window(sim, seconds, ours_wait)
            ours_changes = len(resolved)

            async def naive_wait() -> None:
                async def poll(activation_id: int) -> None:
                    while True:
                        await ours.get_status(activation_id)
                        await anyio.sleep(interval)

                async with anyio.create_task_group() as group:
                    for activation_id in ids:
                        group.start_soon(poll, activation_id)

            naive_requests, _ = await _window(sim, seconds, naive_wait)
        peer = await _peer_requests(sim, url, ids, interval, seconds)
    bound = math.ceil(n / HERO_PAGE) + ours_changes / ticks
    return [n, f"{ours_requests / ticks:.1f}", f"{bound:.1f}", f"{naive_requests / ticks:.1f}", peer,
            "yes" if ours_requests / ticks <= bound else "NO"]


async def _peer_requests(sim: Simulator, url: str, ids: list[int], interval: float, seconds: float) -> str:
    try:
        from herosms import HeroSMSClient
    except ImportError:
        return "not installed (pip install -e '.[bench]')"
    # Its default pool (100 connections) times out at 1 000 waiters and retries; give it room.
    pool = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=200), timeout=30)
    async with pool, HeroSMSClient(api_key="bench", base_url=url, poll_interval=interval, http_client=pool) as peer:

        async def peer_one(activation_id: int) -> None:
            await peer.activations.attach(activation_id).wait_for_sms(timeout=3600)

        async def peer_wait() -> None:
            async with anyio.create_task_group() as group:
                for activation_id in ids:
                    group.start_soon(peer_one, activation_id)

        requests, _ = await _window(sim, seconds, peer_wait)
    return f"{requests / (seconds / interval):.1f}"


@contextlib.asynccontextmanager
async def served(dialect: str, codes: str) -> AsyncIterator[str]:
    """The simulator in its own process (so that only the client's CPU is measured here)."""
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "smsactivate_async", "simulate", "--port", str(port), "--provider", dialect,
         "--api-key", "bench", "--codes", codes, "--balance", "100000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/stubs/handler_api.php"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(400):
                try:
                    await probe.get(url)
                    break
                except httpx.TransportError:
                    await anyio.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


# --- 2. per-call overhead ---------------------------------------------------------------------


async def overhead(calls: int, runs: int = 5) -> list[list[Any]]:
    """Per call, ours against a bare ``httpx.AsyncClient.get`` of the same URL, in ``runs`` runs; each run
    alternates short blocks of the two (so that the machine's drift touches both alike) and keeps each
    side's fastest block. The table shows the worst run's ratio, and every run's."""
    rows = []
    async with served("sms-activate", "never") as url:
        async with SMSActivate("bench", base_url=url, rate_limit=None) as client, httpx.AsyncClient() as bare:
            activation = (await client.get_number_v2(service="tg", country=0)).activation_id

            async def status() -> Any:
                return await client.get_status(activation)

            cases: list[tuple[str, Callable[[], Awaitable[Any]], dict[str, Any]]] = [
                ("get_balance()", client.get_balance, {"action": "getBalance"}),
                ("get_status()", status, {"action": "getStatus", "id": activation}),
            ]
            for name, ours_call, params in cases:
                query = {"api_key": "bench", **params}
                for _ in range(50):  # warm up both
                    await ours_call()
                    await bare.get(url, params=query)
                block = 10
                results = []
                for _ in range(runs):
                    best_ours = best_bare = float("inf")
                    for _ in range(max(10, calls // block)):
                        started = time.perf_counter()
                        for _ in range(block):
                            await bare.get(url, params=query)
                        best_bare = min(best_bare, (time.perf_counter() - started) / block)
                        started = time.perf_counter()
                        for _ in range(block):
                            await ours_call()
                        best_ours = min(best_ours, (time.perf_counter() - started) / block)
                    results.append((best_ours / best_bare, best_ours, best_bare))
                ratio, best_ours, best_bare = max(results)
                median = statistics.median(r for r, _, _ in results)
                rows.append([name, f"{best_ours * 1e6:.0f} µs", f"{best_bare * 1e6:.0f} µs", f"{median:.2f}×",
                             f"{ratio:.2f}×", "yes" if median <= 1.10 and ratio <= 1.20 else "NO",
                             " ".join(f"{r:.2f}" for r, _, _ in results)])
    return rows


# --- 3. 10 000 waiters ------------------------------------------------------------------------


async def many_waiters(n: int, interval: float, dialect: str = "herosms", runs: int = 3,
                       pairs: int = 5) -> list[Any]:
    """Steady state first (codes come late), then every code: CPU per tick, per code, memory per waiter.

    The tick's CPU is measured against its floor in the same process, beside the same 10 000 live
    waits: in each of ``runs`` runs, ``pairs`` times, a bare ``httpx`` fetch of the same pages (with
    ``json.loads`` of each) right after a tick, then one quiet tick measured alone (the CPU from one
    tick's end to the next's, the event loop's idle work included; the benchmark learns that a tick
    ended from the tick itself, so that its own polling is not counted); each run's ratio is its
    fastest tick over its fastest floor (the machine's noise only ever adds, and it adds a third
    either way here). A quiet tick that saw news (a code, a getStatus) is reported: it is not quiet."""
    # Codes come late enough that buying 10 000 numbers and the quiet ticks are over well before the
    # first (4-4.5 minutes after its purchase; on a slow moment of the machine 2-2.5 minutes were not).
    async with served(dialect, f"{interval * 120}:{interval * 135}") as url:
        requests = math.ceil(n / HERO_PAGE) if dialect == "herosms" else 1
        page = HERO_PAGE if dialect == "herosms" else None
        async with SMSActivate("bench", provider=dialect, base_url=url, rate_limit=None,
                               poll_interval=interval) as client, httpx.AsyncClient() as bare:
            ids = await _buy(client, n)
            codes: dict[int, str] = {}
            scheduler = client._get_scheduler()
            ticked = anyio.Event()
            real_tick = scheduler._tick

            async def observed_tick() -> None:  # the moment a tick ends, its confirmations included
                nonlocal ticked
                await real_tick()
                ended, ticked = ticked, anyio.Event()
                ended.set()

            scheduler._tick = observed_tick  # type: ignore[method-assign]

            async def wait(activation_id: int) -> None:
                codes[activation_id] = await client.wait_for_code(activation_id, timeout=900, cancel_on_timeout=False)

            async def idle(activation_id: int) -> None:
                await anyio.sleep(3600)

            async def ticks_pass(count: int) -> None:
                for _ in range(count):
                    await ticked.wait()

            sizes = []
            results: list[tuple[float, float]] = []
            for job in (idle, wait):  # the caller's own tasks first, then the same tasks waiting
                tracemalloc.start()
                baseline = tracemalloc.take_snapshot()
                async with anyio.create_task_group() as group:
                    for activation_id in ids:
                        group.start_soon(job, activation_id)
                    await anyio.sleep(interval / 2)
                    during = tracemalloc.take_snapshot()
                    tracemalloc.stop()
                    sizes.append(sum(stat.size_diff for stat in during.compare_to(baseline, "filename")) / n)
                    if job is idle:
                        group.cancel_scope.cancel()
                        continue
                    # steady state: past httpx's keep-alive expiry (5 s) for the connections the
                    # purchases left idle, which httpcore checks at every request until they expire
                    await ticks_pass(math.ceil(6 / interval) + 1)
                    codes_start = len(codes)
                    confirmations = client.stats.by_action["getStatus"]
                    await _bare_scan(bare, url, requests, page)  # its connection opened
                    await ticks_pass(1)
                    for _ in range(runs):
                        ours, floors = [], []
                        for _ in range(pairs):  # each pair begins just after a tick
                            floors.append(await _bare_scan(bare, url, requests, page))
                            await ticks_pass(1)  # the tick after the floor's fetch: measured alone
                            started = time.process_time()
                            await ticks_pass(1)
                            ours.append(time.process_time() - started)
                        results.append((min(ours), min(floors)))
                        shown = (f"{o * 1000:.0f}/{f * 1000:.0f} ms" for o, f in zip(ours, floors, strict=True))
                        progress("    pairs: " + ", ".join(shown))
                    quiet_changes = len(codes) - codes_start
                    confirmations = client.stats.by_action["getStatus"] - confirmations
                    progress("    quiet ticks: " + ", ".join(f"{o * 1000:.0f} ms (floor {f * 1000:.0f})" for o, f in results)
                             + f"; {confirmations} getStatus and {quiet_changes} codes among them")
                    busy_start = time.process_time()
                busy_cpu = time.process_time() - busy_start
    task_cost, with_task = sizes
    library = with_task - task_cost
    per_code = busy_cpu / max(1, n - quiet_changes)
    ratios = [o / f for o, f in results]
    quiet_cpu, floor = statistics.median(o for o, _ in results), statistics.median(f for _, f in results)
    return [f"{n} ({dialect}, {requests} requests/tick)", len(codes), f"{quiet_cpu * 1000:.0f} ms",
            f"{floor * 1000:.0f} ms", f"{statistics.median(ratios):.2f}× (worst {max(ratios):.2f}×)",
            " ".join(f"{r:.2f}" for r in ratios),
            ("yes" if max(ratios) <= 1.25 else "NO") if not confirmations and not quiet_changes
            else f"not quiet: {confirmations} getStatus, {quiet_changes} codes",
            f"{per_code * 1000:.2f} ms", f"{library / 1024:.2f} KiB", f"{with_task / 1024:.2f} KiB",
            "yes" if library <= 4096 else "NO"]


async def _bare_scan(bare: httpx.AsyncClient, url: str, requests: int, page: int | None) -> float:
    """The floor: CPU of a bare ``httpx.AsyncClient`` fetching the same listing pages, with
    ``json.loads`` of each."""
    started = time.process_time()
    for index in range(requests):
        params = {"api_key": "bench", "action": "getActiveActivations"}
        if page is not None:
            params.update(start=str(index * page), limit=str(page))
        json.loads((await bare.get(url, params=params)).content)
    return time.process_time() - started


# --- 4. parsing -------------------------------------------------------------------------------


def parsing(rows: int, repeat: int) -> list[list[Any]]:
    prices = {str(c): {f"s{s}": {"cost": 0.1234 + s / 1000, "count": 1000 + s, "physicalCount": s} for s in range(100)}
              for c in range(rows // 100)}
    active = {"status": "success", "data": [
        {"activationId": str(4_000_000_000 + i), "serviceCode": "tg", "phoneNumber": "79001234567",
         "activationCost": 0.0608, "activationStatus": "4", "smsCode": None, "smsText": None,
         "activationTime": "2026-04-26 19:57:12", "countryCode": "2", "countryName": "Kazakhstan",
         "canGetAnotherSms": "1", "currency": 840} for i in range(rows)],
        "activeActivations": {"affected_rows": 0, "num_rows": 0, "row": [], "rows": []}}
    result = []
    cases: list[tuple[str, Any, Action[Any]]] = [
        ("getPrices", prices, GET_PRICES), ("getActiveActivations", active, GET_ACTIVE_ACTIVATIONS)]
    for name, doc, action in cases:
        body = json.dumps(doc).encode()
        bare = ours = float("inf")
        for _ in range(repeat):  # the fastest of each, taken in turns: the machine's drift touches both
            started = time.perf_counter()
            json.loads(body)
            bare = min(bare, time.perf_counter() - started)
            started = time.perf_counter()
            action.parse(decode_answer(action=action.wire, status_code=200, body=body, headers={}))
            ours = min(ours, time.perf_counter() - started)
        result.append([name, f"{len(body) / 1024:.0f} KiB", f"{bare * 1000:.1f} ms", f"{ours * 1000:.1f} ms",
                       f"{ours / bare:.1f}×"])
    return result


# --- 5. code latency --------------------------------------------------------------------------


async def latency(interval: float, samples: int) -> list[list[Any]]:
    """``samples`` waiters at once, each code delivered at a random moment (seeded) within four poll
    intervals of the wait's start: latency runs from delivery to ``wait_for_code`` returning."""
    rows = []
    for mode in ("polling", "notification"):
        sim = Simulator(codes=CodeSchedule.never(), api_keys={"bench": Decimal(10**6)})
        arrivals = random.Random(7)
        delays: list[float] = []
        async with SMSActivate("bench", transport=sim.transport(), rate_limit=None, poll_interval=interval) as client:
            ids = await _buy(client, samples)
            async with anyio.create_task_group() as group:
                for activation in ids:
                    group.start_soon(_one_code, sim, client, activation, arrivals.uniform(0, interval * 4), mode,
                                     interval, delays)
        delays.sort()
        rows.append([mode, f"{interval:g} s", samples, f"{delays[len(delays) // 2] * 1000:.1f} ms",
                     f"{delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000:.1f} ms",
                     f"{delays[-1] * 1000:.1f} ms"])
    return rows


async def _one_code(sim: Simulator, client: SMSActivate, activation: int, after: float, mode: str, interval: float,
                    delays: list[float]) -> None:
    delivered: list[float] = []

    async def deliver() -> None:
        await anyio.sleep(after)
        sim.deliver_sms(activation, "Your code is 123456")
        delivered.append(time.perf_counter())
        if mode == "notification":
            client.notify(activation)

    async with anyio.create_task_group() as group:
        group.start_soon(deliver)
        await client.wait_for_code(activation, timeout=interval * 10)
    delays.append(time.perf_counter() - delivered[0])


# --- 6. webhooks ---------------------------------------------------------------------------------


async def webhooks(n: int, spread: tuple[float, float], mode: str, *, fallback: float, drop: float = 0.0,
                   interval: float = 1.0) -> list[Any]:
    """``n`` waiters on the HeroSMS dialect; codes pushed by the simulator to the receiver over loopback
    HTTP (``mode="webhooks"``) or found by polling alone. Latency runs from the simulator making the
    code visible to ``wait_for_code`` returning."""
    from smsactivate_async.webhooks import serve

    sim = Simulator(provider="herosms", codes=CodeSchedule.within(*spread), api_keys={"bench": Decimal(10**7)},
                    webhook_drop_rate=drop, webhook_retries=1 if drop else None, seed=5)
    secret = "bench-secret-0123456789"
    async with SMSActivate("bench", provider="herosms", transport=sim.transport(), rate_limit=None,
                           poll_interval=interval) as client, anyio.create_task_group() as group:
        if mode == "webhooks":
            app = client.webhook_app("/sms", secret=secret, allowed_sources=None, fallback_interval=fallback)
            port = free_port()
            group.start_soon(serve, app, "127.0.0.1", port)
            await anyio.sleep(0.5)
            sim.webhook_url = f"http://127.0.0.1:{port}{app.path}"
        ids = await _buy(client, n)
        returned: dict[int, float] = {}
        before = {a: sim.ledger.requests_for(a) for a in ("getStatus", "getActiveActivations")}
        requests_before = len(sim.ledger.requests)
        started = sim.clock.now()

        async def one(activation_id: int) -> None:
            await client.wait_for_code(activation_id, timeout=spread[1] + 4 * fallback + 60)
            returned[activation_id] = sim.clock.now()

        async with sim.running(), anyio.create_task_group() as waiters:
            for activation_id in ids:
                waiters.start_soon(one, activation_id)
        elapsed = sim.clock.now() - started
        group.cancel_scope.cancel()
    visible = {c.id: c.at for c in sim.ledger.status_changes if c.new == "CODE_RECEIVED"}
    delays = sorted(returned[i] - visible[i] for i in returned)
    codes = len(returned)
    scans = sim.ledger.requests_for("getActiveActivations") - before["getActiveActivations"]
    label = "polling" if mode == "polling" else f"webhooks (fallback {fallback:g} s)" + (
        f", {drop:.0%} dropped" if drop else "")
    return [label, n, f"{codes}/{n}", f"{delays[len(delays) // 2] * 1000:.1f} ms",
            f"{delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000:.1f} ms",
            f"{(sim.ledger.requests_for('getStatus') - before['getStatus']) / codes:.2f}",
            f"{(len(sim.ledger.requests) - requests_before) / codes:.2f}", f"{scans / elapsed * 60:.0f}"]


def progress(text: str) -> None:
    """A line on stderr as each part starts: the full run takes minutes."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def tables(quick: bool) -> list[str]:
    """Every table, as Markdown (``benchmarks/run_all.py`` writes them into docs/benchmarks.md)."""
    sizes = [10, 100] if quick else [10, 100, 1000]
    interval = 0.5 if quick else 1.0
    out = []
    ticks = []
    for n in sizes:
        progress(f"1/6 requests per tick: {n} waiters")
        ticks.append(await requests_per_tick(n, interval, 3 if quick else 5))
    out.append(table("1. Requests per poll tick (HeroSMS dialect, page 100)",
                     ["waiters", "ours", "bound ⌈N/100⌉+changes", "getStatus per waiter", "herosms 0.1.1 wait_for_sms",
                      "within bound"], ticks))
    progress("2/6 per-call overhead, five runs")
    out.append(table("2. Per-call overhead vs bare httpx (loopback; five runs)",
                     ["call", "ours (worst run)", "bare httpx (worst run)", "ratio, median", "ratio, worst",
                      "median ≤ 1.10×, worst ≤ 1.20×", "ratio in each run"],
                     await overhead(100 if quick else 500, runs=2 if quick else 5)))
    size = 500 if quick else 10_000
    waiters = []
    for dialect in ("herosms", "sms-activate"):
        progress(f"3/6 {size} waiters, {dialect}")
        waiters.append(await many_waiters(size, 0.5 if quick else 2.0, dialect))
    out.append(table(f"3. {size} waiters in one process (simulator in another process)",
                     ["waiters", "codes delivered", "client CPU per tick (no changes)",
                      "bare httpx + json.loads, same requests", "ratio, median", "ratio in each run",
                      "≤ 1.25× in each",
                      "client CPU per code", "memory per waiter", "with the caller's task", "≤ 4 KiB"], waiters))
    progress("4/6 parsing")
    out.append(table("4. Parsing large bodies",
                     ["body", "size", "json.loads", "ours (decode + models)", "ratio"],
                     parsing(1000 if quick else 10_000, 3 if quick else 10)))
    progress("5/6 code latency")
    out.append(table("5. Code latency (delivery at random moments → wait_for_code returns)",
                     ["mode", "poll interval", "codes", "median", "p99", "max"],
                     await latency(0.5 if quick else 2.0, 20 if quick else 400)))
    n = 100 if quick else 1000
    spread = (0.5, 3.0) if quick else (1.0, 20.0)
    hooks = []
    for mode, fallback, drop in (("polling", 30.0, 0.0), ("webhooks", 30.0, 0.0),
                                 ("webhooks", 2.0 if quick else 5.0, 0.2)):
        progress(f"6/6 {n} waiters, {mode}" + (f", {drop:.0%} dropped" if drop else ""))
        hooks.append(await webhooks(n, spread, mode, fallback=fallback, drop=drop))
    out.append(table(f"6. Webhooks: {n} waiters, HeroSMS dialect, codes within {spread[0]:g}–{spread[1]:g} s, "
                     "pushed over loopback HTTP, poll interval 1 s",
                     ["mode", "waiters", "codes delivered", "latency median", "latency p99", "getStatus per code",
                      "requests per code", "scans per minute"], hooks))
    return out


async def main(quick: bool) -> None:
    print("\n".join(await tables(quick)))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    anyio.run(main, parser.parse_args().quick)
