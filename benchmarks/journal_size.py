"""The journal's size: ``python benchmarks/journal_size.py [--count 100000]``.

Writes ``--count`` activations into a journal the way the client does — an intent before the
purchase, the number claimed after it, a code, the number closed, the intent settled — on a sqlite
file and on a real redis-server on loopback, then measures the journal: right after (what a day of
that traffic holds under the default one-day ``retention``) and after the retention has passed and
the clients' pruning ran. Redis keys are listed with their sizes: none may grow with the history.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from smsactivate_async._store import Entry, Intent, Store
from smsactivate_async._store_redis import RedisStore
from smsactivate_async._store_sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "herosms:0123456789abcdef0123"


async def _fill(store: Store, count: int, at: float) -> None:
    limiter = anyio.Semaphore(64)

    async def one(index: int) -> None:
        async with limiter:
            intent = Intent(id=uuid.uuid4().hex, owner="worker-1", action="getNumberV2",
                            params={"service": "tg", "country": "2", "maxPrice": "0.25"}, key="getNumberV2|tg|2",
                            kind="activation", created=at)
            await store.add_intent(intent)
            activation_id = 3_936_040_000 + index
            await store.claim(Entry(kind="activation", id=activation_id, owner="worker-1", intent_id=intent.id,
                                    bought_at=at, service="tg", country="2", phone=f"7701{index:07d}"))
            await store.set_intent_state(intent.id, "bought")
            await store.update_entry("activation", activation_id, code=f"{index % 1_000_000:06d}")
            await store.update_entry("activation", activation_id, state="finished")

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(one, index)
    await store.renew("worker-1", at + 30)


def _sqlite_size(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("VACUUM")  # the space pruning freed, given back (in WAL mode: then checkpointed)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


async def _redis_keys(url: str) -> list[tuple[str, int]]:
    import redis.asyncio

    connection = redis.asyncio.Redis.from_url(url)
    try:
        keys = []
        async for key in connection.scan_iter("smsactivate:*"):
            keys.append((key.decode(), int(await connection.memory_usage(key, samples=0) or 0)))
        return sorted(keys)
    finally:
        await connection.aclose()


def _mb(size: float) -> str:
    return f"{size / 1e6:.2f} MB"


async def measure(count: int, folder: Path, redis_url: str) -> list[tuple[str, str, str, str]]:
    rows = []
    # A day of traffic is written now; "after the retention" prunes everything closed until now, as the
    # clients' pruning does a day later (closing times are the store's own clock).
    now = time.time()
    path = folder / "journal.db"
    sqlite_store = SqliteStore(path)
    await sqlite_store.open(NAMESPACE)
    await _fill(sqlite_store, count, now)
    full = _sqlite_size(path)
    pruned = await sqlite_store.prune(time.time() + 1)
    await sqlite_store.aclose()
    rows.append(("sqlite file", _mb(full), _mb(_sqlite_size(path)), f"{pruned:,} records"))

    redis_store = RedisStore(redis_url)
    await redis_store.open(NAMESPACE)
    await _fill(redis_store, count, now)
    full_keys = await _redis_keys(redis_url)
    pruned = await redis_store.prune(time.time() + 1)
    after_keys = await _redis_keys(redis_url)
    await redis_store.aclose()
    rows.append(("Redis (MEMORY USAGE of the account's keys)", _mb(sum(size for _, size in full_keys)),
                 _mb(sum(size for _, size in after_keys)), f"{pruned:,} records"))
    print("Redis keys of the account after the fill:", file=sys.stderr)
    for key, size in full_keys:
        print(f"  {key}: {size:,} B", file=sys.stderr)
    print("… and after pruning:", file=sys.stderr)
    for key, size in after_keys:
        print(f"  {key}: {size:,} B", file=sys.stderr)
    rows.append(("Redis keys of the account (after the fill → after pruning)", str(len(full_keys)),
                 str(len(after_keys)), ", ".join(k.rsplit(":", 1)[-1] for k, _ in after_keys) or "none"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import start_redis

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the size is the same; the fsyncs are not
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        process, url = start_redis(Path(folder))
        try:
            rows: list[Any] = anyio.run(measure, args.count, Path(folder), url)
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(f"#### The journal after {args.count:,} activations (each: intent, number, code, closed)\n")
    print("| store | within the retention | after it (pruned) | pruning removed |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
