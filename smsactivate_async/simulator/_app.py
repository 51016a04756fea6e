"""The simulator: state, dispatch and the ASGI application serving ``/stubs/handler_api.php``.

The layout, by area:

- ``_core``: the state and its timed events (accounts, activations, rents, clocks): no HTTP, no dialect;
- ``_catalogue``, ``_activations``, ``_calls``, ``_rent``, ``_partner``: one small handler per wire
  action, registered in ``_handlers.HANDLERS``;
- ``_dialects``: each dialect's quirks as a declared :class:`DialectProfile`, and the renderer that
  turns the handlers' documents and named errors into its HTTP (``sms-activate``: 200 everywhere,
  ``text/html`` even on JSON [LIVE]; ``herosms``: real statuses and a ``{"title","details","info"}``
  envelope, with some legacy tokens still 200 text [LIVE RustX fixtures]);
- ``_faults``, ``_ledger``, ``_webhooks``: faults and limits, the record of everything, pushes.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import random
import urllib.parse
import warnings
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import anyio
import attrs

from . import _activations, _calls, _catalogue, _partner, _rent, _webhooks  # noqa: F401  (handlers register)
from ._common import (
    _COUNTRIES,
    _OPERATORS,
    _PHONE_PREFIX,
    _RENT_COUNTRIES,
    _RENT_INFO,
    _SERVICES,
    CatalogueEntry,
    _cents,
    _default_catalogue,
    _Error,
    _fmt,
    _Reply,
    _wall,
)
from ._core import (
    Account,
    Activation,
    ActivationState,
    CodeSchedule,
    EventQueue,
    Message,
    ProfileName,
    Rent,
    RentSchedule,
    RentSmsRecord,
    SimClock,
    SystemSimClock,
)
from ._dialects import ALL_EXTRA_ACTIONS, PROFILES, DialectProfile, Renderer
from ._faults import FaultKind, Faults, Receive, Scope, Send, SimulatedFault
from ._handlers import HANDLERS, Handler
from ._ledger import Ledger, PurchaseRecord, RefundRecord, RequestRecord, StatusRecord
from ._transport import SimulatorTransport

__all__ = ["CatalogueEntry", "Simulator", "SimulatedFault"]

log = logging.getLogger("smsactivate_async.simulator")

PATH = "/stubs/handler_api.php"
#: a served simulator's ledger, as JSON (for the operator of a test: blocks, requests, money)
ADMIN_PATH = "/_simulator/ledger"


class Simulator:
    """A stateful SMS-Activate server.

    Args:
        provider: the provider whose server it plays: ``"sms-activate"`` (classic), ``"herosms"``,
            ``"tiger"``, ``"grizzly"``, ``"smshub"`` or ``"smsbower"`` — a preset's name, each with its
            :class:`DialectProfile` in ``_dialects`` (its wire dialect is the preset's ``Provider.dialect``).
        dialect: the former name of ``provider`` (deprecated: a dialect is the wire decoding, of which
            there are two; a profile belongs to a provider).
        api_keys: API key → starting balance. Default: ``{"test-key": 1000}``.
        clock: a :class:`SimClock` (``ManualClock`` in tests).
        codes: when codes arrive for new activations (:class:`CodeSchedule`).
        early_cancel_seconds: cancel refused this long after purchase (default: the dialect's; [DOC] 2 minutes).
        lifetime_seconds: an activation's life; without a code it is refunded [DOC HeroSMS: 20 min].
        rent_cancel_seconds: a rent may be cancelled this long [DOC: 20 minutes]; a rent that received
            no SMS within it is revoked (``STATUS_REVOKE``, its cost refunded) [DOC].
        rent_sms: when SMS arrive on new rents (:class:`RentSchedule`; default never: only
            :meth:`deliver_rent_sms` delivers).
        faults: :class:`Faults` to inject.
        webhook_url: where to POST incoming SMS (needs ``running()`` or a served simulator).
        webhook_retries: tries per push in all (sms-activate: 8 within 2 hours; HeroSMS: 1 + at least 7).
        webhook_retry_delay: seconds between tries (default: HeroSMS 20–30 s at random, sms-activate
            900 s, its 2 hours over 8 tries [INFER]).
        webhook_timeout: how long a try waits for the receiver's 200 [DOC HeroSMS: 3 s].
        webhook_duplicate_rate: share of pushes sent twice.
        webhook_drop_rate: share of tries lost on the way (the receiver never sees them; the
            provider counts a failure and tries again on its schedule).
        webhook_reorder: each try leaves up to this many seconds late, at random, so that pushes
            overtake each other.
        herosms_number_v2: HeroSMS getNumberV2's shape where the sources disagree (FACTS §4): ``"live"``
            (default; the 2026-04 capture: "Y-m-d H:i:s" times) or ``"spec"`` (the current spec's RFC 3339
            times with an offset, plus ``verificationType`` and ``status``).
        herosms_accepts_ready: whether HeroSMS takes setStatus 1 (default no: its current spec lists only
            3, 6 and 8; its first OpenAPI listed 1; no capture shows either — FACTS §7).
        seed: for every random choice, so that a failing run replays.
    """

    def __init__(
        self,
        *,
        provider: ProfileName | None = None,
        dialect: ProfileName | None = None,
        api_keys: Mapping[str, Decimal | int | str] | None = None,
        clock: SimClock | None = None,
        codes: CodeSchedule | None = None,
        early_cancel_seconds: float | None = None,
        lifetime_seconds: float = 1200.0,
        rent_cancel_seconds: float = 1200.0,
        rent_sms: RentSchedule | None = None,
        faults: Faults | None = None,
        catalogue: Iterable[CatalogueEntry] | None = None,
        webhook_url: str | None = None,
        webhook_retries: int | None = None,
        webhook_retry_delay: float | None = None,
        webhook_duplicate_rate: float = 0.0,
        webhook_timeout: float = 3.0,
        webhook_drop_rate: float = 0.0,
        webhook_reorder: float = 0.0,
        status_v2_shape: str = "live",
        herosms_number_v2: str = "live",
        herosms_accepts_ready: bool = False,
        seed: int = 0,
    ) -> None:
        if dialect is not None:
            if provider is not None:
                raise ValueError("give provider= alone (dialect= is its former name)")
            warnings.warn("Simulator(dialect=…) is now Simulator(provider=…): a dialect is the wire decoding "
                          "(Provider.dialect), a profile belongs to a provider", DeprecationWarning, stacklevel=2)
            provider = dialect
        provider = "sms-activate" if provider is None else provider
        if provider not in PROFILES:
            raise ValueError(f"unknown provider {provider!r}: one of {', '.join(PROFILES)}")
        #: the provider whose server this plays (a preset's name; its profile is :attr:`profile`)
        self.provider: ProfileName = provider
        profile = PROFILES[provider]
        if herosms_accepts_ready and provider == "herosms":
            profile = attrs.evolve(profile, accepts_ready=True)
        #: what this dialect does differently (declared data, with sources)
        self.profile: DialectProfile = profile
        #: turns the handlers' documents and errors into this dialect's HTTP
        self.render = Renderer(profile)
        self.clock = clock or SystemSimClock()
        self.codes = codes or CodeSchedule()
        self.early_cancel_seconds = profile.early_cancel_seconds if early_cancel_seconds is None else early_cancel_seconds
        self.lifetime_seconds = lifetime_seconds
        self.rent_cancel_seconds = rent_cancel_seconds
        self.rent_sms = rent_sms or RentSchedule.never()
        self.faults = faults or Faults()
        self.webhook_url = webhook_url
        # [DOC] sms-activate: at most 8 tries within 2 hours; HeroSMS: the first and >=7 retries every 20-30 s.
        self.webhook_retries = webhook_retries if webhook_retries is not None else 8
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_duplicate_rate = webhook_duplicate_rate
        self.webhook_timeout = webhook_timeout
        self.webhook_drop_rate = webhook_drop_rate
        self.webhook_reorder = webhook_reorder
        self.status_v2_shape = status_v2_shape
        if herosms_number_v2 not in ("live", "spec"):
            raise ValueError(f"herosms_number_v2 must be 'live' or 'spec', got {herosms_number_v2!r}")
        self.herosms_number_v2 = herosms_number_v2
        # An assumption, switchable: HeroSMS's current spec lists only 3, 6 and 8 for setStatus, its
        # first OpenAPI still listed 1, and no capture shows either (FACTS §7). The current spec wins.
        self.herosms_accepts_ready = herosms_accepts_ready
        self.rng = random.Random(seed)
        self.accounts: dict[str, Account] = {
            key: Account(key=key, balance=Decimal(str(balance)))
            for key, balance in (api_keys or {"test-key": Decimal("1000")}).items()
        }
        self.catalogue: dict[tuple[str, int], CatalogueEntry] = {
            (e.service, e.country): e for e in (catalogue or _default_catalogue(self.profile.absent_countries))
        }
        absent = self.profile.absent_countries
        self._countries = {c: names for c, names in _COUNTRIES.items() if c not in absent}
        self._operators = {c: ops for c, ops in _OPERATORS.items() if c not in absent}
        self.activations: dict[int, Activation] = {}
        self.rents: dict[int, Rent] = {}
        self.orders: dict[tuple[str, str], int] = {}
        self.ledger = Ledger()
        self._events = EventQueue()
        self._next_activation_id = 3_936_040_355  # [LIVE] ids beyond 2^31
        self._rent_ids = iter(range(26_251_422, 2**62))
        self._window: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._blocked_until: dict[str, float] = {}
        self._webhooks: collections.deque[tuple[float, dict[str, Any], int]] = collections.deque()
        self._wake: anyio.Event | None = None
        dropped = self.profile.dropped_actions | (ALL_EXTRA_ACTIONS - self.profile.extra_actions)
        self._handlers: dict[str, Handler] = {a: h for a, h in HANDLERS.items() if a not in dropped}

    @property
    def dialect(self) -> ProfileName:
        """The former name of :attr:`provider` (deprecated)."""
        warnings.warn("Simulator.dialect is now Simulator.provider", DeprecationWarning, stacklevel=2)
        return self.provider

    # --- public helpers for tests and the demo -------------------------------------------

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return next(iter(self.accounts))

    def balance(self, key: str | None = None) -> Decimal:
        """An account's balance (the first key's by default), after applying due events."""
        return self.accounts[key or self.api_key].balance

    def deliver_sms(self, activation_id: int, text: str, *, code: str | None = None, phone_from: str = "Telegram") -> None:
        """Push an SMS to an activation now (the code is the text's digits unless given)."""
        self.advance()
        activation = self.activations[activation_id]
        if code is None:
            digits = "".join(ch for ch in text if ch.isdigit())
            code = digits or text
        self._receive(activation, Message(text=text, code=code, at=self.clock.wall(), phone_from=phone_from))

    def deliver_call(self, activation_id: int, code: str) -> None:
        """A voice call with ``code`` arrives on an activation now."""
        self.advance()
        activation = self.activations[activation_id]
        self._receive(activation, Message(text=f"Your code is {code}", code=code, at=self.clock.wall(), via="call",
                                          phone_from="79001234567"))

    def deliver_rent_sms(self, rent_id: int, text: str, *, phone_from: str = "SPORTMASTER") -> None:
        """An SMS arrives on a rent now (and its webhook is queued, if it has a URL)."""
        self.advance()
        self._rent_sms(self.rents[rent_id], text, phone_from)

    def _rent_sms(self, rent: Rent, text: str, phone_from: str = "SPORTMASTER") -> None:
        rent.messages.append(RentSmsRecord(phone_from=phone_from, text=text, service=rent.service, at=self.clock.wall()))
        if rent.url:
            self._queue_webhook({"rentId": str(rent.id), "sms": {"phoneFrom": phone_from, "text": text,
                                                                 "date": _wall(self.clock.wall())}}, rent.url)

    def _rent_burst(self, rent: Rent) -> None:
        """One burst of the rent SMS schedule, and the next one queued."""
        for _ in range(self.rent_sms.burst):
            if self.rent_sms.count is not None and len(rent.messages) >= self.rent_sms.count:
                break
            code = f"{self.rng.randrange(10**5, 10**6)}"
            self._rent_sms(rent, f"Code {code} (message {len(rent.messages) + 1})")
        self.schedule_rent_sms(rent)

    def schedule_rent_sms(self, rent: Rent) -> None:
        """Queue the rent's next burst of its SMS schedule, if any."""
        delay = self.rent_sms.next_delay(self.rng, len(rent.messages))
        if delay is not None:
            self._events.push(self.clock.now() + delay, "rent_sms", rent.id)

    def open_activations(self) -> list[Activation]:
        """Activations still open (neither finished, cancelled nor refunded)."""
        self.advance()
        return [a for a in self.activations.values() if a.state.active]

    def set_stock(self, service: str, country: int, count: int) -> None:
        """Set how many numbers a (service, country) has for sale."""
        entry = self.catalogue[(service, country)]
        self.catalogue[(service, country)] = attrs.evolve(entry, count=count)

    def set_price(self, service: str, country: int, price: Decimal | int | str) -> None:
        """Move a pair's minimum price (prices move on live providers; ``WRONG_MAX_PRICE`` follows)."""
        entry = self.catalogue[(service, country)]
        self.catalogue[(service, country)] = attrs.evolve(entry, price=Decimal(str(price)))

    def set_success_rate(self, service: str, country: int, rate: float) -> None:
        """The share of this pair's next numbers that will ever receive a code."""
        entry = self.catalogue[(service, country)]
        self.catalogue[(service, country)] = attrs.evolve(entry, success_rate=rate)

    def ban(self, until: _dt.datetime, key: str | None = None) -> None:
        """Ban an account (the first key's by default) until ``until`` (timezone-aware: the
        simulator's wall clock is UTC; a naive time would be compared with it at every request)."""
        if until.tzinfo is None or until.utcoffset() is None:
            raise ValueError(f"ban(until=...) needs a timezone-aware datetime, got the naive {until.isoformat()}")
        self.accounts[key or self.api_key].banned_until = until

    def advance(self) -> None:
        """Apply every timed event (code arrivals, lifetimes) up to the clock's now."""
        now = self.clock.now()
        for event in self._events.due(now):
            activation = self.activations.get(event.target)
            if event.kind == "code" and activation is not None and activation.state in (
                ActivationState.WAIT_CODE, ActivationState.WAIT_RETRY
            ) and event.token == len(activation.messages):
                code = f"{self.rng.randrange(10**5, 10**6)}"
                self._receive(activation, Message(text=f"Your code is {code}", code=code, at=self.clock.wall(),
                                                  via=activation.via))
            elif event.kind == "expire" and activation is not None and activation.state.active:
                if activation.messages:
                    self._change(activation, ActivationState.FINISHED, "lifetime ended after a code")  # [INFER]
                else:
                    self._refund(activation, ActivationState.REFUNDED, "lifetime ended without a code")
            elif event.kind == "rent_end":
                rent = self.rents.get(event.target)
                if rent is not None and rent.state == "active":
                    rent.state = "finished"
            elif event.kind == "rent_sms":
                rent = self.rents.get(event.target)
                if rent is not None and rent.state == "active":
                    self._rent_burst(rent)
            elif event.kind == "rent_revoke":
                rent = self.rents.get(event.target)
                if rent is not None and rent.state == "active" and not rent.messages:
                    rent.state = "revoked"  # [DOC] STATUS_REVOKE: no SMS, funds returned
                    self.accounts[rent.key].balance += rent.cost
                    self.ledger.refunds.append(RefundRecord(now, rent.id, rent.cost, "rent revoked"))

    # --- state changes ----------------------------------------------------------------------

    def _receive(self, activation: Activation, message: Message) -> None:
        if not activation.state.active:
            return
        activation.messages.append(message)
        self._change(activation, ActivationState.CODE_RECEIVED, f"{message.via} arrived")
        if self.webhook_url:
            payload: dict[str, Any] = {
                "activationId": activation.id, "service": activation.service, "text": message.text,
                "code": message.code, "country": activation.country, "receivedAt": _wall(message.at),
            }
            if self.profile.webhook_iso_times:
                payload["phoneFrom"] = message.phone_from
                payload["receivedAt"] = message.at.isoformat().replace("+00:00", "Z")
            self._queue_webhook(payload, self.webhook_url)

    def _change(self, activation: Activation, state: ActivationState, cause: str) -> None:
        self.ledger.status_changes.append(
            StatusRecord(self.clock.now(), activation.id, activation.state.name, state.name, cause)
        )
        activation.state = state

    def _refund(self, activation: Activation, state: ActivationState, cause: str) -> None:
        self.accounts[activation.key].balance += activation.cost
        self.ledger.refunds.append(RefundRecord(self.clock.now(), activation.id, activation.cost, cause))
        self._change(activation, state, cause)

    def _schedule_code(self, activation: Activation) -> None:
        if not activation.messages:
            entry = self.catalogue.get((activation.service, activation.country))
            if entry is not None and entry.success_rate < 1.0 and self.rng.random() >= entry.success_rate:
                return  # this number never receives its code
        delay = self.codes.next_delay(self.rng)
        if delay is not None:
            activation.code_due.append(self.clock.now() + delay)
            self._events.push(self.clock.now() + delay, "code", activation.id, token=len(activation.messages))
            if self._wake is not None:
                self._wake.set()

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        params = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if scope["path"].rstrip("/") == ADMIN_PATH:
            # the operator's look at a served simulator: its ledger (requests, blocks, money), never a key
            opened = self.open_activations()
            summary = {**self.ledger.summary(), "open_activations": len(opened),
                       "active_rents": sum(1 for r in self.rents.values() if r.state == "active"),
                       "now": round(self.clock.now(), 4)}
            if params.get("records") not in (None, "", "0"):  # the rows too, for a benchmark's own analysis
                summary.update(self.ledger.records(), open_activation_ids=[a.id for a in opened])
            reply = _Reply(200, json.dumps(summary).encode(), "application/json")
        elif scope["path"].rstrip("/") != PATH:
            reply = _Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        else:
            reply = await self.handle(params)
        headers = [(b"content-type", reply.content_type.encode()), (b"content-length", str(len(reply.body)).encode()),
                   (b"server", b"cloudflare"), *reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    group.start_soon(self._pump)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    group.cancel_scope.cancel()
                    break
        # outside the cancelled scope, once the pump has stopped: an await inside it would be cancelled too
        await send({"type": "lifespan.shutdown.complete"})

    async def handle(self, params: Mapping[str, str]) -> _Reply:
        """Answer one request (query and form parameters merged)."""
        self.advance()
        action = params.get("action", "")
        fault = self.faults.pick(action, self.rng)
        reply = self._budget(params)
        if reply is None and fault is FaultKind.RATE_LIMIT:
            reply = self._rate_limited(header=self._retry_after_header)
        if reply is None and fault is FaultKind.DROP:
            self._record(action, 0, fault)
            raise SimulatedFault(fault)
        if reply is None and fault is FaultKind.HTML_5XX:
            code = self.rng.choice((502, 503))
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}[code]
            reply = _Reply(code, f"<html><head><title>{code} {reason}</title></head><body><center><h1>{code} "
                           f"{reason}</h1></center><hr><center>cloudflare</center></body></html>".encode(), "text/html")
        if reply is None and fault is FaultKind.ERROR_SQL:
            reply = self.render.text("ERROR_SQL")  # [LIVE] still 200 plain text on HeroSMS
        if reply is None:
            first_new, rents_before = self._next_activation_id, len(self.rents)
            reply = self._dispatch(action, params)
            if fault is FaultKind.LATE_PURCHASE:
                listed_from = self.clock.now() + self.faults.late_commit_seconds
                for activation_id in range(first_new, self._next_activation_id):
                    self.activations[activation_id].listed_from = listed_from
                for rent_id in list(self.rents)[rents_before:]:  # (insertion order: the rents just made)
                    self.rents[rent_id].listed_from = listed_from
        if fault in (FaultKind.TIMEOUT, FaultKind.LOST_PURCHASE, FaultKind.LATE_PURCHASE):
            self._record(action, 0, fault)
            raise SimulatedFault(fault)
        # [LIVE] truncation was seen on large JSON bodies; a short text answer arrives whole.
        if fault is FaultKind.TRUNCATE and len(reply.body) > 1 and reply.body[:1] in (b"{", b"["):
            limit = self.faults.truncate_at
            cut = limit if limit is not None and len(reply.body) > limit else int(len(reply.body) * self.faults.truncate_fraction)
            reply = _Reply(reply.status, reply.body[: max(1, cut)], reply.content_type, reply.headers)
        self._record(action, reply.status, fault)
        return reply

    def _record(self, action: str, status: int, fault: FaultKind | None) -> None:
        self.ledger.requests.append(RequestRecord(self.clock.now(), action, status, fault.value if fault else None))

    @property
    def _retry_after_header(self) -> bool:
        chosen = self.faults.retry_after_header
        return self.profile.retry_after_header if chosen is None else chosen

    def _rate_limited(self, seconds: float | None = None, *, header: bool, page: bool = False) -> _Reply:
        return self.render.rate_limited(self.faults.retry_after if seconds is None else seconds, header=header, page=page)

    def _budget(self, params: Mapping[str, str]) -> _Reply | None:
        faults = self.faults
        now = self.clock.now()
        key = params.get("api_key", "")
        if faults.purchase_rps is not None and params.get("action") in ("getNumber", "getNumberV2"):
            scope = f"{key}|{params.get('service', '')}|{params.get('country', '')}"
            window = self._window[scope]
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= faults.purchase_rps:
                self.ledger.over_budget += 1
                return self._rate_limited(max(1.0, faults.retry_after), header=self._retry_after_header)
            window.append(now)
        budget = faults.rps_budget
        if budget is None:
            return None
        blocked = self._blocked_until.get(key, float("-inf"))
        if faults.block_seconds is not None and now < blocked:
            # [DOC HeroSMS] "repeats re-block": a request during the block starts it again
            self._blocked_until[key] = now + faults.block_seconds
            self.ledger.blocks[-1][1] = now + faults.block_seconds
            return self._rate_limited(faults.block_seconds, header=self._retry_after_header, page=faults.block_page)
        window = self._window[key]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= budget:
            self.ledger.over_budget += 1
            if faults.block_seconds is None:
                return self._rate_limited(header=self._retry_after_header)
            self._blocked_until[key] = now + faults.block_seconds
            self.ledger.blocks.append([now, now + faults.block_seconds])
            return self._rate_limited(faults.block_seconds, header=self._retry_after_header, page=faults.block_page)
        window.append(now)
        return None

    def _dispatch(self, action: str, params: Mapping[str, str]) -> _Reply:
        try:
            key = params.get("api_key")
            if not key:
                raise self.render.fail("NO_KEY", status=422, title="UNPROCESSABLE_ENTITY", details="Validation failed",
                                       info={"field": "api_key", "code": "REQUIRED", "message": ""})  # [LIVE]
            account = self.accounts.get(key)
            if account is None:
                raise self.render.fail("BAD_KEY", status=401, details="Unauthorized")
            handler = self._handlers.get(action)
            if handler is None:
                raise self.render.fail("BAD_ACTION", status=404, details="Method Not Found")
            return handler(self, account, params)
        except _Error as error:
            return error.reply

    # --- parameter helpers ------------------------------------------------------------------

    def _activation(self, account: Account, params: Mapping[str, str], name: str = "id") -> Activation:
        # Only the documented name: `id`, or `activationId` where the docs say so (getExtraActivation,
        # checkExtraActivation, createTaskForCall). No source shows a server taking the other.
        raw = params.get(name) or ""
        activation = self.activations.get(int(raw)) if raw.isdigit() else None
        if activation is None or activation.key != account.key:
            if self.profile.unknown_activation_not_found:  # [LIVE] 404 NOT_FOUND, for any unknown id
                raise self.render.envelope("NOT_FOUND", 404, "Activation Not Found")
            if self.profile.unknown_activation_plain:  # [RUSTX-TIGER] also for non-numeric ids
                raise _Error(self.render.text("NO_ACTIVATION"))
            raise self.render.fail("NO_ACTIVATION" if raw.isdigit() else "WRONG_ACTIVATION_ID")
        return activation

    @property
    def rent_countries(self) -> tuple[int, ...]:
        """The countries getCountries says can be rented (``rent: 1``), of those this dialect has."""
        return tuple(c for c in _RENT_COUNTRIES if c in self._countries)

    def _country(self, params: Mapping[str, str], default: int = 0) -> int:
        raw = params.get("country", "")
        return int(raw) if raw.lstrip("-").isdigit() else default

    # --- balance and catalogue ----------------------------------------------------------------

    def _top_rows(self, service: str, free_price: bool) -> dict[str, Any]:
        rows = sorted((e for e in self.catalogue.values() if e.service == service), key=lambda e: e.price)
        result = {}
        for rank, entry in enumerate(rows):
            row: dict[str, Any] = {"country": entry.country, "count": entry.count, "price": entry.price,
                                   "retail_price": entry.price * 2}
            if free_price:
                row["freePriceMap"] = self._free_price_map(entry)
                row["price"] = self._cheapest_tier(entry)  # [LIVE HeroSMS] 0.2353 with freePrice, 0.4 without
            result[str(rank)] = row
        return result

    @staticmethod
    def _cheapest_tier(entry: CatalogueEntry) -> Decimal:
        return (entry.price * Decimal("0.6")).quantize(Decimal("0.0001"))

    @classmethod
    def _free_price_map(cls, entry: CatalogueEntry) -> dict[str, int]:
        # [LIVE HeroSMS, REAL_RESPONSES §E] keys are price strings, values cumulative counts up to that
        # price; the tiers start BELOW the default price (0.2353 against 0.4) with a few numbers there
        # (4 of 1 213 663) and reach all of them several times above it (2.9471)
        count = entry.count
        return {_fmt(cls._cheapest_tier(entry)): count // 100, _fmt(entry.price): count // 2,
                _fmt(entry.price * 3): count}

    @classmethod
    def _free_price_stock(cls, entry: CatalogueEntry, limit: Decimal) -> int:
        """Numbers on offer at or below ``limit`` (the freePriceMap's cumulative count there)."""
        levels = [(Decimal(price), count) for price, count in cls._free_price_map(entry).items()]
        return max((count for price, count in levels if price <= limit), default=0)


    # --- purchases ------------------------------------------------------------------------------

    def _check_purchase(self, account: Account, params: Mapping[str, str], service: str | None, v2: bool) -> CatalogueEntry:
        if account.banned_until is not None and account.banned_until > self.clock.wall():
            until = account.banned_until
            raise self.render.fail(
                "BANNED", status=403, details="Your account is temporarily suspended from making any purchases.",
                info={"scope": "global", "banned_until": int(until.timestamp()),
                      "retry_after_seconds": int((until - self.clock.wall()).total_seconds()),
                      "readable_date": until.isoformat()},
                payload="'" + until.strftime("%Y-%m-%d %H-%M-%S") + "'")
        if not service or service not in _SERVICES:
            details = "This service/country combination is not available"
            if v2 and self.profile.v2_bad_service_status is not None:
                raise self.render.envelope("BAD_SERVICE", self.profile.v2_bad_service_status, details)
            if self.profile.bad_service_text:
                raise _Error(self.render.text(self.profile.bad_service_text))
            raise self.render.fail("BAD_SERVICE", status=400, details=details)
        self._require_country(params)
        entry = self.catalogue.get((service, self._country(params)))
        if entry is None or entry.count <= 0:
            raise self._no_numbers(v2)
        max_price = params.get(self.profile.max_price_param)
        if max_price:
            try:
                limit = Decimal(max_price)
            except ArithmeticError:
                limit = None  # [LIVE] garbage maxPrice is ignored
            free_price = params.get("freePrice") == "true"
            # Free Price sells below the default price, down to its cheapest tier [LIVE HeroSMS]
            least = self._cheapest_tier(entry) if free_price else entry.price
            if limit is not None and limit < least:
                raise self.render.fail("WRONG_MAX_PRICE", status=400,
                                       details="The maximum price is less than the permitted price",
                                       info={"min": least}, payload=_fmt(least))
            if limit is not None and free_price and not self._free_price_stock(entry, limit):
                # Free Price: only the numbers offered at or below the declared price can be had
                # (freePriceMap counts them, cumulatively, per price level)
                raise self._no_numbers(v2)
        if account.balance < self._cost(entry, params):
            raise self.render.fail("NO_BALANCE", status=402, details="Payment Required")
        return entry

    def _require_country(self, params: Mapping[str, str]) -> None:
        """A purchase (a rent included [INFER]) where the dialect names no default country needs one."""
        if self.profile.country_required and not params.get("country", "").isdigit():
            # HeroSMS names no default country (it has no Russia, the classic default): its modern
            # purchase requires one [HERO-TR] and getNumbersStatus answers this 422 without one [RUSTX-HERO].
            # [INFER] the shape of HeroSMS's documented 422 (FACTS §17: "Validation failed", info.field/code);
            # the sources show a purchase without a country nowhere, and "Param 'country' must be a
            # number" only for getNumbersStatus [RUSTX-HERO].
            raise self.render.envelope("UNPROCESSABLE_ENTITY", 422, "Validation failed",
                                       {"field": "country", "code": "REQUIRED", "message": ""})

    def _no_numbers(self, v2: bool) -> _Error:
        # [LIVE] v1 getNumber keeps its 200 text token on HeroSMS; getNumberV2 is enveloped there
        return self.render.fail("NO_NUMBERS", status=404 if v2 else None, details="Numbers Not Found. Try Later")

    def _cost(self, entry: CatalogueEntry, params: Mapping[str, str]) -> Decimal:
        """What a purchase costs: the catalogue price, or with ``freePrice=true`` the ``maxPrice`` the
        buyer declared ([SA-DOC es] "el precio máximo al que está listo para comprar … a Precio
        Gratis"; it was checked to reach at least the cheapest tier)."""
        if params.get("freePrice") == "true":
            try:
                declared = Decimal(params.get(self.profile.max_price_param, ""))
            except ArithmeticError:
                return entry.price
            if declared.is_finite() and declared >= self._cheapest_tier(entry):
                return declared
        return entry.price

    def _buy(self, account: Account, entry: CatalogueEntry, params: Mapping[str, str], *, phone: str | None = None,
             parent: int | None = None, order_id: str | None = None) -> Activation:
        now = self.clock.now()
        activation_id = self._next_activation_id
        self._next_activation_id += 1
        country = entry.country
        activation = Activation(
            id=activation_id, key=account.key, service=entry.service, country=country,
            operator=(_OPERATORS.get(country) or ["any"])[0],
            phone=phone or _PHONE_PREFIX.get(country, "1") + f"{self.rng.randrange(10**8, 10**9)}",
            cost=self._cost(entry, params), bought_at=now, bought_wall=self.clock.wall(), order_id=order_id,
            forward=params.get("forward") == "1", parent=parent,
            via="call" if params.get("activationType") == "2" or self.codes.via == "call" else "sms",
        )
        account.balance -= activation.cost
        self.catalogue[(entry.service, country)] = attrs.evolve(entry, count=entry.count - 1)
        self.activations[activation_id] = activation
        self.ledger.purchases.append(
            PurchaseRecord(now, "activation", activation_id, account.key, activation.cost, entry.service, order_id))
        self._events.push(now + self.lifetime_seconds, "expire", activation_id)
        self._schedule_code(activation)
        return activation


    def _extra_entry(self, account: Account, params: Mapping[str, str]) -> tuple[Activation, CatalogueEntry]:
        parent = self._activation(account, params, "activationId")
        if parent.state is not ActivationState.FINISHED:
            raise self.render.fail("RENEW_ACTIVATION_NOT_AVAILABLE")
        entry = self.catalogue.get((parent.service, parent.country))
        if entry is None:
            raise self.render.fail("NEW_ACTIVATION_IMPOSSIBLE")
        return parent, entry


    # --- activation status -------------------------------------------------------------------------

    def _early_cancel_check(self, activation: Activation) -> None:
        if self.clock.now() - activation.bought_at < self.early_cancel_seconds:
            raise self.render.fail(
                "EARLY_CANCEL_DENIED", status=409,
                details="Activation cannot be cancelled at this time. Minimum activation period must pass.",
                info={"minActivationTime": int(self.early_cancel_seconds)})  # [LIVE]


    def _active_row(self, a: Activation) -> dict[str, Any]:
        code = a.last_code if a.state is ActivationState.CODE_RECEIVED else None
        text = a.messages[-1].text if code else None
        if self.profile.active_list == "paged":
            return {"activationId": str(a.id), "serviceCode": a.service, "phoneNumber": a.phone,
                    "activationCost": a.cost, "activationStatus": a.state.value, "smsCode": code, "smsText": text,
                    "activationTime": _wall(a.bought_wall), "countryCode": str(a.country),
                    "countryName": _COUNTRIES.get(a.country, ("", "?", ""))[1], "canGetAnotherSms": "1",
                    "currency": self.profile.currency, "verificationType": a.via, "receiveSmsDate": None}
        # [LIVE 2024-10] every field a string; smsCode a string (documented as an array).
        return {"activationId": str(a.id), "serviceCode": a.service, "phoneNumber": a.phone,
                "activationCost": _cents(a.cost), "activationStatus": a.state.value, "smsCode": code, "smsText": text,
                "activationTime": _wall(a.bought_wall), "discount": "0", "repeated": "0",
                "countryCode": str(a.country), "countryName": _COUNTRIES.get(a.country, ("", "?", ""))[1],
                "canGetAnotherSms": "1", "currency": self.profile.currency}


    def _history_status(self, a: Activation) -> str:
        # [DOC HeroSMS] "10" is HeroSMS's auto-refund at the end of the lifetime; the classic API
        # documents no such status, and there an expired activation reads as cancelled (8).
        if a.state is ActivationState.REFUNDED:
            return self.profile.expired_history_status
        return str(a.state.value)


    # --- rent -------------------------------------------------------------------------------------

    def _rent_hours(self, params: Mapping[str, str], default: int = 4, *, key: str = "rent_time",
                    least: int = 2, explain: bool = False) -> int:
        raw = params.get(key, "")
        hours = int(raw) if raw.isdigit() else (default if key not in params else 0)
        if not least <= hours <= 1344:
            # [DOC] 2 to 1344 hours; an extension 4 to 1344 (000 continueRentNumber)
            raise self.render.fail("INVALID_TIME", json_key="message", info=_RENT_INFO["INVALID_TIME"] if explain else None)
        return hours

    def _rent_price(self, service: str, country: int, hours: int) -> Decimal:
        entry = self.catalogue.get((service, country))
        base = entry.price if entry else Decimal("0.50")
        return (base * 4 * Decimal(hours) / 4).quantize(Decimal("0.01"))


    def _rent(self, account: Account, params: Mapping[str, str], *, explain: bool = False) -> Rent:
        raw = params.get("id", "")
        rent = self.rents.get(int(raw)) if raw.isdigit() else None
        if rent is None or rent.key != account.key:
            raise self.render.fail("NO_ID_RENT", json_key="message", info=_RENT_INFO["NO_ID_RENT"] if explain else None)
        return rent


    # --- webhooks and the background pump ----------------------------------------------------------

    def _queue_webhook(self, payload: dict[str, Any], url: str) -> None:
        _webhooks.queue_webhook(self, payload, url)

    def _webhook_retry_delay(self) -> float:
        return _webhooks.webhook_retry_delay(self)

    async def _pump(self, interval: float = 0.05) -> None:
        await _webhooks.pump(self, interval)

    def transport(self) -> SimulatorTransport:
        """An httpx transport that serves requests from this simulator, in process."""
        return SimulatorTransport(self)

    def running(self) -> _Running:
        """``async with sim.running():`` delivers timed codes and webhooks in the background."""
        return _Running(self)


class _Running:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Simulator:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._sim._pump)
        return self._sim

    async def __aexit__(self, *exc: object) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
