"""One worker of ``benchmarks/fleet_webhooks.py``: buys ``count`` numbers on a Redis-journaled client
with polling once a minute, says ``READY <ids>``, then waits for their codes and prints
``CODE <id> <wall time>`` as each wait returns (only a push passed on through Redis can bring a
code that fast)."""

from __future__ import annotations

import sys
import time

import anyio

from smsactivate_async import Provider, SMSActivate


async def main(base_url: str, store: str, owner: str, count: int) -> None:
    provider = Provider(name="fleet-bench", base_url=base_url, dialect="sms-activate", rate_limit=None,
                        poll_interval=60.0)
    async with SMSActivate("fleet", provider=provider, store=store, owner=owner) as client:
        ids = [(await client.get_number_v2(service="tg", country=0)).activation_id for _ in range(count)]

        async def wait(activation_id: int) -> None:
            await client.wait_for_code(activation_id, timeout=600)
            print("CODE", activation_id, repr(time.time()), flush=True)

        async with anyio.create_task_group() as group:
            for activation_id in ids:
                group.start_soon(wait, activation_id)
            await anyio.sleep(0.5)  # every wait registered, the client listening for pushes
            print("READY", *ids, flush=True)


if __name__ == "__main__":
    url, store_url, name, n = sys.argv[1:5]
    anyio.run(main, url, store_url, name, int(n))
