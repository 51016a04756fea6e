"""The simulator: an ASGI application serving ``/stubs/handler_api.php`` in either dialect.

``sms-activate`` answers everything with HTTP 200: plain tokens, JSON, and JSON errors on the
rent actions, with ``Content-Type: text/html`` even on JSON [LIVE]. ``herosms`` answers with real
HTTP statuses and a ``{"title","details","info"}`` envelope for most errors, while some legacy
tokens stay 200 text [LIVE RustX fixtures].
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import random
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._core import (
    Account,
    Activation,
    ActivationState,
    CodeSchedule,
    Dialect,
    EventQueue,
    FaultKind,
    Faults,
    Ledger,
    Message,
    PurchaseRecord,
    RefundRecord,
    Rent,
    RentSmsRecord,
    RequestRecord,
    SimClock,
    StatusRecord,
    SystemSimClock,
)

if TYPE_CHECKING:
    from ._transport import SimulatorTransport

__all__ = ["CatalogueEntry", "Simulator", "SimulatedFault"]

log = logging.getLogger("smsactivate_async.simulator")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PATH = "/stubs/handler_api.php"


class SimulatedFault(Exception):
    """Raised through the ASGI app for faults a status code cannot express (drop, timeout)."""

    def __init__(self, kind: FaultKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


@attrs.frozen
class CatalogueEntry:
    """One (service, country) on sale: its price, its stock, and the share of its numbers that
    ever receive a code (``success_rate``; HeroSMS bans pairs that fall under 6 %, FACTS §18)."""

    service: str
    country: int
    price: Decimal
    count: int
    success_rate: float = 1.0


@attrs.define
class _Reply:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)


class _Error(Exception):
    def __init__(self, reply: _Reply) -> None:
        self.reply = reply


_SERVICES = {"tg": "Telegram", "wa": "WhatsApp", "vk": "VKontakte", "go": "Google,youtube,Gmail", "ig": "Instagram",
             "fb": "Facebook", "ot": "Any other", "ds": "Discord", "oi": "Tinder", "mm": "Microsoft"}
_COUNTRIES = {0: ("Россия", "Russia", "俄罗斯"), 2: ("Казахстан", "Kazakhstan", "哈萨克斯坦"),
              6: ("Индонезия", "Indonesia", "印度尼西亚"), 12: ("США (виртуальные)", "USA (virtual)", "美国（虚拟）"),
              16: ("Великобритания", "United Kingdom", "英国"), 33: ("Колумбия", "Colombia", "哥伦比亚"),
              187: ("США", "USA", "美国")}
_OPERATORS = {0: ["beeline", "megafon", "mts", "tele2"], 2: ["altel", "beeline", "tele2"], 6: ["indosat", "telkomsel"],
              12: ["any"], 16: ["ee", "three", "vodafone"], 33: ["claro", "movistar"], 187: ["tmobile", "verizon"]}
_PHONE_PREFIX = {0: "79", 2: "77", 6: "628", 12: "1201", 16: "447", 33: "573", 187: "1347"}
#: the country's calling code [ITU E.164; LIVE HeroSMS: country 52 (Thailand) sent countryPhoneCode 66]
_CALLING_CODE = {0: 7, 2: 7, 6: 62, 12: 1, 16: 44, 33: 57, 52: 66, 187: 1}


#: [LIVE getCountries dump, FACTS §10] HeroSMS has no Russia (0) and no USA virtual (12).
_HEROSMS_ABSENT = frozenset({0, 12})


def _default_catalogue(dialect: Dialect) -> list[CatalogueEntry]:
    entries = []
    for country in _COUNTRIES:
        if dialect == "herosms" and country in _HEROSMS_ABSENT:
            continue
        for index, service in enumerate(_SERVICES):
            price = Decimal("0.10") + Decimal(index) * Decimal("0.05") + Decimal(country % 7) / 100
            entries.append(CatalogueEntry(service, country, price, 100_000))
    return entries


def _fmt(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount != 0 else "0"


def _cents(amount: Decimal) -> str:
    """Money as the classic rows print it: at least two decimals ([LIVE 2024-10] ``"10.00"``)."""
    return format(amount.quantize(Decimal("0.01")) if amount == amount.quantize(Decimal("0.01")) else amount, "f")


def _wall(value: _dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


class Simulator:
    """A stateful SMS-Activate server.

    Args:
        dialect: ``"sms-activate"`` (classic) or ``"herosms"``.
        api_keys: API key → starting balance. Default: ``{"test-key": 1000}``.
        clock: a :class:`SimClock` (``ManualClock`` in tests).
        codes: when codes arrive for new activations (:class:`CodeSchedule`).
        early_cancel_seconds: cancel refused this long after purchase [DOC: 2 minutes].
        lifetime_seconds: an activation's life; without a code it is refunded [DOC HeroSMS: 20 min].
        rent_cancel_seconds: a rent may be cancelled this long [DOC: 20 minutes].
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
        herosms_accepts_ready: whether HeroSMS takes setStatus 1 (default no: its current spec lists only
            3, 6 and 8; its first OpenAPI listed 1; no capture shows either — FACTS §7).
        seed: for every random choice, so that a failing run replays.
    """

    def __init__(
        self,
        *,
        dialect: Dialect = "sms-activate",
        api_keys: Mapping[str, Decimal | int | str] | None = None,
        clock: SimClock | None = None,
        codes: CodeSchedule | None = None,
        early_cancel_seconds: float = 120.0,
        lifetime_seconds: float = 1200.0,
        rent_cancel_seconds: float = 1200.0,
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
        herosms_accepts_ready: bool = False,
        seed: int = 0,
    ) -> None:
        if dialect not in ("sms-activate", "herosms"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect: Dialect = dialect
        self.clock = clock or SystemSimClock()
        self.codes = codes or CodeSchedule()
        self.early_cancel_seconds = early_cancel_seconds
        self.lifetime_seconds = lifetime_seconds
        self.rent_cancel_seconds = rent_cancel_seconds
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
        # An assumption, switchable: HeroSMS's current spec lists only 3, 6 and 8 for setStatus, its
        # first OpenAPI still listed 1, and no capture shows either (FACTS §7). The current spec wins.
        self.herosms_accepts_ready = herosms_accepts_ready
        self.rng = random.Random(seed)
        self.accounts: dict[str, Account] = {
            key: Account(key=key, balance=Decimal(str(balance)))
            for key, balance in (api_keys or {"test-key": Decimal("1000")}).items()
        }
        self.catalogue: dict[tuple[str, int], CatalogueEntry] = {
            (e.service, e.country): e for e in (catalogue or _default_catalogue(dialect))
        }
        absent = _HEROSMS_ABSENT if dialect == "herosms" else frozenset()
        self._countries = {c: names for c, names in _COUNTRIES.items() if c not in absent}
        self._operators = {c: ops for c, ops in _OPERATORS.items() if c not in absent}
        self.activations: dict[int, Activation] = {}
        self.rents: dict[int, Rent] = {}
        self.orders: dict[tuple[str, str], int] = {}
        self.ledger = Ledger()
        self._events = EventQueue()
        self._ids = iter(range(3_936_040_355, 2**62))  # [LIVE] ids beyond 2^31
        self._rent_ids = iter(range(26_251_422, 2**62))
        self._window: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._blocked_until: dict[str, float] = {}
        self._webhooks: collections.deque[tuple[float, dict[str, Any], int]] = collections.deque()
        self._wake: anyio.Event | None = None
        self._handlers: dict[str, Callable[[Account, Mapping[str, str]], _Reply]] = {
            "getBalance": self._get_balance,
            "getBalanceAndCashBack": self._get_balance_and_cashback,
            "getNumbersStatus": self._get_numbers_status,
            "getTopCountriesByService": self._get_top_countries,
            "getTopCountriesByServiceRank": self._get_top_countries_rank,
            "getOperators": self._get_operators,
            "getActiveActivations": self._get_active_activations,
            "getNumber": self._get_number,
            "getNumberV2": self._get_number_v2,
            "getMultiServiceNumber": self._get_multi_service_number,
            "setStatus": self._set_status,
            "getStatus": self._get_status,
            "getStatusV2": self._get_status_v2,
            "getHistory": self._get_history,
            "getListOfTopCountriesByService": self._get_list_of_top_countries,
            "getIncomingCallStatus": self._get_incoming_call_status,
            "getPrices": self._get_prices,
            "getPricesExtended": self._get_prices_extended,
            "getPricesVerification": self._get_prices_verification,
            "getCountries": self._get_countries,
            "getServicesList": self._get_services_list,
            "getAdditionalService": self._get_additional_service,
            "getExtraActivation": self._get_extra_activation,
            "checkExtraActivation": self._check_extra_activation,
            "parseCall": self._parse_call,
            "createTaskForCall": self._create_task_for_call,
            "getOutgoingCalls": self._get_outgoing_calls,
            "getQiwiRequisites": self._get_qiwi_requisites,
            "getFullSms": self._get_full_sms,
            "getRentServicesAndCountries": self._get_rent_services_and_countries,
            "getRentNumber": self._get_rent_number,
            "getRentStatus": self._get_rent_status,
            "setRentStatus": self._set_rent_status,
            "getRentList": self._get_rent_list,
            "continueRentNumber": self._continue_rent_number,
            "getContinueRentPriceNumber": self._get_continue_rent_price,
            "continueRentInfo": self._continue_rent_info,
            "buyPartnerProduct": self._buy_partner_product,
        }
        if dialect == "herosms":
            self._handlers.update({
                "finishActivation": self._finish_activation,
                "cancelActivation": self._cancel_activation,
                "getAllSms": self._get_all_sms,
            })
            del self._handlers["getFullSms"]  # [LIVE] HeroSMS: 404 BAD_ACTION "Method Not Found"

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
        rent = self.rents[rent_id]
        rent.messages.append(RentSmsRecord(phone_from=phone_from, text=text, service=rent.service, at=self.clock.wall()))
        if rent.url:
            self._queue_webhook({"rentId": str(rent.id), "sms": {"phoneFrom": phone_from, "text": text,
                                                                 "date": _wall(self.clock.wall())}}, rent.url)

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
        """Ban an account (the first key's by default) until ``until``."""
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
            if self.dialect == "herosms":
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
            self._events.push(self.clock.now() + delay, "code", activation.id, token=len(activation.messages))
            if self._wake is not None:
                self._wake.set()

    # --- rendering ----------------------------------------------------------------------------

    @property
    def _hero(self) -> bool:
        return self.dialect == "herosms"

    def _text(self, text: str, status: int = 200) -> _Reply:
        return _Reply(status, text.encode(), "text/html; charset=UTF-8")

    def _json(self, doc: Any, status: int = 200, *, labelled: bool = False) -> _Reply:
        body = json.dumps(doc, ensure_ascii=False, default=_json_default).encode()
        # [LIVE, REAL_RESPONSES §A] sms-activate labels JSON as text/html except on getOperators and
        # getTopCountriesByServiceRank (``labelled``); HeroSMS sends application/json.
        json_type = self._hero or labelled
        return _Reply(status, body, "application/json" if json_type else "text/html; charset=UTF-8")

    def _fail(
        self,
        code: str,
        *,
        hero: int | None = None,
        details: str = "",
        info: Mapping[str, Any] | None = None,
        payload: str | None = None,
        json_key: str | None = None,
    ) -> _Error:
        """The error in this dialect: HeroSMS envelope (when ``hero`` gives its status), else the
        classic form: JSON ``{"status":"error", json_key: code}`` or a text token."""
        if self._hero and hero is not None:
            doc: dict[str, Any] = {"title": code, "details": details}
            if info:
                doc["info"] = dict(info)
            return _Error(self._json(doc, hero))
        if json_key is not None:
            doc = {"status": "error", json_key: code}
            if info:
                doc["info"] = dict(info)
            return _Error(self._json(doc))
        return _Error(self._text(f"{code}:{payload}" if payload is not None else code))

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
        if scope["path"].rstrip("/") != PATH:
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
            reply = _Reply(code, f"<html><head><title>{code} Bad Gateway</title></head><body><center><h1>{code} "
                           "Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>".encode(), "text/html")
        if reply is None and fault is FaultKind.ERROR_SQL:
            reply = self._text("ERROR_SQL")  # [LIVE] still 200 plain text on HeroSMS
        if reply is None:
            reply = self._dispatch(action, params)
        if fault in (FaultKind.TIMEOUT, FaultKind.LOST_PURCHASE):
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
        return not self._hero if chosen is None else chosen

    def _rate_limited(self, seconds: float | None = None, *, header: bool, page: bool = False) -> _Reply:
        seconds = self.faults.retry_after if seconds is None else seconds
        if page:
            # [DOC HeroSMS rules: "error 1020"] the edge's block page
            return _Reply(403, b"<html><head><title>Access denied | error code: 1020</title></head><body>"
                          b"<h1>Error 1020</h1><p>Access denied</p><p>error code: 1020</p></body></html>", "text/html")
        if self._hero:
            reply = self._json({"title": "RATE_LIMIT", "details": ""}, 429)  # [LIVE]
        else:
            reply = self._text("Too Many Requests", 429)  # [LIVE Tiger edge]; sms-activate never showed a 429
        if header:
            # HTTP says whole seconds; a fractional value is sent only when configured (fast tests).
            text = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
            reply.headers = [(b"retry-after", text.encode())]
        return reply

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
                if self._hero:
                    raise _Error(self._json({"title": "UNPROCESSABLE_ENTITY", "details": "Validation failed",
                                             "info": {"field": "api_key", "code": "REQUIRED", "message": ""}}, 422))
                raise self._fail("NO_KEY")
            account = self.accounts.get(key)
            if account is None:
                raise self._fail("BAD_KEY", hero=401, details="Unauthorized")
            handler = self._handlers.get(action)
            if handler is None:
                raise self._fail("BAD_ACTION", hero=404, details="Method Not Found")
            return handler(account, params)
        except _Error as error:
            return error.reply

    # --- parameter helpers ------------------------------------------------------------------

    def _activation(self, account: Account, params: Mapping[str, str], name: str = "id") -> Activation:
        # Only the documented name: `id`, or `activationId` where the docs say so (getExtraActivation,
        # checkExtraActivation, createTaskForCall). No source shows a server taking the other.
        raw = params.get(name) or ""
        activation = self.activations.get(int(raw)) if raw.isdigit() else None
        if activation is None or activation.key != account.key:
            if self._hero:  # [LIVE] 404 NOT_FOUND "Activation Not Found", for any unknown id
                raise _Error(self._json({"title": "NOT_FOUND", "details": "Activation Not Found"}, 404))
            raise self._fail("NO_ACTIVATION" if raw.isdigit() else "WRONG_ACTIVATION_ID")
        return activation

    def _country(self, params: Mapping[str, str], default: int = 0) -> int:
        raw = params.get("country", "")
        return int(raw) if raw.lstrip("-").isdigit() else default

    # --- balance and catalogue ----------------------------------------------------------------

    def _get_balance(self, account: Account, params: Mapping[str, str]) -> _Reply:
        return self._text(f"ACCESS_BALANCE:{_fmt(account.balance)}")

    def _get_balance_and_cashback(self, account: Account, params: Mapping[str, str]) -> _Reply:
        return self._text(f"ACCESS_BALANCE:{_fmt(account.balance + account.cashback)}")

    def _get_numbers_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        if self._hero and not params.get("country", "").isdigit():
            raise _Error(self._json({"title": "UNPROCESSABLE_ENTITY", "details": "Param 'country' must be a number"}, 422))
        country = self._country(params)
        counts = {e.service: e.count for e in self.catalogue.values() if e.country == country}
        if self._hero:
            return self._json(counts)
        return self._json({service: str(count) for service, count in counts.items()})  # [LIVE] counts as strings

    def _top_rows(self, service: str, free_price: bool) -> dict[str, Any]:
        rows = sorted((e for e in self.catalogue.values() if e.service == service), key=lambda e: e.price)
        result = {}
        for rank, entry in enumerate(rows):
            row: dict[str, Any] = {"country": entry.country, "count": entry.count, "price": entry.price,
                                   "retail_price": entry.price * 2}
            if free_price:
                row["freePriceMap"] = self._free_price_map(entry)
            result[str(rank)] = row
        return result

    @staticmethod
    def _free_price_map(entry: CatalogueEntry) -> dict[str, int]:
        # [LIVE HeroSMS] keys are price strings; values are cumulative counts up to that price
        return {_fmt(entry.price): entry.count // 2, _fmt(entry.price * 3): entry.count}

    @classmethod
    def _free_price_stock(cls, entry: CatalogueEntry, limit: Decimal) -> int:
        """Numbers on offer at or below ``limit`` (the freePriceMap's cumulative count there)."""
        levels = [(Decimal(price), count) for price, count in cls._free_price_map(entry).items()]
        return max((count for price, count in levels if price <= limit), default=0)

    def _get_top_countries_rank(self, account: Account, params: Mapping[str, str]) -> _Reply:
        reply = self._get_top_countries(account, params)
        return _Reply(reply.status, reply.body, "application/json", reply.headers)  # [LIVE, REAL_RESPONSES §A]

    def _get_top_countries(self, account: Account, params: Mapping[str, str]) -> _Reply:
        free_price = params.get("freePrice") == "true"
        service = params.get("service")
        if service:
            return self._json(self._top_rows(service, free_price))
        return self._json({svc: self._top_rows(svc, free_price) for svc in _SERVICES})  # [LIVE HeroSMS] by service

    def _get_operators(self, account: Account, params: Mapping[str, str]) -> _Reply:
        if "country" in params:
            country = self._country(params, -1)
            if country not in self._operators:
                if self._hero:
                    # [LIVE summary, REAL_RESPONSES §B] HeroSMS: still plain text with HTTP 200
                    raise _Error(self._text("OPERATORS_NOT_FOUND"))
                raise self._fail("OPERATORS_NOT_FOUND", json_key="error")  # [solodecode errors.go]
            operators = {str(country): self._operators[country]}
        else:
            operators = {str(c): ops for c, ops in self._operators.items()}
        return self._json({"status": "success", "countryOperators": operators}, labelled=True)  # [LIVE §A]

    def _get_prices(self, account: Account, params: Mapping[str, str]) -> _Reply:
        service = params.get("service")
        if self._hero and service and service not in _SERVICES:
            return self._json({"status": "false", "msg": "service is incorrect"})  # [DOC HeroSMS]
        if self._hero and "country" in params and self._country(params, -1) not in self._countries:
            return self._json({"status": "false", "msg": "country is incorrect"})  # [DOC HeroSMS, REAL_RESPONSES §E]
        result: dict[str, dict[str, Any]] = {}
        for entry in self.catalogue.values():
            if service and entry.service != service:
                continue
            if "country" in params and entry.country != self._country(params, -1):
                continue
            result.setdefault(str(entry.country), {})[entry.service] = {
                "cost": entry.price, "count": entry.count, "physicalCount": entry.count // 3}
        return self._json(result)  # [DOC] "if there are no numbers, an empty object is returned"

    def _get_prices_extended(self, account: Account, params: Mapping[str, str]) -> _Reply:
        # getPrices' rows {"cost","count","physicalCount"} (numbers, not strings) [SA-DOC25, §10]:
        # aiosmsactivate 1.5.1, written to the 2025 docs, reads physicalCount from them; with
        # freePrice=true the tiers as getTopCountriesByService gives them (price string -> cumulative count).
        free_price = params.get("freePrice") == "true"
        service = params.get("service")
        result: dict[str, dict[str, Any]] = {}
        for entry in self.catalogue.values():
            if service and entry.service != service:
                continue
            if "country" in params and entry.country != self._country(params, -1):
                continue
            row: dict[str, Any] = {"cost": entry.price, "count": entry.count, "physicalCount": entry.count // 3}
            if free_price:
                row["freePriceMap"] = self._free_price_map(entry)
            result.setdefault(str(entry.country), {})[entry.service] = row
        return self._json(result)

    def _get_prices_verification(self, account: Account, params: Mapping[str, str]) -> _Reply:
        service = params.get("service")
        result: dict[str, dict[str, Any]] = {}
        for entry in self.catalogue.values():
            if service and entry.service != service:
                continue
            result.setdefault(entry.service, {})[str(entry.country)] = {"count": entry.count, "price": _fmt(entry.price)}
        return self._json(result)

    def _get_countries(self, account: Account, params: Mapping[str, str]) -> _Reply:
        result = {}
        for country, (rus, eng, chn) in self._countries.items():
            result[str(country)] = {"id": country, "rus": rus, "eng": eng, "chn": chn, "visible": 1, "retry": 1,
                                    "rent": 1 if country in (0, 2, 16) else 0, "multiService": 1 if country == 0 else 0}
        return self._json(result)

    def _get_services_list(self, account: Account, params: Mapping[str, str]) -> _Reply:
        services = _SERVICES
        if "country" in params:
            country = self._country(params, -1)
            services = {s: n for s, n in _SERVICES.items() if (s, country) in self.catalogue}
        return self._json({"status": "success", "services": [{"code": c, "name": n} for c, n in services.items()]})

    def _get_list_of_top_countries(self, account: Account, params: Mapping[str, str]) -> _Reply:
        service = params.get("service")
        if not service or service not in _SERVICES:
            raise self._fail("WRONG_SERVICE", hero=400, details="Wrong service")
        rows = [e for e in self.catalogue.values() if e.service == service]
        total = sum(e.count for e in rows) or 1
        return self._json([{"country": e.country, "share": round(100 * e.count / total), "rate": 50} for e in rows])

    # --- purchases ------------------------------------------------------------------------------

    def _check_purchase(self, account: Account, params: Mapping[str, str], service: str | None, v2: bool) -> CatalogueEntry:
        if account.banned_until is not None and account.banned_until > self.clock.wall():
            until = account.banned_until
            raise self._fail(
                "BANNED", hero=403, details="Your account is temporarily suspended from making any purchases.",
                info={"scope": "global", "banned_until": int(until.timestamp()),
                      "retry_after_seconds": int((until - self.clock.wall()).total_seconds()),
                      "readable_date": until.isoformat()},
                payload="'" + until.strftime("%Y-%m-%d %H-%M-%S") + "'")
        if not service or service not in _SERVICES:
            if self._hero and not v2:
                raise _Error(self._text("UNPROCESSABLE_ENTITY:service:INVALID"))  # [LIVE]
            raise self._fail("BAD_SERVICE", hero=400, details="This service/country combination is not available")
        if self._hero and not params.get("country", "").isdigit():
            # HeroSMS names no default country (it has no Russia, the classic default): its modern
            # purchase requires one [HERO-TR] and getNumbersStatus answers this 422 without one [RUSTX-HERO].
            raise _Error(self._json({"title": "UNPROCESSABLE_ENTITY", "details": "Param 'country' must be a number"}, 422))
        entry = self.catalogue.get((service, self._country(params)))
        if entry is None or entry.count <= 0:
            if self._hero and v2:
                raise self._fail("NO_NUMBERS", hero=404, details="Numbers Not Found. Try Later")  # [LIVE]
            raise self._fail("NO_NUMBERS")
        max_price = params.get("maxPrice")
        if max_price:
            try:
                limit = Decimal(max_price)
            except ArithmeticError:
                limit = None  # [LIVE] garbage maxPrice is ignored
            if limit is not None and limit < entry.price:
                raise self._fail("WRONG_MAX_PRICE", hero=400, details="The maximum price is less than the permitted price",
                                 info={"min": entry.price}, payload=_fmt(entry.price))
            if limit is not None and params.get("freePrice") == "true" and not self._free_price_stock(entry, limit):
                # Free Price: only the numbers offered at or below the declared price can be had
                # (freePriceMap counts them, cumulatively, per price level)
                if self._hero and v2:
                    raise self._fail("NO_NUMBERS", hero=404, details="Numbers Not Found. Try Later")
                raise self._fail("NO_NUMBERS")
        if account.balance < self._cost(entry, params):
            raise self._fail("NO_BALANCE", hero=402, details="Payment Required")
        return entry

    @staticmethod
    def _cost(entry: CatalogueEntry, params: Mapping[str, str]) -> Decimal:
        """What a purchase costs: the catalogue price, or with ``freePrice=true`` the ``maxPrice`` the
        buyer declared ([SA-DOC es] "el precio máximo al que está listo para comprar … a Precio
        Gratis"; it was checked to reach at least the cheapest tier)."""
        if params.get("freePrice") == "true":
            try:
                declared = Decimal(params.get("maxPrice", ""))
            except ArithmeticError:
                return entry.price
            if declared.is_finite() and declared > entry.price:
                return declared
        return entry.price

    def _buy(self, account: Account, entry: CatalogueEntry, params: Mapping[str, str], *, phone: str | None = None,
             parent: int | None = None, order_id: str | None = None) -> Activation:
        now = self.clock.now()
        activation_id = next(self._ids)
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

    def _get_number(self, account: Account, params: Mapping[str, str]) -> _Reply:
        entry = self._check_purchase(account, params, params.get("service"), v2=False)
        activation = self._buy(account, entry, params)
        return self._text(f"ACCESS_NUMBER:{activation.id}:{activation.phone}")

    def _get_number_v2(self, account: Account, params: Mapping[str, str]) -> _Reply:
        order_id = params.get("orderId") or None
        if order_id and not self._hero and (account.key, order_id) in self.orders:
            raise self._fail("ORDER_ALREADY_EXISTS")  # [DOC] the same order is not processed again
        entry = self._check_purchase(account, params, params.get("service"), v2=True)
        # [DOC HeroSMS] no idempotency: orderId is ignored there.
        activation = self._buy(account, entry, params, order_id=None if self._hero else order_id)
        if order_id and not self._hero:
            self.orders[(account.key, order_id)] = activation.id
        end = activation.bought_wall + _dt.timedelta(seconds=self.lifetime_seconds)
        if self._hero:
            # [LIVE 2026-04-26] id as string, countryCode int, canGetAnotherSms bool, end time shown.
            return self._json({
                "activationId": str(activation.id), "phoneNumber": activation.phone, "activationCost": activation.cost,
                "currency": 840, "countryCode": activation.country,
                "countryPhoneCode": _CALLING_CODE.get(activation.country, 7),
                "canGetAnotherSms": True, "activationTime": _wall(activation.bought_wall),
                "activationEndTime": _wall(end), "activationOperator": activation.operator,
                "serviceCode": activation.service, "subtype": 1})
        # [DOC] id and cost numbers, countryCode and canGetAnotherSms strings.
        return self._json({
            "activationId": activation.id, "phoneNumber": activation.phone, "activationCost": activation.cost,
            "currency": 840, "countryCode": str(activation.country), "canGetAnotherSms": "1",
            "activationTime": _wall(activation.bought_wall), "activationOperator": activation.operator})

    def _get_multi_service_number(self, account: Account, params: Mapping[str, str]) -> _Reply:
        services = [s for s in params.get("multiService", "").split(",") if s]
        if not services:
            raise self._fail("BAD_SERVICE", hero=400, details="Wrong service")
        entries = [self._check_purchase(account, params, s, v2=False) for s in services]
        if sum(e.price for e in entries) > account.balance:
            raise self._fail("NO_BALANCE", hero=402, details="Payment Required")
        first = self._buy(account, entries[0], params)
        rows = [first] + [self._buy(account, e, params, phone=first.phone) for e in entries[1:]]
        return self._json([{"phone": a.phone, "activation": a.id, "service": a.service} for a in rows])

    def _get_additional_service(self, account: Account, params: Mapping[str, str]) -> _Reply:
        parent = self._activation(account, params)
        if not parent.forward:
            raise self._fail("WRONG_ACTIVATION_ID")
        service = params.get("service")
        if not service or (service, parent.country) not in self.catalogue:
            raise self._fail("WRONG_ADDITIONAL_SERVICE")
        if any(a.parent == parent.id and a.service == service for a in self.activations.values()):
            raise self._fail("REPEAT_ADDITIONAL_SERVICE")
        entry = self._check_purchase(account, {**params, "country": str(parent.country)}, service, v2=False)
        child = self._buy(account, entry, params, phone=parent.phone, parent=parent.id)
        return self._text(f"ADDITIONAL:{child.id}:{child.phone}")

    def _extra_entry(self, account: Account, params: Mapping[str, str]) -> tuple[Activation, CatalogueEntry]:
        parent = self._activation(account, params, "activationId")
        if parent.state is not ActivationState.FINISHED:
            raise self._fail("RENEW_ACTIVATION_NOT_AVAILABLE")
        entry = self.catalogue.get((parent.service, parent.country))
        if entry is None:
            raise self._fail("NEW_ACTIVATION_IMPOSSIBLE")
        return parent, entry

    def _get_extra_activation(self, account: Account, params: Mapping[str, str]) -> _Reply:
        parent, entry = self._extra_entry(account, params)
        if account.balance < entry.price:
            raise self._fail("NO_BALANCE")
        child = self._buy(account, attrs.evolve(entry, count=entry.count + 1), params, phone=parent.phone, parent=parent.id)
        return self._text(f"ACCESS_NUMBER:{child.id}:{child.phone}")

    def _check_extra_activation(self, account: Account, params: Mapping[str, str]) -> _Reply:
        parent, entry = self._extra_entry(account, params)
        return self._json({"status": "success", "cost": entry.price, "service": parent.service,
                           "phone": int(parent.phone), "country": parent.country})

    # --- activation status -------------------------------------------------------------------------

    def _get_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        state = activation.state
        if state is ActivationState.WAIT_CODE:
            return self._text("STATUS_WAIT_CODE")
        if state is ActivationState.CODE_RECEIVED:
            return self._text(f"STATUS_OK:{activation.last_code}")
        if state is ActivationState.WAIT_RETRY:
            return self._text(f"STATUS_WAIT_RETRY:{activation.last_code}")
        return self._text("STATUS_CANCEL")  # [DOC] "canceled or completed"

    def _get_status_v2(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        if not activation.state.active:
            return self._text("STATUS_CANCEL")  # [DOC] bare token, not JSON
        sms = next((m for m in reversed(activation.messages) if m.via == "sms"), None)
        call = next((m for m in reversed(activation.messages) if m.via == "call"), None)
        # [LIVE HeroSMS] after setStatus 3 the old SMS stays until a new one arrives.
        if self._hero and self.status_v2_shape == "spec":
            latest = activation.messages[-1] if activation.messages else None
            data = None if latest is None else {
                "id": str(activation.id), "phoneFrom": latest.phone_from, "code": latest.code, "text": latest.text,
                "service": activation.service, "date": latest.at.isoformat(), "type": latest.via}
            return self._json({"verificationType": "call" if activation.via == "call" else "sms", "data": data})
        return self._json({
            "verificationType": 2 if activation.via == "call" else 0,
            "sms": None if sms is None else {"dateTime": _wall(sms.at), "code": sms.code, "text": sms.text},
            "call": None if call is None else {"from": call.phone_from, "text": call.text, "code": call.code,
                                               "dateTime": _wall(call.at), "url": None,
                                               "parsingCount": activation.parse_count},
        })

    def _set_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        status = params.get("status", "")
        state = activation.state
        if status not in ("1", "3", "6", "8") or (status == "1" and self._hero and not self.herosms_accepts_ready):
            # [DOC current HeroSMS spec: 3, 6, 8; unverified live] see herosms_accepts_ready
            raise self._fail("BAD_STATUS", hero=400, details="Wrong status code")
        if not state.active:
            # [DOC HeroSMS, FACTS §7/§17] the 409 for a dead activation is titled ACTIVATION_NOT_ACTIVE
            raise (self._fail("ACTIVATION_NOT_ACTIVE", hero=409, details="Activation is terminated/refunded")
                   if self._hero else self._fail("BAD_STATUS"))
        if status == "1":
            if state is not ActivationState.WAIT_CODE:
                raise self._fail("BAD_STATUS")
            activation.ready = True
            return self._text("ACCESS_READY")
        if status == "3":
            if state is not ActivationState.CODE_RECEIVED:
                raise self._fail("BAD_STATUS", hero=409, details="No code received yet")
            self._change(activation, ActivationState.WAIT_RETRY, "setStatus 3")
            self._schedule_code(activation)
            return self._text("ACCESS_RETRY_GET")
        if status == "6":
            if state is ActivationState.WAIT_CODE:
                if self._hero:
                    raise self._fail("BAD_STATUS", hero=409, details="Activation cannot be completed, no code.")
                # [DOC] 6 while "preparing" deletes and marks an error: a cancel with refund [INFER].
                self._early_cancel_check(activation)
                self._refund(activation, ActivationState.CANCELLED, "setStatus 6 before a code")
                return self._text("ACCESS_ACTIVATION")
            self._change(activation, ActivationState.FINISHED, "setStatus 6")
            return self._text("ACCESS_ACTIVATION")
        # status 8
        if activation.messages:
            # [DOC] after a code only 3 or 6; HeroSMS 409 OTP_RECEIVED.
            raise (self._fail("OTP_RECEIVED", hero=409, details="Otp was received on this number.") if self._hero
                   else self._fail("BAD_STATUS"))
        self._early_cancel_check(activation)
        self._refund(activation, ActivationState.CANCELLED, "setStatus 8")
        return self._text("ACCESS_CANCEL")

    def _early_cancel_check(self, activation: Activation) -> None:
        if self.clock.now() - activation.bought_at < self.early_cancel_seconds:
            raise self._fail(
                "EARLY_CANCEL_DENIED", hero=409,
                details="Activation cannot be cancelled at this time. Minimum activation period must pass.",
                info={"minActivationTime": int(self.early_cancel_seconds)})  # [LIVE]

    def _finish_activation(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        if not activation.state.active:
            raise self._fail("ACTIVATION_NOT_ACTIVE", hero=409, details="Activation is terminated/refunded")
        if not activation.messages:
            raise self._fail("BAD_STATUS", hero=409, details="Activation cannot be completed, no code.")
        self._change(activation, ActivationState.FINISHED, "finishActivation")
        return _Reply(204, b"", "text/plain")  # [LIVE] 204, empty body

    def _cancel_activation(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        if not activation.state.active:
            raise self._fail("ACTIVATION_NOT_ACTIVE", hero=409, details="Activation is terminated/refunded")
        if activation.messages:
            raise self._fail("OTP_RECEIVED", hero=409, details="Otp was received on this number.")
        self._early_cancel_check(activation)
        self._refund(activation, ActivationState.CANCELLED, "cancelActivation")
        return _Reply(204, b"", "text/plain")

    def _get_all_sms(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        rows = [{"id": str(activation.id * 10 + i), "phoneFrom": m.phone_from, "code": m.code, "text": m.text,
                 "service": activation.service, "date": m.at.isoformat(), "type": m.via}
                for i, m in enumerate(activation.messages)]
        return self._json({"data": rows, "meta": {"total": len(rows), "service": activation.service}})

    def _active_row(self, a: Activation) -> dict[str, Any]:
        code = a.last_code if a.state is ActivationState.CODE_RECEIVED else None
        text = a.messages[-1].text if code else None
        if self._hero:
            return {"activationId": str(a.id), "serviceCode": a.service, "phoneNumber": a.phone,
                    "activationCost": a.cost, "activationStatus": a.state.value, "smsCode": code, "smsText": text,
                    "activationTime": _wall(a.bought_wall), "countryCode": str(a.country),
                    "countryName": _COUNTRIES.get(a.country, ("", "?", ""))[1], "canGetAnotherSms": "1",
                    "currency": 840, "verificationType": a.via, "receiveSmsDate": None}
        # [LIVE 2024-10] every field a string; smsCode a string (documented as an array).
        return {"activationId": str(a.id), "serviceCode": a.service, "phoneNumber": a.phone,
                "activationCost": _cents(a.cost), "activationStatus": a.state.value, "smsCode": code, "smsText": text,
                "activationTime": _wall(a.bought_wall), "discount": "0", "repeated": "0",
                "countryCode": str(a.country), "countryName": _COUNTRIES.get(a.country, ("", "?", ""))[1],
                "canGetAnotherSms": "1", "currency": 840}

    def _get_active_activations(self, account: Account, params: Mapping[str, str]) -> _Reply:
        active = [a for a in self.activations.values() if a.key == account.key and a.state.active]
        if self._hero:
            start = int(params["start"]) if params.get("start", "").isdigit() else 0
            limit = min(100, int(params["limit"])) if params.get("limit", "").isdigit() else 50
            page = active[start:start + limit]
            # [HERO-LIVE, FACTS §8] rows in "data"; "activeActivations" is a leaked DB cursor whose
            # "row" is an object (REAL_RESPONSES §C's `"row":[]` is a hand-built TEST string).
            return self._json({"status": "success", "data": [self._active_row(a) for a in page],
                               "activeActivations": {"affected_rows": 0, "num_rows": 0, "row": {}, "rows": []}})
        if not active:
            raise self._fail("NO_ACTIVATIONS", json_key="error")  # [DOC/TEST] not an empty list
        return self._json({"status": "success", "activeActivations": [self._active_row(a) for a in active]})

    def _get_history(self, account: Account, params: Mapping[str, str]) -> _Reply:
        start, end = params.get("start"), params.get("end")
        if (start is not None and not start.isdigit()) or (end is not None and not end.isdigit()):
            raise self._fail("WRONG_DATE", hero=400, details="Wrong date")
        if start and end and int(end) - int(start) > 30 * 86400:
            raise self._fail("WRONG_DATE", hero=400, details="Wrong date")
        # [HERO-LIVE, FACTS §9] HeroSMS pages history by `size`; `limit` is the classic name
        size = params.get("size" if self._hero else "limit", "")
        limit = min(100, int(size)) if size.isdigit() else 50
        offset = int(params["offset"]) if params.get("offset", "").isdigit() else 0
        rows = []
        for a in sorted(self.activations.values(), key=lambda a: a.id, reverse=True):
            if a.key != account.key:
                continue
            stamp = a.bought_wall.timestamp()
            if (start and stamp < int(start)) or (end and stamp > int(end)):
                continue
            closed_paid = a.state is ActivationState.FINISHED
            rows.append({"id": str(a.id) if self._hero else a.id, "date": _wall(a.bought_wall), "phone": a.phone,
                         "sms": a.messages[-1].text if a.messages else None,
                         "cost": a.cost if closed_paid else 0, "status": self._history_status(a), "currency": 840})
        return self._json(rows[offset:offset + limit])  # [LIVE] a bare array

    def _history_status(self, a: Activation) -> str:
        # [DOC HeroSMS] "10" is HeroSMS's auto-refund at the end of the lifetime; the classic API
        # documents no such status, and there an expired activation reads as cancelled (8).
        if a.state is ActivationState.REFUNDED and not self._hero:
            return ActivationState.CANCELLED.value
        return a.state.value

    def _get_incoming_call_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        raw = params.get("activationId") or params.get("id") or ""
        activation = self.activations.get(int(raw)) if raw.isdigit() else None
        if activation is None:
            raise self._fail("INVALID_ACTIVATION_ID", hero=404, details="Activation Not Found")
        status = {ActivationState.FINISHED: "3", ActivationState.CANCELLED: "4", ActivationState.REFUNDED: "5"}
        call = next((m for m in activation.messages if m.via == "call"), None)
        return self._json({"status": status.get(activation.state, "2"), "phone": call.phone_from if call else False})

    def _parse_call(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        if not activation.state.active:
            raise self._fail("STATUS_CANCEL")
        if not any(m.via == "call" for m in activation.messages):
            raise self._fail("NO_CALL")
        if activation.parse_count >= 4:
            raise self._fail("PARSE_COUNT_EXCEED")  # [DOC] at most 4
        activation.parse_count += 1
        return self._json({"result": "OK"})

    def _create_task_for_call(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params, "activationId")
        if not params.get("phone"):
            raise self._fail("NUMBER_NOT_EXIST", json_key="msg")
        if activation.call_task:
            raise self._fail("CALL_TASK_ALREADY_EXIST", json_key="msg")
        activation.call_task = True
        return self._json({"status": "success", "msg": "The task is queued"})

    def _get_outgoing_calls(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rows = {str(a.id): {"date": _wall(a.bought_wall), "phoneFrom": a.phone, "status": "wait"}
                for a in self.activations.values() if a.key == account.key and a.call_task}
        return self._json(rows)

    def _get_qiwi_requisites(self, account: Account, params: Mapping[str, str]) -> _Reply:
        return self._json({"status": "FALSE", "wallet": "79000000000", "comment": "sa12345", "upToDate": "2021-06-01"})

    def _get_full_sms(self, account: Account, params: Mapping[str, str]) -> _Reply:
        activation = self._activation(account, params)
        if not activation.state.active and not activation.messages:
            return self._text("STATUS_CANCEL")
        if not activation.messages:
            return self._text("STATUS_WAIT_CODE")
        return self._text(f"FULL_SMS:{activation.messages[-1].text}")

    # --- rent -------------------------------------------------------------------------------------

    def _rent_hours(self, params: Mapping[str, str], default: int = 4, *, key: str = "rent_time") -> int:
        raw = params.get(key, "")
        hours = int(raw) if raw.isdigit() else (default if key not in params else 0)
        if not 2 <= hours <= 1344:
            raise self._fail("INVALID_TIME", json_key="message")  # [DOC] 2 to 1344 hours
        return hours

    def _rent_price(self, service: str, country: int, hours: int) -> Decimal:
        entry = self.catalogue.get((service, country))
        base = entry.price if entry else Decimal("0.50")
        return (base * 4 * Decimal(hours) / 4).quantize(Decimal("0.01"))

    def _get_rent_services_and_countries(self, account: Account, params: Mapping[str, str]) -> _Reply:
        hours = self._rent_hours(params)
        country = self._country(params, 0)
        services = {s: {"cost": self._rent_price(s, country, hours), "quant": 20} for s in _SERVICES}
        services["full"] = {"cost": self._rent_price("ot", country, hours) * 3, "quant": 20}
        return self._json({"countries": {"0": country}, "operators": {str(i): o for i, o in enumerate(
            ["any", *_OPERATORS.get(country, [])])}, "services": services, "currency": 840})

    def _get_rent_number(self, account: Account, params: Mapping[str, str]) -> _Reply:
        service = params.get("service")
        if not service or service not in (*_SERVICES, "full"):
            raise self._fail("BAD_SERVICE", json_key="message")
        hours = self._rent_hours(params)
        country = self._country(params, 0)
        price = self._rent_price(service, country, hours)
        if account.balance < price:
            raise self._fail("NO_BALANCE", json_key="message")
        now = self.clock.now()
        rent = Rent(id=next(self._rent_ids), key=account.key, service=service, country=country,
                    phone=_PHONE_PREFIX.get(country, "1") + f"{self.rng.randrange(10**8, 10**9)}", cost=price,
                    hours=hours, started_at=now, ends_at=now + hours * 3600,
                    end_wall=self.clock.wall() + _dt.timedelta(hours=hours), url=params.get("url") or None)
        account.balance -= price
        self.rents[rent.id] = rent
        self.ledger.purchases.append(PurchaseRecord(now, "rent", rent.id, account.key, price, service, None))
        self._events.push(rent.ends_at, "rent_end", rent.id)
        self._events.push(now + self.rent_cancel_seconds, "rent_revoke", rent.id)
        return self._json({"status": "success", "phone": {"id": rent.id, "endDate": rent.end_wall.strftime(
            "%Y-%m-%dT%H:%M:%S"), "number": rent.phone}})

    def _rent(self, account: Account, params: Mapping[str, str]) -> Rent:
        raw = params.get("id", "")
        rent = self.rents.get(int(raw)) if raw.isdigit() else None
        if rent is None or rent.key != account.key:
            raise self._fail("NO_ID_RENT", json_key="message")
        return rent

    def _get_rent_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rent = self._rent(account, params)
        if rent.state != "active":
            raise self._fail({"finished": "STATUS_FINISH", "cancelled": "STATUS_CANCEL",
                              "revoked": "STATUS_REVOKE"}[rent.state], json_key="message")
        if not rent.messages:
            raise self._fail("STATUS_WAIT_CODE", json_key="message")  # [DOC] an error object while empty
        page = int(params["page"]) if params.get("page", "").isdigit() else 0
        size = int(params["size"]) if params.get("size", "").isdigit() else 10
        newest_first = list(reversed(rent.messages))[page * size:(page + 1) * size]
        values = {str(i): {"phoneFrom": m.phone_from, "text": m.text, "service": m.service, "date": _wall(m.at)}
                  for i, m in enumerate(newest_first)}
        return self._json({"status": "success", "quantity": str(len(rent.messages)), "values": values})

    def _set_rent_status(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rent = self._rent(account, params)
        status = params.get("status")
        if status not in ("1", "2"):
            raise self._fail("INCORECT_STATUS", json_key="message")  # [DOC] sic
        if rent.state == "finished":
            raise self._fail("ALREADY_FINISH", json_key="message")
        if rent.state in ("cancelled", "revoked"):
            raise self._fail("ALREADY_CANCEL", json_key="message")
        if status == "1":
            rent.state = "finished"
            return self._json({"status": "success"})
        if self.clock.now() - rent.started_at > self.rent_cancel_seconds:
            raise self._fail("CANT_CANCEL", json_key="message")  # [DOC] more than 20 min
        rent.state = "cancelled"
        account.balance += rent.cost
        self.ledger.refunds.append(RefundRecord(self.clock.now(), rent.id, rent.cost, "rent cancelled"))
        return self._json({"status": "success"})

    def _get_rent_list(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rents = [r for r in self.rents.values() if r.key == account.key and r.state == "active"][-10:]
        if not rents:
            raise self._fail("NO_NUMBERS", json_key="message")
        return self._json({"status": "success", "values": {str(i): {"id": str(r.id), "phone": r.phone}
                                                           for i, r in enumerate(rents)}})

    def _continue_rent_number(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rent = self._rent(account, params)
        hours = self._rent_hours(params)
        if rent.state in ("cancelled", "revoked"):
            raise self._fail("RENT_DIE", json_key="message")
        price = self._rent_price(rent.service, rent.country, hours)
        if account.balance < price:
            raise self._fail("NO_BALANCE", json_key="message")
        account.balance -= price
        now = self.clock.now()
        if rent.state == "finished":
            # [DOC] a finished rent is re-ordered under a new id
            rent = attrs.evolve(rent, id=next(self._rent_ids), state="active", messages=[], started_at=now,
                                ends_at=now, end_wall=self.clock.wall(), extensions=[])
            self.rents[rent.id] = rent
        rent.ends_at += hours * 3600
        rent.end_wall += _dt.timedelta(hours=hours)
        rent.extensions.append((self.clock.wall(), price, hours))
        self.ledger.purchases.append(PurchaseRecord(now, "rent", rent.id, account.key, price, rent.service, None))
        self._events.push(rent.ends_at, "rent_end", rent.id)
        return self._json({"status": "success", "phone": {"id": rent.id, "endDate": rent.end_wall.strftime(
            "%Y-%m-%dT%H:%M:%S"), "number": rent.phone}})

    def _get_continue_rent_price(self, account: Account, params: Mapping[str, str]) -> _Reply:
        rent = self._rent(account, params)
        hours = self._rent_hours(params)
        if rent.state in ("cancelled", "revoked"):
            raise self._fail("RENT_DIE", json_key="message")
        return self._json({"status": "success", "price": self._rent_price(rent.service, rent.country, hours),
                           "currency": 840})

    def _continue_rent_info(self, account: Account, params: Mapping[str, str]) -> _Reply:
        # [SA-DOC25] {"status":"success","price":6.33,"currency":840,"hours":4,
        #             "history":{"0":{"createDate":"2024-10-07 12:10:47","price":"101.9","hours":4}}}
        rent = self._rent(account, params)
        hours = self._rent_hours(params, 0, key="hours")  # [DOC] hours is required here
        if rent.state in ("cancelled", "revoked"):
            raise self._fail("RENT_DIE", json_key="message")
        answer: dict[str, Any] = {"status": "success", "price": self._rent_price(rent.service, rent.country, hours),
                                  "currency": 840, "hours": hours}
        if params.get("needHistory") == "true":
            answer["history"] = {str(i): {"createDate": _wall(at), "price": _fmt(price), "hours": h}
                                 for i, (at, price, h) in enumerate(rent.extensions)}
        return self._json(answer)

    def _buy_partner_product(self, account: Account, params: Mapping[str, str]) -> _Reply:
        product = params.get("productId", "")
        if product not in ("1", "2", "3"):
            raise self._fail("BAD_DATA")
        price = Decimal("5")
        if account.balance < price:
            raise self._fail("NO_BALANCE")
        account.balance -= price
        self.ledger.purchases.append(PurchaseRecord(self.clock.now(), "product", int(product), account.key, price,
                                                    "partner", None))
        return self._json({"status": "success", "key": f"KEY{self.rng.randrange(10**12):012d}",
                           "manual": "Software download link:"})

    # --- webhooks and the background pump ----------------------------------------------------------

    def _queue_webhook(self, payload: dict[str, Any], url: str) -> None:
        copies = 2 if self.webhook_duplicate_rate and self.rng.random() < self.webhook_duplicate_rate else 1
        for _ in range(copies):
            self._webhooks.append((self.clock.now() + self._webhook_lag(), {"url": url, "payload": payload}, 0))
        if self._wake is not None:
            self._wake.set()

    def _webhook_lag(self) -> float:
        return self.rng.uniform(0, self.webhook_reorder) if self.webhook_reorder else 0.0

    def _webhook_retry_delay(self) -> float:
        if self.webhook_retry_delay is not None:
            return self.webhook_retry_delay
        # [DOC HeroSMS] at least 7 retries every 20-30 s; [DOC sms-activate] up to 8 tries within 2 hours
        return self.rng.uniform(20.0, 30.0) if self._hero else 900.0

    def _due_webhooks(self) -> list[tuple[dict[str, Any], int]]:
        now = self.clock.now()
        due: list[tuple[float, dict[str, Any], int]] = []
        later: collections.deque[tuple[float, dict[str, Any], int]] = collections.deque()
        for when, item, tries in self._webhooks:
            (due if when <= now else later).append((when, item, tries))
        self._webhooks = later
        due.sort(key=lambda entry: entry[0])
        return [(item, tries) for _, item, tries in due]

    async def _deliver_webhook(self, client: Any, item: dict[str, Any], tries: int) -> None:
        """One try: POST, wait up to the timeout for a 200; anything else is a failure, tried again."""
        status = 0
        if self.webhook_drop_rate and self.rng.random() < self.webhook_drop_rate:
            pass  # lost on the way: the receiver never sees it; for the provider it is a failed try
        else:
            try:
                response = await client.post(item["url"], json=_plain(item["payload"]), timeout=self.webhook_timeout)
                status = response.status_code
            except Exception as exc:  # the receiver is the user's: any failure is a failed try
                log.debug("webhook delivery failed: %s", type(exc).__name__)
        target = item["payload"].get("activationId") or item["payload"].get("rentId") or 0
        self.ledger.webhook_deliveries.append((self.clock.now(), int(target), status))
        if status != 200 and tries + 1 < self.webhook_retries:
            self._webhooks.append((self.clock.now() + self._webhook_retry_delay(), item, tries + 1))
            if self._wake is not None:
                self._wake.set()

    async def _pump(self, interval: float = 0.05) -> None:
        """Apply timed events as they fall due and deliver webhooks, each try in its own task."""
        import httpx

        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits) as client, anyio.create_task_group() as group:
            while True:
                self._wake = anyio.Event()
                self.advance()
                for item, tries in self._due_webhooks():
                    group.start_soon(self._deliver_webhook, client, item, tries)
                now = self.clock.now()
                wake_at = min([now + interval, *(w for w, _, _ in self._webhooks)])
                next_event = self._events.next_at()
                if next_event is not None:
                    wake_at = min(wake_at, next_event)
                with anyio.move_on_after(max(0.0, wake_at - now)):
                    await self._wake.wait()

    def transport(self) -> SimulatorTransport:
        """An httpx transport that serves requests from this simulator, in process."""
        from ._transport import SimulatorTransport

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


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(type(value).__name__)


def _plain(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=_json_default))
