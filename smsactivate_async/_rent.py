"""Waiting for a rent's messages: every message handed over once, oldest first, polled by one task.

A rent is a number held for hours that receives many SMS. ``wait_for_rent_sms`` hands over the
next message this client has not handed over yet — a cursor per rent, kept in the journal with the
rent (``Entry.retries`` counts a rent's messages handed over), so that a restart neither hands one
twice nor skips one. Waiters do not poll: they register on the rent's track and sleep; one task of
the client (:class:`RentWaits`' poller, in the client's :class:`TaskHost`) asks ``getRentStatus``
for each rent somebody waits on, once per ``rent_poll_interval`` (no dialect has a cheaper way to
learn of a rent's new messages: ``getRentList`` carries no message counts), or at once when a
webhook push says the rent has news. So W waits on R rents cost R requests per interval, not W.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import attrs

from . import _actions
from ._exceptions import ActivationStateError, ClientClosedError, RentNotFoundError, SMSActivateError, WaitTimeoutError
from ._models import RentSms, RentStatus
from ._tasks import LoopJob

if TYPE_CHECKING:
    from ._clock import Clock
    from ._polling import PollBudget
    from ._session import Session
    from ._tasks import TaskHost

__all__ = ["PushPace", "RentWaits"]

log = logging.getLogger("smsactivate_async")

#: rent messages per getRentStatus page, at most (the protocol's ``size``)
_PAGE = 100
#: a push polls its rent at once, but not sooner than this after the rent's last poll: a flood of
#: pushes (repeated by the provider, or forged) costs one request a second at most, not one each
_PUSH_GAP = 1.0


class PushPace(Protocol):
    """What rent waits need of the webhooks' state (the scheduler keeps it for both kinds of number)."""

    @property
    def pushes_arriving(self) -> bool: ...

    @property
    def fallback_interval(self) -> float | None: ...

    def push_borne_out(self) -> None: ...


@attrs.define(eq=False)
class _RentWaiter:
    interval: float
    news: anyio.Event = attrs.field(factory=anyio.Event)


@attrs.define(eq=False)
class _RentTrack:
    rent_id: int
    #: messages of the rent accounted for: handed over (or skipped, ``since="new"``) — the cursor
    cursor: int
    #: whether the journal holds the rent (its cursor is written there as it moves)
    journaled: bool
    #: fetched, not handed over yet, oldest first
    ready: collections.deque[RentSms] = attrs.field(factory=collections.deque)
    waiters: collections.deque[_RentWaiter] = attrs.field(factory=collections.deque)
    #: when (clock) it was last polled, and when it is next due
    polled_at: float = float("-inf")
    due: float = float("inf")
    #: a push said it has news (borne out if the poll finds some)
    pushed: bool = False
    #: the rent is over (finished, cancelled, revoked, unknown): raised to its waiters once ``ready`` is empty
    error: SMSActivateError | None = None

    @property
    def seen(self) -> int:
        return self.cursor + len(self.ready)


class RentWaits:
    """Every rent wait of one client: the tracks, and the one poller that serves them."""

    def __init__(self, session: Session, clock: Clock, host: TaskHost, pushes: PushPace,
                 interval: float, budget: PollBudget | None = None) -> None:
        self._session = session
        #: how often the spare request budget lets a rent be polled (None: at the configured interval)
        self._budget = budget
        self._clock = clock
        self._host = host
        self._pushes = pushes
        #: the default seconds between two polls of one rent (``rent_poll_interval``)
        self.interval = interval
        self._tracks: dict[int, _RentTrack] = {}
        self._opening: dict[int, anyio.Lock] = {}
        self._poller = LoopJob("smsactivate_async rent poller")
        self.closed = False
        #: getRentStatus requests the poller made
        self.polls = 0

    def waited(self, rent_id: int) -> bool:
        """Whether a wait on this rent is under way in this client (recovery leaves such a rent open)."""
        track = self._tracks.get(rent_id)
        return rent_id in self._opening or (track is not None and bool(track.waiters))

    def notify(self, rent_id: int) -> None:
        """News about a rent from outside (a webhook push): polled at once if somebody waits on it;
        else its next wait looks at once (it would anyway after a pause)."""
        track = self._tracks.get(rent_id)
        if track is None:
            return
        track.pushed = True
        if track.waiters:
            track.due = min(track.due, max(self._clock.now(), track.polled_at + _PUSH_GAP))
            self._wake(track.due)

    def close(self) -> None:
        """The client is closing: every rent waiter ends now with :class:`ClientClosedError` (the rents
        stay open: they are paid for hours)."""
        self.closed = True
        for track in self._tracks.values():
            for waiter in track.waiters:
                waiter.news.set()

    def reopen(self) -> None:
        self.closed = False

    # --- waiting --------------------------------------------------------------------------------

    async def wait(self, rent_id: int, timeout: float, poll_interval: float | None,
                   since: Literal["new", "all"] | None = None) -> RentSms:
        """The next message of the rent not handed over yet, oldest first (see the module)."""
        deadline = self._clock.now() + timeout
        track = await self._track(rent_id, since)
        waiter = _RentWaiter(poll_interval if poll_interval is not None else self.interval)
        while True:
            if self.closed:
                raise ClientClosedError(f"the client was closed while waiting for rent {rent_id}: the rent stays "
                                        "open (wait on it again from a client that is open)",
                                        action="getRentStatus", reason="closing")
            if track.ready:
                return await self._hand_over(track)
            if track.error is not None:
                if not track.waiters:  # the rent is over and nothing is left to hand over: forget it
                    self._tracks.pop(rent_id, None)
                raise track.error
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                raise WaitTimeoutError(f"no SMS for rent {rent_id} within {timeout:g}s", action="getRentStatus")
            waiter.news = anyio.Event()
            track.waiters.append(waiter)
            now = self._clock.now()
            gap = _PUSH_GAP if track.pushed else waiter.interval  # a push came since the last poll: look soon
            track.due = min(track.due, max(now, track.polled_at + gap))
            self._wake(track.due)
            try:
                await self._sleep(waiter.news, remaining)
            except BaseException:
                track.waiters.remove(waiter)
                if waiter.news.is_set() and track.ready:  # the message meant for it goes to the next in line
                    _wake_next(track)
                raise
            else:
                track.waiters.remove(waiter)
            finally:
                if not track.waiters:
                    track.due = float("inf")

    async def _track(self, rent_id: int, since: Literal["new", "all"] | None) -> _RentTrack:
        """The rent's track, made at its first wait in this client: where its cursor starts."""
        track = self._tracks.get(rent_id)
        if track is not None:
            return track
        lock = self._opening.setdefault(rent_id, anyio.Lock())
        try:
            async with lock:
                track = self._tracks.get(rent_id)
                if track is None:
                    track = self._tracks[rent_id] = await self._open(rent_id, since)
                return track
        finally:
            if not lock.statistics().tasks_waiting:
                self._opening.pop(rent_id, None)

    async def _open(self, rent_id: int, since: Literal["new", "all"] | None) -> _RentTrack:
        journal = self._session.journal
        if journal.store.persistent:
            # a rent the journal holds (bought by this owner before a restart, or kept for a dead one):
            # its cursor goes on from the messages handed over then
            for entry in await journal.store.open_entries():
                if entry.kind == "rent" and entry.id == rent_id:
                    return _RentTrack(rent_id, entry.retries, journaled=True)
        if since == "all" or (since is None and rent_id in self._session.known_rents):
            return _RentTrack(rent_id, 0, journaled=False)
        first = await self._session.call(_actions.GET_RENT_STATUS, {"rent_id": rent_id})
        return _RentTrack(rent_id, first.quantity, journaled=False)

    async def _hand_over(self, track: _RentTrack) -> RentSms:
        message = track.ready.popleft()
        track.cursor += 1
        if track.journaled:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                # before the caller has it: a restart after this hands over the next one, not this again
                await self._session.journal.record_rent_message(track.rent_id)
        return message

    async def _sleep(self, news: anyio.Event, seconds: float) -> None:
        """Until the poller has news for this waiter, or ``seconds`` of the client's clock."""
        async with anyio.create_task_group() as race:
            async def sleep() -> None:
                await self._clock.sleep(seconds)
                race.cancel_scope.cancel()

            race.start_soon(sleep)
            await news.wait()
            race.cancel_scope.cancel()

    # --- the poller -----------------------------------------------------------------------------

    def _wake(self, when: float) -> None:
        self._poller.wake(self._host, self._run, when)

    async def _run(self) -> None:
        with self._poller.running():
            while not self.closed:
                waited = [track for track in self._tracks.values() if track.waiters and track.error is None]
                if not waited:
                    return
                now = self._clock.now()
                due = [track for track in waited if track.due <= now]
                if not due:
                    await self._poller.sleep(now, min(track.due for track in waited))
                    continue
                async with anyio.create_task_group() as group:
                    for track in due:
                        group.start_soon(self._poll, track)

    def _interval(self, track: _RentTrack) -> float:
        interval = min((waiter.interval for waiter in track.waiters), default=self.interval)
        if self._budget is not None:
            # every waited rent is one getRentStatus per interval: the cost of a round of them
            waited = sum(1 for t in self._tracks.values() if t.waiters and t.error is None)
            interval = self._budget.interval(interval, waited)
        fallback = self._pushes.fallback_interval
        if fallback is not None and self._pushes.pushes_arriving:
            interval = max(interval, fallback)  # pushes bring the news: polling is the fallback
        return interval

    async def _poll(self, track: _RentTrack) -> None:
        now = self._clock.now()
        track.polled_at, track.due = now, now + self._interval(track)
        pushed, track.pushed = track.pushed, False
        status = await self._status(track, None)
        if status is None:
            return
        if status.quantity <= track.seen:
            return
        if pushed:
            self._pushes.push_borne_out()
        asked: int | None = None
        for _ in range(3):
            new = status.quantity - track.seen
            if new <= 0:
                return
            if new <= len(status.values) or (asked is not None and (asked >= _PAGE or len(status.values) < asked)):
                break  # every new message is on this page, or this page is the most the provider gives
            # more news than the page shows (or more came between two requests): ask for a page that holds it
            asked = min(_PAGE, new)
            status = await self._status(track, asked)
            if status is None:
                return
        new = status.quantity - track.seen
        shown = min(new, len(status.values))  # values are newest first
        skipped = new - shown
        if skipped:
            # beyond the page the provider shows: gone for every client; the cursor steps over them
            log.warning("rent %s: %d message(s) came too fast to be fetched (beyond the %d the provider shows)",
                        track.rent_id, skipped, len(status.values))
            track.cursor += skipped
            for _ in range(skipped if track.journaled else 0):
                await self._session.journal.record_rent_message(track.rent_id)
        track.ready.extend(reversed(status.values[:shown]))
        for _ in range(len(track.ready)):
            _wake_next(track)

    async def _status(self, track: _RentTrack, size: int | None) -> RentStatus | None:
        params: dict[str, int] = {"rent_id": track.rent_id}
        if size is not None:
            params["size"] = size
        self.polls += 1
        try:
            return await self._session.call(_actions.GET_RENT_STATUS, params)
        except (ActivationStateError, RentNotFoundError) as exc:
            if track.error is None:
                self._session.news.closed(track.rent_id, "expired", "rent")  # over at the server, unasked
            track.error = exc  # the rent is over: its waiters hear why, after the messages still to hand over
            for waiter in track.waiters:
                waiter.news.set()
        except SMSActivateError as exc:
            log.info("rent %s: status failed (%s); trying again in %gs", track.rent_id, exc.code,
                     track.due - self._clock.now())
        return None


def _wake_next(track: _RentTrack) -> None:
    """Wake the first waiter of the rent not woken yet (each woken one takes a message)."""
    for waiter in track.waiters:
        if not waiter.news.is_set():
            waiter.news.set()
            return
