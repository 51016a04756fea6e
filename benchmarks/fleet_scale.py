"""A fleet at HeroSMS's limit against one process doing the same work (issue 45):
``python benchmarks/fleet_scale.py [--total 600] [--in-flight 300] [--workers 1 3 8] [--runs 1]``.

The farm's work — numbers bought, each code awaited (2–20 s after purchase), then finished — split
over N worker processes (examples/metrics_worker.py, the observability recipe's worker) sharing one
key and one Redis journal (so one rate budget and one poller for the account), against the simulator
served on loopback with HeroSMS's published limits (50 requests/s, a 10 s block renewed by every
request during it). Wall time of the work — from the moment every worker has started and opened its
client (a barrier: ``--ready``) to the last worker's end — over the one-process run's; and, beside it,
from the launch of the processes (each Python start and import inside it). Target: 8 processes within
1.10× one process, no block.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from smsactivate_async.simulator import CodeSchedule, Faults, Simulator, serve_in_thread
from smsactivate_async.simulator._transport import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_redis  # noqa: E402 - the test suite's real redis-server on loopback


def one_run(total: int, in_flight: int, workers: int, redis_url: str) -> dict[str, Any]:
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(2.0, 20.0), faults=Faults.herosms_limits(),
                    api_keys={"farm": Decimal(10**6)}, seed=11)
    shares = [total // workers + (1 if n < total % workers else 0) for n in range(workers)]
    room = [in_flight // workers + (1 if n < in_flight % workers else 0) for n in range(workers)]
    namespace = f"run{time.monotonic_ns()}"  # each run its own owners (the journal is emptied between runs)
    with serve_in_thread(sim) as url:
        env = {**os.environ, "SMSACTIVATE_API_KEY": "farm"}
        started = time.perf_counter()
        procs = [subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "metrics_worker.py"), "--port", str(free_port()),
             "--activations", str(share), "--concurrency", str(width), "--timeout", "60",
             "--store", redis_url, "--owner", f"{namespace}-w{n}",
             "--provider", "herosms", "--base-url", url, "--service", "tg", "--country", "2",
             "--ready"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for n, (share, width) in enumerate(zip(shares, room, strict=True))]
        for proc in procs:  # every worker started, imported and opened its client
            assert proc.stdout is not None and proc.stdin is not None
            if json.loads(proc.stdout.readline() or "{}") != {"ready": True}:
                raise RuntimeError(f"a worker did not start: {proc.communicate(timeout=60)[1][-2000:]}")
        go = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a worker failed: {err[-2000:]}")
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
        end = time.perf_counter()
    return {"workers": workers, "wall": end - go, "launch": end - started, "codes": sum(o["codes"] for o in outcomes),
            "failed": sum(o["failed"] for o in outcomes), "blocks": len(sim.ledger.blocks),
            "left_open": sum(1 for a in sim.activations.values() if a.state.active),
            "requests": len(sim.ledger.requests)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=600)
    parser.add_argument("--in-flight", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3, 8])
    parser.add_argument("--runs", type=int, default=1, help="runs of each size (the table shows the median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server, redis_url = start_redis(Path(folder))
        try:
            results: dict[int, list[dict[str, Any]]] = {}
            for workers in args.workers:
                for run in range(args.runs):
                    with redis.Redis.from_url(redis_url) as connection:
                        connection.flushall()
                    found = one_run(args.total, args.in_flight, workers, redis_url)
                    print(f"{workers} worker(s), run {run + 1}: {found}", file=sys.stderr, flush=True)
                    results.setdefault(workers, []).append(found)
        finally:
            server.terminate()
            server.wait(timeout=30)
    base = statistics.median(r["wall"] for r in results[min(results)])
    print(f"#### {args.total} activations, {args.in_flight} in flight, HeroSMS's limit, one key, one Redis journal\n")
    launched = statistics.median(r["launch"] for r in results[min(results)])
    print("| worker processes | codes | work's wall (median) | × one process | each run | from launch (median) "
          "| × one process | rate blocks | left open | requests per code |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for workers, runs in sorted(results.items()):
        wall = statistics.median(r["wall"] for r in runs)
        launch = statistics.median(r["launch"] for r in runs)
        worst = max(runs, key=lambda r: r["wall"])
        print(f"| {workers} | {worst['codes']}/{args.total} | {wall:.1f} s | {wall / base:.3f}× | "
              + " ".join(f"{r['wall']:.1f}" for r in runs)
              + f" | {launch:.1f} s | {launch / launched:.2f}× | {max(r['blocks'] for r in runs)} | "
              f"{max(r['left_open'] for r in runs)} | {worst['requests'] / max(1, worst['codes']):.2f} |")


if __name__ == "__main__":
    main()
