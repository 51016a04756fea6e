"""Webhooks across processes: ``python benchmarks/fleet_webhooks.py [--workers 3] [--each 100]``.

A real redis-server on loopback is the journal of one account; ``--workers`` worker processes
(``benchmarks/fleet_webhooks_worker.py``) each buy ``--each`` numbers from the simulator (served on
loopback) and wait for their codes, polling once a minute. This process holds the webhook receiver:
a client of the same account and store, with its ``webhook_app``. For each activation, in random
order and at random moments, the simulator receives the SMS and the provider's push is posted to the
receiver; the latency is from that moment to the worker's ``wait_for_code`` returning (clocks of one
machine). Only a push passed on through Redis can bring a code within the minute: the table shows
how fast it does (median, p99, worst) and how many came.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import httpx

from smsactivate_async import Provider, SMSActivate
from smsactivate_async.simulator import CodeSchedule, Simulator
from smsactivate_async.simulator._transport import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789"


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import start_redis

    return start_redis(folder)


class _Worker:
    def __init__(self, args: list[str]) -> None:
        self.ids: list[int] = []
        self.ready = threading.Event()
        self.codes: dict[int, float] = {}
        self.process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fleet_webhooks_worker.py"), *args],
                                        stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            words = line.split()
            if words and words[0] == "READY":
                self.ids = [int(w) for w in words[1:]]
                self.ready.set()
            elif words and words[0] == "CODE":
                self.codes[int(words[1])] = float(words[2])


async def _push_all(sim: Simulator, url: str, store: str, ids: list[int], rng: random.Random) -> dict[int, float]:
    provider = Provider(name="fleet-bench", base_url=url, dialect="sms-activate", rate_limit=None)
    sent: dict[int, float] = {}
    async with SMSActivate("fleet", provider=provider, store=store, owner="receiver") as receiver:
        app = receiver.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=60)
        await anyio.sleep(0.5)  # its own listener up: the receiver is a client of the account like any other
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hook") as http:
            for activation_id in ids:
                await anyio.sleep(rng.uniform(0.0, 0.02))
                code = f"{activation_id % 1_000_000:06d}"
                sim.deliver_sms(activation_id, f"Your code is {code}", code=code)
                sent[activation_id] = time.time()
                push = {"activationId": activation_id, "service": "tg", "text": f"Your code is {code}", "code": code,
                        "country": 0, "receivedAt": "2026-12-02 12:00:00"}
                response = await http.post(app.path, json=push)
                assert response.status_code == 200, response.text
        await anyio.sleep(2.0)  # the last codes reach their waiters
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--each", type=int, default=100, help="activations each worker waits on")
    args = parser.parse_args()
    rng = random.Random(5)
    sim = Simulator(codes=CodeSchedule.never(), api_keys={"fleet": 10**6})
    with tempfile.TemporaryDirectory() as folder, serve_in_thread(sim) as url:
        redis_process, store = _start_redis(Path(folder))
        workers: list[_Worker] = []
        try:
            workers = [_Worker([url, store, f"w{i}", str(args.each)]) for i in range(args.workers)]
            for worker in workers:
                if not worker.ready.wait(timeout=120):
                    raise RuntimeError("a worker did not get ready")
            ids = [i for w in workers for i in w.ids]
            rng.shuffle(ids)
            sent = anyio.run(_push_all, sim, url, store, ids, rng)
            deadline = time.monotonic() + 10
            while sum(len(w.codes) for w in workers) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.process.terminate()
                worker.process.wait(timeout=10)
            redis_process.terminate()
            redis_process.wait(timeout=10)
    got = {i: t for w in workers for i, t in w.codes.items()}
    latencies = sorted((got[i] - sent[i]) * 1000 for i in ids if i in got)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"#### Webhooks across processes: {args.workers} workers × {args.each} waiters, one receiver, Redis pub/sub\n")
    print("| codes pushed | reached their waiter | median | p99 | worst |")
    print("|---|---|---|---|---|")
    print(f"| {len(ids)} | {len(latencies)} | {statistics.median(latencies):.1f} ms | {p99:.1f} ms | "
          f"{latencies[-1]:.1f} ms |")


if __name__ == "__main__":
    main()
