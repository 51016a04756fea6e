"""Many workers, one account: a journal shared by every worker process, and a crash that leaks nothing.

Run: python examples/many_workers.py [STORE]   (simulator; STORE defaults to a sqlite file in a temp folder,
     e.g. redis://127.0.0.1:6379/0 for Redis; set SMSACTIVATE_API_KEY for a real provider)

Each worker is a client with ``store=`` (and, in production, its own process). Here worker "a" buys
numbers and then dies without closing them — as a ``kill -9`` would leave them; worker "b", running
on the same journal, closes them once "a"'s lease has expired: 6 where a code had arrived, 8 otherwise.
"""

from __future__ import annotations

import sys
import tempfile

import anyio
from _setup import make

from smsactivate_async import RecoveryReport, SMSActivate


async def main(store: str | None = None) -> RecoveryReport:
    store = store or f"sqlite:///{tempfile.mkdtemp()}/journal.db"
    worker_a, simulator = make(store=store, owner="worker-a", lease=1.0)
    async with worker_a:
        numbers = [await worker_a.get_number_v2(service="tg", country=0) for _ in range(3)]
        print("worker-a bought", [n.activation_id for n in numbers])
        code = await worker_a.wait_for_code(numbers[0].activation_id, timeout=60, cancel_on_timeout=False)
        print("worker-a got code", code, "then died without closing anything")
    # (a real crash leaves the same journal behind: the intent, the numbers, the code)

    # The same account (on the simulator: the same server). A live worker also recovers by itself
    # once per lease; here it is asked to, once worker-a's lease has run out.
    if simulator is None:
        worker_b = make(store=store, owner="worker-b")[0]
    else:
        worker_b = SMSActivate(simulator.api_key, transport=simulator.transport(), store=store, owner="worker-b",
                               rate_limit=None, early_cancel_window=1.0)
    async with worker_b:
        await anyio.sleep(1.1)
        report = await worker_b.recover()
    print("worker-b closed them:", report)
    return report


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else None)
