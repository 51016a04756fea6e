"""A farm worker an operator can see: OpenTelemetry metrics served on /metrics for Prometheus.

Run: python examples/metrics_worker.py [--port 9464] [--activations 50] [--store redis://…] [--owner w1]
     (the embedded simulator; with SMSACTIVATE_API_KEY and --provider / --base-url, a real account)

Needs: pip install "smsactivate-async[otel]" opentelemetry-sdk opentelemetry-exporter-prometheus

The client takes ``meter_provider=`` (here the SDK's, read by the Prometheus exporter); a worker of
a fleet also gives ``store=`` and its ``owner=`` (one name per worker, kept across restarts). After its
work the worker keeps serving /metrics for ``--linger`` seconds, for the last scrape.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import start_http_server

from smsactivate_async import SMSActivate, SMSActivateError


def metrics_on(port: int, worker: str) -> MeterProvider:
    """An SDK meter provider whose readings Prometheus scrapes on ``http://127.0.0.1:{port}/metrics``."""
    start_http_server(port, addr="127.0.0.1")
    return MeterProvider(metric_readers=[PrometheusMetricReader()],
                         resource=Resource.create({"service.name": "sms-farm", "service.instance.id": worker}))


def client_for(args: argparse.Namespace, meters: MeterProvider) -> SMSActivate:
    options: dict[str, Any] = {"meter_provider": meters, "store": args.store, "owner": args.owner}
    if args.poll_interval is not None:
        options["poll_interval"] = args.poll_interval
    key = os.environ.get("SMSACTIVATE_API_KEY")
    if key:
        return SMSActivate(key, provider=args.provider, base_url=args.base_url, **options)
    from smsactivate_async.simulator import CodeSchedule, Simulator

    sim = Simulator(codes=CodeSchedule.within(0.05, 0.5), early_cancel_seconds=0)
    options.setdefault("poll_interval", 0.1)
    return SMSActivate(sim.api_key, transport=sim.transport(), early_cancel_window=0, rate_limit=None, **options)


async def main(args: argparse.Namespace) -> dict[str, int]:
    meters = metrics_on(args.port, args.owner)
    outcome = {"codes": 0, "failed": 0}
    limit = anyio.Semaphore(args.concurrency)

    async def one(client: SMSActivate) -> None:
        async with limit:
            try:
                async with client.activation(service=args.service, country=args.country) as act:
                    await act.wait_for_code(timeout=args.timeout)
                outcome["codes"] += 1
            except SMSActivateError:
                outcome["failed"] += 1

    async with client_for(args, meters) as client, anyio.create_task_group() as group:
        if args.ready:  # a benchmark's barrier: every worker of the fleet starts its work at one moment
            print(json.dumps({"ready": True}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
        for _ in range(args.activations):
            group.start_soon(one, client)
    print(json.dumps(outcome), flush=True)
    await anyio.sleep(args.linger)  # the last scrape
    return outcome


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--activations", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--service", default="tg")
    parser.add_argument("--country", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--store", default=None, help="the fleet's journal (redis://… or sqlite:///…)")
    parser.add_argument("--owner", default=f"worker-{os.getpid()}")
    parser.add_argument("--provider", default="herosms")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds (default: the provider's)")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds /metrics stays up after the work")
    parser.add_argument("--ready", action="store_true",
                        help="say ready once the client is open, and start the work at a line on stdin")
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
