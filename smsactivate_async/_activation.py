"""Bought numbers seen to their end: ``client.activation()`` and ``client.start_activation()``.

``activation()`` holds one number for the length of an ``async with`` block: it buys (under a
buying policy when given), waits, and always closes the number — finished after a code, cancelled
otherwise — with the closing request shielded from cancellation.

``start_activation()`` buys now and returns an :class:`ActivationHandle` whose number the client
keeps the duty to close: the code is awaited and the number finished or cancelled in the client's
own task, even if the caller never looks again (a web request that answered at once, a bot handler
that returned). The handle's state is readable at any time.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from . import _actions
from ._buying import Buyer, BuyingPolicy, buy_with_policy
from ._exceptions import (
    ActivationCancelledError,
    ActivationStateError,
    BadRequestError,
    ClientClosedError,
    InvalidArgumentError,
    SMSActivateError,
    WaitTimeoutError,
)
from ._hooks import call_hook_async
from ._models import Number, StatusCode
from ._outcome import NumberOutcome, Outcome

if TYPE_CHECKING:
    import collections
    from typing import Self

    from ._clock import Clock
    from ._models import ActivationStatus, SetStatusAnswer
    from ._settlement import Settlement
    from ._waiting import Scheduler

__all__ = ["ActivationBlock", "ActivationHandle", "HandleState", "Owner", "check_options", "purchase"]

log = logging.getLogger("smsactivate_async")


class Owner(Buyer, Protocol):
    """What a bought number needs of the client that owns it (the client, seen from below: the
    facade hands itself to its handles, which never import it)."""

    clock: Clock
    _scheduler: Scheduler
    _settlement: Settlement
    _handles: dict[int, ActivationHandle]
    _ended: collections.OrderedDict[int, ActivationHandle]

    @property
    def poll_interval(self) -> float: ...
    async def _ready(self) -> None: ...
    async def set_status(self, activation_id: int, status: int, /) -> SetStatusAnswer: ...
    async def get_status(self, activation_id: int, /) -> ActivationStatus: ...
    async def wait_for_code(self, activation_id: int, *, timeout: float, poll_interval: float | None = None,
                            cancel_on_timeout: bool = True, voice: bool = False) -> str: ...


class _BoughtNumber:
    """What every bought number shows (its id, phone, cost and last code), and the status changes
    both kinds make."""

    codes: list[str]
    _client: Owner

    async def _ask_another(self) -> None:
        """Status 3 (another code)."""
        await self._set_status(3, StatusCode.STATUS_WAIT_RETRY, StatusCode.STATUS_WAIT_RESEND)

    async def _finish_at_server(self) -> bool:
        """Status 6 (finished); ``False`` if it was closed already (see :meth:`_set_status`)."""
        return await self._set_status(6, StatusCode.STATUS_CANCEL)

    async def _set_status(self, status: int, *already: StatusCode) -> bool:
        """Set a status; a refusal because the state is already the wanted one (the answer of an
        earlier, lost attempt was the one that counted) is success, confirmed by getStatus. ``True``
        when the server took it (the session announced it), ``False`` when it was so already."""
        try:
            await self._client.set_status(self.activation_id, status)
        except (ActivationStateError, BadRequestError) as refusal:
            current = await self._client.get_status(self.activation_id)
            if current.status not in already:
                raise refusal from None
            return False
        return True

    @property
    def number(self) -> Number:
        """The bought number (``get_number_v2``'s answer)."""
        raise NotImplementedError

    @property
    def activation_id(self) -> int:
        """The activation's id."""
        return self.number.activation_id

    @property
    def phone_number(self) -> str:
        """The phone number, as the provider gives it (digits, with the country code)."""
        return self.number.phone_number

    @property
    def cost(self) -> Any:
        """What the number cost (``Decimal``), if the provider said."""
        return self.number.activation_cost

    @property
    def code(self) -> str | None:
        """The last code received, if any."""
        return self.codes[-1] if self.codes else None


class ActivationBlock(_BoughtNumber):
    """What ``client.activation()``'s block does (the public :class:`~smsactivate_async.Activation`,
    in ``_client.py``, adds the client that bought it)."""

    def __init__(self, client: Owner, options: dict[str, Any], ready: bool, order_id: str | None,
                 policy: BuyingPolicy | None = None) -> None:
        self._client = client
        self._options = options
        self._ready = ready
        self._order_id = order_id
        self._policy = policy
        self._number: Number | None = None
        self._bought_country: int | None = options.get("country")
        self.codes: list[str] = []
        self._closed = False

    @property
    def country(self) -> int | None:
        """The country it was bought in (with a policy: the choice that sold it)."""
        return self._bought_country

    @property
    def number(self) -> Number:
        """The bought number (``get_number_v2``'s answer)."""
        if self._number is None:
            raise InvalidArgumentError("the activation is not bought yet: use `async with client.activation(...)`")
        return self._number


    async def __aenter__(self) -> Self:
        number, self._bought_country = await purchase(self._client, self._options, self._order_id, self._policy)
        self._number = number
        if self._ready and self._client.provider.supports_ready:
            try:
                await self._client.set_status(number.activation_id, 1)
            except SMSActivateError as exc:
                log.info("activation %s: status 1 not accepted (%s)", number.activation_id, exc.code)
        return self

    async def wait_for_code(self, *, timeout: float, poll_interval: float | None = None) -> str:
        """The next code (the block's exit cancels the number if none comes)."""
        code = await self._client.wait_for_code(
            self.activation_id, timeout=timeout, poll_interval=poll_interval, cancel_on_timeout=False,
            voice=self._options.get("activation_type") == 2,
        )
        self.codes.append(code)
        return code

    async def request_another_code(self) -> None:
        """Ask for one more code (status 3); the next ``wait_for_code`` ignores the old one."""
        await self._ask_another()

    async def finish(self) -> None:
        """Finish now (status 6)."""
        with anyio.CancelScope(shield=True):
            if not await self._finish_at_server():  # else the session announced the close
                self._client._scheduler.closed_number(self.activation_id, "finished")
            self._closed = True

    async def cancel(self) -> None:
        """Cancel now (status 8), or as soon as the server allows it."""
        with anyio.CancelScope(shield=True):
            await self._client._scheduler.cancel(self.activation_id)
            self._closed = True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._number is None:
            return
        guard = self._policy.guard if self._policy is not None else None
        if guard is not None:
            guard.record(self._options["service"], self._bought_country, bool(self.codes))
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            try:
                if exc_type is None and self.codes:
                    await self.finish()
                else:
                    await self.cancel()
            except SMSActivateError as error:
                log.error("activation %s could not be closed: %s", self.activation_id, error)
                if exc_type is None:
                    raise


async def purchase(client: Owner, options: Mapping[str, Any], order_id: str | None,
                   policy: BuyingPolicy | None) -> tuple[Number, int | None]:
    """Buy one number (``get_number_v2``, under ``policy`` when given): the number and its country.

    Shielded: once sent, a purchase must be seen to its end so that the number can be closed."""
    wanted = dict(options)
    if order_id is not None:
        wanted["order_id"] = order_id
    await client._ready()
    with anyio.CancelScope(shield=True):
        if policy is None:
            number: Number = await client._settlement.call(_actions.GET_NUMBER_V2, wanted)
            country: int | None = wanted.get("country")
        else:
            service = wanted.pop("service")
            number, choice = await buy_with_policy(client, service, wanted.pop("country"), policy, wanted)
            country = choice.country
    return number, country


class HandleState(enum.Enum):
    """What became of the number of an :class:`ActivationHandle` (``.value`` is the word)."""

    #: bought; the client waits for its code
    WAITING = "waiting"
    #: a code came and the number is kept open (``finish_on_code=False``) until finished or its timeout
    CODE_RECEIVED = "code_received"
    #: closed with 6 after a code
    FINISHED = "finished"
    #: closed with 8 (or cancelled by the server): the money comes back
    CANCELLED = "cancelled"
    #: the server refused the cancel as too early: the client cancels it from ``cancel_at``
    CANCEL_DEFERRED = "cancel_deferred"
    #: the client was closed before it could close the number (logged; a persistent journal keeps it)
    LEFT_OPEN = "left_open"

    @property
    def final(self) -> bool:
        """Whether the client has nothing more to do for it."""
        return self in (HandleState.FINISHED, HandleState.CANCELLED, HandleState.LEFT_OPEN)


OnCode = Callable[["ActivationHandle", str], object]
#: ended handles a client keeps for ``client.handle(id)``
_ENDED_KEPT = 10_000


class _Settled:
    """An event that has happened: a handle whose close is out of its hands (suspended)."""

    def is_set(self) -> bool:
        return True

    async def wait(self) -> None:
        return None

    def set(self) -> None:
        return None


_SETTLED: Any = _Settled()


class ActivationHandle(_BoughtNumber):
    """A number bought by :meth:`SMSActivate.start_activation`, seen to its end by the client.

    The client waits for its code in its own task; with ``finish_on_code=True`` (the default) it
    finishes the number (6) as the code arrives, and it cancels it (8, with the early-cancel
    deferral) when no code comes within the timeout — whether or not anyone looks at the handle.
    Read ``state``, ``code`` and ``error`` at any time; ``await handle.wait_for_code()`` to wait.
    """

    def __init__(self, client: Owner, number: Number, country: int | None, *, timeout: float,
                 poll_interval: float | None, finish_on_code: bool, voice: bool, on_code: OnCode | None) -> None:
        self._client = client
        self._number = number
        #: the country it was bought in (with a policy: the choice that sold it)
        self.country = country
        #: every code received, oldest first
        self.codes: list[str] = []
        #: why the number ended without a code (a :class:`WaitTimeoutError` saying what became of it,
        #: :class:`ActivationCancelledError`…), or an error met while closing it
        self.error: SMSActivateError | None = None
        #: with ``CANCEL_DEFERRED``: when the client will cancel it (aware UTC)
        self.cancel_at: _dt.datetime | None = None
        self._state = HandleState.WAITING
        self._deadline = client.clock.now() + timeout
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._finish_on_code = finish_on_code
        self._voice = voice
        self._on_code = on_code
        self._changed = anyio.Event()
        self._another = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._closing: anyio.Event | None = None
        self._returned = 0
        #: the caller's value given at purchase (``start_activation(context=...)``): an interaction, a user id
        self.context: object = None
        #: why it was left open (``LEFT_OPEN``): ``"closing"``, ``"suspended"``, or the error that stopped the close
        self.left_reason: str | None = None
        #: whether this handle was resumed from the journal (bought by an earlier process of its owner)
        self.resumed = False
        self._ended_by_close = False  # the client's aclose() ended it (not its own timeout, nor the user)
        self._client_done = False  # aclose() has given its verdict on it

    @property
    def number(self) -> Number:
        """The bought number (``get_number_v2``'s answer)."""
        return self._number

    def __repr__(self) -> str:
        return f"ActivationHandle(activation_id={self.activation_id}, state={self._state.value!r}, code={self.code!r})"


    @property
    def state(self) -> HandleState:
        """What became of the number so far."""
        return self._state

    @property
    def done(self) -> bool:
        """Whether the client has nothing more to do for the number."""
        return self._state.final

    def _failed(self, error: SMSActivateError) -> None:
        self.error = error
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _set(self, state: HandleState) -> None:
        self._state = state
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        if state.final:
            client = self._client
            if client._handles.pop(self.activation_id, None) is not None:
                client._ended[self.activation_id] = self
                if len(client._ended) > _ENDED_KEPT:
                    client._ended.popitem(last=False)

    @property
    def account(self) -> NumberOutcome:
        """What became of the number so far, in the words every report uses (:class:`NumberOutcome`)."""
        state = self._state
        outcome: Outcome = "waiting" if state in (HandleState.WAITING, HandleState.CODE_RECEIVED) else \
            "cancel_deferred" if state is HandleState.CANCEL_DEFERRED else state.value
        return NumberOutcome(self.activation_id, outcome, self.cancel_at, self.left_reason, tuple(self.codes),
                             self.context)

    async def wait_for_code(self, *, timeout: float | None = None) -> str:
        """The next code this method has not returned yet, waiting for it at most ``timeout`` seconds.

        If the number ends without one, raises what says what became of it: the handle's
        :class:`WaitTimeoutError` once its own timeout is over and its cancel settled (``outcome``:
        cancelled, cancel_deferred with ``cancel_at``, finished); :class:`ClientClosedError` with the
        same account if ``aclose()`` ended it; :class:`ActivationCancelledError` if the provider says
        it is cancelled (or you cancelled it). If only this call's ``timeout`` runs out first, a
        :class:`WaitTimeoutError` with ``outcome="waiting"``: the number is open and the client still
        waits for its code. A ``timeout`` that reaches past the handle's own is no shorter than it:
        the handle's end is reported, never a bare "not decided yet".
        """
        call_deadline = float("inf") if timeout is None else anyio.current_time() + timeout
        if timeout is not None and self._client.clock.now() + timeout >= self._deadline:
            call_deadline = float("inf")  # the handle's own end comes first: report it, settled
        settling = False
        with anyio.move_on_after(max(0.0, call_deadline - anyio.current_time())):
            while True:
                if len(self.codes) > self._returned:
                    self._returned += 1
                    return self.codes[self._returned - 1]
                if isinstance(self.error, WaitTimeoutError) or self._state not in (
                        HandleState.WAITING, HandleState.CODE_RECEIVED):
                    if self._ended_by_close and not self._client_done and not self._state.final:
                        await self._changed.wait()  # aclose() is at work: its verdict on the number comes
                        continue
                    if self._closing is not None and not self._closing.is_set() and not settling:
                        # its close is on the wire: report how it ended — within one poll interval of the
                        # deadline, as every timeout is (a close held up longer is reported as not settled)
                        settling = True
                        with anyio.move_on_after(self._poll_interval or self._client.poll_interval):
                            await self._closing.wait()
                        continue
                    raise self._end_error()
                await self._changed.wait()
        raise WaitTimeoutError(f"no code for activation {self.activation_id} within {timeout}s of this call; the "
                               "number is still open and the client still waits for its code",
                               activation_id=self.activation_id, outcome="waiting", action="getStatus")

    def _end_error(self) -> SMSActivateError:
        """The error a wait raises for a number that ended without a (new) code: the truth about it."""
        account = self.account
        if self._ended_by_close or (self._state is HandleState.LEFT_OPEN and self.left_reason in ("closing", "suspended")):
            return ClientClosedError(
                f"the client closed while waiting for activation {self.activation_id}: {account.describe()}",
                action="getStatus", activation_id=self.activation_id, outcome=account.outcome,
                cancel_at=self.cancel_at, reason=self.left_reason or "closing")
        if self.error is not None:
            return self.error
        if self._state is HandleState.CANCELLED:
            return ActivationCancelledError(f"activation {self.activation_id} was cancelled without a code",
                                            code="STATUS_CANCEL", action="getStatus")
        return ActivationStateError(f"activation {self.activation_id} ended ({account.outcome}) without a code: "
                                    f"{account.describe()}", code="ENDED", action="getStatus")

    async def wait_closed(self) -> HandleState:
        """Wait until the client has nothing more to do for the number; its final state."""
        while not self._state.final and self._state is not HandleState.CANCEL_DEFERRED:
            await self._changed.wait()
        return self._state

    async def request_another_code(self) -> None:
        """Ask for one more code (status 3); the client waits for it as for the first."""
        await self._ask_another()
        self._set(HandleState.WAITING)
        self._another.set()

    async def finish(self) -> None:
        """Finish the number now (6)."""
        await self._close_now(finish=True)

    async def cancel(self) -> None:
        """Cancel the number now (8), or as soon as the server allows it."""
        await self._close_now(finish=False)

    async def _close_now_quietly(self) -> None:
        try:
            await self._close_now(finish=bool(self.codes))
        except Exception:  # closing every handle at shutdown: one failure must not stop the others
            log.exception("activation %s: closing at shutdown failed", self.activation_id)

    async def _close_now(self, *, finish: bool) -> None:
        if self._scope is not None:
            self._scope.cancel()  # the client's task stops waiting: this call closes the number
        await self._close(finish=finish)

    # --- the client's task ----------------------------------------------------------------------

    async def _run(self, ready: bool) -> None:
        client = self._client
        if ready and client.provider.supports_ready:
            # bounded by the wait's deadline: a busy shared budget may hold the request back, and a
            # status 1 (optional) must not make a timeout late
            with anyio.move_on_after(max(0.0, self._deadline - client.clock.now())):
                try:
                    await client.set_status(self.activation_id, 1)
                except SMSActivateError as exc:
                    log.info("activation %s: status 1 not accepted (%s)", self.activation_id, exc.code)
        while self._closing is None:
            remaining = self._deadline - client.clock.now()
            with anyio.CancelScope() as self._scope:
                try:
                    if self._state is HandleState.WAITING:
                        code = await client._scheduler.wait(self.activation_id, max(remaining, 0.001),
                                                            self._poll_interval, self._voice)
                        await self._got(code)
                        if self._finish_on_code:
                            break
                    else:
                        with anyio.move_on_after(max(remaining, 0.0)):
                            await self._another.wait()
                        if not self._another.is_set():
                            break  # its time is up: keep the code, finish it
                except WaitTimeoutError as exc:
                    self._failed(exc)  # a waiter on the handle hears of it now, before the cancel
                    break
                except ActivationCancelledError as exc:
                    self.error = exc
                    client._scheduler.closed_number(self.activation_id)
                    self._set(HandleState.CANCELLED)
                    return
                except ClientClosedError:
                    return
                except SMSActivateError as exc:
                    self.error = exc
                    break
            if self._scope.cancelled_caught:
                return  # finish() or cancel() took over
        self._scope = None
        await self._close(finish=bool(self.codes))

    async def _got(self, code: str) -> None:
        self._another = anyio.Event()
        self.codes.append(code)
        self._set(HandleState.CODE_RECEIVED)
        if self._on_code is not None:
            await call_hook_async("on_code", self._on_code, self, code)  # it must not leave the number open

    async def _close(self, *, finish: bool) -> None:
        """Finish or cancel the number, once however many ask (shielded: it must happen)."""
        if self._closing is not None:
            await self._closing.wait()
            return
        if self._state.final:
            return
        self._closing = anyio.Event()
        try:
            with anyio.CancelScope(shield=True):
                await self._close_number(finish)
        finally:
            self._closing.set()

    async def _close_number(self, finish: bool) -> None:
        scheduler = self._client._scheduler
        try:
            if finish:
                if not await self._finish_at_server():  # closed already: no setStatus announced it
                    scheduler.closed_number(self.activation_id, "finished")
                self._set(HandleState.FINISHED)
                return
            outcome = await scheduler.cancel_number(self.activation_id)
        except SMSActivateError as exc:
            log.error("activation %s could not be closed: %s", self.activation_id, exc)
            self.error = self.error or exc
            self.left_reason = f"could not be closed: {exc.code}"
            self._set(HandleState.LEFT_OPEN)
            return
        if outcome.state == "deferred":
            self.cancel_at = scheduler.wall_time(outcome.due or self._client.clock.now())
            self._set(HandleState.CANCEL_DEFERRED)
        else:
            if outcome.code is not None and outcome.code not in self.codes:
                # the code came as the number was cancelled, which the server refused for it: it is paid for
                self.error = None
                await self._got(outcome.code)
            self._set(HandleState.FINISHED if outcome.state == "finished" else HandleState.CANCELLED)
        if isinstance(self.error, WaitTimeoutError) and self.error.outcome is None:
            self.error.outcome = "cancel_deferred" if outcome.state == "deferred" else outcome.state
            self.error.cancel_at = self.cancel_at

    def _suspend(self) -> None:
        """The client suspends: the number stays open for the next process of its owner."""
        if self._scope is not None:
            self._scope.cancel()  # the client's task stops waiting, and does not close the number
        self._closing = self._closing or _SETTLED  # nothing may close it now
        self.left_reason = "suspended"
        self._ended_by_close = True
        self._client_done = True
        self._set(HandleState.LEFT_OPEN)

    def _closed_later(self, state: str) -> None:
        """The client closed the number later (a deferred cancel went through)."""
        if not self._state.final:
            self._set(HandleState.FINISHED if state == "finished" else HandleState.CANCELLED)

    def _client_closed(self, reason: str = "closing", *, journal_keeps: bool = False) -> None:
        """The client closed with this number still open. A deferred cancel stays what it is when a
        persistent journal keeps it (whichever client of the account is alive makes it from
        ``cancel_at``); without one nobody will make it: the number is left open."""
        self._client_done = True
        if not self._state.final:
            if self._state is not HandleState.CANCEL_DEFERRED or not journal_keeps:
                log.warning("activation %s left open (%s): the client closed before it could close it",
                            self.activation_id, self._state.value)
                self.left_reason = reason
                self._ended_by_close = True
                self._set(HandleState.LEFT_OPEN)
            else:
                self._ended_by_close = True
                changed, self._changed = self._changed, anyio.Event()
                changed.set()


def check_options(options: Mapping[str, Any]) -> None:
    known = {param.name for param in _actions.GET_NUMBER_V2.params}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgumentError(f"activation() got unknown argument(s): {', '.join(unknown)}")
