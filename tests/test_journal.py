"""The journal: one Store contract for memory, sqlite and Redis (a real redis-server), and the
client's use of it — intents before purchases, reconciliation across clients, recovery."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
import pytest

from smsactivate_async import (
    HandleState,
    InvalidArgumentError,
    PurchaseUncertainError,
    RecoveryReport,
    RetryPolicy,
    SMSActivate,
    StoreError,
)
from smsactivate_async._journal import Journal, Liveness
from smsactivate_async._store import Entry, Intent, Store, namespace_for
from smsactivate_async._store_sqlite import SqliteStore
from smsactivate_async._stores import open_store
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, ManualClock, Simulator
from smsactivate_async.simulator._core import ActivationState

from .conftest import VirtualWall, _free_port, on_virtual_time, start_redis

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("redis_cluster_url" if request.param == "redis-cluster" else "redis_url")
    return url


@pytest.fixture
async def store(store_url: str | None) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open(f"test:{uuid.uuid4().hex}")  # a namespace of its own: tests share one redis-server
    try:
        yield opened
    finally:
        await opened.aclose()


def _intent(owner: str = "a", key: str = "getNumber|tg|0") -> Intent:
    return Intent(id=uuid.uuid4().hex, owner=owner, action="getNumber", params={"service": "tg", "country": "0"},
                  key=key, kind="activation", created=1000.0)


def _entry(entry_id: int, owner: str = "a", code: str | None = None) -> Entry:
    return Entry(kind="activation", id=entry_id, owner=owner, intent_id=None, bought_at=1000.0, service="tg",
                 country="0", phone="7900", code=code)


# --- the Store contract, on every backend ----------------------------------------------------------


async def test_intents_are_numbered_and_settled(store: Store) -> None:
    first, second = _intent(), _intent(owner="b")
    seqs = [await store.add_intent(first), await store.add_intent(second)]
    assert seqs[1] > seqs[0] and await store.last_seq() == seqs[1]
    await store.set_intent_state(first.id, "ambiguous")
    assert [(i.id, i.state) for i in await store.intents(["ambiguous"])] == [(first.id, "ambiguous")]
    assert [i.id for i in await store.intents(["pending"])] == [second.id]
    assert (await store.intents(["pending"]))[0].params == {"service": "tg", "country": "0"}
    await store.set_intent_state(first.id, "bought")
    assert await store.intents(["pending", "ambiguous", "uncertain"]) == [
        i for i in await store.intents(["pending"]) if i.id == second.id]


async def test_a_number_is_claimed_by_one_owner_only(store: Store) -> None:
    results = []

    async def claim(owner: str) -> None:
        results.append((owner, await store.claim(_entry(42, owner=owner))))

    async with anyio.create_task_group() as group:
        for owner in ("a", "b", "c", "d"):
            group.start_soon(claim, owner)
    winners = [owner for owner, won in results if won]
    assert len(winners) == 1
    assert await store.owners("activation", [42, 43]) == {42: winners[0]}
    assert await store.claim(_entry(42, owner=winners[0])) is True  # the owner's own claim is idempotent


async def test_entries_record_codes_and_closing_and_change_hands(store: Store) -> None:
    await store.claim(_entry(1))
    await store.claim(_entry(2))
    await store.update_entry("activation", 1, code="12345")
    opened = {e.id: e for e in await store.open_entries()}
    assert set(opened) == {1, 2} and opened[1].code == "12345" and opened[2].code is None
    await store.update_entry("activation", 2, state="cancelled")
    assert [e.id for e in await store.open_entries()] == [1]
    assert await store.take_over("activation", 1, "someone-else", "b") is False
    assert await store.take_over("activation", 1, "a", "b") is True
    assert await store.take_over("activation", 1, "a", "c") is False  # b holds it now
    assert (await store.open_entries())[0].owner == "b"
    assert await store.take_over("activation", 2, "a", "b") is False  # closed


async def test_leases(store: Store) -> None:
    await store.renew("a", 1234.5)
    await store.renew("b", 99.0)
    await store.renew("a", 2000.25)
    assert await store.leases() == {"a": 2000.25, "b": 99.0}
    await store.release("b")
    assert await store.leases() == {"a": 2000.25}


# --- bad input and unreachable stores ----------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgres://u:p@h/db", "sqlite://", "sqlite:///", "journal.db", ""])
def test_a_store_url_that_cannot_be_parsed_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SMSActivate("k", store=url)
    assert "p@h" not in str(info.value)


@pytest.mark.parametrize("lease", [0, -1.0])
def test_lease_must_be_positive(lease: float) -> None:
    with pytest.raises(InvalidArgumentError):
        SMSActivate("k", lease=lease)


async def test_an_unreachable_redis_fails_at_async_with_without_its_password() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    client = SMSActivate("k", store=f"redis://:hunter2@127.0.0.1:{port}/0", store_wait=0)
    with pytest.raises(StoreError) as info:
        async with client:
            pass
    assert "hunter2" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    assert info.value.unreachable


async def test_a_redis_that_comes_up_late_is_waited_for_at_async_with(tmp_path: Path) -> None:
    """A worker started while Redis restarts opens once it is back (``store_wait``), not at once in error."""
    port = _free_port(with_bus=False)
    started: list[subprocess.Popen[bytes]] = []
    timer = threading.Timer(0.6, lambda: started.append(start_redis(tmp_path, port=port)[0]))
    timer.start()
    try:
        async with SMSActivate("k", store=f"redis://127.0.0.1:{port}/0", store_wait=15) as client:
            journal = client._session.journal
            assert journal.owner in await journal.live_owners()
        assert started, "the client opened before the server was there"
    finally:
        timer.join()
        for process in started:
            process.terminate()
            process.wait(timeout=10)


async def test_a_wrong_redis_password_fails_at_once_however_long_store_wait(redis_server: str) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server)
    try:
        await admin.acl_setuser("worker", enabled=True, passwords=["+right"], commands=["+@all"], keys=["*"])
        url = redis_server.replace("redis://", "redis://worker:wrong@")
        before = time.monotonic()
        with pytest.raises(StoreError) as info:
            async with SMSActivate("k", store=url, store_wait=30):
                pass
        assert not info.value.unreachable and time.monotonic() - before < 5
        assert "wrong" not in str(info.value)
    finally:
        await admin.acl_deluser("worker")
        await admin.aclose()


async def test_a_missing_sqlite_folder_fails_at_async_with(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        async with SMSActivate("k", store=f"sqlite:///{tmp_path / 'nope' / 'journal.db'}"):
            pass


async def test_a_persistent_store_opens_on_first_use_without_async_with(tmp_path: Path) -> None:
    """A framework's startup hook makes the client; the first call opens the journal and starts the
    lease; ``aclose()`` (from another task) leaves nothing running."""
    client = SMSActivate("k", store=f"sqlite:///{tmp_path / 'j.db'}",
                         transport=httpx.MockTransport(lambda r: httpx.Response(200, text="ACCESS_BALANCE:1")))
    async with anyio.create_task_group() as group:
        group.start_soon(client.get_balance)
    assert client._session.journal.opened and client._host.running
    async with anyio.create_task_group() as group:
        group.start_soon(client.aclose)
    assert not client._session.journal.opened and not client._host.running


def test_the_namespace_names_the_provider_and_hides_the_key() -> None:
    ns = namespace_for("herosms", "SECRET-KEY-123")
    assert ns.startswith("herosms:") and "SECRET" not in ns
    assert ns != namespace_for("herosms", "other-key") and ns != namespace_for("sms-activate", "SECRET-KEY-123")


# --- the client writes the intent before it sends the purchase ---------------------------------------


async def test_the_intent_is_in_the_journal_before_the_purchase_leaves(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    seen_in_journal: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["action"] == "getNumber":
            with sqlite3.connect(path) as db:  # another reader of the file, while the request is on the wire
                seen_in_journal.append([row[0] for row in db.execute("SELECT state FROM intents")])
            return httpx.Response(200, text="ACCESS_NUMBER:555:79001112233")
        return httpx.Response(200, text="ACCESS_BALANCE:1")

    async with SMSActivate("SECRET-KEY-123", store=f"sqlite:///{path}", transport=httpx.MockTransport(handler),
                           rate_limit=None) as client:
        number = await client.get_number(service="tg", country=0)
    assert seen_in_journal == [["pending"]]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM intents").fetchall() == [("bought",)]
        assert db.execute("SELECT id, owner, phone, state FROM entries").fetchall() == [
            (555, client.owner, "79001112233", "open")]
    assert b"SECRET-KEY-123" not in path.read_bytes()
    assert number.activation_id == 555


async def test_closing_and_codes_are_journaled(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, store=persistent_url, transport=sim.transport(), rate_limit=None,
                           poll_interval=0.01) as client:
        store = client._store
        kept = await client.get_number_v2(service="tg", country=0)
        dropped = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(kept.activation_id, "Your code is 24680")
        assert await client.wait_for_code(kept.activation_id, timeout=5) == "24680"
        assert {e.id: e.code for e in await store.open_entries()} == {kept.activation_id: "24680",
                                                                       dropped.activation_id: None}
        await client.set_status(kept.activation_id, 3)
        assert [(e.id, e.retries) for e in await store.open_entries() if e.id == kept.activation_id] == [
            (kept.activation_id, 1)]
        await client.set_status(dropped.activation_id, 8)
        await client.set_status(kept.activation_id, 6)
        assert await store.open_entries() == []


async def test_a_store_that_fails_mid_run_refuses_purchases_but_waiting_goes_on(tmp_path: Path) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    sent: list[str] = []
    inner = sim.transport()

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.url.params["action"])
            return await inner.handle_async_request(request)

    # store_wait: a purchase waits this long for the store before it is refused (30 s by default)
    async with SMSActivate(sim.api_key, store=f"sqlite:///{tmp_path / 'j.db'}", transport=Recording(),
                           rate_limit=None, poll_interval=0.01, store_wait=0.5) as client:
        number = await client.get_number_v2(service="tg", country=0)
        await client._store.aclose()  # the store goes away under the client
        sent.clear()
        with pytest.raises(StoreError, match="was not sent"):
            await client.get_number_v2(service="tg", country=0)
        assert "getNumberV2" not in sent
        sim.deliver_sms(number.activation_id, "code 97531")
        assert await client.wait_for_code(number.activation_id, timeout=5) == "97531"
        await client.set_status(number.activation_id, 6)
    assert sim.activations[number.activation_id].state is ActivationState.FINISHED


# --- reconciliation across clients of one account ---------------------------------------------------


async def test_two_clients_with_lost_answers_never_take_each_others_numbers(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), api_keys={"k": Decimal(1000)}, seed=5)
    for _ in range(4):
        sim.faults.inject("lost_purchase", action="getNumber")
    retry = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02, settle=0.05)
    got: dict[str, list[int]] = {"a": [], "b": []}
    failures: list[BaseException] = []

    async def worker(client: SMSActivate, name: str) -> None:
        for _ in range(6):
            try:
                got[name].append((await client.get_number(service="tg", country=0)).activation_id)
            except PurchaseUncertainError as exc:
                failures.append(exc)

    async with (SMSActivate("k", store=persistent_url, owner="a", transport=sim.transport(), rate_limit=None,
                            retry=retry) as a,
                SMSActivate("k", store=persistent_url, owner="b", transport=sim.transport(), rate_limit=None,
                            retry=retry) as b):
        async with anyio.create_task_group() as group:
            group.start_soon(worker, a, "a")
            group.start_soon(worker, b, "b")
        owners = await a._store.owners("activation", got["a"] + got["b"])
    assert failures == []
    assert len(got["a"]) == len(got["b"]) == 6
    assert sorted(got["a"] + got["b"]) == sorted(p.id for p in sim.ledger.purchases)  # nothing bought twice
    assert not set(got["a"]) & set(got["b"])                                            # owned by one each
    assert all(owners[i] == "a" for i in got["a"]) and all(owners[i] == "b" for i in got["b"])


# --- recovery -----------------------------------------------------------------------------------------


async def test_recover_closes_a_dead_owners_numbers(persistent_url: str) -> None:
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, early_cancel_seconds=120)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None, "poll_interval": 0.01,
                               "early_cancel_window": 120}
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.2, **options) as dead:
        numbers = [await dead.get_number_v2(service="tg", country=0) for _ in range(3)]
        sim.deliver_sms(numbers[0].activation_id, "code 11111")
        assert await dead.wait_for_code(numbers[0].activation_id, timeout=5) == "11111"
    # "dead" no longer renews its lease; its numbers are still open on the server
    await anyio.sleep(0.3)
    clock.advance(121)  # past the early-cancel window for two of them...
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", **options) as survivor:
        report = await survivor.recover()
        again = await survivor.recover()
    assert report.finished == [numbers[0].activation_id]
    assert sorted(report.cancelled) == sorted(n.activation_id for n in numbers[1:]) and report.pending == []
    assert again.finished == again.cancelled == again.pending == []
    assert sim.activations[numbers[0].activation_id].state is ActivationState.FINISHED
    assert all(sim.activations[n.activation_id].state is ActivationState.CANCELLED for n in numbers[1:])


async def test_recover_closes_a_dead_owners_rents(persistent_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Rents are journaled like activations; a dead owner's are cancelled while the provider refunds
    them (20 minutes from the purchase); after that they are kept open by the survivor (issue 42: finishing
    one would forfeit the hours paid for), and nobody recovers them again (the survivor is alive)."""
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, rent_cancel_seconds=1200)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None}
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.2, **options) as dead:
        old = await dead.get_rent_number(service="tg", country=0, rent_time=12)
        sim.deliver_rent_sms(old.id, "hello")  # else the provider revokes it (refunded) after 20 minutes
        clock.advance(1300)
        new = await dead.get_rent_number(service="tg", country=0)
        closed = await dead.get_rent_number(service="tg", country=0)
        await dead.set_rent_status(closed.id, 1)  # closed by its owner: nothing left to recover
    await anyio.sleep(0.3)
    balance = sim.accounts[sim.api_key].balance
    caplog.set_level(logging.INFO, logger="smsactivate_async")
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", **options) as survivor:
        report = await survivor.recover()
        again = await survivor.recover()
    assert report.rents_cancelled == [new.id] and report.rents_kept == [old.id] and report.rents_finished == []
    said = [r.getMessage() for r in caplog.records if f"rent {old.id}" in r.getMessage()]
    assert any("kept open" in line and "12.00 h of its paid hours left" in line for line in said), said
    assert again.rents_cancelled == again.rents_finished == again.rents_kept == []
    assert (sim.rents[old.id].state, sim.rents[new.id].state) == ("active", "cancelled")
    assert sim.accounts[sim.api_key].balance == balance + sim.rents[new.id].cost  # the one refund


async def test_recover_leaves_a_live_owners_numbers_alone(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None}
    async with (SMSActivate(sim.api_key, store=persistent_url, owner="alive", lease=30, **options) as alive,
                SMSActivate(sim.api_key, store=persistent_url, owner="other", **options) as other):
        number = await alive.get_number_v2(service="tg", country=0)
        report = await other.recover()
    assert report.finished == report.cancelled == report.pending == []
    assert sim.activations[number.activation_id].state.active


async def test_an_early_cancel_during_recovery_is_pending_then_carried_out(persistent_url: str) -> None:
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, early_cancel_seconds=120)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None, "early_cancel_window": 0.3}
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.1, **options) as dead:
        number = await dead.get_number_v2(service="tg", country=0)
    await anyio.sleep(0.2)
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", close_timeout=5.0, **options) as survivor:
        report = await survivor.recover()
        assert report.pending == [number.activation_id]
        clock.advance(121)
    # leaving `async with` waited for the deferred cancel (close_timeout: with a persistent store the default is 0)
    assert sim.activations[number.activation_id].state is ActivationState.CANCELLED


async def test_a_live_client_recovers_by_itself_every_lease(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None}
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.15, **options) as dead:
        number = await dead.get_number_v2(service="tg", country=0)
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", lease=0.3, **options):
        with anyio.fail_after(5):
            while sim.activations[number.activation_id].state.active:  # noqa: ASYNC110 (the server's state)
                await anyio.sleep(0.05)
    assert sim.activations[number.activation_id].state is ActivationState.CANCELLED


async def _a_dead_clients_purchase(url: str, api_key: str, action: str) -> None:
    """The journal of a client that died with ``action`` (tg in country 0) on the wire: its intent
    pending, its lease expired long ago."""
    store = open_store(url)
    await store.open(namespace_for("sms-activate", api_key))
    rent = action == "getRentNumber"
    try:
        await store.add_intent(Intent(id=uuid.uuid4().hex, owner="dead", action=action,
                                      params={"service": "tg", "country": "0"},
                                      key=action if rent else f"{action}|tg|0", kind="rent" if rent else "activation",
                                      created=0.0))
        await store.renew("dead", 1.0)
    finally:
        await store.aclose()


async def test_a_purchase_on_the_wire_when_its_owner_died_is_found_and_closed(persistent_url: str) -> None:
    """The worker died after sending a purchase and before journaling its answer."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    await _a_dead_clients_purchase(persistent_url, sim.api_key, "getNumberV2")
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as unjournaled:
        orphan = (await unjournaled.get_number(service="tg", country=0)).activation_id
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", transport=sim.transport(),
                           rate_limit=None) as survivor:
        report = await survivor.recover()
        assert await survivor._store.intents(["pending", "ambiguous", "uncertain"]) == []
    assert report.cancelled == [orphan]
    assert sim.activations[orphan].state is ActivationState.CANCELLED


async def test_a_rent_on_the_wire_when_its_owner_died_is_found_and_cancelled(persistent_url: str) -> None:
    """The worker died after sending getRentNumber and before journaling its answer: the rent list
    shows an active rent nobody journaled; the survivor takes it and cancels it (refunded)."""
    sim = Simulator(codes=CodeSchedule.never())
    await _a_dead_clients_purchase(persistent_url, sim.api_key, "getRentNumber")
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as unjournaled:
        orphan = (await unjournaled.get_rent_number(service="tg", country=0)).id
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", transport=sim.transport(),
                           rate_limit=None) as survivor:
        report = await survivor.recover()
        assert await survivor._store.intents(["pending", "ambiguous", "uncertain"]) == []
    assert report.rents_cancelled == [orphan] and sim.rents[orphan].state == "cancelled"


# --- the fleet's rate budget in Redis ----------------------------------------------------------------


async def test_clients_on_a_shared_store_share_one_rate_budget(persistent_url: str) -> None:
    """Redis across machines; a sqlite journal across the processes of one machine (clients with their
    own connections to the file, as processes have)."""
    redis_url = persistent_url
    sim = Simulator()
    rate = 30.0

    async def worker(client: SMSActivate) -> None:
        for _ in range(20):
            await client.get_balance()

    clients = [SMSActivate(sim.api_key, store=redis_url, owner=f"w{i}", transport=sim.transport(),
                           rate_limit=rate, burst=1) for i in range(3)]
    async with clients[0], clients[1], clients[2]:
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(worker, client)
    assert sim.ledger.requests_for("getBalance") == 60
    # alone, each would send 30 a second: together the server sees the account's 30 (plus one of slack)
    assert sim.ledger.max_requests_in_window(1.0) <= rate + 1


async def test_redis_going_away_mid_run_refuses_purchases_but_waiting_goes_on(tmp_path: Path) -> None:
    process, url = start_redis(tmp_path)
    sim = Simulator(codes=CodeSchedule.never())
    try:
        async with SMSActivate(sim.api_key, store=url, transport=sim.transport(), rate_limit=20,
                               poll_interval=0.01, store_wait=0.5) as client:
            number = await client.get_number_v2(service="tg", country=0)
            process.kill()
            process.wait(timeout=10)
            purchases = len(sim.ledger.purchases)
            started = anyio.current_time()
            with pytest.raises(StoreError, match="was not sent"):
                await client.get_number_v2(service="tg", country=0)
            assert 0.3 <= anyio.current_time() - started < 5  # it waited store_wait for the store
            assert len(sim.ledger.purchases) == purchases
            sim.deliver_sms(number.activation_id, "code 86420")
            # the rate budget and the poller fall back to this process alone
            assert await client.wait_for_code(number.activation_id, timeout=10) == "86420"
            await client.set_status(number.activation_id, 6)
    finally:
        if process.poll() is None:
            process.kill()
    assert sim.activations[number.activation_id].state is ActivationState.FINISHED


async def test_a_number_recovery_cannot_close_goes_back_to_its_dead_owner(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.1, transport=sim.transport(),
                           rate_limit=None) as dead:
        number = await dead.get_number_v2(service="tg", country=0)
    await anyio.sleep(0.2)
    sim.faults.inject("html_5xx", times=10)  # the provider is down for a moment
    async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", transport=sim.transport(),
                           rate_limit=None, retry=RetryPolicy(attempts=2, base_delay=0)) as survivor:
        report = await survivor.recover()
        assert report.finished == report.cancelled == report.pending == []
        assert [e.owner for e in await survivor._store.open_entries()] == ["dead"]  # not held unattended
        while sim.faults.pick("x", sim.rng) is not None:  # the provider is back
            pass
        again = await survivor.recover()
    assert again.cancelled == [number.activation_id]


# --- a bounded journal (issue 23): closed entries and settled intents expire ---------------------------


async def test_the_journal_forgets_what_closed_before_the_retention(persistent_url: str) -> None:
    sim = Simulator(codes=CodeSchedule.within(0.0, 0.01), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), store=persistent_url, rate_limit=None,
                           early_cancel_window=0, poll_interval=0.01, retention=3600) as client:
        for _ in range(30):
            async with client.activation(service="tg", country=2) as act:
                await act.wait_for_code(timeout=5)
        kept = await client.get_number_v2(service="tg", country=2)  # still open: never forgotten
        journal = client._session.journal
        assert await journal.prune() == 0  # nothing older than an hour yet
        assert len(await journal.store.owners("activation", [a.id for a in sim.activations.values()])) == 31
        journal.wall = lambda: time.time() + 3601  # an hour and a second later
        assert await journal.prune() >= 30
        owners = await journal.store.owners("activation", [a.id for a in sim.activations.values()])
        assert list(owners) == [kept.activation_id]
        assert [e.id for e in await journal.store.open_entries()] == [kept.activation_id]
        await client._get_scheduler().cancel(kept.activation_id)  # 8, or 6 if its code came meanwhile
    if persistent_url.startswith("redis"):
        import redis

        with redis.Redis.from_url(persistent_url) as connection:
            sizes = {key.decode(): connection.memory_usage(key) for key in connection.scan_iter("smsactivate:*")}
        assert all(size is not None and size < 4096 for size in sizes.values()), sizes  # no ever-growing key


def test_retention_is_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="retention"):
        SMSActivate("k", retention=0)


async def test_aclose_with_a_persistent_store_leaves_open_handles_to_the_journal(tmp_path: Path) -> None:
    """Found by the simulation harness (a fleet world, seed 21): with a persistent store aclose()
    does not wait, and marking the open handles LEFT_OPEN dropped them from the dict it was walking:
    ``RuntimeError: dictionary changed size during iteration``."""
    sim = Simulator(codes=CodeSchedule.never())
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, store=f"sqlite:///{tmp_path}/j.db")
    handles = [await client.start_activation(service="tg", country=0, timeout=600) for _ in range(3)]
    left = await client.aclose()
    # the cancels were refused as too early and are the journal's duty now: deferred, not "left open"
    # (whichever client of the account is alive makes them from cancel_at) — issue 40's one account
    assert [h.state for h in handles] == [HandleState.CANCEL_DEFERRED] * 3 and client.handles == []
    assert [(o.activation_id, o.outcome) for o in left] == [(h.activation_id, "cancel_deferred") for h in handles]
    assert all(o.cancel_at is not None for o in left)
    assert all(a.state is ActivationState.WAIT_CODE for a in sim.activations.values())  # the journal's duty now


async def test_a_cluster_node_is_detected_and_an_accounts_keys_share_one_slot(redis_cluster_url: str) -> None:
    """``redis://`` naming a node of a Redis Cluster works: the store talks to the cluster, and every key
    of one account hashes to one slot (its scripts and transactions touch several keys at once)."""
    import redis
    from redis.crc import key_slot

    store = open_store(redis_cluster_url)
    await store.open("herosms:0123456789abcdef")
    try:
        assert getattr(store, "cluster", False) is True
        intent = _intent()
        await store.add_intent(intent)
        await store.claim(_entry(5))
        await store.update_entry("activation", 5, state="finished")
        await store.renew("a", 2e9)
    finally:
        await store.aclose()
    with redis.Redis.from_url(redis_cluster_url) as connection:
        keys = connection.keys("smsactivate:*")
        assert len(keys) >= 6 and len({key_slot(k) for k in keys}) == 1
        # the environment does catch a script across slots: the test above would fail without the tag
        with pytest.raises(redis.exceptions.ResponseError, match=r"CROSSSLOT|same slot"):
            connection.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, "a", "b")


@on_virtual_time()
async def test_a_slow_recovery_never_holds_the_lease_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recovery can take long (a busy budget, other clients' purchases waited for): the lease is
    renewed meanwhile. It was renewed in the same loop, after the recovery, so a live client's lease
    ran out and the others took it for dead (the fleet bought numbers twice under CPU load)."""
    async def slow_recovery(self: SMSActivate) -> RecoveryReport:
        await anyio.sleep(60)
        return RecoveryReport()

    monkeypatch.setattr(SMSActivate, "recover", slow_recovery)
    sim = Simulator(clock=LoopSimClock())
    wall = VirtualWall()
    store = SqliteStore(tmp_path / "journal.db", wall=wall.wall, threaded=False)
    async with SMSActivate(sim.api_key, transport=sim.transport(), store=store, owner="busy", lease=6.0,
                           clock=wall, rate_limit=None):
        for _ in range(20):
            await anyio.sleep(3)
            assert (await store.leases())["busy"] > wall.wall()


@on_virtual_time()
async def test_an_owner_without_a_lease_is_not_taken_for_dead_until_a_whole_lease_has_passed(tmp_path: Path) -> None:
    """Absence is not expiry: a store restarted empty (here: leases deleted) forgot every lease. A live
    client's lease comes back with its next renewal and its numbers are never touched; one that stays
    away for a whole lease of the recovering client is dead, and its numbers are closed."""
    sim = Simulator(clock=LoopSimClock(), codes=CodeSchedule.never(), early_cancel_seconds=0)
    wall = VirtualWall()

    def client(owner: str) -> SMSActivate:
        return SMSActivate(sim.api_key, transport=sim.transport(), owner=owner, lease=6.0, clock=wall,
                           store=SqliteStore(tmp_path / "journal.db", wall=wall.wall, threaded=False),
                           rate_limit=None, early_cancel_window=0)

    async with client("alive") as alive, client("survivor") as survivor:
        kept = await alive.get_number_v2(service="tg", country=0)
        dying = client("dying")
        await dying.__aenter__()
        lost = await dying.get_number_v2(service="tg", country=0)
        await dying._host.aclose()  # killed: no renewals from now on
        store = survivor._session.journal.store
        await store.release("alive")
        await store.release("dying")  # both leases gone at once, as from a store restarted empty
        assert (await survivor.recover()).cancelled == []
        await anyio.sleep(3)  # "alive" has renewed; "dying" is still missing
        assert (await survivor.recover()).cancelled == []
        assert sim.activations[lost.activation_id].state.active
        await anyio.sleep(3.5)
        await survivor.recover()  # (or its own recovery every lease did it already)
        assert sim.activations[lost.activation_id].state is ActivationState.CANCELLED
        assert sim.activations[kept.activation_id].state.active
        await alive.set_status(kept.activation_id, 8)


@pytest.mark.parametrize("comes_back", ["empty", "with its data"])
async def test_a_redis_restart_mid_run_costs_no_code_cancels_nothing_live_and_leaves_nothing_open(
        comes_back: str, tmp_path: Path) -> None:
    """A real redis-server killed (SIGKILL) under a live worker and a survivor, back on the same port
    after more than a lease — empty, or with its data (AOF): the survivor takes nobody for dead, the
    worker's codes still come, an empty store gets the worker's numbers back, and when the worker
    dies afterwards the survivor closes what it held."""
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    process, url = start_redis(tmp_path, extra=aof)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)

    def client(owner: str) -> SMSActivate:
        return SMSActivate(sim.api_key, store=url, owner=owner, lease=1.5, transport=sim.transport(),
                           rate_limit=None, poll_interval=0.05, early_cancel_window=0)

    worker, survivor = client("worker"), client("survivor")
    try:
        async with survivor:
            await worker.__aenter__()
            waited = [await worker.get_number_v2(service="tg", country=0) for _ in range(2)]
            held = await worker.get_number_v2(service="tg", country=0)  # open till the worker dies
            codes: dict[int, str] = {}

            async def wait(activation_id: int) -> None:
                codes[activation_id] = await worker.wait_for_code(activation_id, timeout=60)

            async with anyio.create_task_group() as group:
                for number in waited:
                    group.start_soon(wait, number.activation_id)
                await anyio.sleep(0.3)
                process.kill()
                process.wait(timeout=10)
                await anyio.sleep(2.5)  # longer than a lease: every lease in the store has run out
                if comes_back == "empty":
                    for name in os.listdir(tmp_path):
                        if name.startswith("appendonly"):
                            path = tmp_path / name
                            shutil.rmtree(path) if path.is_dir() else path.unlink()
                process, _ = start_redis(tmp_path, port=port, extra=aof)
                await anyio.sleep(4.0)  # the survivor recovers twice meanwhile
                assert all(sim.activations[n.activation_id].state.active for n in [*waited, held])
                for number in waited:
                    sim.deliver_sms(number.activation_id, f"code {number.activation_id % 100000:05d}")
            assert codes == {n.activation_id: f"{n.activation_id % 100000:05d}" for n in waited}
            for number in waited:
                await worker.set_status(number.activation_id, 6)
            journaled = {e.id: e.owner for e in await survivor._store.open_entries()}
            assert journaled == {held.activation_id: "worker"}  # put back by the worker if the store forgot it
            await worker._host.aclose()  # the worker dies: no aclose(), its lease runs out
            with anyio.fail_after(20):
                while sim.activations[held.activation_id].state.active:  # noqa: ASYNC110 (the server's state)
                    await anyio.sleep(0.1)
        assert sim.activations[held.activation_id].state is ActivationState.CANCELLED
        assert sim.open_activations() == []
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_a_dead_clients_numbers_outlive_a_store_restarted_empty(tmp_path: Path) -> None:
    """Found by `benchmarks/fleet.py --restart empty` under load: a client that died just before Redis
    came back empty had its records gone with the store; its numbers were unknown to everyone, and a
    live client's lost purchase adopted one (two workers held it; the dead one's code went to the
    living one). The survivors put back what they last saw of the others' records: the dead client's
    number is its own again, recovery closes it, and the lost purchase buys its own number."""
    process, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    inner = sim.transport()
    lose_next = [False]

    class LosesAnAnswer(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if lose_next[0] and request.url.params.get("action") == "getNumberV2":
                lose_next[0] = False  # sent, never committed: only the listings can tell
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return await inner.handle_async_request(request)

    def client(owner: str, transport: httpx.AsyncBaseTransport | None = None) -> SMSActivate:
        return SMSActivate(sim.api_key, store=url, owner=owner, lease=1.5, transport=transport or sim.transport(),
                           rate_limit=None, poll_interval=0.05, early_cancel_window=0,
                           retry=RetryPolicy(settle=0.2, base_delay=0.01))

    try:
        async with client("survivor"), client("buyer", LosesAnAnswer()) as buyer:
            dying = client("dying")
            await dying.__aenter__()
            orphan = (await dying.get_number_v2(service="tg", country=0)).activation_id
            await anyio.sleep(0.8)  # a renewal of the survivor: it has seen the dying one's records
            await dying._host.aclose()  # killed
            process.kill()
            process.wait(timeout=10)
            process, _ = start_redis(tmp_path, port=port)  # back at once, empty
            lose_next[0] = True
            with anyio.fail_after(30):
                number = await buyer.get_number_v2(service="tg", country=0)
            assert number.activation_id != orphan
            with anyio.fail_after(20):  # closed by recovery: only a record put back names its dead owner
                while sim.activations[orphan].state.active:  # noqa: ASYNC110 (the server's state)
                    await anyio.sleep(0.1)
            assert sim.activations[orphan].state is ActivationState.CANCELLED
            assert sim.activations[number.activation_id].state.active
            await buyer.set_status(number.activation_id, 8)
    finally:
        process.kill()
        process.wait(timeout=10)


@asynccontextmanager
async def _journal_on_redis(redis_server: str, owner: str) -> AsyncIterator[tuple[Journal, Callable[[], Awaitable[None]]]]:
    """A journal of ``owner`` in a namespace of its own on the session's redis-server, and a way to
    empty that namespace as a restart of the server from nothing would."""
    import redis.asyncio

    store = open_store(redis_server)
    namespace = f"test-{uuid.uuid4().hex}"
    await store.open(namespace)
    journal = Journal(store, owner=owner, lease=30.0, stale_after=10.0)
    await journal.open(namespace)

    async def restart_empty() -> None:
        admin = redis.asyncio.Redis.from_url(redis_server)
        await admin.delete(*await admin.keys(f"smsactivate:{{{namespace}}}:*"))
        await admin.aclose()

    try:
        yield journal, restart_empty
    finally:
        await journal.aclose()


async def test_a_store_that_lost_its_data_gets_back_what_was_seen_of_the_others(redis_server: str) -> None:
    """A client that finds its lease gone (the store restarted empty) puts back the other owners'
    records as its recovery last read them; the lease of an owner already dead then comes back
    expired (recovery closes its numbers at once, instead of waiting a lease for an absent owner),
    and a live owner's lease is never written by anyone but itself."""
    async with _journal_on_redis(redis_server, "me") as (journal, restart_empty):
        store = journal.store
        await store.renew("dead", 1.0)
        await store.renew("alive", time.time() + 30)
        await store.claim(_entry(41, owner="dead"))
        await store.claim(_entry(42, owner="alive"))
        lost = Intent(id=uuid.uuid4().hex, owner="dead", action="getNumber", params={"service": "tg", "country": "0"},
                      key="getNumber|tg|0", kind="activation", created=2.0, state="ambiguous")
        await store.add_intent(lost)
        journal.saw(await store.open_entries(), await store.intents(["ambiguous"]), await store.leases())
        await restart_empty()
        await journal.renew()
        assert await store.owners("activation", [41, 42]) == {41: "dead", 42: "alive"}
        assert [i.id for i in await store.intents(["ambiguous"])] == [lost.id]
        leases = await store.leases()
        assert leases["dead"] == 1.0 and "alive" not in leases  # the live one puts back its own
        assert journal.quiet  # and nobody is taken for dead for a lease meanwhile


async def test_a_claim_the_store_missed_is_written_before_the_purchase_is_settled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by `benchmarks/fleet.py --restart data` under load: a purchase's claim failed on a stale
    connection while its "bought" went through on another; to the others its number was unknown and
    its purchase settled, and a lost purchase of another worker adopted it (held by two). Writes the
    store missed are made again first, in order: the purchase stays pending until its number is claimed.
    The log says what was missed again and, once made, how many writes were (mutmut: ``_write_again``)."""
    caplog.set_level(logging.DEBUG, logger="smsactivate_async")
    store = SqliteStore(tmp_path / "journal.db")
    journal = Journal(store, owner="me", lease=30.0, stale_after=10.0)
    await journal.open("ns")
    try:
        intent = await journal.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"),
                                      "activation")
        real_claim = store.claim
        failing = [True]

        async def claim(entry: Entry) -> bool:
            if failing[0]:
                raise StoreError("a stale connection")
            return await real_claim(entry)

        store.claim = claim  # type: ignore[method-assign]
        await journal.bought(intent, [journal.entry(intent, "activation", 77, "79990000000")])
        assert await store.owners("activation", [77]) == {}
        assert [i.id for i in await store.intents(["pending"])] == [intent.id]  # still holds the others back
        failing[0] = False
        await journal.record_code("activation", 77, "12345")  # the next write makes the missed ones first
        assert await store.owners("activation", [77]) == {77: "me"}
        assert await store.intents(["pending"]) == []
        assert [e.code for e in await store.open_entries()] == ["12345"]
        messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("journal: ")]
        assert "journal: could not record activation 77 bought: a stale connection" in messages
        assert "journal: could not record activation 77 bought (again): a stale connection" in messages
        # the claim, the purchase's "bought" queued behind it, and the code that found the store back
        assert messages[-1] == "journal: 3 write(s) the store missed made again"
    finally:
        await journal.aclose()


async def test_a_purchase_waits_for_a_store_that_comes_back_within_store_wait(tmp_path: Path) -> None:
    process, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    try:
        async with SMSActivate(sim.api_key, store=url, transport=sim.transport(), rate_limit=None,
                               store_wait=20) as client:
            process.kill()
            process.wait(timeout=10)

            async def restart() -> None:
                nonlocal process
                await anyio.sleep(1.0)
                process, _ = start_redis(tmp_path, port=port)

            async with anyio.create_task_group() as group:
                group.start_soon(restart)
                number = await client.get_number_v2(service="tg", country=0)  # waits for the store, then buys
            assert [e.id for e in await client._store.open_entries()] == [number.activation_id]
            await client.set_status(number.activation_id, 8)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert len(sim.ledger.purchases) == 1


async def test_recovery_never_takes_this_clients_own_purchase_in_flight_for_a_dead_ones(tmp_path: Path) -> None:
    """Found by `benchmarks/fleet.py` under load ("bought twice" on sqlite): a survivor recovering a dead
    client's lost purchase saw its own purchase's number in the listing before the answer reached it,
    adopted it as the dead one's and closed it — and bought again when its own answer was lost."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    await _a_dead_clients_purchase(url, sim.api_key, "getNumberV2")
    answered, release = anyio.Event(), anyio.Event()
    inner = sim.transport()

    class SlowAnswer(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            if request.url.params.get("action") == "getNumberV2":
                answered.set()  # committed at the server; the answer is still on its way
                await release.wait()
            return response

    async with SMSActivate(sim.api_key, store=url, owner="survivor", transport=SlowAnswer(),
                           rate_limit=None, store_wait=0) as survivor:
        bought: list[int] = []

        async def buy() -> None:
            bought.append((await survivor.get_number_v2(service="tg", country=0)).activation_id)

        async with anyio.create_task_group() as group:
            group.start_soon(buy)
            await answered.wait()
            report = await survivor.recover()
            release.set()
        assert report.cancelled == [] and report.finished == []
        assert sim.activations[bought[0]].state.active  # its buyer has it, open
        await survivor.set_status(bought[0], 8)


async def test_a_watch_cancelled_while_written_is_not_kept_as_this_clients(tmp_path: Path) -> None:
    """As with an intent: a watch whose write was cancelled is not this client's to keep (a tidy-up
    after a store outage settles it instead of it staying open under a live owner forever)."""
    store = SqliteStore(tmp_path / "journal.db")
    journal = Journal(store, owner="me", lease=30.0, stale_after=10.0)
    await journal.open("ns")
    try:
        async def hang(intent: Intent) -> int:
            await anyio.sleep_forever()
            raise AssertionError

        store.add_intent = hang  # type: ignore[method-assign]
        with anyio.move_on_after(0.05) as scope:
            await journal.watch({"service": "tg", "country": "0"}, ("getNumber", "tg", "0"), "activation")
        assert scope.cancelled_caught
        assert journal._my_intents == {}
    finally:
        await journal.aclose()


async def test_a_dead_owners_rent_this_client_waits_on_is_never_closed_under_it(tmp_path: Path) -> None:
    """Issue 42: a new process found a dead one's rent (get_rent_list) and waits on it; its own
    recovery must not cancel or finish it under the wait — it adopts it, and the wait goes on."""
    sim = Simulator(codes=CodeSchedule.never(), rent_cancel_seconds=1200)
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None}
    async with SMSActivate(sim.api_key, store=url, owner="dead", lease=0.2, **options) as dead:
        rent = await dead.get_rent_number(service="tg", country=0, rent_time=4)
    await anyio.sleep(0.3)
    async with SMSActivate(sim.api_key, store=url, owner="new", **options) as new:
        async with anyio.create_task_group() as group:
            async def wait() -> None:
                message = await new.wait_for_rent_sms(rent.id, timeout=10, poll_interval=0.05, since="all")
                assert message.text == "kept"

            group.start_soon(wait)
            await anyio.sleep(0.2)
            report = await new.recover()
            sim.deliver_rent_sms(rent.id, "kept")
    assert report.rents_kept == [rent.id] and not report.rents_cancelled and not report.rents_finished
    assert sim.rents[rent.id].state == "active"


def test_an_entry_written_by_a_newer_version_is_read_without_its_new_fields() -> None:
    """A fleet is redeployed one worker at a time: an older worker reading an entry with a field it
    does not know keeps what it knows instead of failing (a TypeError would stop its recovery)."""
    from smsactivate_async._store import Entry

    entry = Entry(kind="rent", id=7, owner="w", intent_id=None, bought_at=1.0, paid_until=14401.0)
    text = entry.to_json().replace('"paid_until"', '"from_the_future":1,"paid_until"')
    assert Entry.from_json(text) == entry


async def test_a_survivor_leaving_with_a_dead_owners_numbers_hands_them_to_the_journal_and_says_so(
        persistent_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 39 item 6: a survivor that leaves while it holds numbers it took over (their cancels refused
    as too early) does not wait for them: it says in the log which numbers it leaves to the journal, and
    the account's next recovery closes them once its lease is gone."""
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, early_cancel_seconds=120)
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None, "poll_interval": 0.01,
                               "early_cancel_window": 120}
    async with SMSActivate(sim.api_key, store=persistent_url, owner="dead", lease=0.2, **options) as dead:
        numbers = [await dead.get_number_v2(service="tg", country=0) for _ in range(2)]
    await anyio.sleep(0.3)  # "dead" renews no more
    with caplog.at_level("WARNING", logger="smsactivate_async"):
        async with SMSActivate(sim.api_key, store=persistent_url, owner="survivor", lease=0.2, **options) as survivor:
            report = await survivor.recover()
            assert sorted(report.pending) == sorted(n.activation_id for n in numbers)  # too early to cancel
    said = [r.getMessage() for r in caplog.records if "left open in the journal by survivor" in r.getMessage()]
    assert sorted(said) == sorted(f"activation {n.activation_id} left open in the journal by survivor: the account's "
                                  "next recovery closes it once this owner's lease is gone (6 with a code, 8 without)"
                                  for n in numbers)
    assert len(sim.open_activations()) == 2
    await anyio.sleep(0.3)
    clock.advance(121)
    async with SMSActivate(sim.api_key, store=persistent_url, owner="operator", **options) as operator:
        later = await operator.recover()
    assert sorted(later.cancelled) == sorted(n.activation_id for n in numbers) and sim.open_activations() == []


async def test_a_taken_over_number_comes_back_as_the_survivors_and_a_given_back_one_not(redis_server: str) -> None:
    """Found by mutmut over ``_journal`` (issue 37): a take-over that kept the dead owner (or no owner)
    in this client's own records, and a give-back that kept the number among them, passed every test.
    Both show only when the store restarts empty: the records put back must say who holds what — the
    survivor its taken number, never the one it gave back (another survivor would close them twice)."""
    async with _journal_on_redis(redis_server, "survivor") as (journal, restart_empty):
        store = journal.store
        await store.renew("dead", 1.0)
        kept, given = _entry(51, owner="dead"), _entry(52, owner="dead")
        for entry in (kept, given):
            await store.claim(entry)
        await journal.renew()
        assert await journal.take_over(kept) and await journal.take_over(given)
        await journal.give_back(given)  # its close failed: the next recovery tries again
        assert await store.owners("activation", [51, 52]) == {51: "survivor", 52: "dead"}
        await restart_empty()
        await journal.renew()  # finds its lease gone: puts its records back
        owners = await store.owners("activation", [51, 52])
        assert owners[51] == "survivor" and owners.get(52) != "survivor"


async def test_a_listing_waits_for_the_purchases_other_live_clients_have_on_the_wire(tmp_path: Path) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``wait_for_others`` made to return at once passed the
    unit tests (only the simulation harness's fleets saw it). Another live client's purchase on the wire
    holds a reconciliation back until it settles; its own, a dead client's, one begun after the listing
    and one pending past ``stale_after`` do not; nor past the timeout."""
    path = tmp_path / "journal.db"
    mine, theirs, dead = (Journal(SqliteStore(path), owner=o, lease=30.0, stale_after=10.0)
                          for o in ("me", "them", "gone"))
    for journal in (mine, theirs, dead):
        await journal.open("ns")
    try:
        await mine.renew()
        await theirs.renew()
        await mine.store.renew("gone", 1.0)  # a lease long expired: a dead client
        on_the_wire = await theirs.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"),
                                          "activation")
        await dead.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"), "activation")
        await mine.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"), "activation")
        listed_at = await mine.store.last_seq()
        await theirs.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"), "activation")

        async def settle_later() -> None:
            await anyio.sleep(0.3)
            await theirs.settle(on_the_wire, "bought")

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(settle_later)
            await mine.wait_for_others(listed_at, timeout=5.0)
        assert 0.3 <= time.monotonic() - started < 2.0  # held back by theirs alone, until it settled
        started = time.monotonic()
        await mine.wait_for_others(await mine.store.last_seq(), timeout=0.2)  # theirs, begun later, pending
        assert 0.2 <= time.monotonic() - started < 1.0  # waited, and gave up at the timeout
    finally:
        for journal in (mine, theirs, dead):
            await journal.aclose()


async def test_other_clients_unresolved_purchases_are_counted_exactly(tmp_path: Path) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``others_unresolved`` — how many numbers on the
    server other clients' purchases of one kind may own unrecorded — could count wrong in nine ways and
    pass the unit tests (the harness's fleets see it). A live client's lost answer (ambiguous,
    uncertain) counts; its purchase still on the wire (pending) does not yet; a dead client's counts in
    any unsettled state; this client's own and another kind's never; a settled one never."""
    path = tmp_path / "journal.db"
    mine, live, dead = (Journal(SqliteStore(path), owner=o, lease=30.0, stale_after=10.0) for o in ("me", "live", "dead"))
    for journal in (mine, live, dead):
        await journal.open("ns")
    try:
        await mine.renew()
        await live.renew()
        await mine.store.renew("dead", 1.0)
        tg, wa = ("getNumber", "tg", "0"), ("getNumber", "wa", "0")

        async def purchase(journal: Journal, key: tuple[str, ...], state: Any) -> None:
            intent = await journal.intend(key[0], {"service": key[1], "country": key[2]}, key, "activation")
            if state != "pending":
                await journal.settle(intent, state)

        assert await mine.others_unresolved(tg) == 0
        await purchase(live, tg, "pending")     # on the wire: not (yet) a lost answer
        await purchase(live, tg, "ambiguous")   # counts
        await purchase(live, tg, "uncertain")   # counts
        await purchase(live, tg, "bought")      # settled: never
        await purchase(live, wa, "ambiguous")   # another kind
        await purchase(dead, tg, "pending")     # a dead client's, in any unsettled state: counts
        await purchase(dead, tg, "ambiguous")   # counts
        await purchase(mine, tg, "ambiguous")   # this client's own: never
        assert await mine.others_unresolved(tg) == 4
        assert await mine.others_unresolved(wa) == 1
        assert await live.others_unresolved(tg) == 3  # mine, and the dead client's two
    finally:
        for journal in (mine, live, dead):
            await journal.aclose()


@pytest.mark.parametrize("read", ["get_status", "get_status_v2"])
async def test_a_code_read_by_the_callers_own_status_call_is_journaled(tmp_path: Path, read: str) -> None:
    """Found by mutmut over _session: a code a getStatus or getStatusV2 answer carries is written to
    the journal whoever asked (the caller here, not the scheduler), so a restart knows it was received."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, early_cancel_window=0,
                           store=f"sqlite:///{tmp_path}/journal.db") as client:
        number = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(number.activation_id, "Your code is 975310")
        await getattr(client, read)(number.activation_id)
        (entry,) = await client._session.journal.store.open_entries()
        assert entry.id == number.activation_id and entry.code == "975310"
        await client.set_status(number.activation_id, 6)


async def test_a_rent_is_journaled_as_a_rent(tmp_path: Path) -> None:
    """Found by mutmut over _settlement: a purchase's intent and record say what it bought — a rent as
    a rent (other clients reconciling rents wait for its intent alone, not those reconciling
    activations), and its record in the rents' id space."""
    sim = Simulator()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None,
                           store=f"sqlite:///{tmp_path}/journal.db") as client:
        rent = await client.get_rent_number(service="tg", rent_time=4)
        await client.get_number_v2(service="tg", country=0)
        store = client._session.journal.store
        intents = await store.intents(("bought",))
        assert sorted((i.action, i.kind) for i in intents) == [("getNumberV2", "activation"), ("getRentNumber", "rent")]
        entries = sorted((e.kind, e.id) for e in await store.open_entries())
        assert ("rent", rent.id) in entries and [kind for kind, _ in entries].count("activation") == 1
        await client.set_rent_status(rent.id, 2)


async def test_a_numbers_code_comes_back_with_it_and_a_closed_one_stays_closed(redis_server: str) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``record_code`` updating this client's own records
    (kept to put back a store that lost everything) and ``record_closed`` dropping a number from them
    were each left undone by a mutant that passed every test. When the store restarts empty, a number
    comes back with its code, and a closed number does not come back open (recovery would close it
    again, or a fleet reader wait on it)."""
    async with _journal_on_redis(redis_server, "me") as (journal, restart_empty):
        await journal.renew()
        key = ("getNumber", "tg", "0")
        intent = await journal.intend("getNumber", {"service": "tg", "country": "0"}, key, "activation")
        await journal.bought(intent, [journal.entry(intent, "activation", i, "7900") for i in (61, 62, 63)])
        await journal.record_code("activation", 61, "1234")
        await journal.record_code("rent", 63, "555")  # another kind's number of the same id: not this one
        await journal.record_closed("activation", 62, "finished")
        await journal.record_closed("rent", 63, "finished")
        await restart_empty()
        await journal.renew()  # finds its lease gone: puts its records back
        back = {entry.id: entry for entry in await journal.store.open_entries()}
        assert sorted(back) == [61, 63]
        assert (back[61].code, back[61].owner, back[63].code) == ("1234", "me", None)


async def test_a_code_is_written_once_however_often_it_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by mutmut over ``_journal`` (issue 37): the memo that spares writing a code the journal
    already holds (a code is seen at every tick until the number closes) could be made to forget and
    no test saw it. And ``journaled`` reads the owners of the kind it is asked for."""
    store = SqliteStore(tmp_path / "journal.db")
    journal = Journal(store, owner="me", lease=30.0, stale_after=10.0)
    await journal.open("ns")
    try:
        await store.claim(_entry(7, owner="me"))
        await store.claim(attrs.evolve(_entry(7, owner="other"), kind="rent"))
        assert await journal.journaled("rent", [7, 8]) == {7: "other"}
        assert await journal.journaled("activation", [7, 8]) == {7: "me"}
        written: list[Any] = []
        update = store.update_entry

        async def counted(kind: Any, entry_id: int, **changes: Any) -> None:
            written.append((kind, entry_id, changes))
            await update(kind, entry_id, **changes)

        monkeypatch.setattr(store, "update_entry", counted)
        for code in ("1234", "1234", "1234", "5678", "5678"):
            await journal.record_code("activation", 7, code)
        assert written == [("activation", 7, {"code": "1234"}), ("activation", 7, {"code": "5678"})]
        # a rent with the same id (another of the provider's sequences) and the same code is its own entry
        await journal.record_code("rent", 7, "5678")
        assert written[2:] == [("rent", 7, {"code": "5678"})]
        assert [e.code for e in await store.open_entries() if e.kind == "rent"] == ["5678"]
    finally:
        await journal.aclose()


async def test_a_failed_store_is_tried_again_after_waits_doubling_to_two_seconds_within_store_wait(
        tmp_path: Path) -> None:
    """Found by mutmut over ``_journal`` (issue 37): the store's retry waits could triple, cap at 3 s or
    run past ``store_wait`` and pass every test. 0.1 s doubling to 2 s, and none that would end after
    ``store_wait``."""
    journal = Journal(SqliteStore(tmp_path / "journal.db"), owner="me", lease=30.0, stale_after=10.0)
    journal.store_wait = 60.0
    assert list(itertools.islice(journal.store_delays(), 8)) == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    journal.store_wait = 0.5
    waited = []
    for delay in journal.store_delays():  # 0.1 and 0.2 end within 0.5 s (0.2 s to spare); 0.4 more would not
        waited.append(delay)
        await anyio.sleep(delay)
    assert waited == [0.1, 0.2]


def test_a_numbers_record_takes_what_its_purchase_asked_for(tmp_path: Path) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``Journal.entry`` could drop the country of the
    purchase, the protocol's default rent of 4 hours, or the price, and give an activation a paid-until
    — and pass every test. Each is what recovery and the fleet console read back."""
    journal = Journal(SqliteStore(tmp_path / "journal.db"), owner="me", lease=30.0, stale_after=10.0,
                      wall=lambda: 5000.0)
    bought = _intent()  # getNumber, service tg, country 0
    entry = journal.entry(bought, "activation", 5, "7900", cost=Decimal("1.50"))
    assert (entry.kind, entry.id, entry.owner, entry.intent_id, entry.bought_at, entry.phone) == (
        "activation", 5, "me", bought.id, 5000.0, "7900")
    assert (entry.service, entry.country, entry.paid_until, entry.cost) == ("tg", "0", None, "1.50")
    assert journal.entry(bought, "activation", 5, "7900", service="wa", country="2").country == "2"
    assert journal.entry(bought, "activation", 5, "7900").cost is None
    adopted = journal.entry(None, "activation", 6, None, service="tg", country="1")  # found on the list
    assert (adopted.intent_id, adopted.service, adopted.country, adopted.paid_until) == (None, "tg", "1", None)
    for rent_time, hours in (("12", 12), (None, 4), ("soon", None)):
        params = {"service": "tg", "country": "0", **({"rent_time": rent_time} if rent_time else {})}
        rent = journal.entry(attrs.evolve(bought, action="getRentNumber", kind="rent", params=params), "rent", 7, "7900")
        assert rent.paid_until == (None if hours is None else 5000.0 + hours * 3600), rent_time
    assert journal.entry(None, "rent", 8, "7900").paid_until is None  # adopted: its paid-until is not known here


def test_who_recovery_leaves_alone(tmp_path: Path) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``Liveness`` — which owners recovery must not touch —
    could be changed in eight ways that passed the tests. This client; an owner whose lease runs past
    now (not one that ends now); an owner with no lease until it has been seen absent a whole lease;
    and everyone while the store is down or for a lease after it came back."""
    journal = Journal(SqliteStore(tmp_path / "journal.db"), owner="me", lease=30.0, stale_after=10.0)
    leases = {"live": 101.0, "ending": 100.0, "dead": 50.0}
    alive = Liveness(journal, leases, 100.0)
    assert "me" in alive and 7 in alive  # (not an owner's name: never closed on a guess)
    assert "live" in alive and "ending" not in alive and "dead" not in alive
    assert "absent" in alive and journal.absent_since == {"absent": 100.0}  # first seen without a lease now
    assert "absent" in Liveness(journal, leases, 129.9)
    assert "absent" not in Liveness(journal, leases, 130.0)  # absent a whole lease
    assert "absent" in Liveness(journal, {**leases, "absent": 200.0}, 131.0) and journal.absent_since == {}
    journal.store_down = True
    assert "dead" in Liveness(journal, leases, 100.0)
    journal.store_down, journal.quiet_until = False, 100.5
    assert "dead" in Liveness(journal, leases, 100.0) and "dead" not in Liveness(journal, leases, 100.5)


async def test_a_number_this_client_failed_to_take_is_not_put_back_as_its_own(redis_server: str) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``_hold`` keeps a number among this client's records
    while it is being taken (a store found empty meanwhile gets it back), and must drop it when the take
    fails — unless the client held it before. Both show only when the store restarts empty."""
    async with _journal_on_redis(redis_server, "me") as (journal, restart_empty):
        await journal.renew()
        await journal.store.claim(_entry(71, owner="other"))
        assert not await journal.adopt(_entry(71, owner="me"))  # another client's: not taken
        intent = await journal.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"),
                                      "activation")
        await journal.bought(intent, [journal.entry(intent, "activation", 72, "7900")])
        # a take-over of it from a dead owner fails (the store says it is this client's): held still
        assert not await journal.take_over(attrs.evolve(journal.entry(None, "activation", 72, "7900"), owner="dead"))
        await restart_empty()
        await journal.renew()  # puts its records back
        owners = await journal.store.owners("activation", [71, 72])
        assert owners == {72: "me"}


async def test_a_purchases_settled_state_is_what_comes_back_after_the_store_restarts_empty(redis_server: str) -> None:
    """Found by mutmut over ``_journal`` (issue 37): ``settle`` keeping this client's own copy of an intent
    in step (its new state; forgotten once final) passed every test when left undone. A store back empty
    gets the purchase whose answer was lost back as lost, not as on the wire, and no settled one."""
    async with _journal_on_redis(redis_server, "me") as (journal, restart_empty):
        await journal.renew()
        key = ("getNumber", "tg", "0")
        lost = await journal.intend("getNumber", {"service": "tg", "country": "0"}, key, "activation")
        done = await journal.intend("getNumber", {"service": "tg", "country": "0"}, key, "activation")
        await journal.settle(lost, "ambiguous")
        await journal.settle(done, "failed")
        await restart_empty()
        await journal.renew()  # puts its records back
        back = await journal.store.intents(["pending", "ambiguous", "uncertain", "failed", "bought"])
        assert [(i.id, i.state) for i in back] == [(lost.id, "ambiguous")]


async def test_own_purchases_put_back_from_an_older_view_are_settled_once_the_quiet_is_over(redis_server: str) -> None:
    """Found by mutmut over ``_journal`` (issue 37, the options of ``restore``): after a store came back
    empty, the others put back what they last saw — this client's purchases among them, some settled
    here since. Once the lease of quiet is over (not before: others may still be putting back), this
    client settles those it no longer holds as failed; its own live ones stay."""
    import redis.asyncio

    now = [1_800_000_000.0]
    store = open_store(redis_server)
    namespace = f"test-{uuid.uuid4().hex}"
    await store.open(namespace)
    journal = Journal(store, owner="me", lease=30.0, stale_after=10.0, wall=lambda: now[0])
    await journal.open(namespace)
    try:
        await journal.renew()
        held = await journal.intend("getNumber", {"service": "tg", "country": "0"}, ("getNumber", "tg", "0"),
                                    "activation")
        admin = redis.asyncio.Redis.from_url(redis_server)
        await admin.delete(*await admin.keys(f"smsactivate:{{{namespace}}}:*"))
        await admin.aclose()
        await journal.renew()  # its lease gone: puts back its own, and keeps quiet for a lease
        stale = _intent(owner="me")  # settled here long ago, put back by another client from an older view
        theirs = _intent(owner="other")  # another client's: not this one's to settle
        for intent in (stale, theirs):
            await store.add_intent(intent)
        now[0] += 29.0
        await journal.renew()
        pending = sorted([held.id, stale.id, theirs.id])
        assert sorted(i.id for i in await store.intents(["pending"])) == pending  # still quiet
        now[0] += 2.0
        await journal.renew()
        assert sorted(i.id for i in await store.intents(["pending"])) == sorted([held.id, theirs.id])
    finally:
        await journal.aclose()


async def test_a_purchase_is_journaled_with_its_intent_and_its_cost(tmp_path: Path) -> None:
    """Found by mutmut over ``_settlement`` (issue 37, ``_entries``): a bought number's journal entry
    names the intent it was bought under, the cost the answer named and its phone — for a single
    number and for a rent — and no test read them."""
    sim = Simulator(early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, early_cancel_window=0,
                           store=f"sqlite:///{tmp_path}/journal.db") as client:
        number = await client.get_number_v2(service="tg", country=0)
        rent = await client.get_rent_number(service="tg", rent_time=4)
        entries = {e.kind: e for e in await client._session.journal.store.open_entries()}
        intents = {i.id for i in await client._session.journal.store.intents(["bought"])}
        await client.set_status(number.activation_id, 8)
        await client.set_rent_status(rent.id, 2)
    assert entries["activation"].cost == str(number.activation_cost) and number.activation_cost is not None
    assert entries["activation"].service == "tg" and entries["activation"].phone == number.phone_number
    assert entries["rent"].phone == rent.number and rent.number
    assert {entries["activation"].intent_id, entries["rent"].intent_id} <= intents
    assert entries["activation"].intent_id != entries["rent"].intent_id
