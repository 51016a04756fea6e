"""Issue 43's "done when": a farm of three worker processes on Redis, run with the observability
recipe (examples/metrics_worker.py), scraped once each — requests, purchases, spend, refunds, codes
and closes summed over the workers equal the simulator's ledger."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smsactivate_async.simulator import CatalogueEntry, CodeSchedule, Simulator, serve_in_thread
from smsactivate_async.simulator._transport import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "metrics_worker.py"


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One scrape of a worker's /metrics: (sample name, labels) → value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(scrapes: list[dict[tuple[str, frozenset[tuple[str, str]]], float]], name: str, **labels: str) -> float:
    return sum(value for scraped in scrapes for (sample, got), value in scraped.items()
               if sample == name and set(labels.items()) <= set(got))


@pytest.mark.slow  # about 30 s: HeroSMS's 10 s block on the way
def test_a_farm_of_three_workers_on_redis_agrees_with_the_ledger(redis_url: str) -> None:
    # a third of the numbers never get a code: they are cancelled at their timeout (and refunded); a throttle
    # blocks the account for HeroSMS's 10 s on the way
    sim = Simulator(provider="herosms", codes=CodeSchedule.within(0.05, 0.4), early_cancel_seconds=0, seed=7,
                    catalogue=[CatalogueEntry("tg", 0, Decimal("0.15"), 10_000, success_rate=0.67)])
    ports = [free_port() for _ in range(3)]
    sim.faults.inject("rate_limit", action="getStatus")  # one throttle: the blocks alert has its counter
    with serve_in_thread(sim) as url:
        env = {**os.environ, "SMSACTIVATE_API_KEY": sim.api_key}
        workers = [subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port), "--activations", "30", "--concurrency", "15",
             "--timeout", "15", "--poll-interval", "0.2", "--store", redis_url, "--owner", f"w{n}",
             "--provider", "herosms", "--base-url", url, "--linger", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for n, port in enumerate(ports)]
        try:
            outcomes = []
            for worker in workers:
                assert worker.stdout is not None
                line = worker.stdout.readline()
                assert line, worker.stderr.read() if worker.stderr else ""
                outcomes.append(json.loads(line))
            scrapes = [scrape(port) for port in ports]
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
    ledger = sim.ledger
    assert sum(o["codes"] + o["failed"] for o in outcomes) == 90
    assert total(scrapes, "smsactivate_requests_total") == len(ledger.requests)
    for action, count in Counter(r.action for r in ledger.requests).items():
        assert total(scrapes, "smsactivate_requests_total", action=action) == count, action
    assert total(scrapes, "smsactivate_purchases_total", provider="herosms") == len(ledger.purchases) == 90
    assert Decimal(str(round(total(scrapes, "smsactivate_spend_total"), 6))) == ledger.spent()
    assert Decimal(str(round(total(scrapes, "smsactivate_refunds_total"), 6))) == ledger.refunded() > 0
    codes = sum(1 for change in ledger.status_changes if change.new == "CODE_RECEIVED")
    assert total(scrapes, "smsactivate_codes_total") == codes == sum(o["codes"] for o in outcomes) > 30
    finished = sum(1 for a in sim.activations.values() if a.state.name == "FINISHED")
    cancelled = sum(1 for a in sim.activations.values() if a.state.name == "CANCELLED")
    assert total(scrapes, "smsactivate_closed_total", how="finished") == finished
    assert total(scrapes, "smsactivate_closed_total", how="cancelled") == cancelled
    assert finished + cancelled == 90
    assert total(scrapes, "smsactivate_open_numbers") == 0
    assert total(scrapes, "smsactivate_request_duration_seconds_count") == len(ledger.requests)
    assert total(scrapes, "smsactivate_rate_limit_blocks_total") >= 1
    # every name the recipe's alerts and panels use is a name the scrape has (the fleet's own panel aside:
    # recoveries and strays are counted only where they happen)
    recipe = (Path(__file__).resolve().parent.parent / "docs" / "recipes" / "observability.md").read_text()
    recipe = recipe[recipe.index("## Alerts"):recipe.index("14. **Fleet**")]
    scraped = {name for scraped in scrapes for name, _ in scraped}
    used = set(re.findall(r"\bsmsactivate_[a-z_]+\b", recipe))
    assert len(used) >= 10 and used <= scraped, used - scraped
