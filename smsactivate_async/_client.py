"""The client: one ``httpx.AsyncClient``, one session, one scheduler, every action as a coroutine."""

from __future__ import annotations

import collections
import copy
import datetime as _dt
import functools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.abc
import attrs
import httpx

from ._actions import ACTIONS, Action
from ._activation import ActivationBlock, ActivationHandle, HandleState, OnCode, check_options, purchase
from ._buying import BuyingPolicy, RunMany, SpendingGuard, _Catalogue, buy_with_policy
from ._cancels import CancelOutcome
from ._clock import Clock, SystemClock
from ._doctor import WRONG_KEY, DoctorReport, run_doctor
from ._exceptions import (
    ActivationNotFoundError,
    ClientClosedError,
    InvalidArgumentError,
    SMSActivateError,
    WaitTimeoutError,
)
from ._fleet import Fleet
from ._generated import GeneratedActions
from ._journal import Journal, RecoveryReport, default_owner
from ._models import Number
from ._news import NumberNews
from ._outcome import NumberOutcome
from ._params import identifier
from ._policy import AdaptiveRateLimiter, Limiter, RateLimiter, RetryPolicy, SharedBudget, SharedRateLimiter
from ._polling import PollBudget, PollPace
from ._providers import Provider, resolve_provider
from ._reconcile import Reconciliation
from ._record import RecordingTransport
from ._rent import RentWaits
from ._session import RequestEvent, Session
from ._settlement import Settlement
from ._store import Kind, Store, namespace_for
from ._stores import open_store
from ._strays import Strays
from ._tasks import TaskHost
from ._telemetry import SessionStats, Telemetry
from ._telemetry import decimal_or_none as _decimal
from ._transport import BorrowedTransport, KeyTransport, install_redaction
from ._waiting import Scheduler, WaitSettings
from .webhooks import WebhookApp

if TYPE_CHECKING:
    from ._models import RentSms
    from .webhooks import WebhookEvent

__all__ = ["SMSActivate"]

log = logging.getLogger("smsactivate_async")

#: seconds between two polls of a rent somebody waits on, by default (``rent_poll_interval``)
RENT_POLL_INTERVAL = 10.0
R = TypeVar("R")
_UNSET: Any = object()
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=8)


class Activation(ActivationBlock):
    """``async with client.activation(service="tg", country=6) as act:`` — one bought number.

    Leaving the block normally after a code finishes it (6); leaving it any other way, or before
    a code, cancels it (8), with the early-cancel deferral. The closing request is shielded from
    cancellation, so a dropped bot handler does not leak the number.
    """

    def __init__(self, client: SMSActivate, options: dict[str, Any], ready: bool, order_id: str | None,
                 policy: BuyingPolicy | None = None) -> None:
        super().__init__(client, options, ready, order_id, policy)
        self._bought_by = client

    @property
    def client(self) -> SMSActivate:
        """The client that bought the number (with a ``ProviderPool``: the provider it came from)."""
        return self._bought_by


class SMSActivate(GeneratedActions):
    """Async client for the SMS-Activate protocol and the providers that speak it.

    ``async with SMSActivate(api_key, provider="herosms") as client: await client.get_balance()``

    Args:
        api_key: the account's API key. It never appears in logs, errors, reprs or URLs shown.
        provider: a preset name (``"sms-activate"``, ``"herosms"``) or a :class:`Provider`.
        base_url: the full handler URL (``…/stubs/handler_api.php``); overrides the preset's.
        timeout: seconds per request (connect and read).
        poll_interval: seconds between poll ticks of the waiters at most (default: the preset's);
            sooner while the request budget has room (``poll_share``).
        poll_share: the part of the spare request budget (the rate limit less what the other work
            uses) a poller may spend to poll sooner than ``poll_interval`` (default 0.25; 0: poll at
            ``poll_interval``). No effect without a rate limit, or for a minute after a throttle.
        min_poll_interval: never poll sooner than this (default 0.5 s).
        rent_poll_interval: seconds between two getRentStatus of one rent somebody waits on (default
            10 s: rents live hours, one request per waited rent per interval; pushes bring news at once).
        early_cancel_window: seconds after purchase during which cancelling is refused.
        proxy: an http/https/socks proxy URL, as httpx takes it.
        transport: replaces the network (``httpx.MockTransport``, ``httpx.ASGITransport``…).
        retry: the :class:`RetryPolicy` for safe actions.
        rate_limit: requests per second (default: the preset's); ``None`` unpaced; ``"adaptive"``:
            start at the preset's safe rate, rise while answers are clean, cut at once on a 429 or a
            rate block, never above the provider's published limit (``client.stats.rate``).
        burst: requests allowed at once (default: the preset's).
        max_in_flight: at most this many requests at once.
        page_size: getActiveActivations page size for the scheduler (default: the preset's).
        clock: a :class:`Clock` (tests inject one). One with a ``wall()`` method (epoch seconds) gives
            the journal its wall time too (leases, purchase times): a simulation on virtual time.
        on_request: called with a :class:`RequestEvent` after every attempt.
        store: where the journal of purchases lives: ``None`` (this process's memory),
            ``"sqlite:///path/journal.db"`` (one machine, several processes), ``"redis://host:port/db"``
            (any number of machines; also one rate budget for all of them), or a :class:`Store`.
        owner: this client's name in the journal (default: unique per process). A client that
            restarts under the same name takes its open numbers back.
        lease: seconds this client's claim on its numbers lasts unrenewed; it is renewed in the
            background, and the numbers of a client whose lease has expired are closed by the others
            (:meth:`recover`).
        record: a file to append every exchange to, as JSON lines (request without the key, status,
            headers, body, timing; phone numbers and codes redacted unless ``record_secrets=True``):
            safe to attach to a bug report, and replayable in tests (:class:`ReplayTransport`).
        record_secrets: keep phone numbers and codes in the recording.
        retention: seconds a persistent journal keeps closed numbers and settled purchases (default a
            day): the live clients forget older ones as they recover, so the journal's size follows
            the work in flight, not the history.
        store_wait: how long a purchase waits for a journal that cannot be reached (an outage, a
            restart of Redis) before it fails with :class:`StoreError`, nothing sent (default 30 s;
            0: at once); a lost purchase's reconciliation waits as long before it calls the purchase
            uncertain, and opening the journal (``async with``) as long for a store that refuses
            connections (a wrong password or URL fails at once).
        close_timeout: how long :meth:`aclose` waits for cancels the server refused as too early
            (default: 20 s in memory, 0 with a persistent store, whose journal keeps the duty for
            :meth:`recover`); each number still open then is logged with when it can be cancelled.
        suspend_on_close: closing (``async with``, a lifespan's end) suspends instead of closing the
            numbers of :meth:`start_activation` still waiting — ``aclose(suspend=True)``: they stay
            open, for the next process with the same ``owner`` to resume. Needs a persistent store.
        meter_provider: the OpenTelemetry ``MeterProvider`` the client's metrics go to (default: the
            global one); needs the ``otel`` extra (docs/recipes/observability.md).
        tracer_provider: the OpenTelemetry ``TracerProvider`` of its spans, one per call (default:
            the global one; none is started while nothing is configured).

    Works with ``async with`` or without: made in one task, used from any, closed by
    :meth:`aclose` from another. What it runs in the background (polling, deadlines, deferred
    cancels, the lease) runs in the client's own task, started on first use; after :meth:`aclose`
    none is left. Opened again after :meth:`aclose`, it starts afresh.
    """

    def __init__(
        self,
        api_key: str,
        *,
        provider: str | Provider = "sms-activate",
        base_url: str | None = None,
        timeout: float = 30.0,
        poll_interval: float | None = None,
        rent_poll_interval: float = RENT_POLL_INTERVAL,
        early_cancel_window: float | None = None,
        proxy: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | Literal["adaptive"] | None = _UNSET,
        burst: int | None = None,
        max_in_flight: int | None = None,
        page_size: int | None = _UNSET,
        clock: Clock | None = None,
        on_request: Callable[[RequestEvent], None] | None = None,
        seed: int | None = None,
        store: str | Store | None = None,
        owner: str | None = None,
        lease: float = 30.0,
        close_timeout: float | None = None,
        suspend_on_close: bool = False,
        record: str | os.PathLike[str] | None = None,
        record_secrets: bool = False,
        retention: float = 86_400.0,
        store_wait: float = 30.0,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        poll_share: float = 0.25,
        min_poll_interval: float = 0.5,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise InvalidArgumentError("api_key must be a non-empty string")
        if timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout}")
        self.provider = resolve_provider(provider, base_url)
        self._wait = WaitSettings(
            self.provider.poll_interval if poll_interval is None else poll_interval,
            self.provider.early_cancel_window if early_cancel_window is None else early_cancel_window,
        )
        if self.poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {self.poll_interval}")
        if self.early_cancel_window < 0:
            raise InvalidArgumentError("early_cancel_window must not be negative")
        if _check_seconds("rent_poll_interval", rent_poll_interval) == float("inf"):
            raise InvalidArgumentError("rent_poll_interval must be finite (a rent is polled now and then even "
                                       "with webhooks: a push may be lost)")
        if not isinstance(lease, (int, float)) or lease <= 0:
            raise InvalidArgumentError(f"lease must be a positive number of seconds, got {lease!r}")
        if owner is not None and (not isinstance(owner, str) or not owner.strip()):
            raise InvalidArgumentError("owner must be a non-empty string")
        if close_timeout is not None:
            _check_seconds("close_timeout", close_timeout, zero=True)
        if not isinstance(suspend_on_close, bool):
            raise InvalidArgumentError(f"suspend_on_close must be True or False, got {suspend_on_close!r}")
        self.suspend_on_close = suspend_on_close
        self._store = open_store(store)
        if suspend_on_close and not self._store.persistent:
            raise InvalidArgumentError("suspend_on_close needs a persistent store (store='sqlite:///…' or 'redis://…'): "
                                       "in memory, nothing would be left to resume the numbers")
        self.close_timeout: float = (0.0 if self._store.persistent else 20.0) if close_timeout is None \
            else float(close_timeout)
        self._namespace = namespace_for(self.provider.name, api_key.strip())
        self._catalogue = _Catalogue()  # live prices for buying policies, kept their price_ttl
        _check_seconds("retention", retention)
        _check_seconds("store_wait", store_wait, zero=True)
        self.clock: Clock = clock or SystemClock()
        # the journal's leases and purchase times are wall time, shared across machines; a clock
        # that has a ``wall()`` of its own (a simulation's) gives it
        journal = Journal(self._store, owner=owner or default_owner(), lease=float(lease),
                          stale_after=timeout * 2 + 5.0, retention=float(retention), store_wait=float(store_wait),
                          wall=getattr(self.clock, "wall", time.time))
        self.page_size = self.provider.page_size if page_size is _UNSET else page_size
        install_redaction()
        # A paced client needs few connections; a big idle pool costs httpcore CPU on every request.
        def make_transport(key: str, *, borrowed: bool = False) -> httpx.AsyncBaseTransport:
            """The stack below httpx's client: the network (or the given transport), the key, the
            recording. ``borrowed``: closing it leaves a transport the caller gave alone."""
            inner = transport or httpx.AsyncHTTPTransport(proxy=proxy, retries=0, limits=_LIMITS)
            if borrowed and transport is not None:
                inner = BorrowedTransport(inner)
            keyed: httpx.AsyncBaseTransport = KeyTransport(inner, key)
            if record is not None:  # above the key: the recording never sees it
                keyed = RecordingTransport(keyed, os.fspath(record), secrets=record_secrets)
            return keyed

        def make_http() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=make_transport(api_key.strip()), timeout=httpx.Timeout(timeout),
                                     headers={"User-Agent": "smsactivate-async"})

        self._make_http = make_http
        #: the same stack with another key (the doctor's deliberately wrong one)
        self._make_transport = make_transport
        self._http = make_http()
        self._host = TaskHost()  # the client's own tasks (polling, deadlines, the lease, telling the fleet)
        rate = self.provider.rate_limit if rate_limit is _UNSET else rate_limit
        limiter: Limiter = _make_limiter(rate, burst or self.provider.burst, self.provider, self.clock)
        if getattr(self._store, "shares_budget", False) and isinstance(self._store, SharedBudget) and rate is not None:
            # The provider's limit is per account: every client on the store draws from one budget
            # (Redis: across machines; a sqlite journal: across the processes of one machine).
            limiter = SharedRateLimiter(self._store, rate if isinstance(rate, (int, float)) else None,
                                       burst or self.provider.burst, self.clock, local=limiter, host=self._host,
                                       sharers=lambda: journal.sharers)
        #: what the client learns of its numbers, reported once and heard by the scheduler, then the client
        news = NumberNews()
        telemetry = Telemetry(clock=self.clock, provider=self.provider.name, meter_provider=meter_provider,
                              tracer_provider=tracer_provider, waiters=lambda: self._scheduler.waiting)
        self._session = Session(
            http=self._http,
            provider=attrs.evolve(self.provider, page_size=self.page_size),
            retry=retry or RetryPolicy(),
            limiter=limiter,
            clock=self.clock,
            max_in_flight=max_in_flight,
            on_request=on_request,
            seed=seed,
            journal=journal,
            news=news,
            telemetry=telemetry,
        )
        self._retry_override: RetryPolicy | None = None
        #: adaptive polling: as often as a share of the spare request budget allows (docs/waiting.md)
        self._poll_budget = PollBudget(self._session, self.clock, PollPace(poll_share, min_poll_interval))
        self._scheduler = Scheduler(self._session, self.clock, self._wait, self._host, news, self._poll_budget)
        telemetry.listen(news)  # after the scheduler: a close is counted once the waiters know of it
        reconciliation = Reconciliation(self._session)
        self._strays = Strays(self._session, reconciliation, self._scheduler, self._host, self.clock, self._wait)
        #: where every call goes: a purchase settles there, anything else goes on to the session
        self._settlement = Settlement(self._session, reconciliation, self._strays)
        self._rents = RentWaits(self._session, self.clock, self._host, self._scheduler, float(rent_poll_interval),
                                self._poll_budget)
        #: leases, recovery of dead owners' numbers, pushes passed on to the account's other clients
        self._fleet = Fleet(self._settlement, self._scheduler, self._rents, self._store, self._host, hear=self._hear,
                            is_open=lambda: self._life.opened)
        self._handles: dict[int, ActivationHandle] = {}
        self._resumed: list[ActivationHandle] = []
        #: handles whose numbers ended, the newest kept (``handle(id)`` still finds them: a caller's last look)
        self._ended: collections.OrderedDict[int, ActivationHandle] = collections.OrderedDict()
        news.on_closed(self._number_closed)  # after the scheduler's: it forgets the number first
        #: the spending guards of policies this client bought under (they learn of refunds)
        self._guards: weakref.WeakSet[SpendingGuard] = weakref.WeakSet()
        # shared with every view of the client (with_options copies the client, not this)
        self._life = _Life()

    def __repr__(self) -> str:
        return f"SMSActivate(provider={self.provider.name!r}, base_url={self.provider.base_url!r})"

    @property
    def stats(self) -> SessionStats:
        """Requests, retries, 429s and reconciliations so far."""
        return self._session.stats

    def add_request_hook(self, hook: Callable[[RequestEvent], None]) -> None:
        """Call ``hook`` after every attempt (count retries, 429s, latency…)."""
        self._session.add_hook(hook)

    # --- generated methods run through here ----------------------------------------------

    @property
    def owner(self) -> str:
        """This client's name in the journal."""
        return self._session.journal.owner

    async def _call(self, action: Action[R], args: dict[str, Any]) -> R:
        await self._ready()
        return await self._settlement.call(action, args, retry=self._retry_override)

    async def _ready(self) -> None:
        """Open on first use (a client need not be entered with ``async with``)."""
        if self._life.opened:
            return
        if self._session.closed:
            raise ClientClosedError("the client is closed: open it again (`async with client:`) or make a new one")
        await self._open()

    def _reject(self, action: str, unknown: dict[str, Any]) -> None:
        raise InvalidArgumentError(f"{action}() got unknown argument(s): {', '.join(sorted(unknown))}")

    @property
    def poll_interval(self) -> float:
        """Seconds between the scheduler's polls (the provider preset's unless given)."""
        return self._wait.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {value!r}")
        self._wait.poll_interval = value

    @property
    def early_cancel_window(self) -> float:
        """Seconds after a purchase during which the provider refuses a cancel."""
        return self._wait.early_cancel_window

    @early_cancel_window.setter
    def early_cancel_window(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidArgumentError(f"early_cancel_window must not be negative, got {value!r}")
        self._wait.early_cancel_window = value

    def with_options(self, *, retry: RetryPolicy | None = None) -> SMSActivate:
        """A view of this client with other options for the calls made through it
        (``await client.with_options(retry=RetryPolicy(attempts=1)).get_balance()``).

        It shares the connection pool, rate limiter and scheduler; close the original.
        """
        view = copy.copy(self)
        view._retry_override = retry
        return view

    async def call(self, action: str, **args: Any) -> Any:
        """Run an action by wire or Python name (``await client.call("getBalance")``)."""
        found = ACTIONS.get(action) or next((a for a in ACTIONS.values() if a.wire == action), None)
        if found is None:
            raise InvalidArgumentError(f"unknown action {action!r}")
        return await self._call(found, args)

    # --- waiting (hand-written helpers) -------------------------------------------------------

    def _get_scheduler(self) -> Scheduler:
        return self._scheduler

    async def wait_for_code(
        self,
        activation_id: int,
        *,
        timeout: float,
        poll_interval: float | None = None,
        cancel_on_timeout: bool = True,
        voice: bool = False,
    ) -> str:
        """The next code of an activation (a code already returned is not returned again).

        On timeout raises :class:`WaitTimeoutError` and, unless ``cancel_on_timeout=False``, cancels
        the activation first (later, in the background, if the server says it is too early): the
        error's ``outcome`` says which (``"cancelled"``, ``"cancel_deferred"`` with ``cancel_at``,
        ``"left_open"``). ``STATUS_CANCEL`` while waiting raises :class:`ActivationCancelledError`.
        ``voice=True`` also looks for call codes (getStatusV2).

        The polling runs in the client's own task: this wait's timeout or cancellation ends only
        this wait.
        """
        identifier("activation_id", activation_id)
        _check_seconds("timeout", timeout)
        if poll_interval is not None:
            _check_seconds("poll_interval", poll_interval)
        await self._ready()
        scheduler = self._scheduler
        try:
            return await scheduler.wait(int(activation_id), timeout, poll_interval, voice)
        except WaitTimeoutError as error:
            if not cancel_on_timeout:
                error.outcome = "left_open"
                raise
            seen = scheduler.codes.seen(int(activation_id))
            outcome = await self._cancel_within(int(activation_id), poll_interval or self.poll_interval)
            if outcome is not None and outcome.code is not None and outcome.code not in seen:
                # The code came as the deadline did (the server refused the cancel for it) and the
                # number is finished: paid for, so the caller gets it rather than the timeout.
                log.info("activation %s: its code came as it timed out; returned, the number finished", activation_id)
                return outcome.code
            if outcome is None or outcome.state == "deferred":
                error.outcome = "cancel_deferred"
                due = outcome.due if outcome is not None and outcome.due is not None else self.clock.now()
                error.cancel_at = scheduler.wall_time(due)
                error.message += (f"; its cancel is deferred until {error.cancel_at.isoformat(timespec='seconds')}"
                                  if outcome is not None else "; its cancel is on its way (the server is slow)")
            else:
                error.outcome = outcome.state
                error.message += f"; the number was {outcome.state}"
            error.args = (error.message,)
            raise

    async def _cancel_within(self, activation_id: int, seconds: float) -> CancelOutcome | None:
        """Cancel in the client's own task and wait for the outcome at most ``seconds`` (a timeout is
        raised on time even when the server is slow); ``None`` if it is still on its way."""
        result: list[CancelOutcome] = []
        done = anyio.Event()

        async def cancel() -> None:
            try:
                result.append(await self._scheduler.cancel_number(activation_id))
            finally:
                done.set()

        with anyio.CancelScope(shield=True):
            if self._host.closing:
                await cancel()
            else:
                self._host.start_soon(cancel, f"smsactivate_async cancel {activation_id}")
                with anyio.move_on_after(seconds):
                    await done.wait()
        return result[0] if result else None

    def activation(
        self, *, service: str, country: int | None = None, ready: bool = True, order_id: str | None = None,
        policy: BuyingPolicy | None = None, **get_number_options: Any,
    ) -> Activation:
        """Buy one number for the block: ``async with client.activation(service="tg", country=6) as act:``.

        Bought with ``get_number_v2`` and an order id; ``get_number_options`` are its other
        arguments (``max_price``, ``operator``…). With a ``policy`` (:class:`BuyingPolicy`) the price,
        the fallbacks and the spending guard come from it, and the guard learns whether a code came.
        See :class:`Activation`.
        """
        options = self._purchase_options(service, country, policy, get_number_options)
        if policy is not None and order_id is not None:
            raise InvalidArgumentError("order_id cannot be given with a policy: each attempt has its own")
        return Activation(self, options, ready, order_id, policy)

    async def start_activation(
        self, *, service: str, country: int | None = None, timeout: float = 600.0, poll_interval: float | None = None,
        finish_on_code: bool = True, on_code: OnCode | None = None, ready: bool = True, order_id: str | None = None,
        policy: BuyingPolicy | None = None, context: object = None, **get_number_options: Any,
    ) -> ActivationHandle:
        """Buy one number now and let the client see it to its end: buy now, wait later.

        Returns as soon as the number is bought, with an :class:`ActivationHandle` (``.activation_id``,
        ``.phone_number``, ``.state``, ``.code``, ``await handle.wait_for_code()``). The client waits
        for the code in its own task; with ``finish_on_code=True`` it finishes the number (6) as the
        code arrives (after ``on_code(handle, code)``, sync or async, if given); otherwise it keeps it
        open for more codes (``handle.request_another_code()``) until ``handle.finish()`` or the
        timeout. No code within ``timeout`` seconds of the purchase: it cancels the number (8, later
        if the server says it is too early). All of this happens even if the caller never looks at
        the handle again; :meth:`aclose` closes what is still open. ``context``: any value of yours
        (an interaction, a user id), kept as ``handle.context`` and in the number's account.
        """
        _check_seconds("timeout", timeout)
        if poll_interval is not None:
            _check_seconds("poll_interval", poll_interval)
        if on_code is not None and not callable(on_code):
            raise InvalidArgumentError("on_code must be callable: on_code(handle, code)")
        options = self._purchase_options(service, country, policy, get_number_options)
        if policy is not None and order_id is not None:
            raise InvalidArgumentError("order_id cannot be given with a policy: each attempt has its own")
        number, bought_in = await purchase(self, options, order_id, policy)
        handle = ActivationHandle(self, number, bought_in, timeout=timeout, poll_interval=poll_interval,
                                  finish_on_code=finish_on_code, voice=options.get("activation_type") == 2,
                                  on_code=on_code)
        handle.context = context
        # No checkpoint between the purchase and this: the number is the client's duty from here.
        self._handles[number.activation_id] = handle
        self._host.start_soon(lambda: handle._run(ready), f"smsactivate_async activation {number.activation_id}")
        if self._host.closing:
            handle._client_closed()
        return handle

    @property
    def handles(self) -> list[ActivationHandle]:
        """The numbers of :meth:`start_activation` the client still has a duty to close."""
        return list(self._handles.values())

    @property
    def resumed(self) -> list[ActivationHandle]:
        """The handles resumed when the client last opened (numbers its ``owner`` suspended at its last
        close) — including those that ended since, a code that came meanwhile among them."""
        return list(self._resumed)

    def handle(self, activation_id: int) -> ActivationHandle:
        """The handle of a number of :meth:`start_activation` — live, resumed after a restart, or ended
        recently (the last 10 000 ended are kept, for a caller's last look) — so that a bot or a service
        needs to keep no handles of its own; :class:`ActivationNotFoundError` (code ``NOT_HELD``) if
        this client has no such number."""
        found = self._handles.get(int(activation_id)) or self._ended.get(int(activation_id))
        if found is None:
            raise ActivationNotFoundError(f"this client holds no handle for activation {activation_id} (closed, "
                                          "or bought elsewhere)", code="NOT_HELD")
        return found

    def _number_closed(self, activation_id: int, state: str) -> None:
        for guard in self._guards:  # a cancel before a code is refunded: the guards that paid for it hear it
            guard.closed(activation_id, state)
        handle = self._handles.get(activation_id)
        if handle is not None and handle.state is HandleState.CANCEL_DEFERRED:
            handle._closed_later(state)

    async def _close_handles(self) -> None:
        """Close every number of :meth:`start_activation` still open: finished if a code came, else
        cancelled (deferred cancels join the others)."""
        open_handles = [h for h in self._handles.values() if h.state in (HandleState.WAITING, HandleState.CODE_RECEIVED)]
        for handle in open_handles:
            handle._ended_by_close = True
        if not open_handles:
            return
        async with anyio.create_task_group() as group:
            for handle in open_handles:
                group.start_soon(handle._close_now_quietly)

    async def _suspend_handles(self) -> list[NumberOutcome]:
        """Record every handle still waiting as suspended (deadline, codes handed over) and let it go
        without closing its number; their accounts. One the journal cannot record is closed as usual."""
        journal = self._session.journal
        suspended: list[NumberOutcome] = []
        for handle in [h for h in self._handles.values() if h.state in (HandleState.WAITING, HandleState.CODE_RECEIVED)]:
            until = journal.wall() + max(0.0, handle._deadline - self.clock.now())
            context = handle.context if isinstance(handle.context, (str, int)) and not isinstance(handle.context, bool) \
                else None  # a str or an int survives the restart (a user id); anything else stays with this process
            try:
                await journal.store.suspend("activation", handle.activation_id, until, handle.codes, context)
            except SMSActivateError as exc:
                log.warning("activation %s could not be suspended (%s): it is closed instead", handle.activation_id,
                            exc.code)
                continue
            log.info("activation %s suspended until %s for owner %s", handle.activation_id,
                     _dt.datetime.fromtimestamp(until, _dt.UTC).isoformat(timespec="seconds"), journal.owner)
            handle._suspend()
            self._session.telemetry.released(handle.activation_id)
            suspended.append(attrs.evolve(handle.account, cancel_at=None))
        return suspended

    async def _resume_handles(self) -> None:
        """At open: the numbers this owner suspended become live handles again, waiting to their
        original deadline (a code that came meanwhile is the first ``wait_for_code()`` returns)."""
        journal = self._session.journal
        self._resumed = []
        for entry in await journal.store.open_entries():
            if entry.owner != journal.owner or entry.suspended_until is None or entry.kind != "activation":
                continue
            if entry.id in self._handles:
                continue
            remaining = entry.suspended_until - journal.wall()
            for code in entry.handed:
                self._scheduler.codes.mark(entry.id, code)  # handed over before: no news now
            handle = ActivationHandle(self, Number(entry.id, entry.phone or ""), int(entry.country)
                                      if entry.country and entry.country.isdigit() else None,
                                      timeout=max(remaining, 0.001), poll_interval=None, finish_on_code=True,
                                      voice=False, on_code=None)
            handle.codes = list(entry.handed)
            handle._returned = len(entry.handed)
            handle.resumed = True
            handle.context = entry.context
            await journal.store.suspend("activation", entry.id, None)
            self._session.telemetry.holding(entry.id, service=entry.service, country=entry.country,
                                            cost=_decimal(entry.cost), codes=entry.handed)
            self._handles[entry.id] = handle
            self._resumed.append(handle)
            self._host.start_soon(functools.partial(handle._run, False), f"smsactivate_async activation {entry.id}")
            log.info("activation %s resumed (%.0f s left)", entry.id, max(0.0, remaining))

    def _purchase_options(self, service: str, country: int | None, policy: BuyingPolicy | None,
                          options: dict[str, Any]) -> dict[str, Any]:
        """Checked purchase arguments: anything wrong is refused here, before anything is bought."""
        checked = {"service": service, "country": country, **options}
        check_options(checked)
        if policy is None:
            self._session.encode(ACTIONS["get_number_v2"], checked)
            return checked
        if not isinstance(policy, BuyingPolicy):
            raise InvalidArgumentError(f"policy must be a BuyingPolicy, got {type(policy).__name__}")
        for name in ("max_price", "free_price"):
            if checked.get(name) is not None:
                raise InvalidArgumentError(f"with a policy, {name} comes from the policy (max_price, ceiling, free_price)")
        first = country if country is not None else (policy.fallbacks[0].country if policy.fallbacks else None)
        if first is None:
            raise InvalidArgumentError("buying under a policy needs a country or fallbacks")
        self._session.encode(ACTIONS["get_number_v2"], {**checked, "country": first, "max_price": policy.limit})
        return checked

    async def buy(self, *, service: str, country: int | None = None, policy: BuyingPolicy | None = None,
                  **get_number_options: Any) -> Number:
        """Buy one number (``get_number_v2``), under a :class:`BuyingPolicy` when given: price steps
        within its ceiling, its fallbacks, its spending guard. You close the number yourself
        (``set_status`` 6 / 8, or use :meth:`activation`, which does)."""
        options = self._purchase_options(service, country, policy, get_number_options)
        if policy is None:
            return await self.get_number_v2(**options)
        options.pop("service")
        options.pop("country")
        number, _ = await buy_with_policy(self, service, country, policy, options)
        return number

    def run_many(
        self, n: int, *, service: str, country: int | None = None, policy: BuyingPolicy | None = None,
        concurrency: int = 10, timeout: float = 300.0,
        handler: Callable[[Activation, str], Awaitable[object]] | None = None, **get_number_options: Any,
    ) -> RunMany:
        """Run ``n`` activations, ``concurrency`` at a time: buy (under ``policy``), wait for the code,
        call ``handler(act, code)``, finish — or cancel on a timeout, an error or a failing handler.

        ``async for result in client.run_many(100, service="tg", country=6): ...`` yields one
        :class:`RunResult` per activation as each ends. When the policy's guard stops the run, the
        activations not yet bought end at once with its ``SpendingGuardError``. To stop early, use
        ``async with client.run_many(...) as results:`` (numbers in flight are closed as usual).
        """
        self._purchase_options(service, country, policy, get_number_options)
        return RunMany(lambda: self.activation(service=service, country=country, policy=policy, **get_number_options),
                       n, concurrency, timeout, handler, policy)

    async def wait_for_rent_sms(self, rent_id: int, *, timeout: float, poll_interval: float | None = None,
                                since: Literal["new", "all"] | None = None) -> RentSms:
        """The next message of the rent this client has not handed over yet, oldest first: each
        message exactly once, however many arrive in one poll interval or while nobody waits.

        For a rent this client bought, every message is news (the first call hands over the first
        message). For one it did not buy (found in ``get_rent_list()``, say), the first call starts
        after the messages already there (``since="new"``); ``since="all"`` hands those over too. With
        a persistent journal the rent's cursor is kept with it: after a restart the next call goes on
        from the last message handed over.

        Waiters do not poll: the client's rent poller asks ``getRentStatus`` once per
        ``rent_poll_interval`` for each rent somebody waits on (``poll_interval`` here asks for more
        often), and at once on a webhook push. The rent ending raises :class:`RentStateError` once the
        messages still due are handed over; closing the client raises :class:`ClientClosedError` (the
        rent stays open)."""
        identifier("rent_id", rent_id)
        _check_seconds("timeout", timeout)
        if poll_interval is not None:
            _check_seconds("poll_interval", poll_interval)
        if since not in (None, "new", "all"):
            raise InvalidArgumentError(f"since must be 'new' or 'all', got {since!r}")
        await self._ready()
        return await self._rents.wait(int(rent_id), timeout, poll_interval, since)

    def notify(self, activation_id: int) -> None:
        """Tell the scheduler an activation has news (from a webhook): it confirms with one getStatus.

        A push for an activation nobody waits on yet is remembered for a while, so a wait that
        starts just after it is confirmed at once."""
        self._get_scheduler().notify(int(activation_id))

    def notify_rent(self, rent_id: int) -> None:
        """Tell the client a rent has news (from a webhook): a rent somebody waits on is polled now."""
        self._rents.notify(int(rent_id))

    def webhook_app(
        self,
        path: str = "/",
        *,
        secret: str | None = None,
        fallback_interval: float = 30.0,
        allowed_sources: Iterable[str] | Literal["provider"] | None = "provider",
        trusted_proxies: Iterable[str] = (),
        on_event: Callable[[WebhookEvent], object] | None = None,
    ) -> WebhookApp:
        """An ASGI app receiving this provider's webhooks and feeding this client's waiters.

        Register ``app.path`` (``path`` + ``/`` + ``secret``; a random secret when none is given)
        under your host with the provider. While pushes arrive (one within ``2 × fallback_interval``)
        the waiters' polling slows to ``fallback_interval``; without them it is as before. Source
        addresses are checked against ``Provider.webhook_sources`` unless ``allowed_sources`` says
        otherwise (``None``: no check). See :mod:`smsactivate_async.webhooks`.
        """
        if not isinstance(fallback_interval, (int, float)) or not fallback_interval > 0:
            raise InvalidArgumentError(f"fallback_interval must be a positive number of seconds, got {fallback_interval!r}")
        app = WebhookApp(self, path=path, secret=secret, allowed_sources=allowed_sources,
                         trusted_proxies=trusted_proxies, on_event=on_event)
        self._get_scheduler().fallback_interval = float(fallback_interval)
        return app

    def webhooks_stopped(self) -> None:
        """Pushes stopped coming (the webhook receiver is shutting down): poll at ``poll_interval``
        again at once instead of the slower ``fallback_interval``, so that no code waits a fallback
        interval for a push that cannot come. ``serve()`` and the receiver's lifespan call this; call
        it from your shutdown when the receiver is mounted in your own app."""
        self._get_scheduler().pushes_stopped()

    # --- life cycle -------------------------------------------------------------------------

    async def doctor(self) -> DoctorReport:
        """Check the provider against its preset without spending money: free requests only (balance,
        catalogue, prices, stock, active activations, history, and four deliberate mistakes), each
        answer compared with what the simulator's profile of the preset answers. Never buys, never
        sets a status. See :class:`DoctorReport` and ``smsactivate doctor``."""
        await self._ready()
        # the client's own connections (so that `record=` records the doctor too), and the same stack
        # with a deliberately wrong key
        return await run_doctor(self.provider, self._session.http, self._make_transport(WRONG_KEY, borrowed=True))

    async def recover(self) -> RecoveryReport:
        """Close every activation the journal holds open for an owner whose lease has expired.

        6 where a code arrived, 8 otherwise (a cancel refused as too early is kept and carried out
        in the background, as usual). Purchases such an owner had on the wire when it died are
        reconciled against the server's list first. A dead owner's rents are cancelled (refunded) within
        the provider's 20-minute window; after it they are kept open by this client (``rents_kept``:
        finishing them would forfeit the hours paid for), and a rent this client waits on is never
        closed under it. Numbers suspended by their owner (``aclose(suspend=True)``) are left alone
        until their deadline. Every action on a rent is logged at INFO. With a persistent store a
        live client also does this by itself every ``lease`` seconds.
        """
        await self._ready()
        return await self._fleet.recover()

    async def __aenter__(self) -> SMSActivate:
        await self._open()
        return self

    async def _open(self) -> None:
        """Open the journal and start the lease (once, however many tasks ask at once); after
        :meth:`aclose`, a fresh start: a new connection pool and a new journal connection."""
        while self._life.opening is not None:
            await self._life.opening.wait()
        if self._life.opened:
            return
        self._life.opening = anyio.Event()
        try:
            if self._session.closed:
                self._http = self._session.http = self._make_http()
                self._session.closed = False
                self._session.closing = False
                self._host.reopen()
                self._scheduler.reopen()
                self._rents.reopen()
            await self._session.journal.open(self._namespace)
            self._life.opened = True
            if self._store.persistent:
                await self._resume_handles()
            self._fleet.start()
        finally:
            opening, self._life.opening = self._life.opening, None
            opening.set()

    def _pushed(self, kind: Kind, entry_id: int) -> None:
        """A push this process's webhook receiver accepted (``webhooks.WebhookTarget``): the fleet's."""
        self._fleet.pushed(kind, entry_id)

    def _hear(self, kind: Kind, entry_id: int) -> None:
        if kind == "activation":
            self.notify(entry_id)
        else:
            self.notify_rent(entry_id)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def closing(self) -> bool:
        """Whether :meth:`aclose` has begun (or is done): from then on every purchase raises
        :class:`ClientClosedError` before anything is sent. False again once the client is reopened."""
        return self._session.closing

    async def aclose(self, *, timeout: float | None = None, suspend: bool | None = None) -> list[NumberOutcome]:
        """Close the client, from any task, and return what it left: every number it still had a duty
        to close that is not closed now, each with its account (:class:`NumberOutcome`).

        In order: purchases are refused from the first moment (:attr:`closing`); the numbers of
        :meth:`start_activation` still waiting are closed — finished if a code came, else cancelled
        (at most ``max(timeout, 5)`` seconds for those requests); then cancels the server refused as
        too early are carried out as they come due, for at most ``timeout`` seconds (default
        ``close_timeout``: 20 s in memory, 0 with a persistent journal, which keeps the duty for
        :meth:`recover`) — one due later than that is not waited for at all and is returned as
        ``"cancel_deferred"`` with its ``cancel_at``. Waits still running then end with
        :class:`ClientClosedError` saying what became of their number, and no task of the client is
        left. Each number left is also logged.

        ``suspend=True`` (default: ``suspend_on_close``), for a deploy or a restart: the numbers of
        :meth:`start_activation` still waiting are not closed but suspended — left open at the server,
        recorded in the journal for this ``owner`` with their deadline and the codes already handed
        over, and returned as ``"left_open"`` with reason ``"suspended"``. The fleet leaves them alone
        until their deadline; the next client with the same ``owner`` resumes them when it opens
        (:meth:`handle`, :attr:`handles`). Needs a persistent store: else :class:`InvalidArgumentError`
        before anything is closed.
        """
        if suspend is None:
            suspend = self.suspend_on_close
        if suspend and not self._store.persistent:
            raise InvalidArgumentError("aclose(suspend=True) needs a persistent store (store='sqlite:///…' or "
                                       "'redis://…'): nothing was closed")
        if self._session.closed and not self._life.opened:
            return []
        bound = self.close_timeout if timeout is None else _check_seconds("timeout", timeout, zero=True)
        self._session.closing = True
        owned = set(self._handles)
        waited = [track for track in self._scheduler.waited_ids() if track not in owned]
        suspended: list[NumberOutcome] = []
        if suspend and self._life.opened:
            with anyio.CancelScope(shield=True):
                suspended = await self._suspend_handles()
        left: list[NumberOutcome] = []
        try:
            with anyio.CancelScope(shield=True):
                if self._life.opened:
                    with anyio.move_on_after(max(bound, 5.0)):
                        await self._close_handles()
                        await self._strays.aclose()
                    await self._scheduler.drain(bound)
        finally:
            self._life.opened = False
            pending = self._scheduler.deferred_cancels()
            self._scheduler.close()
            self._rents.close()
            handled = set(self._handles)
            for handle in list(self._handles.values()):  # a handle's close may drop it from the dict
                handle._client_closed(journal_keeps=self._store.persistent)
                left.append(handle.account)
            for activation_id, due in pending.items():
                if activation_id not in handled:
                    left.append(NumberOutcome(activation_id, "cancel_deferred", due, reason="closing"))
            left.extend(NumberOutcome(activation_id, "left_open", reason="closing") for activation_id in waited
                        if activation_id not in pending)
            self._handles.clear()
            with anyio.CancelScope(shield=True):
                await self._host.aclose()
                await self._close_http()
                if self._session.journal.opened:
                    with anyio.move_on_after(2.0):  # (a store that hangs must not hold the close)
                        await self._scheduler.resign()
                    await self._say_what_the_journal_keeps()
                    await self._session.journal.aclose()
        return suspended + left

    async def _say_what_the_journal_keeps(self) -> None:
        """At the close: log each number still open in the journal under this owner and not suspended —
        a cancel the provider refused as too early, one taken over from a dead owner whose close was cut
        short, one bought and never closed — so that an operator knows who closes it (the account's next
        recovery, once this owner's lease is gone)."""
        journal = self._session.journal
        if not journal.persistent:
            return
        kept = None
        with anyio.move_on_after(2.0):  # a store that hangs must not hold the close (a deploy's grace)
            try:
                kept = [entry for entry in await journal.store.open_entries()
                        if entry.owner == journal.owner and entry.suspended_until is None]
            except SMSActivateError as exc:
                log.warning("journal: could not list what %s leaves open (%s)", journal.owner, exc.code)
                return
        if kept is None:
            log.warning("journal: could not list what %s leaves open in time", journal.owner)
            return
        for entry in kept:
            log.warning("%s %s left open in the journal by %s: the account's next recovery closes it once this "
                        "owner's lease is gone (6 with a code, 8 without)", entry.kind, entry.id, journal.owner)

    async def _close_http(self) -> None:
        if not self._session.closed:
            self._session.closed = True
            await self._session.http.aclose()


@attrs.define
class _Life:
    """Whether the client is open, or being opened: one record for the client and all its views."""

    opened: bool = False
    opening: anyio.Event | None = None


def _make_limiter(rate: object, burst: int, provider: Provider, clock: Clock) -> Limiter:
    """The client's limiter from ``rate_limit=``: a number, ``None`` or ``"adaptive"``; else a clear error."""
    if rate == "adaptive":
        numeric = provider.rate_limit if isinstance(provider.rate_limit, (int, float)) else None
        ceiling = provider.rate_ceiling or numeric or 50.0
        return AdaptiveRateLimiter(min(provider.safe_rate, ceiling), ceiling, burst, clock)
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0
                             or rate != rate or rate == float("inf")):
        raise InvalidArgumentError(f"rate_limit must be a positive number, None or 'adaptive', got {rate!r}")
    if isinstance(rate, (int, float)) and provider.rate_ceiling and rate + burst - 1 >= provider.rate_ceiling:
        # docs/reliability.md, throughput: at the whole budget any jitter lands a request too many
        log.warning("rate_limit=%g with burst %d reaches %s's whole published limit (%g/s): the account will be "
                    "blocked whenever the queue is full; use 'adaptive' or a rate below the limit less the burst",
                    rate, burst, provider.name, provider.rate_ceiling)
    return RateLimiter(rate, burst, clock)


def _check_seconds(name: str, value: object, *, zero: bool = False) -> float:
    """A number of seconds, positive (or zero where allowed), or a clear error before anything is sent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not (value >= 0 if zero else value > 0):
        raise InvalidArgumentError(f"{name} must be a {'non-negative' if zero else 'positive'} number of seconds, got {value!r}")
    return float(value)
