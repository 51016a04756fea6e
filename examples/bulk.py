"""A bulk script: 1 000 activations at once, one scheduler, every number finished or cancelled.

Run: python examples/bulk.py [N]   (simulator; set SMSACTIVATE_API_KEY for a real provider)
"""

from __future__ import annotations

import sys
import time

import anyio
from _setup import make_client

from smsactivate_async import SMSActivateError


async def main(count: int = 1000) -> dict[str, int]:
    results = {"codes": 0, "failed": 0}

    async with make_client() as client:

        async def one() -> None:
            try:
                async with client.activation(service="wa", country=2) as act:
                    await act.wait_for_code(timeout=120)
                    results["codes"] += 1
            except SMSActivateError as error:
                results["failed"] += 1
                print("failed:", error)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(one)
        print(f"{results['codes']} codes, {results['failed']} failed, {client.stats.requests} requests "
              f"in {time.perf_counter() - started:.1f}s")
    return results


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
