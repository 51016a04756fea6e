"""A worker process for the crash tests: buys numbers and rents two on a journaled client, waits for
some codes, then hangs until it is killed (SIGKILL: no cleanup of any kind runs)."""

from __future__ import annotations

import sys

import anyio

from smsactivate_async import SMSActivate


async def main(base_url: str, store: str, owner: str, count: int, with_codes: int) -> None:
    async with SMSActivate("test-key", base_url=base_url, store=store, owner=owner, lease=1.0, rate_limit=None,
                           poll_interval=0.05) as client:
        ids = [(await client.get_number_v2(service="tg", country=0)).activation_id for _ in range(count)]
        rents = [(await client.get_rent_number(service="tg", country=0)).id for _ in range(2)]
        print("BOUGHT", *ids, "RENTED", *rents, flush=True)  # one line: the reader selects on the pipe
        for activation_id in ids[:with_codes]:
            await client.wait_for_code(activation_id, timeout=30)
        print("CODES", flush=True)
        await anyio.sleep(3600)


if __name__ == "__main__":
    url, store_url, name, n, coded = sys.argv[1:6]
    anyio.run(main, url, store_url, name, int(n), int(coded))
