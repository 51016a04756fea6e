"""One worker of ``benchmarks/fleet.py``: ``count`` activations on a journaled client, a line per number.

Prints ``GOT <id>`` when a number is bought and handed to it, ``CODE <id>`` when its code came (and
the number was finished), and ``STATS <json>`` at the end. Numbers are bought with ``getNumber``,
which has no order id, so that lost purchase answers go through the journal's reconciliation
across workers.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import anyio
import attrs

from smsactivate_async import (
    PROVIDERS,
    ActivationStateError,
    BadRequestError,
    Provider,
    RetryPolicy,
    SMSActivate,
    SMSActivateError,
)

log = logging.getLogger("fleet")


async def main(base_url: str, store: str, owner: str, count: int, rate: str, concurrency: int) -> None:
    if rate == "herosms":  # the preset as users take it (adaptive, its 10 s block), on the simulator's URL
        provider = attrs.evolve(PROVIDERS["herosms"], base_url=base_url, poll_interval=0.25, early_cancel_window=0.5)
    else:
        provider = Provider(name="fleet-bench", base_url=base_url, dialect="sms-activate", rate_limit=float(rate),
                            burst=5, poll_interval=0.25, early_cancel_window=0.5)
    client = SMSActivate("fleet", provider=provider, store=store, owner=owner, lease=5.0, timeout=2.0,
                         retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5, settle=0.5))
    failures: list[str] = []
    limiter = anyio.Semaphore(concurrency)

    async def one() -> None:
        # getNumber carries no order id: a lost answer is settled by the journal's reconciliation alone
        async with limiter:
            bought: int | None = None
            try:
                number = await client.get_number(service="tg", country=2)
                bought = number.activation_id
                print("GOT", bought, flush=True)
                log.info("GOT %s", bought)
                try:
                    await client.wait_for_code(bought, timeout=120)  # cancels (8) on timeout
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await client._get_scheduler().cancel(bought)
                    raise
                print("CODE", bought, flush=True)
                try:
                    await client.set_status(bought, 6)
                except (ActivationStateError, BadRequestError):
                    pass  # a repeated finish whose first answer was lost: already finished
            except SMSActivateError as error:
                failures.append(error.code)
                print("FAIL", bought, error.code, str(error)[:300], file=sys.stderr, flush=True)

    async with client:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(one)
        scheduler = client._get_scheduler()
        stats = {"ticks": scheduler.ticks, "fleet_scans": scheduler.fleet_scans, "failures": failures,
                 "requests": client.stats.requests, "reconciliations": client.stats.reconciliations,
                 "adopted": client.stats.adopted, "strays_found": client.stats.strays_found,
                 "strays_adopted": client.stats.strays_adopted, "strays_closed": client.stats.strays_closed}
    print("STATS", json.dumps(stats), flush=True)


if __name__ == "__main__":
    if os.environ.get("FLEET_LOG"):
        logging.basicConfig(level=logging.INFO, format=f"%(created).3f {sys.argv[3]} %(message)s")
    url, store_url, name, n, rate_text, concurrency_text = sys.argv[1:7]
    anyio.run(main, url, store_url, name, int(n), rate_text, int(concurrency_text))
