"""What observability costs a call (issue 43): ``get_status()`` over loopback, the simulator in its own
process, with no OpenTelemetry at all (as without the ``otel`` extra), with the API but no SDK
configured (the default when the extra is installed), and with the SDK's metrics and tracing on.

Run: python benchmarks/telemetry.py [--quick]

Each run alternates short blocks of the three clients (the machine's drift touches all alike) and
keeps each one's fastest block; the table shows the median and the worst of the runs' ratios to
"no OpenTelemetry". Target: "API, no SDK" within 5 % of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from run import served, table  # benchmarks/run.py (this folder is on the path of a script run)

from smsactivate_async import SMSActivate, _telemetry

CASES = ("no OpenTelemetry", "API, no SDK configured", "SDK: metrics", "SDK: metrics and tracing")


def client(case: str, url: str) -> SMSActivate:
    if case == CASES[0]:
        real = _telemetry.otel_available
        _telemetry.otel_available = lambda: False  # as if the extra were not installed
        try:
            return SMSActivate("bench", base_url=url, rate_limit=None)
        finally:
            _telemetry.otel_available = real
    if case == CASES[1]:
        return SMSActivate("bench", base_url=url, rate_limit=None)
    if case == CASES[2]:
        return SMSActivate("bench", base_url=url, rate_limit=None,
                           meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return SMSActivate("bench", base_url=url, rate_limit=None,
                       meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
                       tracer_provider=TracerProvider())


async def measure(calls: int, runs: int) -> list[list[Any]]:
    async with served("sms-activate", "never") as url:
        clients = [client(case, url) for case in CASES]
        for each in clients:
            await each.__aenter__()
        try:
            activation = (await clients[0].get_number_v2(service="tg", country=0)).activation_id
            for each in clients:
                for _ in range(100):  # warm up
                    await each.get_status(activation)
            block = 10
            ratios: list[list[float]] = [[] for _ in CASES]
            bests: list[list[float]] = [[] for _ in CASES]
            for _ in range(runs):
                best = [float("inf")] * len(CASES)
                for _ in range(max(10, calls // block)):
                    for index, each in enumerate(clients):
                        started = time.perf_counter()
                        for _ in range(block):
                            await each.get_status(activation)
                        best[index] = min(best[index], (time.perf_counter() - started) / block)
                for index in range(len(CASES)):
                    ratios[index].append(best[index] / best[0])
                    bests[index].append(best[index])
        finally:
            for each in clients:
                await each.__aexit__(None, None, None)
    rows = []
    for index, case in enumerate(CASES):
        rows.append([case, f"{statistics.median(bests[index]) * 1e6:.0f} µs",
                     f"{statistics.median(ratios[index]):.3f}×", f"{max(ratios[index]):.3f}×",
                     ("yes" if statistics.median(ratios[index]) <= 1.05 else "NO") if index == 1 else "—",
                     " ".join(f"{r:.3f}" for r in ratios[index])])
    return rows


async def main(quick: bool) -> None:
    rows = await measure(100 if quick else 500, 2 if quick else 5)
    print(table("9. Observability overhead: get_status() over loopback, per call",
                ["instrumentation", "per call (median of runs)", "ratio, median", "ratio, worst", "median ≤ 1.05×",
                 "ratio in each run"], rows))
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and runs (a smoke run)")
    anyio.run(main, parser.parse_args().quick)
