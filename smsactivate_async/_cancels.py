"""Deferred cancels: a cancel the provider refused as too early (or that could not be sent) is kept
and carried out when it is due; :meth:`DeferredCancels.drain` sees them through at a close, within a
bound, and names each one left with the time it can be made.

A refused cancel after a code came finishes the number instead (it is paid for), and the code is read
first for whoever asked. The scheduler owns this room: its poller runs the due cancels (``wake``) and
it hears of numbers found closed (``closed_number``).

It calls the session and the journal; nothing above it.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from . import _actions
from ._exceptions import ActivationStateError, BadRequestError, EarlyCancelDeniedError, SMSActivateError
from ._models import StatusCode

if TYPE_CHECKING:
    from ._clock import Clock
    from ._session import Session

__all__ = ["CancelOutcome", "DeferredCancels"]

log = logging.getLogger("smsactivate_async")


@attrs.define
class _PendingCancel:
    activation_id: int
    due: float
    attempts: int = 0


@attrs.frozen
class CancelOutcome:
    """What became of a number the scheduler was asked to cancel.

    ``state``: ``"cancelled"`` (closed with 8), ``"finished"`` (a code had come: closed with 6),
    ``"deferred"`` (refused as too early, or the server unreachable: retried in the background
    from ``due``, clock time). ``code``: the code that came as the cancel was sent, if it could be
    read before the number was finished (it is paid for: the caller should get it).
    """

    state: str
    due: float | None = None
    code: str | None = None

    @property
    def closed(self) -> bool:
        return self.state != "deferred"


class DeferredCancels:
    """The cancels kept for later, and sending a cancel (module docstring)."""

    def __init__(self, session: Session, clock: Clock, window: Callable[[], float], *,
                 wake: Callable[[float], None], closed_number: Callable[[int, str], None]) -> None:
        self._session = session
        self._clock = clock
        #: the early-cancel window in force (the client's setting, live)
        self._window = window
        #: the scheduler's poller: make sure it runs by then (clock time)
        self._wake = wake
        #: a number found closed without a setStatus of ours (the scheduler tells the waiters)
        self._closed_number = closed_number
        #: activation id → its cancel kept for later
        self.pending: dict[int, _PendingCancel] = {}
        #: cancels on the wire now (whoever sent them): drain() waits for them too
        self._cancelling: dict[int, list[anyio.Event]] = {}

    def next_due(self) -> float:
        """When (clock time) the next kept cancel is due; infinity when none is kept."""
        return min((p.due for p in self.pending.values()), default=float("inf"))

    def forget(self, activation_id: int) -> None:
        """The number is closed: nothing to cancel."""
        self.pending.pop(activation_id, None)

    async def cancel(self, activation_id: int) -> bool:
        """Cancel now, or keep the cancel for when the early-cancel window has passed.

        Returns ``True`` if the activation is closed now, ``False`` if the cancel is pending.
        """
        return (await self.cancel_number(activation_id)).closed

    async def cancel_number(self, activation_id: int) -> CancelOutcome:
        """Cancel now, or keep the cancel for later (the early-cancel window, a server unreachable);
        says which. While it is on the wire, :meth:`drain` waits for it."""
        done = anyio.Event()
        self._cancelling.setdefault(activation_id, []).append(done)
        try:
            return await self._cancel_number(activation_id)
        finally:
            events = self._cancelling.get(activation_id, [])
            if done in events:
                events.remove(done)
            if not events:
                self._cancelling.pop(activation_id, None)
            done.set()

    async def _cancel_number(self, activation_id: int) -> CancelOutcome:
        try:
            status = self._session.provider.cancel_status
            await self._session.call(_actions.SET_STATUS, {"activation_id": activation_id, "status": status})
        except EarlyCancelDeniedError:
            bought = self._session.known_activations.get(activation_id)
            window = self._window()
            due = bought + window + 0.5 if bought is not None else self._clock.now() + window
            due = max(due, self._clock.now() + 0.05)
            self._keep(activation_id, due)
            log.info("cancel of %s refused as too early; will retry in %.1fs", activation_id, due - self._clock.now())
            return CancelOutcome("deferred", due)
        except (ActivationStateError, BadRequestError) as exc:
            # Already closed, or a code arrived meanwhile (cancel refused after a code): close it as done.
            if exc.code in ("OTP_RECEIVED", "BAD_STATUS", "NEW_OTP_RECEIVED"):
                code = await self._code_now(activation_id)  # read before 6: the finished number shows none
                await self._finish_quietly(activation_id)
                return CancelOutcome("finished", code=code)
            await self._session.journal.record_closed("activation", activation_id, "cancelled")
            self._closed_number(activation_id, "expired")  # closed already: no setStatus of ours said so
        except SMSActivateError as exc:
            # Still failing after the retries: keep it, so that it is not leaked; aclose() waits for it.
            log.warning("cancel of %s failed (%s); will retry", activation_id, exc.code)
            due = self._clock.now() + 1.0
            self._keep(activation_id, due)
            return CancelOutcome("deferred", due)
        return CancelOutcome("cancelled")  # the session announced the close with the setStatus

    def _keep(self, activation_id: int, due: float) -> None:
        pending = self.pending.get(activation_id)
        if pending is None:
            self.pending[activation_id] = _PendingCancel(activation_id, due)
        else:
            pending.due = due
        self._wake(due)

    async def _code_now(self, activation_id: int) -> str | None:
        try:
            status = await self._session.call(_actions.GET_STATUS, {"activation_id": activation_id})
        except SMSActivateError as exc:
            log.info("the code of %s, which refused its cancel, could not be read: %s", activation_id, exc.code)
            return None
        return status.code if status.status is StatusCode.STATUS_OK else None

    async def _finish_quietly(self, activation_id: int) -> None:
        try:
            await self._session.call(_actions.SET_STATUS, {"activation_id": activation_id, "status": 6})
        except SMSActivateError as exc:
            log.debug("closing %s after a refused cancel: %s", activation_id, exc.code)
            await self._session.journal.record_closed("activation", activation_id, "finished")
            self._closed_number(activation_id, "finished")  # (a 6 that went through: the session said so)

    def ids(self) -> list[int]:
        return sorted(self.pending)

    def due(self, activation_id: int) -> float | None:
        """When (clock time) the deferred cancel of an activation will be tried, if one is pending."""
        pending = self.pending.get(activation_id)
        return pending.due if pending is not None else None

    def wall_time(self, clock_time: float) -> _dt.datetime:
        """A time of the client's clock as an aware UTC ``datetime``."""
        return _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=clock_time - self._clock.now())

    async def run_due(self) -> None:
        now = self._clock.now()
        for pending in [p for p in self.pending.values() if p.due <= now]:
            await self._retry(pending)

    async def _retry(self, pending: _PendingCancel) -> None:
        pending.attempts += 1
        if not await self.cancel(pending.activation_id):
            current = self.pending.get(pending.activation_id)
            if current is not None:
                current.attempts = pending.attempts
                if current.attempts >= 10:
                    log.error("giving up cancelling %s after %d tries", pending.activation_id, current.attempts)
                    self.pending.pop(pending.activation_id, None)
                else:
                    current.due = max(current.due, self._clock.now() + min(30.0, 1.0 * current.attempts))

    async def drain(self, timeout: float | None = None) -> list[int]:
        """Carry out every pending cancel, waiting for its window — at most ``timeout`` seconds
        (``None``: as long as it takes). Returns the ids still pending, each logged with the time its
        cancel can be made."""
        deadline = self._clock.now() + timeout if timeout is not None else float("inf")
        with anyio.move_on_after(max(0.0, deadline - self._clock.now())):
            while self._cancelling:  # a cancel already on the wire may yet be deferred: see it through
                await next(iter(self._cancelling.values()))[0].wait()
        while self.pending:
            pending = min(self.pending.values(), key=lambda p: p.due)
            if pending.due > deadline:
                break
            delay = pending.due - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            await self._retry(pending)
        left = sorted(self.pending)
        for activation_id in left:
            due = self.pending[activation_id].due
            log.warning("activation %s left open: its cancel can be made from %s (in %.0f s); cancel it then "
                        "(set_status(%s, 8)) or let it expire", activation_id, self.wall_time(due).isoformat(
                            timespec="seconds"), max(0.0, due - self._clock.now()), activation_id)
        return left

    def deferred(self) -> dict[int, _dt.datetime]:
        """The cancels kept for later (too early, or the server unreachable): id → when due (aware UTC)."""
        return {activation_id: self.wall_time(pending.due) for activation_id, pending in self.pending.items()}
