"""Waiting for codes: one scheduler per client serves every waiter.

Each poll tick the scheduler asks once for the state of every activation (getActiveActivations,
paged where the provider pages), and only for the activations whose row changed does it confirm
with getStatus — so N waiters cost about ⌈N / page size⌉ + changes requests per tick. Without a
batch action it polls each activation, spread over the interval.

The scheduler needs no background task: the waiters take turns driving it. One waiter is the
driver; when it leaves (code, timeout, cancellation) it hands the role to exactly one other
waiter, so nothing wakes the crowd and nothing runs when no one waits. Cancels the server
refuses as too early are kept and retried by the driver once the window has passed, and
``aclose()`` waits for them.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs

from . import _actions
from ._actions import Action
from ._convert import to_id
from ._exceptions import (
    ActivationCancelledError,
    ActivationNotFoundError,
    ActivationStateError,
    BadRequestError,
    EarlyCancelDeniedError,
    SMSActivateError,
    StoreError,
    WaitTimeoutError,
)
from ._models import ActivationStatus, RentSms, StatusCode, StatusV2
from ._parse import active_rows

if TYPE_CHECKING:
    from ._clock import Clock
    from ._session import Session

__all__ = ["Scheduler", "WaitSettings"]

log = logging.getLogger("smsactivate_async")

_CLOSED_STATUSES = frozenset({"6", "8", "10"})
_NONE: frozenset[str] = frozenset()


#: a getActiveActivations row as the scheduler sees it: (status, code, whether the code is exact)
Row = tuple[str | None, str | None, bool]


def _scan_rows(answer: Any) -> dict[int, Row]:
    """getActiveActivations rows as ``id → (status, code, exact)``: light enough for 10 000 rows a tick.

    A code is exact when the row gives it as one string (the live shape); the documented array of
    codes says neither which is the newest nor whether it is stale, so it only means "look".
    """
    result: dict[int, Row] = {}
    for row in active_rows(answer):
        code = row.get("smsCode")
        exact = not isinstance(code, list)
        if not exact:
            code = code[-1] if code else None
        status = row.get("activationStatus")
        result[to_id(row["activationId"])] = (
            None if status is None else str(status),
            None if code in (None, "") else str(code),
            exact,
        )
    return result


#: The scheduler's own view of getActiveActivations (not a public action: it skips the models).
SCAN_ACTIVE: Action[dict[int, Row]] = Action(
    _actions.GET_ACTIVE_ACTIVATIONS.wire, "scan_active_activations", _actions.GET_ACTIVE_ACTIVATIONS.params,
    "dict", _scan_rows, "getActiveActivations as id → (status, code), for the scheduler.",
    empty_on=_actions.GET_ACTIVE_ACTIVATIONS.empty_on, empty=dict,
)


def _remember(recent: collections.OrderedDict[int, None], key: int, limit: int = 10_000) -> None:
    recent[key] = None
    recent.move_to_end(key)
    if len(recent) > limit:
        recent.popitem(last=False)


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


@attrs.define(eq=False)
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
    last_row: Row | None = None

    @property
    def done(self) -> bool:
        return self.code is not None or self.error is not None


@attrs.define
class _PendingCancel:
    activation_id: int
    due: float
    attempts: int = 0


@attrs.define
class WaitSettings:
    """What the scheduler needs to know of its client's options (shared: changing the client's
    ``poll_interval`` or ``early_cancel_window`` changes these)."""

    poll_interval: float
    early_cancel_window: float


class Scheduler:
    """Waits for every activation of one client: depends on the session, the clock and the
    settings, never on the client itself (which composes it)."""

    def __init__(self, session: Session, clock: Clock, settings: WaitSettings) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings
        self._waiters: dict[int, list[_Waiter]] = {}
        self._driver: _Waiter | None = None
        self._kick = anyio.Event()
        self._urgent: set[int] = set()
        self._last_tick = float("-inf")
        self._deadlines: list[tuple[float, int, _Waiter]] = []
        self._order = itertools.count()
        self._deadline_moved = anyio.Event()
        self._cancels: dict[int, _PendingCancel] = {}
        #: codes already handed out, per activation: never returned twice
        self.delivered: dict[int, set[str]] = collections.defaultdict(set)
        self.ticks = 0
        #: scans this client made as the account's poller (Redis store)
        self.fleet_scans = 0
        #: codes taken from a getActiveActivations row without a confirming getStatus
        self.codes_from_rows = 0
        #: with webhooks (``client.webhook_app()``): the polling interval while pushes arrive
        self.fallback_interval: float | None = None
        self._last_push = float("-inf")
        #: pushes for ids nobody waited on yet (bounded): a wait that starts soon after is confirmed at once
        self._pushed: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._rent_pushed: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._rent_kicks: dict[int, anyio.Event] = {}
        self._push_pending: set[int] = set()

    # --- waiting ------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return sum(len(ws) for ws in self._waiters.values())

    async def wait(self, activation_id: int, timeout: float, poll_interval: float | None, voice: bool = False) -> str:
        interval = poll_interval if poll_interval is not None else self._settings.poll_interval
        seen = self.delivered.get(activation_id)
        waiter = _Waiter(activation_id, self._clock.now() + timeout, interval, frozenset(seen) if seen else _NONE, voice,
                         self._session.journal.wall() if self._session.journal.store.shared else 0.0)
        self._waiters.setdefault(activation_id, []).append(waiter)
        if self._pushed.pop(activation_id, False) is None:
            self._push_pending.add(activation_id)
            self._urgent.add(activation_id)  # pushed before anyone waited: confirm now, not at the next scan
        heapq.heappush(self._deadlines, (waiter.deadline, next(self._order), waiter))
        if self._deadlines[0][2] is waiter:
            self._deadline_moved.set()
        try:
            while not waiter.done and self._clock.now() < waiter.deadline:
                if self._driver is None:
                    await self._drive(waiter)
                    continue
                # No cancel scope per waiter (memory): the driver's watcher wakes us at our deadline.
                if waiter.wake.is_set():
                    waiter.wake = _Wakeup()
                await waiter.wake.wait()
        finally:
            self._leave(waiter)
        if waiter.error is not None:
            raise waiter.error
        if waiter.code is None:
            raise WaitTimeoutError(
                f"no code for activation {activation_id} within {timeout:g}s",
                activation_id=activation_id, action="getStatus",
            )
        self.delivered[activation_id].add(waiter.code)
        return waiter.code

    def _leave(self, waiter: _Waiter) -> None:
        group = self._waiters.get(waiter.activation_id)
        if group is not None:
            if waiter in group:
                group.remove(waiter)
            if not group:
                del self._waiters[waiter.activation_id]
                self._push_pending.discard(waiter.activation_id)
        if self._driver is waiter:
            self._driver = None
            self._hand_over()

    def _hand_over(self) -> None:
        for group in self._waiters.values():
            for other in group:
                if not other.done:
                    other.wake.set()
                    return

    def notify(self, activation_id: int) -> None:
        """News about an activation from outside (a webhook): confirm it now, not at the next tick.

        Only a push that the confirmation bears out (a code, a cancel) counts as webhooks arriving,
        so a forged push cannot slow the polling down."""
        if activation_id in self._waiters:
            self._push_pending.add(activation_id)
            self._urgent.add(activation_id)
            self._kick.set()
        else:
            _remember(self._pushed, activation_id)

    def notify_rent(self, rent_id: int) -> None:
        """News about a rent from outside (a webhook): its waiter asks now."""
        kick = self._rent_kicks.get(rent_id)
        if kick is not None:
            kick.set()
        else:
            _remember(self._rent_pushed, rent_id)

    @property
    def pushes_arriving(self) -> bool:
        """Whether webhooks are in use and one arrived within twice the fallback interval."""
        fallback = self.fallback_interval
        return fallback is not None and self._clock.now() - self._last_push < 2 * fallback

    # --- driving ------------------------------------------------------------------------------

    def _interval(self) -> float:
        interval = min((w.interval for ws in self._waiters.values() for w in ws), default=self._settings.poll_interval)
        if self.fallback_interval is not None and self.pushes_arriving:
            return max(interval, self.fallback_interval)  # pushes bring the news; polling is the safety net
        return interval

    async def _watch_deadlines(self) -> None:
        """While a driver drives: wake every waiter whose deadline has come, even mid-tick."""
        while True:
            now = self._clock.now()
            heap = self._deadlines
            while heap and (heap[0][2].done or heap[0][0] <= now):
                _, _, waiter = heapq.heappop(heap)
                waiter.wake.set()
            self._deadline_moved = anyio.Event()
            with anyio.move_on_after(heap[0][0] - now if heap else 3600.0):
                await self._deadline_moved.wait()

    async def _drive(self, me: _Waiter) -> None:
        self._driver = me
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch_deadlines)
                await self._drive_ticks(me)
                group.cancel_scope.cancel()
        finally:
            if self._driver is me:
                self._driver = None
                self._hand_over()

    async def _drive_ticks(self, me: _Waiter) -> None:
        while not me.done and self._clock.now() < me.deadline:
            now = self._clock.now()
            due = self._last_tick + self._interval()
            if self._urgent:
                urgent, self._urgent = self._urgent, set()
                await self._confirm_many([w for i in urgent for w in self._waiters.get(i, ())])
                continue
            if now >= due:
                self._last_tick = now
                # A stuck server must not hold this waiter past its own deadline.
                with anyio.move_on_after(max(0.0, me.deadline - now)):
                    await self._tick()
                continue
            self._kick = anyio.Event()
            with anyio.move_on_after(min(due, me.deadline) - now):
                await self._kick.wait()

    async def _tick(self) -> None:
        self.ticks += 1
        await self.run_due_cancels()
        waiters = [w for ws in self._waiters.values() for w in ws if not w.done]
        if not waiters:
            return
        provider = self._session.provider
        if not provider.has_active_activations:
            await self._poll_each(waiters)
            return
        try:
            rows, unseen = await self._rows(waiters)
        except SMSActivateError as exc:
            log.warning("poll tick: getActiveActivations failed (%s); polling each activation", exc.code)
            await self._poll_each(waiters)
            return
        changed = []
        from_rows: list[tuple[int, str]] = []
        for waiter in waiters:
            if waiter.activation_id in unseen:
                continue
            row = rows.get(waiter.activation_id)
            if row is None:
                changed.append(waiter)  # gone from the active list: closed, confirm how
                continue
            if row == waiter.last_row:
                continue
            waiter.last_row = row
            status, code, exact = row
            if code is not None and code not in waiter.exclude and exact and not waiter.exclude and not waiter.voice \
                    and status not in ("3", *_CLOSED_STATUSES) and self._session.provider.codes_from_rows:
                from_rows.append((waiter.activation_id, code))  # the row is enough: no confirming getStatus
            elif (code is not None and code not in waiter.exclude) or status == "2" or status in _CLOSED_STATUSES:
                changed.append(waiter)
            elif waiter.voice:
                changed.append(waiter)
        for activation_id, code in from_rows:
            self.codes_from_rows += 1
            await self._session.journal.record_code("activation", activation_id, code)
            self._settle(activation_id, code=code)
        await self._confirm_many(changed)

    async def _rows(self, waiters: list[_Waiter]) -> tuple[dict[int, Row], set[int]]:
        """This tick's rows, and the waited ids they cannot speak for yet.

        With a Redis store the account has one poller: the client holding the poller's lease scans
        the whole account and publishes the rows; the others read theirs from Redis. If the poller
        stops (it died, or has no waiters left), its lease runs out within two ticks and the next
        client to tick takes over.
        """
        wanted = {w.activation_id for w in waiters}
        fleet = self._fleet
        if fleet is None:
            return await self._scan(wanted), set()
        journal = self._session.journal
        interval = self._interval()
        try:
            if await fleet.lead(journal.owner, ttl=2 * interval + 0.5):
                started = journal.wall()
                rows = await self._scan(None)  # the whole account: the others wait on it too
                self.fleet_scans += 1
                await fleet.publish_rows(rows, started)
                return rows, set()
            scanned_at, rows = await fleet.read_rows(sorted(wanted))
        except StoreError as exc:
            log.info("poll tick: the fleet's poller is unreachable (%s); scanning alone", exc.code)
            return await self._scan(wanted), set()
        if journal.wall() - scanned_at > 2 * interval + 1.0:
            return await self._scan(wanted), set()  # the poller is late: do not wait on it
        # a waiter that began after the poller's scan is not in it, and that says nothing yet
        unseen = {w.activation_id for w in waiters if w.activation_id not in rows and w.since > scanned_at}
        return rows, unseen

    @property
    def _fleet(self) -> Any:
        store = self._session.journal.store
        return store if store.shared and self._session.journal.opened else None

    async def _scan(self, wanted: set[int] | None) -> dict[int, Row]:
        """The active rows; paging stops once every waited-for activation has been seen (``None``: all)."""
        rows: dict[int, Row] = {}
        missing = set(wanted) if wanted is not None else None
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

    async def _poll_each(self, waiters: list[_Waiter]) -> None:
        """No batch action: one getStatus per activation, spread over the interval."""
        gap = self._interval() / max(1, len(waiters))
        async with anyio.create_task_group() as group:
            for index, waiter in enumerate(waiters):
                if index:
                    await self._clock.sleep(gap)
                group.start_soon(self._confirm, waiter)

    async def _confirm_many(self, waiters: list[_Waiter]) -> None:
        by_id: dict[int, list[_Waiter]] = {}
        for waiter in waiters:
            by_id.setdefault(waiter.activation_id, []).append(waiter)
        if not by_id:
            return
        async with anyio.create_task_group() as group:
            for group_waiters in by_id.values():
                group.start_soon(self._confirm, group_waiters[0])

    async def _confirm(self, waiter: _Waiter) -> None:
        """Ask for one activation's state and settle every waiter of it."""
        activation_id = waiter.activation_id
        try:
            status = await self._session.call(_actions.GET_STATUS, {"activation_id": activation_id})
            code = self._fresh_code(status, waiter)
            if code is None and waiter.voice and status.status is StatusCode.STATUS_WAIT_CODE:
                v2: StatusV2 = await self._session.call(_actions.GET_STATUS_V2, {"activation_id": activation_id})
                code = v2.code if v2.code not in waiter.exclude else None
        except ActivationNotFoundError as exc:
            self._settle(activation_id, error=exc)
            return
        except SMSActivateError as exc:
            log.info("confirming activation %s failed (%s); will retry next tick", activation_id, exc.code)
            for other in self._waiters.get(activation_id, ()):
                other.last_row = None  # so that the next tick sees the change again
            return
        if activation_id in self._push_pending:
            self._push_pending.discard(activation_id)
            if code is not None or status.status is StatusCode.STATUS_CANCEL:
                self._last_push = self._clock.now()  # a push borne out: webhooks work
        if status.status is StatusCode.STATUS_CANCEL:
            self._settle(activation_id, error=ActivationCancelledError(
                f"activation {activation_id} was cancelled (or finished) while waiting for a code",
                code="STATUS_CANCEL", action="getStatus"))
        elif code is not None:
            self._settle(activation_id, code=code)

    @staticmethod
    def _fresh_code(status: ActivationStatus, waiter: _Waiter) -> str | None:
        # STATUS_WAIT_RETRY:<old> and a stale STATUS_OK:<old> after a re-request are not news.
        if status.status is StatusCode.STATUS_OK and status.code is not None and status.code not in waiter.exclude:
            return status.code
        return None

    def _settle(self, activation_id: int, *, code: str | None = None, error: SMSActivateError | None = None) -> None:
        for waiter in self._waiters.get(activation_id, ()):
            if waiter.done or (code is not None and code in waiter.exclude):
                continue
            waiter.code, waiter.error = code, error
            waiter.wake.set()

    # --- cancelling ---------------------------------------------------------------------------

    async def cancel(self, activation_id: int) -> bool:
        """Cancel now, or keep the cancel for when the early-cancel window has passed.

        Returns ``True`` if the activation is closed now, ``False`` if the cancel is pending.
        """
        try:
            status = self._session.provider.cancel_status
            await self._session.call(_actions.SET_STATUS, {"activation_id": activation_id, "status": status})
        except EarlyCancelDeniedError:
            bought = self._session.known_activations.get(activation_id)
            window = self._settings.early_cancel_window
            due = bought + window + 0.5 if bought is not None else self._clock.now() + window
            self._cancels[activation_id] = _PendingCancel(activation_id, max(due, self._clock.now() + 0.05))
            log.info("cancel of %s refused as too early; will retry in %.1fs", activation_id, due - self._clock.now())
            return False
        except (ActivationStateError, BadRequestError) as exc:
            # Already closed, or a code arrived meanwhile (cancel refused after a code): close it as done.
            if exc.code in ("OTP_RECEIVED", "BAD_STATUS", "NEW_OTP_RECEIVED"):
                await self._finish_quietly(activation_id)
            else:
                await self._session.journal.record_closed("activation", activation_id, "cancelled")
        except SMSActivateError as exc:
            # Still failing after the retries: keep it, so that it is not leaked; aclose() waits for it.
            log.warning("cancel of %s failed (%s); will retry", activation_id, exc.code)
            self._cancels[activation_id] = _PendingCancel(activation_id, self._clock.now() + 1.0)
            return False
        self._forget(activation_id)
        return True

    async def _finish_quietly(self, activation_id: int) -> None:
        try:
            await self._session.call(_actions.SET_STATUS, {"activation_id": activation_id, "status": 6})
        except SMSActivateError as exc:
            log.debug("closing %s after a refused cancel: %s", activation_id, exc.code)
            await self._session.journal.record_closed("activation", activation_id, "finished")

    def _forget(self, activation_id: int) -> None:
        self.delivered.pop(activation_id, None)
        self._cancels.pop(activation_id, None)

    @property
    def pending_cancels(self) -> list[int]:
        return sorted(self._cancels)

    async def run_due_cancels(self) -> None:
        now = self._clock.now()
        for pending in [p for p in self._cancels.values() if p.due <= now]:
            await self._retry_cancel(pending)

    async def _retry_cancel(self, pending: _PendingCancel) -> None:
        pending.attempts += 1
        if not await self.cancel(pending.activation_id):
            current = self._cancels.get(pending.activation_id)
            if current is not None:
                current.attempts = pending.attempts
                if current.attempts >= 10:
                    log.error("giving up cancelling %s after %d tries", pending.activation_id, current.attempts)
                    self._cancels.pop(pending.activation_id, None)
                else:
                    current.due = max(current.due, self._clock.now() + min(30.0, 1.0 * current.attempts))

    async def drain(self) -> None:
        """Carry out every pending cancel, waiting for its window."""
        while self._cancels:
            pending = min(self._cancels.values(), key=lambda p: p.due)
            delay = pending.due - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            await self._retry_cancel(pending)

    # --- rent ---------------------------------------------------------------------------------

    async def wait_rent(self, rent_id: int, timeout: float, poll_interval: float | None) -> RentSms:
        interval = poll_interval if poll_interval is not None else self._settings.poll_interval
        deadline = self._clock.now() + timeout
        first = await self._session.call(_actions.GET_RENT_STATUS, {"rent_id": rent_id})
        baseline = first.quantity
        pushed = self._rent_pushed.pop(rent_id, False) is None
        while True:
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                raise WaitTimeoutError(f"no SMS for rent {rent_id} within {timeout:g}s", action="getRentStatus")
            if not pushed:
                pushed = await self._rent_pause(rent_id, min(interval, remaining))
            try:
                status = await self._session.call(_actions.GET_RENT_STATUS, {"rent_id": rent_id})
            except ActivationStateError:
                raise
            except SMSActivateError as exc:
                log.info("rent %s: status failed (%s); retrying", rent_id, exc.code)
                continue
            new = status.quantity - baseline
            if new > 0:
                if pushed:
                    self._last_push = self._clock.now()  # a push borne out: webhooks work
                if new > len(status.values):
                    status = await self._session.call(
                        _actions.GET_RENT_STATUS, {"rent_id": rent_id, "size": min(100, new)}
                    )
                # values are newest first: the first message after the start is the oldest new one
                return status.values[min(new, len(status.values)) - 1]
            pushed = False

    async def _rent_pause(self, rent_id: int, seconds: float) -> bool:
        """Sleep between rent polls; with webhooks, until a push for this rent (True) or the
        fallback interval has passed."""
        if self.fallback_interval is None:
            await self._clock.sleep(seconds)
            return False
        if self.pushes_arriving:
            seconds = max(seconds, self.fallback_interval)
        kick = self._rent_kicks[rent_id] = anyio.Event()
        try:
            with anyio.move_on_after(seconds):
                await kick.wait()
        finally:
            if self._rent_kicks.get(rent_id) is kick:
                del self._rent_kicks[rent_id]
        return kick.is_set()
