"""The session executes any declared action: encode, pace, send, decode, parse, retry, reconcile.

This is the one choke point where lower-layer faults (httpx errors, malformed bodies, parser
slips) become :class:`SMSActivateError` subclasses. Exceptions are raised outside the ``except``
blocks that caught the lower-layer error, so no chained cause can carry a URL or the key.
"""

from __future__ import annotations

import collections
import logging
import random
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Container, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio
import attrs
import httpx

from ._actions import GET_ACTIVE_ACTIVATIONS, GET_RENT_LIST, Action, Repeat
from ._clock import Clock, Recent
from ._exceptions import (
    APIError,
    BadResponseError,
    ClientClosedError,
    InvalidArgumentError,
    OrderAlreadyExistsError,
    PurchaseUncertainError,
    RateLimitedError,
    RedirectError,
    ServerError,
    SMSActivateError,
    StoreError,
    TransportError,
)
from ._hooks import PURCHASE_CHECK, call_hook
from ._journal import Journal
from ._models import ActiveActivation, MultiServiceActivation, Number, Rent, RentListEntry
from ._news import Bought, NumberNews
from ._parse import UnexpectedAnswer
from ._policy import Limiter, RetryPolicy
from ._providers import Provider
from ._store import Entry, EntryState, Intent, IntentState, Kind, MemoryStore
from ._telemetry import SessionStats, Telemetry
from ._wire import decode_answer

__all__ = ["RequestEvent", "Session", "SessionStats", "StrayWatch"]

log = logging.getLogger("smsactivate_async")
R = TypeVar("R")
#: a row of a listing: an active activation, or a rent of the rent list
Row = TypeVar("Row", ActiveActivation, RentListEntry)


class StrayWatch(Protocol):
    """What purchases need of the watch for strays (``_strays.Strays``, which the client composes)."""

    def take(self, action: str, wire: Mapping[str, str]) -> ActiveActivation | None:
        """A kept stray a purchase of ``wire`` may have instead of buying."""

    async def watch(self, key: tuple[str, ...], wire: Mapping[str, str], seconds: float) -> None:
        """Look for a purchase given up as never made, for ``seconds``."""


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
#: an intent that took longer than this to write was held back by the store (not by a busy disk)
_STORE_HELD = 0.5
#: actions that spend money: refused once the client is closing
_PAID = frozenset({Repeat.ORDER_ID, Repeat.PURCHASE_ACTIVATION, Repeat.PURCHASE_RENT, Repeat.PURCHASE_OTHER})
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


def _is_transient(error: SMSActivateError) -> bool:
    return isinstance(error, (TransportError, ServerError, BadResponseError, RateLimitedError))


def _maybe_executed(error: SMSActivateError) -> bool:
    """Whether the server may have carried the request out despite the failure."""
    if isinstance(error, TransportError):
        return error.maybe_sent
    return not isinstance(error, RateLimitedError)


class _PurchaseGate:
    """Lets reconciliation see a quiet moment: no purchase of this client in flight.

    A reconciler waits until every purchase under way has settled (and keeps new ones waiting),
    so each unknown active id on the server belongs to a purchase whose answer was lost.
    """

    def __init__(self) -> None:
        self._cond = anyio.Condition()
        self._in_flight = 0
        self._reconcilers = 0
        #: a quiet period lasts while any reconciler waits or works; no purchase runs during it, so
        #: one listing of the server's activations serves every reconciler of the period
        self.listings: dict[str, tuple[float, Any]] = {}  # "rents" / "activations" → (asked at, listing)
        self.claim_lock = anyio.Lock()
        self._one_purchase = anyio.Lock()
        #: purchases per (action, service, country) that had an attempt which may have been carried
        #: out and are not settled yet: each owns at most one unknown activation on the server
        self.unresolved: collections.Counter[tuple[str, ...]] = collections.Counter()

    @asynccontextmanager
    async def purchase(self, pace: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        # Paced before entering: "in flight" then means on the wire, so that a reconciliation waits
        # for the network, not for the limiter's queue. A purchase held back by a reconciliation
        # takes a fresh slot, so that the held ones do not leave in one burst.
        while True:
            # Purchases enter the limiter one at a time: the others wait here, not holding slots of
            # the budget in advance, so that every other request (a status, a close, a scan) takes
            # the next slot before them — what releases money or a slot goes first, and a stop
            # decided meanwhile (a spending guard's) is seen before the next purchase leaves.
            async with self._one_purchase:
                await pace()
            async with self._cond:
                if not self._reconcilers:
                    self._in_flight += 1
                    break
                while self._reconcilers:
                    await self._cond.wait()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    @asynccontextmanager
    async def reconcile(self) -> AsyncIterator[None]:
        async with self._cond:
            if not self._reconcilers:
                self.listings.clear()
            self._reconcilers += 1
            while self._in_flight:
                await self._cond.wait()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._cond:
                    self._reconcilers -= 1
                    self._cond.notify_all()


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
        journal: Journal | None = None,
        news: NumberNews | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.http = http
        #: what this session learns of bought numbers goes out here (the scheduler and the client listen)
        self.news = news or NumberNews()
        #: what this client bought, shared with every client of the account on a persistent store
        self.journal = journal or Journal(MemoryStore(), owner="local", lease=30.0, stale_after=60.0)
        self.provider = provider
        self.retry = retry
        self.limiter = limiter
        self.clock = clock
        #: the choke points of every count (``client.stats`` and OpenTelemetry)
        self.telemetry = telemetry or Telemetry(clock=clock, provider=provider.name)
        self.stats: SessionStats = self.telemetry.stats
        self._hooks: list[Callable[[RequestEvent], None]] = [on_request] if on_request else []
        self._in_flight = anyio.CapacityLimiter(max_in_flight) if max_in_flight else None
        self._rng = random.Random(seed)
        self._gate = _PurchaseGate()
        #: activation id → when this client bought it (clock time), for reconciliation and early-cancel
        #: timing; kept for longer than any provider keeps an activation, not for ever
        self.known_activations: Recent = Recent(clock)
        self.known_rents: set[int] = set()
        self.closed = False
        #: from the moment ``aclose()`` begins: purchases are refused before anything is sent
        self.closing = False
        #: the watch for purchases committed after they were given up (the client composes it)
        self.strays: StrayWatch | None = None
        #: when (clock time) the provider last throttled this client (adaptive polling holds back after it)
        self.last_throttle = float("-inf")

    def add_hook(self, hook: Callable[[RequestEvent], None]) -> None:
        self._hooks.append(hook)

    # --- one attempt ----------------------------------------------------------------------

    async def _pace(self) -> None:
        """A slot of the rate budget (how long it took is counted)."""
        asked = self.clock.now()
        await self.limiter.acquire()
        self.telemetry.rate_wait(self.clock.now() - asked)

    async def _send(self, action: Action[Any], wire: Mapping[str, str], paced: bool) -> httpx.Response:
        if not paced:
            await self._pace()
        fault: TransportError | None = None
        # the query written here, once: httpx's params= would parse the URL a second time (a tenth of a
        # call's CPU on a fast link)
        url = f"{self.provider.base_url}{'&' if '?' in self.provider.base_url else '?'}{urllib.parse.urlencode(wire)}"
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

    async def _attempt(self, action: Action[R], wire: Mapping[str, str], attempt: int, paced: bool = False,
                       span: Any = None) -> R:
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
    def _parse(action: Action[R], answer: Any, body: bytes, status: int) -> R:
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

    def encode(self, action: Action[Any], args: Mapping[str, Any]) -> dict[str, str]:
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

    async def call(self, action: Action[R], args: Mapping[str, Any], *, retry: RetryPolicy | None = None) -> R:
        if self.closing and action.repeat in _PAID:
            raise ClientClosedError(f"the client is closing: {action.name}() was refused before anything was sent "
                                    "(nothing bought)", action=action.wire, reason="closing")
        wire = self.encode(action, args)
        policy = retry or self.retry
        repeat = action.repeat
        if repeat is Repeat.ORDER_ID and not self.provider.honours_order_id:
            repeat = Repeat.PURCHASE_ACTIVATION
        with self.telemetry.span(action.wire) as span:
            if repeat in (Repeat.SAFE, Repeat.STATUS):
                result = await self._call_repeatable(action, wire, policy, span)
                if action.wire in _JOURNALED:
                    await self._journal_after(action.wire, wire, result)
                return result
            result = await self._call_purchase(action, wire, policy, repeat, span)
        self._report_bought(result, wire)  # however it settled: the one place a purchase becomes news
        return result

    def _report_bought(self, result: object, wire: Mapping[str, str]) -> None:
        for purchase in _purchases_in(result, wire):
            self.news.bought(purchase)

    async def _journal_after(self, wire_action: str, wire: Mapping[str, str], result: Any) -> None:
        """Tell the journal what a status change or a status read said about a bought number."""
        entry_id = int(wire["id"])
        if wire_action in ("getStatus", "getStatusV2"):
            if result.code is not None:
                await self.journal.record_code("activation", entry_id, result.code)
            if wire_action == "getStatus":
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

    async def _backoff(self, error: SMSActivateError, attempt: int, policy: RetryPolicy) -> bool:
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
                               span: Any = None) -> R:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(action, wire, attempt, span=span)
            except APIError as exc:
                if exc.code in action.empty_on and action.empty is not None:
                    return action.empty()
                if not _is_transient(exc) or not await self._backoff(exc, attempt, policy):
                    raise
            except SMSActivateError as exc:
                if not _is_transient(exc) or not await self._backoff(exc, attempt, policy):
                    raise

    async def _call_purchase(self, action: Action[R], wire: dict[str, str], policy: RetryPolicy, repeat: Repeat,
                             span: Any = None) -> R:
        # The rent list names no service: every rent purchase competes for the same unknown rents.
        key = (action.wire,) if repeat is Repeat.PURCHASE_RENT else (
            action.wire, wire.get("service", wire.get("multiService", "")), wire.get("country", ""))
        kind: Kind = "rent" if action.result == "Rent" else "activation"
        stray = self.strays.take(action.wire, wire) if self.strays is not None else None
        if stray is not None:
            adopted_stray: R = self._adopt(action, [stray], None)
            return adopted_stray
        intent: Intent | None = None
        attempt = 0
        ambiguous = False  # an attempt may have been carried out, and this purchase is not settled
        maybe_sent = False  # some attempt may have reached the server
        settled: IntentState | None = None
        try:
            while True:
                attempt += 1
                error: SMSActivateError | None = None
                async with self._gate.purchase(self._pace):
                    check = PURCHASE_CHECK.get() if attempt == 1 or (maybe_sent and not ambiguous) else None
                    if check is not None:
                        # e.g. a spending guard that stopped while this purchase queued: nothing sent. Again
                        # before buying anew after a lost answer the listings could not find: the server may
                        # still commit that one (a stray), so the guard counts it.
                        check(attempt > 1)
                    # The intent is written before the request leaves, and says "pending" only while
                    # a request is on the wire: other clients' reconciliations wait for those alone.
                    # A purchase the journal cannot record is not made (StoreError, nothing sent).
                    if intent is None:
                        asked = self.clock.now()
                        intent = await self.journal.intend(action.wire, wire, key, kind)
                        if self.clock.now() - asked > _STORE_HELD:
                            # Held back by the store (an outage): take a fresh slot of the budget, so that
                            # the purchases held meanwhile leave at the account's pace, not in one burst.
                            await self._pace()
                    elif not ambiguous:
                        await self.journal.settle(intent, "pending")
                    try:
                        result = await self._attempt(action, wire, attempt, paced=True, span=span)
                    except SMSActivateError as exc:
                        error = exc
                failed_at = self.clock.now()
                if error is None:
                    self._remember(result)
                    settled = "bought"
                    await self.journal.bought(intent, self._entries(intent, kind, result))
                    return result
                if isinstance(error, OrderAlreadyExistsError) and maybe_sent:
                    # An earlier attempt went through and only its answer was lost.
                    recovered: R = await self._recover(action, wire, repeat, error, key, failed_at, policy, intent)
                    settled = "bought"
                    return recovered
                if not _is_transient(error):
                    settled = "uncertain" if ambiguous else "failed"
                    raise error
                if _maybe_executed(error):
                    maybe_sent = True
                    if not ambiguous:
                        ambiguous = True
                        self._gate.unresolved[key] += 1
                        await self.journal.settle(intent, "ambiguous")
                    if repeat is not Repeat.ORDER_ID:
                        adopted: R | None = await self._recover(
                            action, wire, repeat, error, key, failed_at, policy, intent)
                        if adopted is not None:
                            settled = "bought"
                            return adopted
                        ambiguous = False  # reconciliation showed the purchase did not happen
                        self._gate.unresolved[key] -= 1
                        await self.journal.settle(intent, "queued")
                        await self._watch_for_stray(repeat, key, wire, policy)
                elif not ambiguous:
                    await self.journal.settle(intent, "queued")  # surely not sent: nobody need wait on it
                if not await self._backoff(error, attempt, policy):
                    if ambiguous and repeat is Repeat.ORDER_ID:
                        # Every try's answer was lost: the order may exist. Look before giving up:
                        # adopt it, or raise the error only once two listings agree it does not.
                        adopted = await self._recover(action, wire, repeat, error, key, failed_at, policy, intent)
                        if adopted is not None:
                            settled = "bought"
                            return adopted
                        settled = "failed"
                        await self._watch_for_stray(repeat, key, wire, policy)
                        raise error
                    settled = "uncertain" if ambiguous else "failed"
                    raise error
        except PurchaseUncertainError:
            settled = "uncertain"
            raise
        finally:
            if ambiguous:
                self._gate.unresolved[key] -= 1
            if settled != "bought" and intent is not None:
                # Cancelled mid-way or failed: never leave the intent "pending" (others would wait on it).
                with anyio.CancelScope(shield=True):
                    await self.journal.settle(intent, settled or ("uncertain" if ambiguous else "failed"))

    async def _watch_for_stray(self, repeat: Repeat, key: tuple[str, ...], wire: Mapping[str, str],
                               policy: RetryPolicy) -> None:
        """Two listings said the purchase did not happen; it may yet be committed late."""
        if self.strays is not None and repeat is not Repeat.PURCHASE_RENT:
            await self.strays.watch(key, wire, policy.stray_watch)

    def _entries(self, intent: Intent | None, kind: Kind, result: object) -> list[Entry]:
        """The journal entries of a purchase's result."""
        if isinstance(result, Number):
            return [self.journal.entry(intent, kind, result.activation_id, result.phone_number,
                                       service=result.service_code, cost=result.activation_cost)]
        if isinstance(result, Rent):
            return [self.journal.entry(intent, "rent", result.id, result.number)]
        if isinstance(result, list):
            return [self.journal.entry(intent, "activation", item.activation_id, item.phone_number,
                                       service=getattr(item, "service", None))
                    for item in result if isinstance(getattr(item, "activation_id", None), int)]
        return []

    def _remember(self, result: object) -> None:
        now = self.clock.now()
        for bought in _purchases_in(result, {}):
            if bought.kind == "rent":
                self.known_rents.add(bought.id)
            else:
                self.known_activations[bought.id] = now

    async def pages(self, action: Action[Any]) -> AsyncGenerator[Any, None]:
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

    async def _recover(
        self, action: Action[Any], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], failed_at: float, policy: RetryPolicy, intent: Intent | None = None,
    ) -> Any:
        """Find the purchase whose answer was lost; ``None`` if it surely did not happen.

        "Surely" takes two listings that both lack it, the second read at least ``policy.settle``
        seconds after the failure: a server may still be committing the purchase when the first is
        read. Between the two, purchases are not held back. A listing that cannot be read proves
        nothing: the purchase is then uncertain, never "did not happen".
        """
        self.stats.reconciliations += 1
        if repeat is Repeat.PURCHASE_OTHER:
            raise PurchaseUncertainError(
                f"{action.wire} may have been carried out, but its answer was lost ({_lost(cause)}); "
                "check the account before buying again",
                action=action.wire, code=cause.code,
            )
        try:
            outcome = await self._reconcile_once(action, wire, repeat, cause, key, None, intent)
            if outcome is not _ABSENT:
                return outcome
            settled = failed_at + policy.settle
            delay = settled - self.clock.now()
            if delay > 0:
                log.info("%s: the lost purchase is not listed; looking again in %.1fs", action.wire, delay)
                await self.clock.sleep(delay)
            outcome = await self._reconcile_once(action, wire, repeat, cause, key, settled, intent)
        except PurchaseUncertainError as exc:
            if isinstance(cause, OrderAlreadyExistsError) and not exc.candidate_ids:
                # the order exists and is listed nowhere yet: when it is, it is a stray
                await self._watch_for_stray(repeat, key, wire, policy)
            raise
        if outcome is _ABSENT:
            log.info("%s: the lost purchase did not happen (two listings agree); buying again", action.wire)
            return None
        return outcome

    async def _reconcile_once(
        self, action: Action[Any], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], fresh_after: float | None, intent: Intent | None,
    ) -> Any:
        async with self._gate.reconcile(), self._gate.claim_lock:
            delays = self.journal.store_delays()
            while True:
                try:
                    # a store just back from an outage may not hold yet what other clients bought: an
                    # unknown number might be theirs until they have put their records back; and a
                    # listing read before that wait may show numbers closed since, whose records the
                    # store lost with the rest — it is read again
                    if self.journal.persistent and await self.journal.trustworthy():
                        self._gate.listings.clear()
                    return await self._claim(action, wire, repeat, cause, key, fresh_after, intent)
                except PurchaseUncertainError:
                    raise
                except StoreError as exc:
                    # the journal is down: wait for it (bounded) rather than call the purchase uncertain
                    delay = next(delays, None)
                    if delay is None:
                        failure = self._uncertain(action, cause, exc)
                        break
                    await anyio.sleep(delay)
                except SMSActivateError as exc:
                    failure = self._uncertain(action, cause, exc)
                    break
        raise failure

    @staticmethod
    def _uncertain(action: Action[Any], cause: SMSActivateError, exc: SMSActivateError) -> PurchaseUncertainError:
        return PurchaseUncertainError(
            f"{action.wire} may have been carried out, but its answer was lost ({_lost(cause)}) and the "
            f"server's list could not be read ({exc.code}); check the account before buying again",
            action=action.wire, code="PURCHASE_UNCERTAIN",
        )

    async def _listing(self, kind: str, fresh_after: float | None) -> Any:
        """The quiet period's listing of ``kind``, asked for again if it was asked before ``fresh_after``."""
        cached = self._gate.listings.get(kind)
        if cached is not None and (fresh_after is None or cached[0] >= fresh_after):
            return cached[1]
        asked_at = self.clock.now()
        listing = await (self.call(GET_RENT_LIST, {}) if kind == "rents" else self.active_activations())
        self._gate.listings[kind] = (asked_at, listing)
        return listing

    async def _others_settled(self, kind: Kind, ids: list[int]) -> set[int]:
        """Of the unknown ids of a listing just read, those the journal gives to anyone: never candidates.

        Another client's purchase may be in the listing before its answer is journaled: first wait
        for every purchase of another live client that was on the wire when the listing was read.
        """
        if self.journal.persistent:
            await self.journal.wait_for_others(await self.journal.store.last_seq(), timeout=self.journal.stale_after)
        return set(await self.journal.journaled(kind, ids))

    async def unexplained(self, rows: list[Row], kind: Kind = "activation") -> list[Row]:
        """The rows of a listing just read (activations, or ``kind="rent"`` the rent list) that nothing
        explains: not bought by this client, not in anyone's journal (after the purchases other
        clients had on the wire were journaled). What reconciliation, strays and recovery may take
        as a lost purchase's number."""
        known: Container[int] = self.known_rents if kind == "rent" else self.known_activations
        unknown = [r for r in rows if _ident(r) not in known]
        taken = await self._others_settled(kind, [_ident(r) for r in unknown])
        return [r for r in unknown if _ident(r) not in taken]

    async def _claim(
        self, action: Action[Any], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], fresh_after: float | None, intent: Intent | None,
    ) -> Any:
        if repeat is Repeat.PURCHASE_RENT:
            rents: list[RentListEntry] = await self._listing("rents", fresh_after)
            # one candidate per rent id
            groups: dict[object, list[Any]] = {rent.id: [rent] for rent in await self.unexplained(rents, "rent")}
        else:
            rows: list[ActiveActivation] = await self._listing("activations", fresh_after)
            unknown = [r for r in await self.unexplained(rows) if _matches(r, wire)]
            if action.wire == "getMultiServiceNumber":
                # One purchase is one phone with an activation per service: adopt them together.
                wanted = sorted(wire["multiService"].split(","))
                by_phone: dict[object, list[Any]] = {}
                for row in unknown:
                    by_phone.setdefault(row.phone_number, []).append(row)
                groups = {phone: group for phone, group in by_phone.items()
                          if sorted(r.service_code or "" for r in group) == wanted}
            else:
                groups = {row.activation_id: [row] for row in unknown}
        candidates = sorted((min(_ident(item) for item in group), name) for name, group in groups.items())
        ids = tuple(_ident(item) for _, name in candidates for item in groups[name])
        if not candidates and isinstance(cause, OrderAlreadyExistsError):
            detail = "none found"
        elif not candidates:
            return _ABSENT
        elif len(candidates) <= self._gate.unresolved[key] + await self.journal.others_unresolved(key):
            for _, name in candidates:
                chosen = groups[name]
                # Atomic in the journal: of two clients reconciling at once, one takes each number.
                if await self._claim_in_journal(intent, chosen):
                    self.stats.adopted += 1
                    log.info("%s: adopted %s after a lost answer", action.wire, [_ident(item) for item in chosen])
                    return self._adopt(action, chosen, cause)
            if not isinstance(cause, OrderAlreadyExistsError):
                # Another client took each of them meanwhile: journaled as theirs, they are not ours,
                # just as if they had been taken before this listing was read.
                return _ABSENT
            detail = ", ".join(map(str, ids)) + " (all taken by other clients meanwhile)"
        else:
            detail = ", ".join(map(str, ids))
        raise PurchaseUncertainError(
            f"{action.wire} may have been carried out, but its answer was lost ({_lost(cause)}) and the "
            f"server's list does not say which number it is (candidates: {detail})",
            action=action.wire, candidate_ids=ids, code="PURCHASE_UNCERTAIN",
        )

    async def _claim_in_journal(self, intent: Intent | None, chosen: list[Any]) -> bool:
        for item in chosen:
            if isinstance(item, RentListEntry):
                entry = self.journal.entry(intent, "rent", item.id, item.phone)
            else:
                entry = self.journal.entry(intent, "activation", item.activation_id, item.phone_number,
                                           service=item.service_code,
                                           country=None if item.country_code is None else str(item.country_code),
                                           cost=item.activation_cost)
            if not await self.journal.adopt(entry):
                return False
        return True

    def _adopt(self, action: Action[Any], chosen: list[Any], cause: SMSActivateError | None) -> Any:
        now = self.clock.now()
        if isinstance(chosen[0], RentListEntry):
            self.known_rents.add(chosen[0].id)
            return Rent(id=chosen[0].id, number=_listed_phone(action, chosen[0].id, chosen[0].phone, cause))
        numbers = []
        for row in chosen:
            self.known_activations[row.activation_id] = now
            numbers.append(Number(
                activation_id=row.activation_id,
                phone_number=_listed_phone(action, row.activation_id, row.phone_number, cause),
                activation_cost=row.activation_cost, currency=row.currency, country_code=row.country_code,
                can_get_another_sms=row.can_get_another_sms, activation_time=row.activation_time,
                service_code=row.service_code,
            ))
        if action.wire == "getMultiServiceNumber":
            return [MultiServiceActivation(activation_id=n.activation_id, phone_number=n.phone_number,
                                           service=n.service_code or "") for n in numbers]
        return numbers[0]


def _purchases_in(result: object, wire: Mapping[str, str]) -> list[Bought]:
    """The numbers a purchase's result names — a rent, a number, or a list of them (multi-service);
    none for a partner product — each with its service, country and price as the answer names them,
    else as the request asked (``wire``)."""
    service, country = wire.get("service", ""), wire.get("country", "")
    if isinstance(result, Rent):
        return [Bought("rent", result.id, service, country)]
    found = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, Number):
            found.append(Bought("activation", item.activation_id, item.service_code or service,
                                country if item.country_code is None else str(item.country_code), item.activation_cost))
        elif isinstance(item, MultiServiceActivation):
            found.append(Bought("activation", item.activation_id, item.service, country))
    return found


def _lost(cause: SMSActivateError) -> str:
    """How the answer was lost, with what came back when something unreadable did."""
    return f"{cause.code}: {cause.excerpt}" if isinstance(cause, BadResponseError) else cause.code


#: ``_claim``'s answer when the listing shows no trace of the lost purchase
_ABSENT: Any = object()


def _listed_phone(action: Action[Any], ident: int, phone: str | None, cause: SMSActivateError | None) -> str:
    # Adopted, so it is ours and must be closed, but a number without its phone is no use to the
    # caller: say which one it is rather than hand back an empty phone.
    if phone:
        return phone
    lost = "committed late" if cause is None else _lost(cause)
    raise PurchaseUncertainError(
        f"{action.wire}: the lost purchase ({lost}) is most likely {ident}, but the server's list shows "
        "no phone for it",
        action=action.wire, candidate_ids=(ident,), code="PURCHASE_UNCERTAIN",
    )


def _ident(item: Any) -> int:
    value: int = item.id if isinstance(item, RentListEntry) else item.activation_id
    return value


def _matches(row: ActiveActivation, wire: Mapping[str, str]) -> bool:
    service = wire.get("service")
    if service is not None and row.service_code is not None and row.service_code != service:
        return False
    country = wire.get("country")
    if country is not None and row.country_code is not None and str(row.country_code) != country:
        return False
    # A lost purchase may already have its code: only closed rows are ruled out.
    return row.activation_status not in (6, 8, 10)


