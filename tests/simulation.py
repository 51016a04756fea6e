"""Deterministic simulation: the whole client against the simulator on one virtual clock, under
random schedules of users and faults, with invariants checked after every run.

One schedule is a seed. ``run_schedule(seed)`` builds a world from it — a dialect, an early-cancel
window, an activation lifetime, a rate of faults of every kind (lost answers before and after the
purchase commits, hangs, 5xx pages, truncated bodies, SQL errors, 429s), and a handful of users,
each doing one of the things users do (``activation()`` blocks, ``get_number_v2`` + ``wait_for_code``,
``buy`` under a buying policy, ``start_activation`` handles looked at or abandoned, another code
after status 3, ``run_many``, a rent and its many SMS — in bursts, pushed twice or lost, one to three
waiters on it), waiting with random timeouts, some cancelled
mid-wait, SMS arriving at random times or never; in some worlds the provider's webhooks too (pushes
on time, late, twice, lost, and forged ones for ids being waited on), in some a server that counts
its requests per second, in a quarter a fleet (two or three clients on one shared journal, one
killed mid-run: its transport and journal cut at once, its tasks gone; a fresh client recovers what
the journal holds at the end) — and runs it on trio with ``MockClock(autojump_threshold=0)``: time jumps whenever
every task waits, so a 120 s early-cancel window or a 10 s block costs no wall time, and the run
replays exactly from its seed.

Checked after each run (``Violation`` names the seed; replay it with
``python tests/simulation.py --seed N --verbose``):

1. every wait not cancelled ended with its own code, or a typed error, or its timeout no earlier
   than its deadline and within one poll interval after it; in a run without faults, a code that
   arrived a full interval before a deadline was not missed (with webhooks, a full fallback
   interval: polling slows while pushes arrive, so a lost push costs that);
2. no code was returned twice for one activation, or for another activation;
3. every number bought is closed at the end (6 / 8 / expired), or named by a
   ``PurchaseUncertainError`` the user was given — strays too: purchases given up as never made,
   which the server committed late (only one it committed after the last look is out of sight),
   and in a fleet every rent too (a killed client's are closed by recovery);
4. no purchase was made twice for one order id, and a server that counts requests per second never
   saw the client exceed its budget;
5. nothing escaped that is not an ``SMSActivateError``, a ``TimeoutError`` or a cancellation, and no
   background job of the client failed (it logs an error that no caller would see);
6. after ``aclose()`` no task of the client is left;
7. every rent message was handed over exactly once (by its waiters, or a final drain), each waiter's
   in the order they were sent.

``python tests/simulation.py --schedules 100000`` (or ``nox -s dst -- --schedules 100000``) runs long.
"""

from __future__ import annotations

import _thread
import argparse
import contextvars
import gc
import heapq
import inspect
import itertools
import json
import logging
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import attrs
import httpx
import trio
import trio.testing

from smsactivate_async import (
    BuyingPolicy,
    ClientClosedError,
    PurchaseUncertainError,
    RetryPolicy,
    SMSActivate,
    SMSActivateError,
    SpendingGuard,
    StoreError,
    WaitTimeoutError,
)
from smsactivate_async._clock import SystemClock
from smsactivate_async._policy import Limiter
from smsactivate_async._store import MemoryStore, Store
from smsactivate_async._store_sqlite import SqliteStore
from smsactivate_async.simulator import CodeSchedule, FaultKind, Faults, LoopSimClock, Simulator

if TYPE_CHECKING:
    from smsactivate_async.webhooks import WebhookApp

__all__ = ["Violation", "run_schedule", "run_many_schedules"]

T = TypeVar("T")

INTERVAL = 1.0
#: the share of worlds with several clients on one journal, and their lease
FLEET_SHARE = 0.25
LEASE = 6.0
#: the share of fleet worlds whose journal is a sqlite file (the others: one in memory)
SQLITE_SHARE = 0.5
#: the polling interval while webhooks arrive
FALLBACK = 5.0
#: slack for the scheduling of the event loop itself (virtual time: only ordering, no real delay)
EPSILON = 0.05


#: a schedule's budgets: one that has not ended past either is a hang, reported with its seed and its
#: live tasks (what each waits on). The longest of 400 schedules ended in 162 s of virtual time and
#: 0.13 s of wall time here: the budgets are far beyond any healthy run, and far below a CI timeout.
VIRTUAL_BUDGET = 3_600.0
WALL_BUDGET = 30.0
#: how far (virtual seconds) a client's limiter may lag a work-conserving bucket before it is a finding
SLOW_SLACK = 0.01


def _task_tree() -> str:
    """Every live trio task, indented under its parent, with where it waits (innermost frames)."""
    lines: list[str] = []

    def waits_on(task: Any) -> str:
        frames = []
        coro = task.coro
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None and f"{os.sep}trio{os.sep}" not in frame.f_code.co_filename:
                where = os.path.basename(frame.f_code.co_filename)
                frames.append(f"{frame.f_code.co_name} ({where}:{frame.f_lineno})")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        return " > ".join(frames[-3:]) or "(trio's own)"

    def walk(task: Any, depth: int) -> None:
        lines.append(f"{'  ' * depth}{task.name}: {waits_on(task)}")
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child, depth + 1)

    walk(trio.lowlevel.current_root_task(), 0)
    return "\n".join(lines[:80]) + (f"\n… {len(lines) - 80} more" if len(lines) > 80 else "")


class Violation(AssertionError):
    """An invariant did not hold in one schedule."""

    def __init__(self, seed: int, message: str) -> None:
        super().__init__(f"seed {seed}: {message}\n  replay: python tests/simulation.py --seed {seed} --verbose")
        self.seed = seed


@attrs.define
class Wait:
    activation_id: int
    owner: int
    started: float
    timeout: float
    cancelled_at: float | None = None
    ended: float | None = None
    result: str | None = None  # the code
    error: BaseException | None = None


@attrs.define
class World:
    seed: int
    rng: random.Random
    sim: Simulator
    client: SMSActivate
    faulty: bool
    start: float = 0.0
    waits: list[Wait] = attrs.field(factory=list)
    #: activation id → [(time, code)] delivered
    delivered: dict[int, list[tuple[float, str]]] = attrs.field(factory=dict)
    uncertain: set[int] = attrs.field(factory=set)
    app: WebhookApp | None = None
    budget: float | None = None
    escaped: list[BaseException] = attrs.field(factory=list)
    #: the simulator's time when the client began to close
    closed_at: float = float("inf")
    #: a fleet world: several clients on one journal (``clients[0]`` is ``client``), one maybe killed
    clients: list[SMSActivate] = attrs.field(factory=list)
    #: a fleet world's journal: a client's connection to it, and the cut that ends that connection
    journal: Callable[[], tuple[Store, Callable[[], None]]] | None = None
    #: where a fleet world keeps its journal ("memory" or a sqlite file)
    journal_kind: str = "memory"
    cleanups: list[Callable[[], None]] = attrs.field(factory=list)
    cuts: list[Callable[[], None]] = attrs.field(factory=list)
    killed: int | None = None
    killed_at: float = float("inf")
    kill_at: float | None = None
    recovered_at: float = float("inf")
    #: when the final recoverer of a fleet world began to close: its last look for strays
    final_look: float = float("-inf")
    log: list[str] = attrs.field(factory=list)
    #: when the schedule ended, on its virtual clock; a hang's report (budget, task tree)
    ended: float = 0.0
    hang: str | None = None
    stop: Callable[[], None] | None = None
    #: the spending guard of every "buy" user, and whether their policy has a ceiling
    guard: SpendingGuard = attrs.field(factory=lambda: SpendingGuard(budget="0.50"))
    guard_ceiling: bool = True
    #: (who, when each of its requests reached the server, the rate and burst it is configured for)
    paced: list[tuple[str, list[float], float, int]] = attrs.field(factory=list)
    #: (who, its limiter as recorded, rate, burst): what the slowness check reads
    limiters: list[tuple[str, _RecordingLimiter, float, int]] = attrs.field(factory=list)
    #: not violations: a client slower than its budget allows while work waited (see _slowness)
    findings: list[str] = attrs.field(factory=list)

    def now(self) -> float:
        return anyio.current_time() - self.start

    def note(self, text: str) -> None:
        self.log.append(f"{self.now():8.3f} {text}")

    async def deliver_later(self, activation_id: int, delay: float | None) -> None:
        if delay is None:
            return
        await anyio.sleep(delay)
        code = str(self.rng.randrange(100_000, 1_000_000))
        activation = self.sim.activations.get(activation_id)
        if activation is None or not activation.state.active:
            return
        self.delivered.setdefault(activation_id, []).append((self.now(), code))
        if self.rng.random() < 0.2:
            self.note(f"call {code} for {activation_id}")
            self.sim.deliver_call(activation_id, code)
        else:
            self.note(f"SMS {code} for {activation_id}")
            self.sim.deliver_sms(activation_id, f"Your code is {code}", code=code)
        if self.app is not None:  # the provider's push: on time, late, twice, or lost
            fate = self.rng.random()
            if fate < 0.2:
                return
            if fate < 0.4:
                await anyio.sleep(self.rng.uniform(0, 10))
            for _ in range(2 if fate > 0.8 else 1):
                await self.push(activation_id, code)

    async def push(self, activation_id: int, code: str) -> None:
        assert self.app is not None
        body = json.dumps({"activationId": activation_id, "code": code, "text": f"Your code is {code}"}).encode()
        status, _ = await self.app.handle("POST", self.app.path, "127.0.0.1", {}, body)
        if status != 200:
            self.escaped.append(AssertionError(f"the receiver answered {status} to a valid push"))

    async def forge(self) -> None:
        """Forged pushes for ids being waited on: news to confirm, never a code."""
        while True:
            await anyio.sleep(self.rng.uniform(0.1, 3.0))
            waiting = [w.activation_id for w in self.waits if w.ended is None]
            if waiting:
                await self.push(self.rng.choice(waiting), "000000")

    async def wait(self, activation_id: int, timeout: float, *, cancel_after: float | None,
                   wait: Callable[[float], Any], started: float | None = None) -> str | None:
        record = Wait(activation_id, _OWNER.get(), self.now() if started is None else started, timeout)
        self.note(f"wait {activation_id} starts (timeout {timeout:.1f})")
        self.waits.append(record)
        with anyio.CancelScope() as scope:
            if cancel_after is not None:
                scope.deadline = anyio.current_time() + cancel_after
            try:
                record.result = await wait(timeout)
                return record.result
            except (SMSActivateError, TimeoutError) as exc:
                record.error = exc
                if isinstance(exc, PurchaseUncertainError):
                    self.uncertain.update(exc.candidate_ids)
                return None
            finally:
                record.ended = self.now()
                self.note(f"wait {activation_id} ended: {record.result or type(record.error).__name__}")
        record.cancelled_at = self.now()
        return None


def _code_delay(rng: random.Random) -> float | None:
    return None if rng.random() < 0.3 else rng.uniform(0, 40)


#: which of the world's clients the running user works with
_OWNER: contextvars.ContextVar[int] = contextvars.ContextVar("owner", default=0)


async def _user(world: World, index: int, owner: int = 0) -> None:
    _OWNER.set(owner)
    rng, client = world.rng, world.clients[owner]
    kind = rng.choice(["activation", "wait", "handle", "handle_abandoned", "another", "run_many", "rent", "buy"])
    timeout = rng.uniform(1, 30)
    cancel_after = rng.uniform(0, 30) if rng.random() < 0.25 else None
    world.note(f"user {index}: {kind}, timeout {timeout:.1f}, cancel after {cancel_after}")
    try:
        if kind in ("activation", "another"):
            async with client.activation(service="tg", country=2) as act:
                async with anyio.create_task_group() as group:
                    group.start_soon(world.deliver_later, act.activation_id, _code_delay(rng))
                    got = await world.wait(act.activation_id, timeout, cancel_after=cancel_after,
                                           wait=lambda t: act.wait_for_code(timeout=t))
                    if got is not None and kind == "another":
                        await act.request_another_code()
                        group.start_soon(world.deliver_later, act.activation_id, _code_delay(rng))
                        await world.wait(act.activation_id, timeout, cancel_after=None,
                                         wait=lambda t: act.wait_for_code(timeout=t))
        elif kind == "wait":
            number = await client.get_number_v2(service="tg", country=2)
            cancel_on_timeout = rng.random() < 0.7
            async with anyio.create_task_group() as group:
                group.start_soon(world.deliver_later, number.activation_id, _code_delay(rng))
                got = await world.wait(number.activation_id, timeout, cancel_after=cancel_after, wait=lambda t: (
                    client.wait_for_code(number.activation_id, timeout=t, cancel_on_timeout=cancel_on_timeout)))
                if got is not None and random.Random(world.seed * 31 + index).random() < 0.4:
                    # waiting again without asking for another code: the code it had is no news
                    await world.wait(number.activation_id, 2.0, cancel_after=None, wait=lambda t: (
                        client.wait_for_code(number.activation_id, timeout=t, cancel_on_timeout=False)))
            with anyio.CancelScope(shield=True):
                if got is not None:
                    await client.set_status(number.activation_id, 6)
                elif not cancel_on_timeout or cancel_after is not None:
                    await _close_quietly(client, number.activation_id)
        elif kind.startswith("handle"):
            handle = await client.start_activation(service="tg", country=2, timeout=timeout)
            bought_at = world.now()  # the handle's timeout counts from its purchase
            delay = _code_delay(rng)
            async with anyio.create_task_group() as group:
                group.start_soon(world.deliver_later, handle.activation_id, delay)
                if kind == "handle":
                    # the handle's own deadline counts from its purchase: that is the wait's deadline
                    await world.wait(handle.activation_id, timeout, cancel_after=cancel_after, started=bought_at,
                                     wait=lambda t: handle.wait_for_code())
                    if rng.random() < 0.3:
                        await handle.cancel()
        elif kind == "run_many":
            n = rng.randint(1, 4)
            async with client.run_many(n, service="tg", country=2, timeout=timeout, concurrency=2) as results:
                async for result in results:
                    if isinstance(result.error, PurchaseUncertainError):
                        world.uncertain.update(result.error.candidate_ids)
                    elif result.error is not None and not isinstance(result.error, SMSActivateError | TimeoutError):
                        world.escaped.append(result.error)
        elif kind == "buy":
            # every "buy" of the world spends from one guard, on a service nobody else buys ("wa"): the
            # ledger's charges for it are the guard's, checked against its budget. Some users buy several
            # at once (their own stream of draws: the other schedules stay as they were).
            policy = BuyingPolicy(max_price="0.10", ceiling="1.00", fallbacks=[6], guard=world.guard) \
                if world.guard_ceiling else BuyingPolicy(fallbacks=[6], guard=world.guard)
            many = random.Random(world.seed * 131 + index).choice([1, 1, 3, 8])
            async with anyio.create_task_group() as buyers:
                for extra in range(1, many):
                    buyers.start_soon(_buy_quietly, world, client, policy, random.Random(world.seed * 137 + extra))
                await _buy_and_wait(world, client, policy, rng, timeout, cancel_after)
        elif kind == "rent":
            restart = world.journal is not None and world.budget is None and \
                random.Random(world.seed * 173 + index).random() < 0.5
            await _rent_user(world, client, rng, timeout, cancel_after, restart=index if restart else None)
    except Exception as exc:
        # The user's own task groups wrap what they raise: look at each leaf.
        leaves = list(_leaves(exc))
        world.note(f"user {index}: {', '.join(repr(leaf) for leaf in leaves)}")
        for leaf in leaves:
            if isinstance(leaf, PurchaseUncertainError):
                world.uncertain.update(leaf.candidate_ids)
            elif not isinstance(leaf, SMSActivateError | TimeoutError):
                world.escaped.append(leaf)  # an escape: reported as a violation


async def _buy_and_wait(world: World, client: SMSActivate, policy: BuyingPolicy, rng: random.Random, timeout: float,
                        cancel_after: float | None, *, cancelled_closes: bool = False) -> None:
    number = await client.buy(service="wa", country=2, policy=policy)
    got = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(world.deliver_later, number.activation_id, _code_delay(rng))
            got = await world.wait(number.activation_id, timeout, cancel_after=cancel_after, wait=lambda t: (
                client.wait_for_code(number.activation_id, timeout=t)))
    finally:
        with anyio.CancelScope(shield=True):
            if got is not None:
                await client.set_status(number.activation_id, 6)
            elif cancel_after is not None or cancelled_closes:  # the user's task was cancelled: it closes what it bought
                await _close_quietly(client, number.activation_id)


async def _buy_quietly(world: World, client: SMSActivate, policy: BuyingPolicy, rng: random.Random) -> None:
    """One more purchase of a user buying several at once; its errors are the user's (typed, or an escape)."""
    try:
        await _buy_and_wait(world, client, policy, rng, rng.uniform(1, 30), None, cancelled_closes=True)
    except Exception as exc:
        for leaf in _leaves(exc):
            if isinstance(leaf, PurchaseUncertainError):
                world.uncertain.update(leaf.candidate_ids)
            elif not isinstance(leaf, SMSActivateError | TimeoutError):
                world.escaped.append(leaf)


def _leaves(error: BaseException) -> Any:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


async def _rent_user(world: World, client: SMSActivate, rng: random.Random, timeout: float,
                     cancel_after: float | None, *, restart: int | None = None) -> None:
    """A rent with several messages — some before anyone waits, some in bursts, pushed once, twice or
    never — and one to three waiters on it, with timeouts, some cancelled. Every message is handed over
    exactly once (what the waiters did not take, a final drain does), each waiter's in the order sent.

    ``restart``: in a fleet world, the rent is bought by a client of its own (owner ``renter-N``) that
    is restarted before the drain — closed, a message sent while it is down, a new process of the same
    owner on the journal — so the drain checks the cursor kept across the restart."""
    if restart is not None:
        client = _renter(world, restart)
        await client.__aenter__()
    current = [client]
    try:
        await _rent_life(world, current, rng, timeout, cancel_after, restart)
    finally:
        if restart is not None:  # cancelled or not, the process ends (its rent stays open: the fleet's)
            with anyio.CancelScope(shield=True):
                await current[0].aclose()


async def _rent_life(world: World, current: list[SMSActivate], rng: random.Random, timeout: float,
                     cancel_after: float | None, restart: int | None) -> None:
    rent = (await current[0].get_rent_number(service="tg", country=2, rent_time=4)).id
    sent: list[str] = []
    taken: list[list[str]] = []

    async def sender() -> None:
        for burst in range(rng.randint(1, 4)):
            if burst or rng.random() < 0.6:
                await anyio.sleep(rng.uniform(0, 20))
            live = world.sim.rents.get(rent)
            if live is None or live.state != "active":
                return
            for i in range(rng.choice([1, 1, 2, 3, 12])):
                sent.append(f"rent code {rent}/{burst}/{i}")
                world.sim.deliver_rent_sms(rent, sent[-1])
            pushes = rng.choice([0, 1, 1, 2])
            for _ in range(pushes):  # the push lost, once, or twice
                current[0].notify_rent(rent)
            world.note(f"rent {rent}: {sent[-1]} sent (burst {burst}), pushed {pushes}×")

    async def waiter(own: list[str], deadline: float | None) -> None:
        with anyio.CancelScope(deadline=deadline if deadline is not None else float("inf")):
            while True:
                try:
                    message = await current[0].wait_for_rent_sms(rent, timeout=timeout)
                except WaitTimeoutError:
                    return
                own.append(message.text or "")
                world.note(f"rent {rent}: {own[-1]} handed over")

    async with anyio.create_task_group() as group:
        group.start_soon(sender)
        for n in range(rng.randint(1, 3)):
            taken.append([])
            cancel = anyio.current_time() + cancel_after if cancel_after is not None and n == 0 else None
            group.start_soon(waiter, taken[-1], cancel)
    if restart is not None:
        with anyio.CancelScope(shield=True):
            await current[0].aclose()
            world.note(f"rent {rent}: its owner renter-{restart} restarts")
            sent.append(f"rent code {rent}/down/0")
            world.sim.deliver_rent_sms(rent, sent[-1])
            await anyio.sleep(rng.uniform(0, 5))
            current[0] = _renter(world, restart)
            await current[0].__aenter__()
    await _drain_and_check(world, current[0], rent, sent, taken)


async def _drain_and_check(world: World, client: SMSActivate, rent: int, sent: list[str],
                           taken: list[list[str]]) -> None:
    drained: list[str] = []
    quiet = 0
    while quiet < 5 and len(sent) > sum(map(len, taken)) + len(drained):
        try:  # faults may eat a few polls: a generous drain, then the verdict
            drained.append((await client.wait_for_rent_sms(rent, timeout=120)).text or "")
            world.note(f"rent {rent}: {drained[-1]} drained")
        except WaitTimeoutError:
            world.note(f"rent {rent}: drain timed out")
            quiet += 1
    handed = [text for own in [*taken, drained] for text in own]
    if _OWNER.get() == world.killed:
        return  # its client was killed under it: the rent is the survivors' to close (invariant 3)
    if sorted(handed) != sorted(sent):
        lost = sorted(set(sent) - set(handed))
        twice = sorted({t for t in handed if handed.count(t) > 1})
        strange = sorted(set(handed) - set(sent))
        world.escaped.append(AssertionError(f"rent {rent}: lost {lost}, handed twice {twice}, never sent {strange}"))
    for own in [*taken, drained]:
        if own != sorted(own, key=lambda text: sent.index(text) if text in sent else -1):
            world.escaped.append(AssertionError(f"rent {rent}: a waiter got its messages out of order: {own}"))
    with anyio.CancelScope(shield=True):
        try:
            await client.set_rent_status(rent, 1)
        except SMSActivateError:
            pass


def _renter(world: World, index: int) -> SMSActivate:
    """A process of its own on the fleet's journal, for a rent user that restarts (unpaced: only in
    worlds whose server counts no budget)."""
    assert world.journal is not None
    store, _ = world.journal()
    return SMSActivate("dst", provider=world.sim.provider, transport=_ClientTransport(world.sim.transport()),
                       poll_interval=INTERVAL, store=store, owner=f"renter-{index}", lease=LEASE, clock=_WorldClock(),
                       rate_limit=None, timeout=3.0, seed=world.seed + 100 + index,
                       retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=1.0))


async def _close_quietly(client: SMSActivate, activation_id: int) -> None:
    try:
        await client._scheduler.cancel(activation_id)
    except SMSActivateError:
        pass



class _WorldClock(SystemClock):
    """The loop's (virtual) time, and a wall clock on it: leases expire on the world's time."""

    def wall(self) -> float:
        return 1_800_000_000.0 + anyio.current_time()


class _SharedJournal(MemoryStore):
    """One account's journal shared by the clients of a fleet world, as a sqlite file or a Redis
    server is shared by processes: it outlives any one of them."""

    persistent = True


_KILLED = "the process was killed (simulation)"


class _CuttableSqlite(SqliteStore):
    """One client's connection to the world's sqlite file (as a process has its own), which the
    client's kill cuts."""

    cut = False

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        if self.cut:
            raise StoreError(_KILLED)
        return await super()._run(work, write=write)


def _sqlite_journal(world: World) -> Callable[[], tuple[Store, Callable[[], None]]]:
    """A fleet world's journal in a real sqlite file, each client on its own connection, run inline
    (no thread: a thread's real time would move the virtual clock) on the world's wall clock."""
    folder = tempfile.mkdtemp(prefix=f"dst-{world.seed}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    path = os.path.join(folder, "journal.db")
    opened: list[_CuttableSqlite] = []

    def connect() -> tuple[Store, Callable[[], None]]:
        store = _CuttableSqlite(path, wall=_WorldClock().wall, threaded=False)
        opened.append(store)
        return store, lambda: setattr(store, "cut", True)

    def remove() -> None:
        for store in opened:
            if store._conn is not None:
                store._conn.close()
        shutil.rmtree(folder, ignore_errors=True)

    world.cleanups.append(remove)
    return connect


def _client_store(shared: _SharedJournal) -> tuple[Store, Callable[[], None]]:
    """A view of ``shared`` for one client, and the cut that ends it: afterwards none of that
    client's writes or reads reach the journal."""
    state = {"cut": False}

    class ClientView(_SharedJournal):
        def __getattribute__(self, name: str) -> Any:
            value = super().__getattribute__(name)
            if state["cut"] and not name.startswith("_") and inspect.iscoroutinefunction(value):
                async def cut(*args: object, **kwargs: object) -> Any:
                    raise StoreError(_KILLED)
                return cut
            return value

    view = ClientView.__new__(ClientView)
    view.__dict__ = shared.__dict__  # the same journal, seen through this client's connection
    return view, lambda: state.update(cut=True)


class _ClientTransport(httpx.AsyncBaseTransport):
    """The simulator's transport for one client, which its kill cuts: nothing reaches the server after."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.cut = inner, False
        #: when each request reached the server (the loop's virtual time), for the pacing check
        self.sent: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.cut:
            raise httpx.ConnectError(_KILLED, request=request)
        self.sent.append(trio.current_time())
        return await self.inner.handle_async_request(request)


def _pacing_excess(sent: list[float], rate: float, burst: int) -> tuple[float, int] | None:
    """The first request that a token bucket of ``rate`` per second and ``burst`` would not have let
    through (GCRA's conformance test: exact, in every window), as (its time, its index); or ``None``."""
    interval, tolerance = 1.0 / rate, (burst - 1) / rate
    tat = float("-inf")
    for index, at in enumerate(sorted(sent)):
        if at < tat - tolerance - 1e-5:  # a sqlite budget keeps wall time (1.8e9 s): float steps of 2e-7
            return at, index
        tat = max(tat, at) + interval
    return None


class _RecordingLimiter:
    """A client's limiter, with when each request asked for a slot and when it got one (or gave up)."""

    def __init__(self, inner: Limiter) -> None:
        self.inner = inner
        #: (asked, granted or None, given up or None), in the order asked
        self.asks: list[list[float | None]] = []

    @property
    def rate(self) -> float | None:
        return self.inner.rate

    async def acquire(self) -> None:
        ask: list[float | None] = [trio.current_time(), None, None]
        self.asks.append(ask)
        try:
            await self.inner.acquire()
        except BaseException:
            ask[2] = trio.current_time()
            raise
        ask[1] = trio.current_time()

    def block(self, seconds: float) -> None:
        self.inner.block(seconds)

    def settled(self) -> None:
        self.inner.settled()


def _record_limiter(world: World, who: str, client: SMSActivate, rate: float, burst: int) -> None:
    recording = _RecordingLimiter(client._session.limiter)
    client._session.limiter = recording
    world.limiters.append((who, recording, rate, burst))


def _slowness(asks: list[list[float | None]], rate: float, burst: int) -> tuple[float, float] | None:
    """How far a limiter fell behind a work-conserving token bucket on the same asks, as (the worst
    lag, when): the k-th slot a work-conserving bucket grants comes at the same time whatever order
    it serves its waiters in, so a k-th grant later than the ideal one is time the budget sat unused
    while a request waited. An ask given up before the ideal bucket would have served it is left out
    of the ideal (a bucket need not serve the impatient); one given up after was served, uselessly.
    ``None`` when no grant lags more than ``SLOW_SLACK``."""
    interval, tolerance = 1.0 / rate, (burst - 1) / rate
    tat, ideal = float("-inf"), []
    for asked, granted, gave_up in sorted(asks, key=lambda a: a[0] or 0.0):
        assert asked is not None
        start = max(asked, tat - tolerance)
        if granted is None and gave_up is not None and gave_up < start:
            continue
        tat = max(tat, start) + interval
        if granted is not None:
            ideal.append(start)
    actual = sorted(a[1] for a in asks if a[1] is not None)
    worst = max(((got - best, got) for got, best in zip(actual, sorted(ideal), strict=True)), default=(0.0, 0.0))
    return worst if worst[0] > SLOW_SLACK else None


def _cut(cut_store: Callable[[], None], transport: _ClientTransport) -> Callable[[], None]:
    def cut() -> None:
        cut_store()
        transport.cut = True
    return cut


def _make_world(seed: int) -> World:
    rng = random.Random(seed)
    dialect = rng.choice(["sms-activate", "herosms"])
    early = rng.choice([0.0, 0.0, 5.0, 120.0])
    fault_rate = rng.choice([0.0, 0.0, 0.05, 0.15])
    budget = rng.choice([None, None, 20.0])  # the server's requests per second, when it counts them
    faults = Faults.uniform(fault_rate, retry_after=0.5, hang_seconds=5.0, rps_budget=budget)
    if fault_rate and rng.random() < 0.5:
        # purchases the server commits late: listed only after the client's reconciliation gave up on them
        faults.rates[FaultKind.LATE_PURCHASE] = fault_rate / 4
        faults.late_commit_seconds = rng.choice([3.0, 8.0, 30.0, 200.0])
    sim = Simulator(provider=dialect, codes=CodeSchedule.never(), early_cancel_seconds=early,
                    lifetime_seconds=rng.choice([1200.0, 1200.0, 25.0]), faults=faults, clock=LoopSimClock(),
                    api_keys={"dst": Decimal(10_000)}, seed=seed)
    paced = _ClientTransport(sim.transport())
    client = SMSActivate("dst", provider=dialect, transport=paced, poll_interval=INTERVAL,
                         rate_limit=None if budget is None else budget * 0.75, burst=2,
                         early_cancel_window=early, timeout=3.0, close_timeout=400.0, seed=seed,
                         retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=1.0))
    world = World(seed, rng, sim, client, faulty=bool(fault_rate), budget=budget, clients=[client])
    spending = random.Random(seed * 6151 + 3)  # its own stream: the other draws stay as they were
    world.guard = SpendingGuard(budget=spending.choice(["0.30", "0.50", "1.00", "5.00"]))
    world.guard_ceiling = spending.random() < 0.5
    if budget is not None:
        world.paced.append(("the client", paced.sent, budget * 0.75, 2))
        _record_limiter(world, "the client", client, budget * 0.75, 2)
    webhooks = rng.random() < 0.3
    fleet = random.Random(seed * 7919 + 1)  # its own stream: the single-client worlds stay as they were
    if fleet.random() < FLEET_SHARE:
        if random.Random(seed * 104_729 + 2).random() < SQLITE_SHARE:
            world.journal_kind, world.journal = "sqlite", _sqlite_journal(world)
        else:
            shared = _SharedJournal()
            world.journal = lambda: _client_store(shared)
        world.clients, world.paced = [], []
        shared_budget: list[float] = []  # a sqlite journal: one budget for the fleet (every process of the machine)
        for index in range(fleet.randint(2, 3)):
            store, cut_store = world.journal()
            transport = _ClientTransport(sim.transport())
            world.clients.append(SMSActivate(
                "dst", provider=dialect, transport=transport, poll_interval=INTERVAL, store=store,
                owner=f"worker-{index}", lease=LEASE, clock=_WorldClock(),
                # no budget shared through this journal: a third each, bursts included
                rate_limit=None if budget is None else budget * 0.75 / 3, burst=1, early_cancel_window=early,
                timeout=3.0, seed=seed + index, retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=1.0)))
            world.cuts.append(_cut(cut_store, transport))
            if budget is not None and world.journal_kind == "sqlite":
                shared_budget = transport.sent if not shared_budget else shared_budget
                transport.sent = shared_budget
            elif budget is not None:
                world.paced.append((f"client {index}", transport.sent, budget * 0.75 / 3, 1))
                _record_limiter(world, f"client {index}", world.clients[-1], budget * 0.75 / 3, 1)
        if shared_budget is not None and budget is not None and world.journal_kind == "sqlite":
            world.paced.append(("the fleet on its sqlite budget", shared_budget, budget * 0.75 / 3, 1))
        world.client = world.clients[0]
        world.kill_at = fleet.uniform(2, 40) if fleet.random() < 0.7 else None
    elif webhooks:
        world.app = client.webhook_app("/sms", secret="dst-secret-0123456789", allowed_sources=None,
                                       fallback_interval=FALLBACK)
    return world


async def _run(world: World) -> None:
    world.start = anyio.current_time()
    if world.journal is not None:
        await _run_fleet(world)
        return
    users = world.rng.randint(1, 8)
    try:
        async with world.client:
            async with anyio.create_task_group() as outer:
                if world.app is not None and world.rng.random() < 0.5:
                    outer.start_soon(world.forge)
                async with anyio.create_task_group() as group:
                    for index in range(users):
                        group.start_soon(_user, world, index)
                        await anyio.sleep(world.rng.uniform(0, 3))
                outer.cancel_scope.cancel()
            world.closed_at = world.sim.clock.now()  # aclose() begins
    except Exception as exc:
        world.escaped.append(exc)
        world.closed_at = min(world.closed_at, world.sim.clock.now())
    await anyio.lowlevel.checkpoint()


async def _run_fleet(world: World) -> None:
    """Clients on one journal, users spread over them; one client maybe killed mid-run (its transport
    and its journal cut at once, its tasks gone), the others go on and recover its numbers. At the
    end a fresh client recovers what the journal holds, so that nothing bought is forgotten."""
    groups: list[anyio.abc.TaskGroup] = []

    async def users_of(owner: int, indexes: list[int], ready: anyio.Event) -> None:
        async with anyio.create_task_group() as group:
            groups.append(group)
            ready.set()
            for index in indexes:
                group.start_soon(_user, world, index, owner)
                await anyio.sleep(world.rng.uniform(0, 3))

    async def kill(owner: int, at: float) -> None:
        await anyio.sleep(at)
        world.note(f"client {owner} killed")
        world.killed, world.killed_at = owner, world.sim.clock.now()
        world.cuts[owner]()
        groups[owner].cancel_scope.cancel()
        await world.clients[owner]._host.aclose()  # its tasks are gone with the process; no aclose()

    total = world.rng.randint(3, 10)
    world.note(f"{len(world.clients)} clients on a {world.journal_kind} journal")
    try:
        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as fleet:
                for owner in range(len(world.clients)):
                    ready = anyio.Event()
                    fleet.start_soon(users_of, owner, list(range(owner, total, len(world.clients))), ready)
                    await ready.wait()
                if world.kill_at is not None:
                    outer.start_soon(kill, world.rng.randrange(len(world.clients)), world.kill_at)
            outer.cancel_scope.cancel()
        world.closed_at = world.sim.clock.now()
        for owner, client in enumerate(world.clients):
            if owner != world.killed:
                await client.aclose()
        # every lease has run out: a fresh client recovers what the journal holds, and waits out windows
        await anyio.sleep(LEASE + 1)
        assert world.journal is not None
        store, _ = world.journal()
        recoverer = SMSActivate("dst", provider=world.clients[0].provider, transport=world.sim.transport(),
                                store=store, owner="recoverer", lease=LEASE, clock=_WorldClock(),
                                rate_limit=None if world.budget is None else world.budget * 0.5, burst=1,
                                early_cancel_window=world.clients[0].early_cancel_window, timeout=3.0)
        world.recovered_at = world.sim.clock.now()
        await recoverer.recover()
        world.final_look = world.sim.clock.now()
        await recoverer.aclose(timeout=400)
        world.clients.append(recoverer)
    except Exception as exc:
        world.escaped.append(exc)
        world.closed_at = min(world.closed_at, world.sim.clock.now())
    await anyio.lowlevel.checkpoint()


def check(world: World) -> None:
    seed, sim = world.seed, world.sim

    def fail(message: str) -> None:
        raise Violation(seed, message + "\n  " + "\n  ".join(world.log[-40:]))

    if world.escaped:
        fail(f"escaped: {world.escaped[0]!r}")
    returned: dict[int, set[str]] = {}
    for wait in world.waits:
        if wait.cancelled_at is not None or wait.ended is None or wait.owner == world.killed:
            continue
        deadline = wait.started + wait.timeout
        if wait.result is not None:
            codes = [c for _, c in world.delivered.get(wait.activation_id, [])]
            if wait.result not in codes:
                fail(f"activation {wait.activation_id} got {wait.result}, which was never sent to it ({codes})")
            if wait.result in returned.setdefault(wait.activation_id, set()):
                fail(f"activation {wait.activation_id}: code {wait.result} returned twice")
            returned[wait.activation_id].add(wait.result)
            continue
        if isinstance(wait.error, ClientClosedError):
            fail(f"wait for {wait.activation_id} ended by the client closing, not by its deadline")
        if isinstance(wait.error, TimeoutError):
            if not deadline - EPSILON <= wait.ended <= deadline + INTERVAL + EPSILON:
                fail(f"wait for {wait.activation_id} timed out at {wait.ended:.3f}, its deadline {deadline:.3f}")
            # Latency is promised only where requests flow: not under faults, and not where clients on
            # a sqlite journal share one saturated budget (a confirming getStatus may queue behind
            # another process's purchases; no priority crosses processes).
            if not world.faulty and not (world.budget is not None and world.journal_kind == "sqlite"):
                # while pushes arrive, polling slows to the webhooks' fallback interval (a lost push costs that)
                slack = FALLBACK if world.app is not None else INTERVAL
                # a code the server took away with the number (its lifetime ended) less than an
                # interval later could not be seen by any poll
                gone = min((c.at for c in sim.ledger.status_changes
                            if c.id == wait.activation_id and c.cause.startswith("lifetime")), default=float("inf"))
                early = [t for t, _ in world.delivered.get(wait.activation_id, [])
                         if wait.started < t <= min(deadline, gone) - slack - EPSILON]
                if early:
                    fail(f"wait for {wait.activation_id} timed out at {wait.ended:.3f} although its code came at "
                         f"{early[0]:.3f}")
    for who, sent, rate, burst in world.paced:
        excess = _pacing_excess(sent, rate, burst)
        if excess is not None:
            fail(f"{who} sent more than its budget ({rate:g}/s, burst {burst}) allows: request {excess[1] + 1} at "
                 f"{excess[0] - world.start:.3f}")
    if not world.faulty:  # faults bring blocks (429s) that hold the limiter back on purpose
        for who, recording, rate, burst in world.limiters:
            lag = _slowness(recording.asks, rate, burst)
            if lag is not None:
                world.findings.append(f"seed {world.seed}: {who} was slower than its budget ({rate:g}/s, burst "
                                      f"{burst}) allows while requests waited: {lag[0]:.3f} s behind at "
                                      f"{lag[1] - world.start:.3f}")
    charged = sum((p.cost for p in sim.ledger.purchases if p.service == "wa"), Decimal(0))
    if world.guard.budget is not None and charged > world.guard.budget:
        fail(f"the spending guard's budget {world.guard.budget} was passed: {charged} charged under it "
             f"({'with' if world.guard_ceiling else 'without'} a ceiling; {world.guard!r})")
    over_budget = [r for r in sim.ledger.requests if r.status == 429 and r.fault is None]
    if over_budget:
        fail(f"the server's budget of {world.budget}/s was exceeded {len(over_budget)} times")
    if sim.ledger.duplicate_orders():
        fail(f"bought twice for one order: {sim.ledger.duplicate_orders()}")
    # A purchase the server commits only after the last look is out of sight: after aclose() began,
    # in a fleet after the final recoverer's aclose() began (it inherits every watch left in the journal,
    # the killed client's included).
    horizon = world.closed_at if world.journal is None else world.final_look
    left = [a.id for a in sim.activations.values()
            if a.state.active and a.id not in world.uncertain and a.listed_from <= horizon]
    if left:
        fail(f"left open at the end: {left} ({[sim.activations[i].state for i in left]})")
    if world.journal is not None:
        # a fleet's journal holds its rents too: the killed client's are closed by the survivors
        rents = [r.id for r in sim.rents.values()
                 if r.state == "active" and r.id not in world.uncertain and r.listed_from <= horizon]
        if rents:
            fail(f"rents left open at the end: {rents}")
    for owner, client in enumerate(world.clients):
        if client._host.running and owner != world.killed:
            fail(f"a task of client {owner} is still running after aclose()")


class _FailedJobs(logging.Handler):
    """A background job of the client that failed is an escape too: it logs, nobody else would see it."""

    def __init__(self, world: World) -> None:
        super().__init__(logging.ERROR)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + (f": {record.exc_info[1]!r}" if record.exc_info else "")
        if "background" not in record.getMessage():
            return  # an error the library reports on purpose (a number it could not close, say)
        if _KILLED not in text:  # a killed client's last gasps reach nobody: that is the point
            self.world.escaped.append(RuntimeError(text))


async def _budgeted(world: World) -> None:
    """The schedule, within its virtual budget; a wall-time watchdog thread (:func:`run_schedule`)
    covers a run whose virtual time stands still (tasks that spin without sleeping)."""
    async with trio.open_nursery() as nursery:
        world.stop = nursery.cancel_scope.cancel

        async def virtual_watchdog() -> None:
            await trio.sleep(VIRTUAL_BUDGET)
            world.hang = f"not ended after {VIRTUAL_BUDGET:.0f} s of virtual time; live tasks:\n{_task_tree()}"
            nursery.cancel_scope.cancel()

        nursery.start_soon(virtual_watchdog)
        await _run(world)
        world.ended = world.now()
        nursery.cancel_scope.cancel()


def _wall_watchdog(world: World, token: trio.lowlevel.TrioToken, done: threading.Event) -> None:
    """Past ``WALL_BUDGET`` seconds of real time: take the task tree and stop the run from inside the
    loop; if the loop does not even get there (a task spinning without a checkpoint), interrupt it."""
    if done.wait(WALL_BUDGET):
        return

    def stop() -> None:
        if world.hang is None:
            world.hang = f"not ended after {WALL_BUDGET:.0f} s of wall time (virtual time at " \
                         f"{world.now():.1f} s); live tasks:\n{_task_tree()}"
        if world.stop is not None:
            world.stop()

    try:
        token.run_sync_soon(stop)
    except trio.RunFinishedError:
        return
    if not done.wait(WALL_BUDGET / 2):
        world.hang = world.hang or f"not ended after {WALL_BUDGET:.0f} s of wall time, spinning without a checkpoint"
        _thread.interrupt_main()


def run_schedule(seed: int, *, verbose: bool = False) -> World:
    """Run one schedule on virtual time and check it; raises :class:`Violation`."""
    gc.collect()  # garbage of an earlier run, finalized in the middle of this one, would change its course
    world = _make_world(seed)
    scheduler_rng = getattr(getattr(trio, "_core", None), "_run", None)
    if scheduler_rng is not None and hasattr(scheduler_rng, "_r"):
        scheduler_rng._r.seed(seed)  # trio shuffles its run queue: from the seed too, so that a run replays
    watcher = _FailedJobs(world)
    logging.getLogger("smsactivate_async").addHandler(watcher)
    deadlines = trio._core._run.Deadlines
    original_add = deadlines.add
    order = itertools.count()

    def add_in_order(self: Any, deadline: float, cancel_scope: Any) -> None:
        # trio breaks a tie between equal deadlines by id(): by memory address, which differs from
        # one process to the next. By the order they were set instead, a run replays anywhere.
        heapq.heappush(self._heap, (deadline, next(order), cancel_scope))
        self._active += 1

    deadlines.add = add_in_order  # type: ignore[method-assign]
    done = threading.Event()

    async def main() -> None:
        threading.Thread(target=_wall_watchdog, args=(world, trio.lowlevel.current_trio_token(), done),
                         daemon=True, name=f"watchdog-{seed}").start()
        await _budgeted(world)

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    except KeyboardInterrupt:
        if world.hang is None:
            raise
    finally:
        done.set()
        for cleanup in world.cleanups:
            cleanup()
        deadlines.add = original_add  # type: ignore[method-assign]
        logging.getLogger("smsactivate_async").removeHandler(watcher)
    if verbose:
        print("\n".join(world.log))
    if world.hang is not None:
        raise Violation(seed, f"hang: {world.hang}\n  " + "\n  ".join(world.log[-20:]))
    check(world)
    return world


def run_many_schedules(count: int, first_seed: int = 0, *, progress: bool = False,
                       findings: list[str] | None = None) -> int:
    """Run ``count`` schedules from ``first_seed``; the number run. Stops at the first violation;
    findings (a client slower than its budget allows) are added to ``findings`` when given."""
    started = time.monotonic()
    gc.collect()
    gc.freeze()  # what lives now (a test session's heap) is not scanned again by each run's collect
    try:
        for seed in range(first_seed, first_seed + count):
            world = run_schedule(seed)
            if findings is not None:
                findings.extend(world.findings)
            if progress and (seed - first_seed + 1) % 500 == 0:
                print(f"{seed - first_seed + 1} schedules, {time.monotonic() - started:.0f} s", flush=True)
    finally:
        gc.unfreeze()
    return count


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # sets of strings iterate in hash order: one fixed hash seed, so that a replay is exact
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=2000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, help="replay this one schedule")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is not None:
        world = run_schedule(args.seed, verbose=args.verbose)
        print(f"seed {args.seed}: every invariant held")
        print("\n".join(f"finding: {text}" for text in world.findings))
        return 1 if world.findings else 0
    started = time.monotonic()
    findings: list[str] = []
    run_many_schedules(args.schedules, args.first_seed, progress=True, findings=findings)
    print(f"{args.schedules} schedules from seed {args.first_seed}: every invariant held "
          f"({time.monotonic() - started:.0f} s)")
    print("\n".join(f"finding: {text}" for text in findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
