"""The session executes requests: encode, pace, send, decode, parse, and retry what is safe to repeat.

This is the one choke point where lower-layer faults (httpx errors, malformed bodies, parser
slips) become :class:`SMSActivateError` subclasses. Exceptions are raised outside the ``except``
blocks that caught the lower-layer error, so no chained cause can carry a URL or the key.
An action that buys is sent one attempt at a time by the settlement (``_settlement``), which
decides what a lost answer means; the session alone refuses it.

It calls the transport (httpx), the limiter, the journal (what a status said of a bought number) and
the number news; nothing above it.
"""

from __future__ import annotations

import logging
import random
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sized
from typing import TypeVar

import anyio
import attrs
import httpx

from ._actions import GET_ACTIVE_ACTIVATIONS, Action, Repeat
from ._clock import Clock, Recent
from ._exceptions import (
    APIError,
    BadResponseError,
    InvalidArgumentError,
    RateLimitedError,
    RedirectError,
    ServerError,
    SMSActivateError,
    TransportError,
)
from ._hooks import call_hook
from ._journal import Journal
from ._models import ActivationStatus, ActiveActivation, StatusV2
from ._news import NumberNews
from ._parse import UnexpectedAnswer
from ._policy import Limiter, RetryPolicy
from ._providers import Provider
from ._store import EntryState, Kind
from ._telemetry import SessionStats, Span, Telemetry
from ._urls import append_query
from ._wire import Answer, decode_answer

__all__ = ["RequestEvent", "Session", "SessionStats", "is_transient"]

log = logging.getLogger("smsactivate_async")
R = TypeVar("R")
#: a page of a listing (a list of rows, or the scheduler's compact scan)
C = TypeVar("C", bound=Sized)


@attrs.frozen
class RequestEvent:
    """One attempt, as passed to ``on_request`` hooks. ``error`` is the typed error, if any."""

    action: str
    attempt: int
    status_code: int | None
    elapsed: float
    error: SMSActivateError | None


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: (action, status parameter) → what the journal records when it succeeds
_CLOSING: dict[tuple[str, str | None], tuple[Kind, EntryState]] = {
    ("setStatus", "6"): ("activation", "finished"), ("setStatus", "8"): ("activation", "cancelled"),
    ("setStatus", "-1"): ("activation", "cancelled"),  # the legacy cancel (Grizzly)
    ("finishActivation", None): ("activation", "finished"), ("cancelActivation", None): ("activation", "cancelled"),
    ("setRentStatus", "1"): ("rent", "finished"), ("setRentStatus", "2"): ("rent", "cancelled"),
}
#: what to call on a provider without one of HeroSMS's own actions
_INSTEAD = {"cancelActivation": "set_status(activation_id, 8)", "finishActivation": "set_status(activation_id, 6)",
            "getAllSms": "get_status_v2(activation_id) (the last SMS) or wait_for_code()"}
_JOURNALED = frozenset({"getStatus", "getStatusV2", "setStatus", *(action for action, _ in _CLOSING)})


def _redirect_error(response: httpx.Response, base_url: str, action: str) -> RedirectError:
    """Name where the provider went (scheme and host only: the query may carry the key back)."""
    where: str | None = None
    raw = response.headers.get("location")
    if raw:
        try:
            target = httpx.URL(base_url).join(raw.strip())
            where = f"{target.scheme}://{target.netloc.decode('ascii', errors='replace')}" if target.host else None
        except (httpx.InvalidURL, ValueError):
            where = None
    to = f" to {where}" if where else ""
    return RedirectError(
        f"the provider answered HTTP {response.status_code}, a redirect{to}; it was not followed (the API key would "
        "travel with it). The provider may have moved: check its site and set base_url to its new handler URL",
        location=where, status_code=response.status_code, action=action,
    )


def is_transient(error: SMSActivateError) -> bool:
    """Whether another attempt may go differently (a fault on the way, not the server's answer)."""
    return isinstance(error, (TransportError, ServerError, BadResponseError, RateLimitedError))


class Session:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        provider: Provider,
        retry: RetryPolicy,
        limiter: Limiter,
        clock: Clock,
        max_in_flight: int | None = None,
        on_request: Callable[[RequestEvent], None] | None = None,
        seed: int | None = None,
        journal: Journal,
        news: NumberNews | None = None,
        telemetry: Telemetry,
    ) -> None:
        self.http = http
        #: what this session learns of bought numbers goes out here (the scheduler and the client listen)
        self.news = news or NumberNews()
        #: what this client bought, shared with every client of the account on a persistent store
        self.journal = journal
        self.provider = provider
        self.retry = retry
        self.limiter = limiter
        self.clock = clock
        #: the choke points of every count (``client.stats`` and OpenTelemetry)
        self.telemetry = telemetry
        self.stats: SessionStats = self.telemetry.stats
        self._hooks: list[Callable[[RequestEvent], None]] = [on_request] if on_request else []
        self._in_flight = anyio.CapacityLimiter(max_in_flight) if max_in_flight else None
        self._rng = random.Random(seed)
        #: activation id → when this client bought it (clock time), for reconciliation and early-cancel
        #: timing; kept for longer than any provider keeps an activation, not for ever
        self.known_activations: Recent = Recent(clock)
        self.known_rents: set[int] = set()
        self.closed = False
        #: from the moment ``aclose()`` begins: purchases are refused before anything is sent
        self.closing = False
        #: when (clock time) the provider last throttled this client (adaptive polling holds back after it)
        self.last_throttle = float("-inf")
        self._base_text = ""
        self._base_parsed = httpx.URL()

    def add_hook(self, hook: Callable[[RequestEvent], None]) -> None:
        self._hooks.append(hook)

    # --- one attempt ----------------------------------------------------------------------

    async def pace(self) -> None:
        """A slot of the rate budget (how long it took is counted)."""
        asked = self.clock.now()
        await self.limiter.acquire()
        self.telemetry.rate_wait(self.clock.now() - asked)

    def _base_url(self) -> httpx.URL:
        text = self.provider.base_url
        if text != self._base_text:
            self._base_parsed, self._base_text = httpx.URL(text), text
        return self._base_parsed

    async def _send(self, action: Action[R], wire: Mapping[str, str], paced: bool) -> httpx.Response:
        if not paced:
            await self.pace()
        fault: TransportError | None = None
        url = append_query(self._base_url(), urllib.parse.urlencode(wire))  # the base URL parsed once (_urls.py)
        try:
            if self._in_flight is not None:
                async with self._in_flight:
                    return await self.http.get(url)
            return await self.http.get(url)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            fault = TransportError(f"could not connect ({type(exc).__name__})", maybe_sent=False, action=action.wire)
        except httpx.TimeoutException as exc:
            fault = TransportError(f"request timed out ({type(exc).__name__})", maybe_sent=True, action=action.wire)
        except httpx.TransportError as exc:
            fault = TransportError(f"connection failed ({type(exc).__name__})", maybe_sent=True, action=action.wire)
        raise fault

    async def attempt(self, action: Action[R], wire: Mapping[str, str], attempt: int, paced: bool = False,
                      span: Span | None = None) -> R:
        started = self.clock.now()
        status: int | None = None
        error: SMSActivateError | None = None
        self.stats.rate = self.limiter.rate
        try:
            response = await self._send(action, wire, paced)
            status = response.status_code
            if status in _REDIRECTS:
                raise _redirect_error(response, self.provider.base_url, action.wire)
            answer = decode_answer(
                action=action.wire,
                status_code=response.status_code,
                body=response.content,
                headers=response.headers,
                text_prefixes=action.text_prefixes,
                allow_empty=action.allow_empty_body,
                decimals=action.decimals,
                typed_read=action.typed_read,
            )
            return self._parse(action, answer, response.content, status)
        except SMSActivateError as exc:
            error = exc
            raise
        finally:
            if not isinstance(error, RateLimitedError):
                self.limiter.settled()  # an answer that is not a throttle: the probe after a block, say
            elapsed = self.clock.now() - started
            if error is not None and action.empty is not None and error.code in action.empty_on:
                error = None  # "nothing there" (an empty rent status, no activations) is an answer, not an error
            outcome = error.code if error else "ok"
            log.debug("action=%s attempt=%d status=%s elapsed=%.3fs outcome=%s",
                      action.wire, attempt, status, elapsed, outcome)
            # a request that could not connect never reached the server: not counted as one
            self.telemetry.request(action.wire, outcome, elapsed,
                                   sent=not (isinstance(error, TransportError) and not error.maybe_sent))
            if span is not None:
                span.set_attribute("smsactivate.outcome", outcome)
                span.set_attribute("smsactivate.retries", attempt - 1)
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
            if self._hooks:
                event = RequestEvent(action.wire, attempt, status, elapsed, error)
                for hook in self._hooks:
                    call_hook("on_request", hook, event)

    @staticmethod
    def _parse(action: Action[R], answer: Answer, body: bytes, status: int) -> R:
        failure: BadResponseError | None = None
        try:
            return action.parse(answer)
        except SMSActivateError:
            raise
        except UnexpectedAnswer as exc:  # well-formed, but not this action's answer
            failure = BadResponseError(f"not a {action.wire} answer: {exc}", body=body, status_code=status,
                                       action=action.wire)
        except Exception as exc:  # a malformed answer: any parser slip becomes a typed error
            failure = BadResponseError(
                f"cannot read the answer ({type(exc).__name__}: {str(exc)[:120]})",
                body=body, status_code=status, action=action.wire,
            )
        raise failure

    # --- the loop -------------------------------------------------------------------------

    def encode(self, action: Action[R], args: Mapping[str, object]) -> dict[str, str]:
        if action.extra and action.wire not in self.provider.extra_actions:
            instead = _INSTEAD.get(action.wire)
            raise InvalidArgumentError(
                f"{action.name}() is not offered by provider {self.provider.name!r}"
                + (f": use {instead} instead" if instead else ""), action=action.wire
            )
        wire = action.encode(args)
        if action.wire == "setStatus" and wire.get("status") == "-1" and self.provider.cancel_status != -1:
            raise InvalidArgumentError(f"status -1 is the legacy cancel; provider {self.provider.name!r} cancels "
                                       f"with {self.provider.cancel_status}", action=action.wire)
        if action.wire in self.provider.country_required and "country" not in wire:
            raise InvalidArgumentError(
                f"{action.name}() needs country on provider {self.provider.name!r}: it has no default country",
                action=action.wire,
            )
        for renamed_action, classic, own in self.provider.wire_renames:
            if renamed_action == action.wire and classic in wire:
                wire[own] = wire.pop(classic)
        if action.repeat is Repeat.ORDER_ID and "orderId" not in wire:
            wire["orderId"] = uuid.uuid4().hex
        return wire

    async def call(self, action: Action[R], args: Mapping[str, object], *, retry: RetryPolicy | None = None) -> R:
        """An action that buys nothing: encoded, sent, retried while it is safe to. A purchase is the
        settlement's (``_settlement.Settlement.call``): it is refused here, before anything is sent."""
        if action.repeat not in (Repeat.SAFE, Repeat.STATUS):
            raise InvalidArgumentError(f"{action.name}() buys: it is settled by the client's Settlement, not sent "
                                       "by the session alone", action=action.wire)
        wire = self.encode(action, args)
        with self.telemetry.span(action.wire) as span:
            result = await self._call_repeatable(action, wire, retry or self.retry, span)
            if action.wire in _JOURNALED:
                await self._journal_after(action.wire, wire, result)
            return result

    async def _journal_after(self, wire_action: str, wire: Mapping[str, str], result: object) -> None:
        """Tell the journal what a status change or a status read said about a bought number."""
        entry_id = int(wire["id"])
        if wire_action in ("getStatus", "getStatusV2"):
            code = result.code if isinstance(result, (ActivationStatus, StatusV2)) else None
            if code is not None:
                await self.journal.record_code("activation", entry_id, code)
            if wire_action == "getStatus" and isinstance(result, ActivationStatus):
                self.news.status(entry_id, result)  # whoever asked, the waiters learn it
            return
        if wire_action == "setStatus" and wire.get("status") == "3":
            await self.journal.record_another("activation", entry_id)
            return
        closed = _CLOSING.get((wire_action, wire.get("status")))
        if closed is not None:
            kind, state = closed
            await self.journal.record_closed(kind, entry_id, state)
            self.news.closed(entry_id, state, kind)

    async def backoff(self, error: SMSActivateError, attempt: int, policy: RetryPolicy) -> bool:
        """Wait before the next attempt; ``False`` when there is none to make."""
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, RateLimitedError):
            self.telemetry.rate_block()
            self.last_throttle = self.clock.now()
            # Without a Retry-After, hold for the provider's block (HeroSMS: 10 s, re-blocked by any
            # request meanwhile), not for a short backoff that would only prolong it.
            held = retry_after if retry_after is not None else (self.provider.rate_block_seconds or policy.base_delay)
            self.limiter.block(held)
            if retry_after is None:
                retry_after = held
        if attempt >= policy.attempts:
            return False
        if retry_after is not None and retry_after > policy.max_retry_after:
            return False
        self.stats.retries += 1
        delay = policy.delay(attempt, retry_after, self._rng)
        log.info("retrying %s after %s (attempt %d, in %.2fs)", error.action, error.code, attempt + 1, delay)
        await self.clock.sleep(delay)
        return True

    async def _call_repeatable(self, action: Action[R], wire: dict[str, str], policy: RetryPolicy,
                               span: Span | None = None) -> R:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.attempt(action, wire, attempt, span=span)
            except APIError as exc:
                if exc.code in action.empty_on and action.empty is not None:
                    return action.empty()
                if not is_transient(exc) or not await self.backoff(exc, attempt, policy):
                    raise
            except SMSActivateError as exc:
                if not is_transient(exc) or not await self.backoff(exc, attempt, policy):
                    raise

    async def pages(self, action: Action[C]) -> AsyncGenerator[C, None]:
        """Each page of a getActiveActivations-style action, where the provider pages; else the one answer."""
        page = self.provider.page_size
        if page is None:
            yield await self.call(action, {})
            return
        start = 0
        while True:
            chunk = await self.call(action, {"start": start, "limit": page})
            yield chunk
            if len(chunk) < page:
                return
            start += page

    async def active_activations(self) -> list[ActiveActivation]:
        """Every active activation, across pages where the provider pages."""
        return [row async for chunk in self.pages(GET_ACTIVE_ACTIVATIONS) for row in chunk]
