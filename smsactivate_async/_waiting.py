"""Waiting for codes: one scheduler per client serves every waiter, from the client's own task.

A waiter registers, waits on its own wake-up until its own deadline, and unregisters: its
timeout, cancellation or error touches nobody else. The polling (the poll loop and the deferred
cancels) and the deadlines run in tasks the client owns (:class:`TaskHost`): the poller, started
by the first waiter or deferred cancel and ended when there is neither, and the deadline watcher
(``_deadlines.py``), which wakes each waiter at its deadline whatever the poller is doing.

Each poll tick asks once for the state of every activation (getActiveActivations, paged where the
provider pages), and only for the activations whose row changed does it confirm with getStatus —
so N waiters cost about ⌈N / page size⌉ + changes requests per tick. Without a batch action it polls
each activation, spread over the interval. How the rows are read is ``_scan.py``'s: a client alone on
a listing of one answer sweeps the rows against its waits as the answer is parsed; a paged listing and
the fleet's poller make a table of every row, compared wait by wait (``_compare``).

News reaches waiters by three routes — a getActiveActivations row exact enough to trust
(``Provider.codes_from_rows``), a getStatus (the scheduler's confirmation after a changed row or a
webhook push, or the user's own ``client.get_status()``), and the fleet poller's rows on Redis — and
all three end in :meth:`Scheduler.observe`, the one place where a code becomes news. Codes once
handed to a waiter are kept in one :class:`CodeBook`, so none is returned twice; it forgets an
activation when it is closed or after ``retention`` seconds, so memory follows the work in flight.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import itertools
import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import attrs

from . import _actions
from ._cancels import CancelOutcome, DeferredCancels
from ._clock import RETENTION, Recent
from ._deadlines import Deadlines
from ._exceptions import (
    ActivationCancelledError,
    ActivationNotFoundError,
    ClientClosedError,
    SMSActivateError,
    StoreError,
    WaitTimeoutError,
)
from ._models import ActivationStatus, StatusCode, StatusV2
from ._scan import SCAN_ACTIVE, Row, sweep_action
from ._store import FleetStore, Push, PushStore
from ._tasks import LoopJob

if TYPE_CHECKING:
    from ._clock import Clock
    from ._news import NumberNews
    from ._polling import PollBudget
    from ._session import Session
    from ._tasks import TaskHost

__all__ = ["CodeBook", "Scheduler", "WaitSettings"]

log = logging.getLogger("smsactivate_async")

_CLOSED_STATUSES = frozenset({"6", "8", "10"})
#: a fleet's poller is taken for late this long (seconds) past the time it promised its next scan by
_LATE_GRACE = 1.0
_NONE: frozenset[str] = frozenset()
#: confirmations of pushes an activation may have at once; then one per poll interval. A forged push
#: costs one of them: a flood of forgeries costs no more than polling the activation would, and a real
#: push after a forged one is confirmed (later, if forgeries spent them all), never dropped
_PUSH_BURST = 2


class CodeBook:
    """The codes already handed to a waiter, per activation: the one record of "seen".

    ``wait_for_code`` never returns a code twice (after ``set_status(id, 3)`` the old one is not
    news). An activation's record goes when it is closed (6 / 8), or ``retention`` seconds after it
    was last touched, so the book follows the work in flight, not the history.
    """

    __slots__ = ("_clock", "_codes", "retention")

    def __init__(self, clock: Clock, retention: float = RETENTION) -> None:
        self._clock = clock
        self._codes: collections.OrderedDict[int, tuple[float, frozenset[str]]] = collections.OrderedDict()
        self.retention = retention

    def __len__(self) -> int:
        return len(self._codes)

    def seen(self, activation_id: int) -> frozenset[str]:
        found = self._codes.get(activation_id)
        return found[1] if found is not None else _NONE

    def mark(self, activation_id: int, code: str) -> None:
        self._codes[activation_id] = (self._clock.now(), self.seen(activation_id) | {code})
        self._codes.move_to_end(activation_id)
        horizon = self._clock.now() - self.retention
        while self._codes and next(iter(self._codes.values()))[0] < horizon:
            self._codes.popitem(last=False)

    def forget(self, activation_id: int) -> None:
        if self._codes.pop(activation_id, None) is not None and not self._codes:
            self._codes = collections.OrderedDict()  # a dict never shrinks: give back its peak


class _Wakeup:
    """A one-shot wake-up, reset by making a new one. On asyncio a bare future (about a tenth of
    an ``asyncio.Event``, whose deque dominates a waiter's memory); elsewhere an ``anyio.Event``."""

    __slots__ = ("_event", "_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None
        self._event: anyio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._event = anyio.Event()
            await self._event.wait()
            return
        self._future = loop.create_future()
        await self._future


@attrs.define(eq=False, slots=True)
class _Waiter:
    activation_id: int
    deadline: float
    interval: float
    exclude: frozenset[str]
    voice: bool = False
    #: wall time the wait began (a shared poller's scan older than this has not seen it)
    since: float = 0.0
    wake: _Wakeup = attrs.field(factory=_Wakeup)
    code: str | None = None
    error: SMSActivateError | None = None

    @property
    def done(self) -> bool:
        return self.code is not None or self.error is not None


@attrs.define(eq=False, slots=True)
class _Track:
    """One activation that somebody waits on: its waiters and what the last scan said of it."""

    activation_id: int
    waiters: list[_Waiter] = attrs.field(factory=list)
    last_row: Row | None = None
    #: a webhook push not yet borne out by a getStatus
    pushed: bool = False
    #: confirmations of pushes this activation may still have now (refilled one per poll interval)
    push_tokens: float = float(_PUSH_BURST)
    push_tokens_at: float = float("-inf")
    #: a push came while one was being confirmed: confirm again if that one finds nothing
    push_again: bool = False
    #: the stamp of the last sweep that saw its row (``_scan.sweep_rows``)
    swept: int = 0

    @property
    def voice(self) -> bool:
        return any(w.voice for w in self.waiters)

    @property
    def exclude(self) -> frozenset[str]:
        """Codes that are news to none of its waiters."""
        waiters = self.waiters
        if len(waiters) == 1:
            return waiters[0].exclude
        return frozenset.intersection(*(w.exclude for w in waiters)) if waiters else _NONE


def _waited(track: _Track) -> bool:
    """Whether anyone still waits on ``track`` (a loop, not ``any()``: this runs for every waiter
    at every tick)."""
    for waiter in track.waiters:
        if not waiter.done:
            return True
    return False


@attrs.define
class WaitSettings:
    """What the scheduler needs to know of its client's options (shared: changing the client's
    ``poll_interval`` or ``early_cancel_window`` changes these)."""

    poll_interval: float
    early_cancel_window: float


def _compare(tracks: list[_Track], rows: dict[int, Row], unseen: set[int]) -> tuple[list[tuple[_Track, Row]], list[_Track]]:
    """The tracks whose row changed, with it, and the tracks gone from the rows (not those ``unseen``)."""
    news, gone = [], []
    for track in tracks:
        if unseen and track.activation_id in unseen:
            continue
        row = rows.get(track.activation_id)
        if row is None:
            if track.waiters:  # (all of them may have left while the rows were read)
                gone.append(track)  # gone from the active list: closed, confirm how
            continue
        if row != track.last_row:
            news.append((track, row))
    return news, gone


class Scheduler:
    """Waits for every activation of one client: depends on the session, the clock, the settings and
    the client's task host, never on the client itself (which composes it)."""

    def __init__(self, session: Session, clock: Clock, settings: WaitSettings, host: TaskHost,
                 news: NumberNews, budget: PollBudget | None = None) -> None:
        self._session = session
        self._news = news
        #: how often the spare request budget lets the poller tick (None: at the configured interval)
        self._budget = budget
        self._clock = clock
        self._settings = settings
        self._host = host
        self._tracks: dict[int, _Track] = {}
        #: the same tracks by their ids as the wire spells them, for the sweep of the rows
        self._wire_ids: dict[str, _Track] = {}
        self._stamps = itertools.count(1)
        #: waiters whose wait has ended (a code, an error) that have not left yet
        self._ended = 0
        self._poller = LoopJob("smsactivate_async poller")
        self._urgent: set[int] = set()
        self._last_tick = float("-inf")
        #: wakes each waiter at its deadline (a task of its own: a slow tick cannot hold a deadline)
        self.deadlines: Deadlines[_Waiter] = Deadlines(
            clock, host, active=lambda: bool(self._live) and not self.closed,
            registered=lambda waiter: _registered(self, waiter))
        self._intervals: collections.Counter[float] = collections.Counter()
        self._live = 0
        #: cancels refused as too early (or not sent), carried out by the poller when due
        self.cancels = DeferredCancels(session, clock, lambda: settings.early_cancel_window,
                                       wake=self._wake_poller, closed_number=self.closed_number)
        #: codes already handed out, per activation: never returned twice
        self.codes = CodeBook(clock)
        self.ticks = 0
        #: scans this client made as the account's poller (Redis store)
        self.fleet_scans = 0
        #: codes taken from a getActiveActivations row without a confirming getStatus
        self.row_deliveries = 0
        #: webhook pushes that cost no request: one was already being confirmed, or was within an interval
        self.pushes_coalesced = 0
        #: with webhooks (``client.webhook_app()``): the polling interval while pushes arrive
        self.fallback_interval: float | None = None
        self._last_push = float("-inf")
        #: the fleet's poller: the wall time of the newest scan read, and when (clock) it is late for its
        #: next one (``None``: no promise known)
        self._rows_at = 0.0
        self._rows_due: float | None = None
        #: as the fleet's poller: how long its last scan took (pages queued behind the account's budget)
        self._scan_took = 0.0
        self._account_rows = 0
        self._leading = False
        #: activation id → when a push held back (out of confirmations) is confirmed
        self._push_later: dict[int, float] = {}
        #: pushes for ids nobody waited on yet: a wait that starts soon after is confirmed at once
        self._pushed = Recent(clock, retention=RETENTION, limit=10_000)
        self.closed = False
        # whoever asked, the waiters learn what a getStatus said; a closed number is forgotten
        news.on_status(self.observe_status)
        news.on_closed(self._forget_closed)

    # --- waiting ------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Waiters registered now."""
        return self._live

    async def wait(self, activation_id: int, timeout: float, poll_interval: float | None, voice: bool = False) -> str:
        if self.closed:
            raise ClientClosedError("the client is closed", action="getStatus")
        interval = poll_interval if poll_interval is not None else self._settings.poll_interval
        journal = self._session.journal
        waiter = _Waiter(activation_id, self._clock.now() + timeout, interval, self.codes.seen(activation_id), voice,
                         journal.wall() if journal.store.shared else 0.0)
        self._register(waiter)
        try:
            # No cancel scope per waiter (memory): the client's deadline watcher wakes it on time.
            while not waiter.done and self._clock.now() < waiter.deadline:
                if waiter.wake.is_set():
                    waiter.wake = _Wakeup()
                await waiter.wake.wait()
        finally:
            self._leave(waiter)
        if waiter.code is not None:
            self.codes.mark(activation_id, waiter.code)
            return waiter.code
        if waiter.error is not None:
            raise waiter.error
        raise WaitTimeoutError(
            f"no code for activation {activation_id} within {timeout:g}s",
            activation_id=activation_id, action="getStatus",
        )

    def _register(self, waiter: _Waiter) -> None:
        activation_id = waiter.activation_id
        track = self._tracks.get(activation_id)
        if track is None:
            track = self._tracks[activation_id] = self._wire_ids[str(activation_id)] = _Track(activation_id)
        track.waiters.append(waiter)
        track.last_row = None  # a new waiter may not exclude what the others do: look again
        self._live += 1
        self._intervals[waiter.interval] += 1
        if self._pushed.pop(activation_id) is not None:
            track.pushed = True
            self._urgent.add(activation_id)  # pushed before anyone waited: confirm now, not at the next scan
        self._wake_poller(min(waiter.deadline, self._clock.now() + waiter.interval) if activation_id not in self._urgent
                          else float("-inf"))
        self.deadlines.add(waiter)

    def _leave(self, waiter: _Waiter) -> None:
        track = self._tracks.get(waiter.activation_id)
        if track is None or waiter not in track.waiters:
            return
        track.waiters.remove(waiter)
        if waiter.done:
            self._ended -= 1
        self._live -= 1
        self._intervals[waiter.interval] -= 1
        if not self._intervals[waiter.interval]:
            del self._intervals[waiter.interval]
        if not track.waiters:
            del self._tracks[waiter.activation_id]
            del self._wire_ids[str(waiter.activation_id)]
            self._urgent.discard(waiter.activation_id)
            self._push_later.pop(waiter.activation_id, None)
        self.deadlines.prune(self._live)

    def notify(self, activation_id: int) -> None:
        """News about an activation from outside (a webhook): confirm it now, not at the next tick.

        Only a push that the confirmation bears out (a code, a cancel) counts as webhooks arriving,
        so a forged push cannot slow the polling down."""
        track = self._tracks.get(activation_id)
        if track is None:
            self._pushed.add(activation_id)
            return
        if track.pushed:
            # One confirmation at a time per activation; if that one finds nothing (it may have left
            # before this push's code came), this push is confirmed after it.
            track.push_again = True
            self.pushes_coalesced += 1
            return
        now = self._clock.now()
        wait = self._push_token(track, now)
        if wait > 0:
            # Out of confirmations (a flood, forged most likely): this one waits for the next, never dropped.
            self.pushes_coalesced += 1
            due = now + wait
            if due < self._push_later.get(activation_id, float("inf")):
                self._push_later[activation_id] = due
                self._wake_poller(due)
            return
        track.pushed = True
        self._urgent.add(activation_id)
        self._wake_poller(float("-inf"))

    def _push_token(self, track: _Track, now: float) -> float:
        """Take one of the activation's confirmations: 0, or the seconds until one is there (none taken)."""
        refill = min(self._intervals, default=self._settings.poll_interval)  # polling's cost, not the fallback's
        tokens = min(float(_PUSH_BURST), track.push_tokens + (now - track.push_tokens_at) / refill) \
            if track.push_tokens_at != float("-inf") else float(_PUSH_BURST)
        track.push_tokens_at = now
        if tokens >= 1.0:
            track.push_tokens = tokens - 1.0
            return 0.0
        track.push_tokens = tokens
        return (1.0 - tokens) * refill

    def _pushes_due(self, now: float) -> None:
        """Pushes held back for a confirmation whose time has come: confirm them now."""
        for activation_id, due in list(self._push_later.items()):
            if due > now:
                continue
            del self._push_later[activation_id]
            track = self._tracks.get(activation_id)
            if track is not None:
                self.notify(activation_id)

    def push_borne_out(self) -> None:
        """A push was followed by news (webhooks work): poll at the fallback interval while they do."""
        self._last_push = self._clock.now()

    def pushes_stopped(self) -> None:
        """The webhook receiver stopped: poll at the waiters' own interval from now on (until a push
        is borne out again)."""
        self._last_push = float("-inf")
        if self._tracks:
            self._wake_poller(self._clock.now())

    @property
    def pushes_arriving(self) -> bool:
        """Whether webhooks are in use and one arrived within twice the fallback interval."""
        fallback = self.fallback_interval
        return fallback is not None and self._clock.now() - self._last_push < 2 * fallback

    # --- news -----------------------------------------------------------------------------------

    def observe(self, activation_id: int, *, code: str | None = None, error: SMSActivateError | None = None) -> None:
        """News about an activation — from a scan's row, a getStatus (the scheduler's or the
        user's), the fleet's poller — handed to its waiters: the one place a code becomes news.

        A waiter takes a code it has not been given before; an error ends every waiter of it."""
        if code is not None:
            self._news.code(activation_id, code)
        track = self._tracks.get(activation_id)
        if track is None:
            return
        for waiter in track.waiters:
            if waiter.done or (code is not None and code in waiter.exclude):
                continue
            waiter.code, waiter.error = code, error
            self._ended += 1
            waiter.wake.set()

    def observe_status(self, activation_id: int, status: ActivationStatus) -> None:
        """What a getStatus said, whoever asked: a fresh code, or a cancel, ends the waits."""
        if status.status is StatusCode.STATUS_OK and status.code is not None:
            self.observe(activation_id, code=status.code)
        elif status.status is StatusCode.STATUS_CANCEL:
            self.observe(activation_id, error=ActivationCancelledError(
                f"activation {activation_id} was cancelled (or finished) while waiting for a code",
                code="STATUS_CANCEL", action="getStatus"))

    def closed_number(self, activation_id: int, state: str = "expired") -> None:
        """An activation was closed without a setStatus of ours saying so: ``"expired"`` (found closed
        at the server: its lifetime ended, or someone else closed it), ``"finished"`` (a refused
        cancel's finish that failed, a finish that found it closed): the news goes out
        (:class:`NumberNews`), as the session sends it for every setStatus that succeeded."""
        self._news.closed(activation_id, state)

    def _forget_closed(self, activation_id: int, state: str) -> None:
        """Nothing of a closed activation is kept."""
        self.codes.forget(activation_id)
        self.cancels.forget(activation_id)
        self._pushed.pop(activation_id)

    # --- the poller (the client's own task) -------------------------------------------------

    def _wake_poller(self, when: float) -> None:
        """Make sure the poller runs, and that it looks again by ``when`` (clock time)."""
        if not self.closed:
            self._poller.wake(self._host, self._poll_loop, when)

    def _interval(self, adaptive: bool = True) -> float:
        """The interval between ticks now; ``adaptive=False``: the longest it can be (the budget's
        choice left out), for a promise that holds whatever the budget does."""
        interval = min(self._intervals, default=self._settings.poll_interval)
        if adaptive and self._budget is not None and self._tracks:
            if self._leading:  # the fleet's poller: it scans the whole account, for every client
                interval = self._budget.interval(interval, self._pages(self._account_rows), for_account=True)
            else:
                interval = self._budget.interval(interval, self._tick_cost())
        if self.fallback_interval is not None and self.pushes_arriving:
            return max(interval, self.fallback_interval)  # pushes bring the news; polling is the safety net
        return interval

    def _tick_cost(self) -> int:
        """Requests one tick costs: a scan of pages of the active list, or a getStatus per waited number."""
        if not self._session.provider.has_active_activations:
            return len(self._tracks)
        return self._pages(len(self._tracks))

    def _pages(self, rows: int) -> int:
        page = self._session.provider.page_size
        return max(1, math.ceil(rows / page)) if page else 1

    async def _poll_loop(self) -> None:
        with self._poller.running():
            while self._has_work():
                while self._has_work():
                    try:
                        await self._step()
                    except SMSActivateError as exc:
                        log.warning("poller: %s; going on", exc)
                        await self._clock.sleep(min(1.0, self._interval()))
                await self.resign()  # (a wait begun meanwhile found this loop running: go on for it)

    def _has_work(self) -> bool:
        return bool(self._tracks or self.cancels.pending) and not self.closed

    async def resign(self) -> None:
        """Nothing left to poll for (or the client closes): as the fleet's poller, hand the lease back,
        so that another client leads at its next tick instead of scanning alone until it runs out."""
        fleet = self._fleet
        if not self._leading or fleet is None:
            return
        self._leading = False
        try:
            await fleet.resign(self._session.journal.owner)
        except StoreError as exc:
            log.info("the fleet's poller lease not handed back (%s); it runs out by itself", exc.code)

    async def _step(self) -> None:
        now = self._clock.now()
        self.deadlines.expire(now)  # an injected clock may run ahead of the event loop's
        if self.cancels.next_due() <= now:
            await self.cancels.run_due()
            return
        if self._push_later:
            self._pushes_due(now)
        if self._urgent:
            urgent, self._urgent = self._urgent, set()
            await self._confirm_many([self._tracks[i] for i in urgent if i in self._tracks])
            return
        due = self._last_tick + self._interval()
        if self._rows_due is not None and self._rows_due > self._last_tick:
            due = min(due, self._rows_due)  # the fleet's poller is late unless its next scan came: read, or scan
        if self._tracks and now >= due:
            self._last_tick = now
            await self._tick()
            return
        await self._poller.sleep(now, min(
            due if self._tracks else float("inf"),
            self.cancels.next_due(),
            min(self._push_later.values(), default=float("inf")),
        ))

    async def _tick(self) -> None:
        self.ticks += 1
        if self._ended:  # some wait has ended and its waiter has not left yet: leave it out
            tracks = [track for track in self._tracks.values() if _waited(track)]
        else:
            tracks = list(self._tracks.values())
        if not tracks:
            return
        provider = self._session.provider
        if not provider.has_active_activations:
            await self._poll_each(tracks)
            return
        try:
            if self._fleet is None and provider.page_size is None:
                news, changed = await self._sweep(tracks)
            else:
                news, changed = _compare(tracks, *await self._rows(tracks))
        except SMSActivateError as exc:
            log.warning("poll tick: getActiveActivations failed (%s); polling each activation", exc.code)
            await self._poll_each(tracks)
            return
        trust_rows = provider.codes_from_rows
        for track, row in news:
            if row == track.last_row:
                continue  # another tick acted on it meanwhile (the journal's write below awaits)
            track.last_row = row
            status, code, exact = row
            exclude = track.exclude
            if code is not None and trust_rows and exact and not exclude and not track.voice \
                    and status not in ("3", *_CLOSED_STATUSES):
                # The row is enough: no confirming getStatus.
                self.row_deliveries += 1
                await self._session.journal.record_code("activation", track.activation_id, code)
                self.observe(track.activation_id, code=code)
            elif (code is not None and code not in exclude) or status == "2" or status in _CLOSED_STATUSES or track.voice:
                changed.append(track)
        await self._confirm_many(changed)

    async def _sweep(self, tracks: list[_Track]) -> tuple[Iterable[tuple[_Track, Row]], list[_Track]]:
        """One answer holds every row (a client alone, a listing not paged): read it against the
        waited activations as it is parsed (``_scan.sweep_rows``). The rows that changed, and the waited
        activations gone from the list."""
        waited = self._wire_ids.copy() if not self._ended else {str(t.activation_id): t for t in tracks}
        sweep = await self._session.call(sweep_action(waited, self._stamps), {})
        gone = [] if sweep.seen == len(waited) else \
            [t for t in waited.values() if t.swept != sweep.stamp and t.waiters]  # (they may have left meanwhile)
        return sweep.news.values(), gone

    async def _rows(self, tracks: list[_Track]) -> tuple[dict[int, Row], set[int]]:
        """This tick's rows, and the waited ids they cannot speak for yet.

        With a Redis store the account has one poller: the client holding the poller's lease scans
        the whole account and publishes the rows, with the time it promises its next scan by; the
        others read theirs from Redis. A poller left with no waiters hands the lease back; a reader
        whose poller is a second past its promise (it died) scans alone until its lease runs out and
        the next client to tick takes over.
        """
        fleet = self._fleet
        if fleet is None:
            return await self._scan(tracks), set()
        wanted = {t.activation_id for t in tracks}
        journal = self._session.journal
        interval = self._interval()
        try:
            # The lease and the promise hold for the longest interval (the budget may lengthen the next
            # one) plus a scan as slow as the last: at the account's limit, pages wait in its queue.
            longest = self._interval(adaptive=False)
            self._leading = await fleet.lead(journal.owner, ttl=longest + 2 * self._scan_took + 1.0)
            if self._leading:
                self._rows_due = None  # this client is the poller now
                started = journal.wall()
                rows = await self._scan(None)  # the whole account: the others wait on it too
                self.fleet_scans += 1
                published = journal.wall()
                self._scan_took = max(0.0, published - started)
                self._account_rows = len(rows)
                promise = longest + self._scan_took
                # held from now: the lease taken before the scan did not know how long it would take
                self._leading = await fleet.lead(journal.owner, ttl=longest + 2 * self._scan_took + 1.0)
                await fleet.publish_rows(rows, started, published + promise)
                if isinstance(fleet, PushStore):  # the others read it now, not up to an interval later
                    await fleet.publish_push(Push(journal.owner, "rows", 0, promise))
                return rows, set()
            scanned_at, due, rows = await fleet.read_rows(sorted(wanted))
        except StoreError as exc:
            log.info("poll tick: the fleet's poller is unreachable (%s); scanning alone", exc.code)
            self._rows_due = None
            self._leading = False
            return await self._scan(tracks), set()
        now = self._clock.now()
        if scanned_at > self._rows_at or self._rows_due is None:
            self._rows_at = max(self._rows_at, scanned_at)
            if not due:  # no promise: nothing published yet (the poller's first scan is on its way), or
                # a poller of an older version: an interval from now, or two from its scan
                due = scanned_at + 2 * interval if scanned_at else journal.wall() + interval
            self._rows_due = now + (due - journal.wall()) + _LATE_GRACE
        if now > self._rows_due:
            # The poller is late for the scan it promised (it may have died with the webhook receiver in
            # its process): do not wait for its lease to run out. A poller that is only slow promised more.
            return await self._scan(tracks), set()
        # a waiter that began after the poller's scan is not in it, and that says nothing yet
        # (a track's waiters may all have left while the rows were read: it is nobody's to wait for)
        unseen = {t.activation_id for t in tracks
                  if t.activation_id not in rows and t.waiters and min(w.since for w in t.waiters) > scanned_at}
        return rows, unseen

    def rows_published(self) -> None:
        """The fleet's poller published a scan: read it now (with the time it promised the next by)."""
        now = self._clock.now()
        if self._tracks and not self.closed:
            self._last_tick = float("-inf")
            self._wake_poller(now)

    @property
    def _fleet(self) -> FleetStore | None:
        store = self._session.journal.store
        if store.shared and self._session.journal.opened and isinstance(store, FleetStore):
            return store
        return None

    async def _scan(self, tracks: list[_Track] | None) -> dict[int, Row]:
        """The active rows; paging stops once every track's activation has been seen (``None``: all)."""
        if self._session.provider.page_size is None:
            return await self._session.call(SCAN_ACTIVE, {})  # one answer, every row: no set to keep
        rows: dict[int, Row] = {}
        missing = None if tracks is None else {t.activation_id for t in tracks}
        pages = self._session.pages(SCAN_ACTIVE)
        try:
            async for chunk in pages:
                rows.update(chunk)
                if missing is not None:
                    missing.difference_update(chunk)
                    if not missing:
                        break
        finally:
            await pages.aclose()
        return rows

    async def _poll_each(self, tracks: list[_Track]) -> None:
        """No batch action: one getStatus per activation, spread over the interval."""
        gap = self._interval() / max(1, len(tracks))
        async with anyio.create_task_group() as group:
            for index, track in enumerate(tracks):
                if index:
                    await self._clock.sleep(gap)
                group.start_soon(self._confirm, track)

    async def _confirm_many(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        async with anyio.create_task_group() as group:
            for track in tracks:
                group.start_soon(self._confirm, track)

    async def _confirm(self, track: _Track) -> None:
        """Ask for one activation's state; :meth:`observe` hands what it says to the waiters."""
        activation_id = track.activation_id
        try:
            # the session tells observe_status what came back (so does a user's own get_status)
            status = await self._session.call(_actions.GET_STATUS, {"activation_id": activation_id})
            fresh = status.status is StatusCode.STATUS_OK and status.code is not None \
                and status.code not in track.exclude
            if not fresh and track.voice and status.status is StatusCode.STATUS_WAIT_CODE:
                v2: StatusV2 = await self._session.call(_actions.GET_STATUS_V2, {"activation_id": activation_id})
                if v2.code is not None:
                    fresh = True
                    self.observe(activation_id, code=v2.code)
        except ActivationNotFoundError as exc:
            self.observe(activation_id, error=exc)
            return
        except SMSActivateError as exc:
            log.info("confirming activation %s failed (%s); will retry next tick", activation_id, exc.code)
            track.last_row = None  # so that the next tick sees the change again
            if track.pushed:
                track.pushed = track.push_again = False
                self.notify(activation_id)  # the push is still news: confirmed again (as its budget allows)
            return
        if track.pushed:
            track.pushed = False
            borne_out = fresh or status.status is StatusCode.STATUS_CANCEL
            if borne_out:
                self._last_push = self._clock.now()  # a push borne out: webhooks work
            again, track.push_again = track.push_again, False
            if again and not borne_out:
                self.notify(activation_id)  # a push came while this one was on the wire: its turn

    # --- cancelling ---------------------------------------------------------------------------

    # --- deferred cancels (``_cancels``): the scheduler's poller carries out the due ones ----------

    async def cancel(self, activation_id: int) -> bool:
        """Cancel now, or keep the cancel for when the early-cancel window has passed.

        Returns ``True`` if the activation is closed now, ``False`` if the cancel is pending.
        """
        return await self.cancels.cancel(activation_id)

    async def cancel_number(self, activation_id: int) -> CancelOutcome:
        """Cancel now, or keep the cancel for later (:meth:`DeferredCancels.cancel_number`)."""
        return await self.cancels.cancel_number(activation_id)

    @property
    def pending_cancels(self) -> list[int]:
        return self.cancels.ids()

    def cancel_due(self, activation_id: int) -> float | None:
        """When (clock time) the deferred cancel of an activation will be tried, if one is pending."""
        return self.cancels.due(activation_id)

    def wall_time(self, clock_time: float) -> _dt.datetime:
        """A time of the client's clock as an aware UTC ``datetime``."""
        return self.cancels.wall_time(clock_time)

    async def run_due_cancels(self) -> None:
        await self.cancels.run_due()

    async def drain(self, timeout: float | None = None) -> list[int]:
        """Carry out every pending cancel, waiting for its window, at most ``timeout`` seconds."""
        return await self.cancels.drain(timeout)

    def deferred_cancels(self) -> dict[int, _dt.datetime]:
        """The cancels kept for later (too early, or the server unreachable): id → when due (aware UTC)."""
        return self.cancels.deferred()

    def waited_ids(self) -> list[int]:
        """The activations somebody waits on now."""
        return [activation_id for activation_id, track in self._tracks.items() if _waited(track)]


    def close(self) -> None:
        """The client is closing: every waiter ends now with :class:`ClientClosedError`."""
        self.closed = True
        for track in list(self._tracks.values()):
            self.observe(track.activation_id, error=ClientClosedError(
                f"the client was closed while waiting for activation {track.activation_id}: the number is still "
                "open and not refunded (close it with set_status(id, 8) from a client that is open, or let it "
                "expire; a persistent journal's recover() closes it)",
                action="getStatus", activation_id=track.activation_id, outcome="left_open", reason="closing"))

    def reopen(self) -> None:
        self.closed = False


def _registered(scheduler: Scheduler, waiter: _Waiter) -> bool:
    track = scheduler._tracks.get(waiter.activation_id)
    return track is not None and waiter in track.waiters

