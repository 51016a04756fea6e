"""The client: one ``httpx.AsyncClient``, one session, one scheduler, every action as a coroutine."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs
import httpx

from ._actions import ACTIONS, Action
from ._clock import Clock, SystemClock
from ._exceptions import InvalidArgumentError, WaitTimeoutError
from ._generated import GeneratedActions
from ._params import identifier
from ._policy import RateLimiter, RetryPolicy
from ._providers import Provider, resolve_provider
from ._session import RequestEvent, Session, SessionStats
from ._transport import KeyTransport, install_redaction

if TYPE_CHECKING:
    from ._models import RentSms
    from ._waiting import Activation, Scheduler

__all__ = ["SMSActivate"]

log = logging.getLogger("smsactivate_async")
R = TypeVar("R")
_UNSET: Any = object()
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=8)


class SMSActivate(GeneratedActions):
    """Async client for the SMS-Activate protocol and the providers that speak it.

    ``async with SMSActivate(api_key, provider="herosms") as client: await client.get_balance()``

    Args:
        api_key: the account's API key. It never appears in logs, errors, reprs or URLs shown.
        provider: a preset name (``"sms-activate"``, ``"herosms"``) or a :class:`Provider`.
        base_url: the full handler URL (``…/stubs/handler_api.php``); overrides the preset's.
        timeout: seconds per request (connect and read).
        poll_interval: seconds between poll ticks of the waiters (default: the preset's).
        early_cancel_window: seconds after purchase during which cancelling is refused.
        proxy: an http/https/socks proxy URL, as httpx takes it.
        transport: replaces the network (``httpx.MockTransport``, ``httpx.ASGITransport``…).
        retry: the :class:`RetryPolicy` for safe actions.
        rate_limit / burst: requests per second and burst size (default: the preset's; ``None`` unpaced).
        max_in_flight: at most this many requests at once.
        page_size: getActiveActivations page size for the scheduler (default: the preset's).
        clock: a :class:`Clock` (tests inject one).
        on_request: called with a :class:`RequestEvent` after every attempt.
    """

    def __init__(
        self,
        api_key: str,
        *,
        provider: str | Provider = "sms-activate",
        base_url: str | None = None,
        timeout: float = 30.0,
        poll_interval: float | None = None,
        early_cancel_window: float | None = None,
        proxy: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = _UNSET,
        burst: int | None = None,
        max_in_flight: int | None = None,
        page_size: int | None = _UNSET,
        clock: Clock | None = None,
        on_request: Callable[[RequestEvent], None] | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise InvalidArgumentError("api_key must be a non-empty string")
        if timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout}")
        self.provider = resolve_provider(provider, base_url)
        self.poll_interval = self.provider.poll_interval if poll_interval is None else poll_interval
        self.early_cancel_window = (
            self.provider.early_cancel_window if early_cancel_window is None else early_cancel_window
        )
        if self.poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {self.poll_interval}")
        if self.early_cancel_window < 0:
            raise InvalidArgumentError("early_cancel_window must not be negative")
        self.page_size = self.provider.page_size if page_size is _UNSET else page_size
        self.clock: Clock = clock or SystemClock()
        install_redaction()
        # A paced client needs few connections; a big idle pool costs httpcore CPU on every request.
        inner = transport or httpx.AsyncHTTPTransport(proxy=proxy, retries=0, limits=_LIMITS)
        self._http = httpx.AsyncClient(
            transport=KeyTransport(inner, api_key.strip()),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": "smsactivate-async"},
        )
        limiter = RateLimiter(
            self.provider.rate_limit if rate_limit is _UNSET else rate_limit,
            burst or self.provider.burst,
            self.clock,
        )
        self._session = Session(
            http=self._http,
            provider=attrs.evolve(self.provider, page_size=self.page_size),
            retry=retry or RetryPolicy(),
            limiter=limiter,
            clock=self.clock,
            max_in_flight=max_in_flight,
            on_request=on_request,
            seed=seed,
        )
        self._retry_override: RetryPolicy | None = None

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

    async def _call(self, action: Action[R], args: dict[str, Any]) -> R:
        if self._session.closed:
            raise InvalidArgumentError("the client is closed")
        return await self._session.call(action, args, retry=self._retry_override)

    def _reject(self, action: str, unknown: dict[str, Any]) -> None:
        raise InvalidArgumentError(f"{action}() got unknown argument(s): {', '.join(sorted(unknown))}")

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
        if self._session.scheduler is None:
            from ._waiting import Scheduler

            self._session.scheduler = Scheduler(self)
        scheduler: Scheduler = self._session.scheduler
        return scheduler

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

        On timeout raises :class:`WaitTimeoutError` at once and, unless ``cancel_on_timeout=False``,
        cancels the activation (later, in the background, if the server says it is too early).
        ``STATUS_CANCEL`` while waiting raises :class:`ActivationCancelledError`. ``voice=True``
        also looks for call codes (getStatusV2).
        """
        identifier("activation_id", activation_id)
        if timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout}")
        if poll_interval is not None and poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {poll_interval}")
        scheduler = self._get_scheduler()
        try:
            return await scheduler.wait(int(activation_id), timeout, poll_interval, voice)
        except WaitTimeoutError:
            if cancel_on_timeout:
                with anyio.CancelScope(shield=True):
                    await scheduler.cancel(int(activation_id))
            raise

    def activation(
        self, *, service: str, country: int | None = None, ready: bool = True, order_id: str | None = None,
        **get_number_options: Any,
    ) -> Activation:
        """Buy one number for the block: ``async with client.activation(service="tg", country=6) as act:``.

        Bought with ``get_number_v2`` and an order id; ``get_number_options`` are its other
        arguments (``max_price``, ``operator``…). See :class:`Activation`.
        """
        from ._waiting import Activation, _check_options

        options = {"service": service, "country": country, **get_number_options}
        _check_options(options)
        self._session.encode(ACTIONS["get_number_v2"], options)  # validate before anything is sent
        return Activation(self, options, ready, order_id)

    async def wait_for_rent_sms(self, rent_id: int, *, timeout: float, poll_interval: float | None = None) -> RentSms:
        """The first message that arrives on a rent after the call starts."""
        identifier("rent_id", rent_id)
        if timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout}")
        return await self._get_scheduler().wait_rent(int(rent_id), timeout, poll_interval)

    def notify(self, activation_id: int) -> None:
        """Tell the scheduler an activation has news (from a webhook): it confirms with one getStatus."""
        if self._session.scheduler is not None:
            self._session.scheduler.notify(int(activation_id))

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> SMSActivate:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait for pending cancels, then close the connection pool."""
        try:
            if self._session.scheduler is not None and not self._session.closed:
                with anyio.CancelScope(shield=True):
                    await self._session.scheduler.drain()
        finally:
            await self._close_http()

    async def _close_http(self) -> None:
        if not self._session.closed:
            self._session.closed = True
            await self._http.aclose()
