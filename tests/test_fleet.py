"""One poller per account on Redis: W clients waiting cost about one scan per tick, not W, and
when the poller leaves another client takes over within a tick or two."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis

from smsactivate_async import SMSActivate
from smsactivate_async._store import namespace_for
from smsactivate_async.simulator import CodeSchedule, Simulator

pytestmark = pytest.mark.anyio


def _client(sim: Simulator, redis_url: str, owner: str) -> SMSActivate:
    return SMSActivate(sim.api_key, store=redis_url, owner=owner, transport=sim.transport(), rate_limit=None,
                       poll_interval=0.05)


async def test_three_clients_share_one_scan_per_tick(redis_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    clients = [_client(sim, redis_url, f"w{i}") for i in range(3)]
    codes: dict[int, str] = {}

    async def wait(client: SMSActivate, activation_id: int) -> None:
        codes[activation_id] = await client.wait_for_code(activation_id, timeout=20)

    async with clients[0], clients[1], clients[2]:
        bought = {c.owner: [(await c.get_number_v2(service="tg", country=0)).activation_id for _ in range(5)]
                  for c in clients}
        scans_before = sim.ledger.requests_for("getActiveActivations")
        async with anyio.create_task_group() as group:
            for client in clients:
                for activation_id in bought[client.owner]:
                    group.start_soon(wait, client, activation_id)
            await anyio.sleep(1.0)  # every client ticks about 20 times meanwhile
            for ids in bought.values():
                for activation_id in ids:
                    sim.deliver_sms(activation_id, f"code {activation_id % 100000:05d}")
        ticks = sum(c._get_scheduler().ticks for c in clients)
        scans = sim.ledger.requests_for("getActiveActivations") - scans_before
    assert codes == {i: f"{i % 100000:05d}" for ids in bought.values() for i in ids}
    # alone, each client would scan once per tick of its own
    assert scans * 2 <= ticks, (scans, ticks)


async def test_another_client_takes_over_when_the_poller_leaves(redis_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    first, second = _client(sim, redis_url, "first"), _client(sim, redis_url, "second")
    connection: Any = redis.Redis.from_url(redis_url)
    poller_key = f"smsactivate:{{{namespace_for('sms-activate', sim.api_key)}}}:poller"
    async with second:
        mine = (await second.get_number_v2(service="tg", country=0)).activation_id
        async with first:
            theirs = (await first.get_number_v2(service="tg", country=0)).activation_id
            async def wait_first() -> None:
                assert await first.wait_for_code(theirs, timeout=10) == "11111"

            async with anyio.create_task_group() as group:
                group.start_soon(wait_first)
                await anyio.sleep(0.3)
                assert connection.get(poller_key) == b"first"  # it ticked first: it is the poller
                sim.deliver_sms(theirs, "code 11111")
        # "first" is gone; "second" now waits alone and must become the poller
        with anyio.fail_after(5):
            sim.deliver_sms(mine, "code 22222")
            assert await second.wait_for_code(mine, timeout=5) == "22222"
        assert connection.get(poller_key) == b"second"
    connection.close()
