"""The action registry: every action of the protocol, declared once, as data.

An :class:`Action` names the wire action, its parameters (wire name, Python name, type,
required or not, encoder/validator), its result parser and type, and its **repeat rule** — what
the session may do when an attempt fails. The public coroutines of :class:`SMSActivate` are
generated from these declarations (``python -m smsactivate_async._codegen`` writes
``_generated.py``; a test checks the two agree). Adding an action is adding a declaration and
running that again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs

from . import _params as p
from . import _parse as parse
from ._exceptions import InvalidArgumentError
from ._models import (
    ActivationStatus,
    ActiveActivation,
    CallTaskResult,
    Country,
    ExtraActivationInfo,
    FullSms,
    HistoryEntry,
    IncomingCallStatus,
    MultiServiceActivation,
    Number,
    NumbersStatus,
    OutgoingCall,
    PartnerProduct,
    Price,
    PriceVerification,
    QiwiRequisites,
    Rent,
    RentExtensionInfo,
    RentListEntry,
    RentPrice,
    RentServicesAndCountries,
    RentStatus,
    Service,
    SetStatusAnswer,
    SmsMessage,
    StatusV2,
    TopCountry,
    TopCountryShare,
)

__all__ = ["ACTIONS", "Action", "Param", "Repeat"]

R = TypeVar("R")


class Repeat(enum.Enum):
    """What the session may do after a failed attempt."""

    #: Reads and status queries: retried on every transient fault.
    SAFE = "safe"
    #: Status changes (setStatus, setRentStatus…): repeating is harmless to money; retried.
    STATUS = "status"
    #: getNumberV2 with an ``orderId``: retried with the same id; ORDER_ALREADY_EXISTS → recover.
    ORDER_ID = "order_id"
    #: Purchases of activations without idempotency: after an ambiguous failure, reconcile with
    #: getActiveActivations instead of repeating.
    PURCHASE_ACTIVATION = "purchase_activation"
    #: Purchases of rents: reconcile with getRentList.
    PURCHASE_RENT = "purchase_rent"
    #: Other paid writes with nothing to reconcile against: never repeated after an ambiguous failure.
    PURCHASE_OTHER = "purchase_other"


@attrs.frozen
class Param:
    """One parameter: Python ``name``, ``wire`` name, ``annotation`` (for the generated signature)."""

    name: str
    wire: str
    annotation: str
    encode: p.Encoder
    required: bool = False
    positional: bool = False
    doc: str = ""


@attrs.frozen
class Action(Generic[R]):
    wire: str
    name: str
    params: tuple[Param, ...]
    result: str
    parse: Callable[[Any], R]
    doc: str
    repeat: Repeat = Repeat.SAFE
    errors: tuple[str, ...] = ()
    text_prefixes: tuple[str, ...] = ()
    #: Error codes that mean "nothing there": the call returns ``empty()`` instead of raising.
    empty_on: frozenset[str] = frozenset()
    empty: Callable[[], R] | None = None
    allow_empty_body: bool = False
    #: ``None``: every dialect; else the providers' ``extra_actions`` must list it.
    extra: bool = False
    check: Callable[[Mapping[str, str]], None] | None = None
    #: Whether the answer's fractions are read as ``Decimal`` (money); a reader that uses none of
    #: them (the scheduler's scan of 10 000 rows a tick) spares the conversion.
    decimals: bool = True
    #: A reader of the action's usual success answer straight from the body's bytes, which answers
    #: ``None`` for any other form (the general decoding, and ``parse``, then read it): the
    #: scheduler's scan (:func:`_scan.read_listing`).
    typed_read: Callable[[bytes], Any] | None = None

    def encode(self, args: Mapping[str, Any]) -> dict[str, str]:
        """Validate ``args`` (Python names) and return the wire parameters (``action`` included)."""
        known = {param.name: param for param in self.params}
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise InvalidArgumentError(f"{self.name}() got unknown argument(s): {', '.join(unknown)}", action=self.wire)
        wire = {"action": self.wire}
        for param in self.params:
            value = args.get(param.name)
            if value is None:
                if param.required:
                    raise InvalidArgumentError(f"{self.name}() needs {param.name}", action=self.wire)
                continue
            wire[param.wire] = param.encode(param.name, value)
        if self.check is not None:
            self.check(wire)
        return wire


# --- parameter shorthands -------------------------------------------------------------------

def _id(wire: str = "id", name: str = "activation_id", doc: str = "the activation id") -> Param:
    return Param(name, wire, "int", p.identifier, required=True, positional=True, doc=doc)


def _rent_id() -> Param:
    return _id(name="rent_id", doc="the rent id")


def _service(required: bool = True) -> Param:
    return Param("service", "service", "str" if required else "str | None", p.service, required=required,
                 doc="service code, e.g. ``tg``")


def _country(required: bool = False) -> Param:
    return Param("country", "country", "int" if required else "int | None", p.country, required=required,
                 doc="country id (``0`` is Russia on sms-activate)")


_OPERATOR = Param("operator", "operator", "str | list[str] | None", p.csv, doc="operator name(s)")
_REF = Param("ref", "ref", "str | None", p.text, doc="referral id")
_MAX_PRICE = Param("max_price", "maxPrice", "Decimal | int | str | None", p.decimal_amount,
                   doc="highest price to pay (Decimal); WRONG_MAX_PRICE tells the minimum")
_RENT_TIME = Param("rent_time", "rent_time", "int | None", p.int_range(2, 1344), doc="hours, 2 to 1344")
#: an extension is 4 hours at least [DOC 000 continueRentNumber: "INVALID_TIME … from 4 to 1344"]
_EXTEND_TIME = Param("rent_time", "rent_time", "int | None", p.int_range(4, 1344), doc="hours, 4 to 1344")

_NUMBER_OPTIONS: tuple[Param, ...] = (
    _service(),
    _country(),
    _OPERATOR,
    _MAX_PRICE,
    Param("forward", "forward", "bool | None", p.boolean, doc="buy with call forwarding"),
    Param("phone_exception", "phoneException", "str | list[str] | None", p.csv,
          doc="prefix masks to exclude, e.g. ``7918,7900111``"),
    _REF,
    Param("use_cash_back", "useCashBack", "bool | None", p.true_flag, doc="spend cashback"),
    Param("activation_type", "activationType", "int | None", p.choice(0, 1, 2), doc="0 SMS, 1 number, 2 voice"),
    Param("language", "language", "str | None", p.text, doc="voice parsing language"),
    Param("user_id", "userId", "str | int | None", p.text, doc="your end user's id (bans them, not you)"),
    Param("verification", "verification", "bool | None", p.true_flag, doc="a number that can take calls"),
    Param("free_price", "freePrice", "bool | None", p.true_flag, doc="free-price purchase"),
)

_NUMBER_ERRORS = ("WRONG_MAX_PRICE", "BAD_ACTION", "BAD_SERVICE", "BAD_KEY", "ERROR_SQL", "BANNED",
                  "WRONG_EXCEPTION_PHONE", "NO_BALANCE_FORWARD", "CHANNELS_LIMIT", "NO_NUMBERS", "NO_BALANCE")


def _check_multi(wire: Mapping[str, str]) -> None:
    forward = wire.get("multiForward")
    if forward is None:
        return
    flags = forward.split(",")
    services = wire["multiService"].split(",")
    if any(flag not in ("0", "1") for flag in flags):
        raise InvalidArgumentError("multi_forward: every flag must be 0 or 1", action="getMultiServiceNumber")
    if len(flags) != len(services):
        raise InvalidArgumentError(
            f"multi_forward has {len(flags)} flags for {len(services)} services", action="getMultiServiceNumber"
        )
    if flags.count("1") > 1:
        raise InvalidArgumentError("multi_forward: at most one service may be forwarded", action="getMultiServiceNumber")


def _check_history(wire: Mapping[str, str]) -> None:
    if "start" in wire and "end" in wire:
        start, end = int(wire["start"]), int(wire["end"])
        if end < start:
            raise InvalidArgumentError("get_history: end is before start", action="getHistory")
        if end - start > 30 * 86400:
            raise InvalidArgumentError("get_history: start and end may be at most 30 days apart", action="getHistory")


_STATUS_PREFIXES = ("STATUS_", "ACCESS_CANCEL")

# --- the registry -----------------------------------------------------------------------------

GET_NUMBERS_STATUS: Action[NumbersStatus] = Action(
    "getNumbersStatus", "get_numbers_status",
    (_country(), _OPERATOR),
    "NumbersStatus", parse.parse_numbers_status,
    "Numbers available per service (``_1`` keys: with forwarding).", errors=("BAD_KEY",),
)
GET_TOP_COUNTRIES_BY_SERVICE: Action[list[TopCountry]] = Action(
    "getTopCountriesByService", "get_top_countries_by_service",
    (_service(required=False), Param("free_price", "freePrice", "bool | None", p.true_flag, doc="add the free-price map")),
    "list[TopCountry]", parse.parse_top_countries,
    "Countries ranked for a service (all services when none is given).", errors=("BAD_KEY",),
)
GET_BALANCE: Action[Decimal] = Action(
    "getBalance", "get_balance", (), "Decimal", parse.parse_balance,
    "The account balance.", errors=("BAD_KEY", "ERROR_SQL"), text_prefixes=("ACCESS_BALANCE",),
)
GET_BALANCE_AND_CASHBACK: Action[Decimal] = Action(
    "getBalanceAndCashBack", "get_balance_and_cashback", (), "Decimal", parse.parse_balance,
    "The balance including cashback.", errors=("BAD_KEY", "ERROR_SQL"), text_prefixes=("ACCESS_BALANCE",),
)
GET_OPERATORS: Action[dict[int, list[str]]] = Action(
    "getOperators", "get_operators", (_country(),), "dict[int, list[str]]", parse.parse_operators,
    "Operators per country id.", errors=("BAD_KEY", "ERROR_SQL", "OPERATORS_NOT_FOUND"),
)
GET_ACTIVE_ACTIVATIONS: Action[list[ActiveActivation]] = Action(
    "getActiveActivations", "get_active_activations",
    (Param("start", "start", "int | None", p.int_range(0, 2**31), doc="offset (HeroSMS pages)"),
     Param("limit", "limit", "int | None", p.int_range(1, 100), doc="page size, at most 100 (HeroSMS)")),
    "list[ActiveActivation]", parse.parse_active_activations,
    "The account's active activations; ``[]`` when there are none.",
    errors=("BAD_KEY", "ERROR_SQL", "NO_ACTIVATIONS"), empty_on=frozenset({"NO_ACTIVATIONS"}), empty=list,
)
GET_NUMBER: Action[Number] = Action(
    "getNumber", "get_number", _NUMBER_OPTIONS, "Number", parse.parse_number,
    "Buy a number (text answer). Prefer ``get_number_v2``, which is idempotent with an order id.",
    repeat=Repeat.PURCHASE_ACTIVATION, errors=_NUMBER_ERRORS, text_prefixes=("ACCESS_NUMBER",),
)
GET_NUMBER_V2: Action[Number] = Action(
    "getNumberV2", "get_number_v2",
    (*_NUMBER_OPTIONS,
     Param("order_id", "orderId", "str | None", p.text, doc="your idempotency key; made for you when omitted")),
    "Number", parse.parse_number,
    "Buy a number. Always sent with an ``orderId`` and retried with the same one: never bought twice.",
    repeat=Repeat.ORDER_ID, errors=(*_NUMBER_ERRORS, "ORDER_ALREADY_EXISTS"), text_prefixes=("ACCESS_NUMBER",),
)
GET_MULTI_SERVICE_NUMBER: Action[list[MultiServiceActivation]] = Action(
    "getMultiServiceNumber", "get_multi_service_number",
    (Param("multi_service", "multiService", "str | list[str]", p.csv, required=True, doc="service codes"),
     Param("multi_forward", "multiForward", "str | list[int] | None", p.csv, doc="0/1 per service, at most one 1"),
     _OPERATOR, _REF, _country()),
    "list[MultiServiceActivation]", parse.parse_multi_service,
    "Buy one number for several services.", repeat=Repeat.PURCHASE_ACTIVATION,
    errors=("NO_NUMBERS", "NO_BALANCE", "BAD_ACTION", "BAD_SERVICE", "BAD_KEY", "ERROR_SQL", "BANNED"),
    check=_check_multi,
)
SET_STATUS: Action[SetStatusAnswer] = Action(
    "setStatus", "set_status",
    (_id(), Param("status", "status", "int | Status", p.choice(-1, 1, 3, 6, 8), required=True,
                  positional=True, doc="1 SMS sent, 3 another code, 6 finish, 8 cancel (-1: the legacy cancel, "
                                       "where the provider's ``cancel_status`` is -1)"),
     Param("forward", "forward", "str | None", p.text, doc="forwarding number, when bought with forward")),
    "SetStatusAnswer", parse.parse_set_status,
    "Change an activation's status.", repeat=Repeat.STATUS,
    errors=("EARLY_CANCEL_DENIED", "ERROR_SQL", "NO_ACTIVATION", "BAD_SERVICE", "BAD_STATUS", "BAD_KEY",
            "BAD_ACTION", "WRONG_ACTIVATION_ID"),
    text_prefixes=("ACCESS_",),
)
GET_STATUS: Action[ActivationStatus] = Action(
    "getStatus", "get_status", (_id(),), "ActivationStatus", parse.parse_status,
    "An activation's state and code.", errors=("NO_ACTIVATION", "ERROR_SQL", "BAD_KEY", "BAD_ACTION"),
    text_prefixes=_STATUS_PREFIXES,
)
GET_STATUS_V2: Action[StatusV2] = Action(
    "getStatusV2", "get_status_v2", (_id(),), "StatusV2", parse.parse_status_v2,
    "An activation's SMS and call data (both providers' shapes).",
    errors=("NO_ACTIVATION", "ERROR_SQL", "BAD_KEY", "BAD_ACTION"), text_prefixes=_STATUS_PREFIXES,
)
GET_HISTORY: Action[list[HistoryEntry]] = Action(
    "getHistory", "get_history",
    (Param("start", "start", "int | datetime | None", p.timestamp, doc="from (unix time or aware datetime)"),
     Param("end", "end", "int | datetime | None", p.timestamp, doc="to; at most 30 days after start"),
     Param("offset", "offset", "int | None", p.int_range(0, 2**31), doc="rows to skip"),
     Param("limit", "limit", "int | None", p.int_range(1, 100), doc="rows, at most 100")),
    "list[HistoryEntry]", parse.parse_history,
    "Past activations.", errors=("ERROR_SQL", "BAD_KEY", "BAD_ACTION", "WRONG_DATE"), check=_check_history,
)
GET_LIST_OF_TOP_COUNTRIES_BY_SERVICE: Action[list[TopCountryShare]] = Action(
    "getListOfTopCountriesByService", "get_list_of_top_countries_by_service", (_service(),),
    "list[TopCountryShare]", parse.parse_top_country_shares,
    "Countries by share of a service's activations.", errors=("ERROR_SQL", "BAD_KEY", "WRONG_SERVICE", "BAD_ACTION"),
)
GET_INCOMING_CALL_STATUS: Action[IncomingCallStatus] = Action(
    "getIncomingCallStatus", "get_incoming_call_status", (_id("activationId"),),
    "IncomingCallStatus", parse.parse_incoming_call,
    "Incoming-call activation state (2 new, 3 finished, 4 cancelled, 5 returned).",
    errors=("BAD_KEY", "INVALID_ACTIVATION_ID"),
)
GET_PRICES: Action[dict[int, dict[str, Price]]] = Action(
    "getPrices", "get_prices", (_service(required=False), _country()),
    "dict[int, dict[str, Price]]", parse.parse_prices,
    "Prices by country id, then service code (``{}`` when nothing matches).", errors=("BAD_KEY",),
)
GET_PRICES_EXTENDED: Action[dict[int, dict[str, Price]]] = Action(
    "getPricesExtended", "get_prices_extended",
    (_service(required=False), _country(),
     Param("free_price", "freePrice", "bool | None", p.true_flag, doc="counts and prices by Free Price tiers")),
    "dict[int, dict[str, Price]]", parse.parse_prices_extended,
    "Prices by country id, then service code, with Free Price tiers when ``free_price`` is set.",
    errors=("BAD_KEY",),
)
GET_PRICES_VERIFICATION: Action[dict[str, dict[int, PriceVerification]]] = Action(
    "getPricesVerification", "get_prices_verification", (_service(required=False),),
    "dict[str, dict[int, PriceVerification]]", parse.parse_prices_verification,
    "Verification prices by service, then country id.", errors=("BAD_KEY",),
)
GET_COUNTRIES: Action[dict[int, Country]] = Action(
    "getCountries", "get_countries", (), "dict[int, Country]", parse.parse_countries,
    "Countries by id.", errors=("BAD_KEY",),
)
GET_SERVICES_LIST: Action[list[Service]] = Action(
    "getServicesList", "get_services_list",
    (_country(), Param("lang", "lang", "str | None", p.text, doc="ru, en, es or cn")),
    "list[Service]", parse.parse_services, "Service codes and names.", errors=("BAD_KEY",),
)
GET_ADDITIONAL_SERVICE: Action[Number] = Action(
    "getAdditionalService", "get_additional_service", (_id(doc="the parent activation id"), _service()),
    "Number", parse.parse_number,
    "Buy an additional service on a forwarded number.", repeat=Repeat.PURCHASE_OTHER,
    errors=("WRONG_ADDITIONAL_SERVICE", "WRONG_ACTIVATION_ID", "WRONG_SECURITY", "REPEAT_ADDITIONAL_SERVICE",
            "NO_BALANCE", "ERROR_SQL"),
    text_prefixes=("ADDITIONAL",),
)
GET_EXTRA_ACTIVATION: Action[Number] = Action(
    "getExtraActivation", "get_extra_activation", (_id("activationId", doc="the parent activation id"),),
    "Number", parse.parse_number,
    "Buy a new activation on a number used before.", repeat=Repeat.PURCHASE_ACTIVATION,
    errors=("RENEW_ACTIVATION_NOT_AVAILABLE", "WRONG_ACTIVATION_ID", "ERROR_SQL", "NEW_ACTIVATION_IMPOSSIBLE", "NO_BALANCE"),
    text_prefixes=("ACCESS_NUMBER",),
)
CHECK_EXTRA_ACTIVATION: Action[ExtraActivationInfo] = Action(
    "checkExtraActivation", "check_extra_activation", (_id("activationId"),),
    "ExtraActivationInfo", parse.parse_check_extra,
    "Price and availability of an extra activation.",
    errors=("RENEW_ACTIVATION_NOT_AVAILABLE", "WRONG_ACTIVATION_ID", "SIM_OFFLINE"),
)
PARSE_CALL: Action[bool] = Action(
    "parseCall", "parse_call",
    (_id(), Param("new_lang", "newLang", "str", p.text, required=True, doc="language to parse the call in")),
    "bool", parse.parse_parse_call,
    "Parse a voice call again in another language (at most 4 times).", repeat=Repeat.STATUS,
    errors=("STATUS_CANCEL", "NO_CALL", "PARSE_COUNT_EXCEED", "WRONG_ACTIVATION_ID", "ERROR_SQL", "BAD_KEY", "BAD_ACTION"),
)
CREATE_TASK_FOR_CALL: Action[CallTaskResult] = Action(
    "createTaskForCall", "create_task_for_call",
    (_id("activationId"), Param("phone", "phone", "str", p.text, required=True, doc="the number to call")),
    "CallTaskResult", parse.parse_call_task,
    "Ask for an outgoing call.", repeat=Repeat.STATUS,
    errors=("CALL_TASK_ALREADY_EXIST", "WRONG_ACTIVATION_ID", "NUMBER_NOT_EXIST"),
)
GET_OUTGOING_CALLS: Action[list[OutgoingCall]] = Action(
    "getOutgoingCalls", "get_outgoing_calls",
    (Param("activation_id", "activationId", "int | None", p.identifier, positional=True, doc="the activation id"),
     Param("date", "date", "str | None", p.text, doc="YYYY-MM-DD, default today")),
    "list[OutgoingCall]", parse.parse_outgoing_calls, "Outgoing call tasks.",
)
GET_QIWI_REQUISITES: Action[QiwiRequisites] = Action(
    "getQiwiRequisites", "get_qiwi_requisites", (), "QiwiRequisites", parse.parse_qiwi,
    "Qiwi payment details (legacy).",
)
GET_FULL_SMS: Action[FullSms] = Action(
    "getFullSms", "get_full_sms", (_id(),), "FullSms", parse.parse_full_sms,
    "The whole SMS text (legacy).", errors=("NO_ACTIVATION", "ERROR_SQL", "BAD_KEY", "BAD_ACTION"),
    text_prefixes=("FULL_SMS", "STATUS_"),
)
GET_RENT_SERVICES_AND_COUNTRIES: Action[RentServicesAndCountries] = Action(
    "getRentServicesAndCountries", "get_rent_services_and_countries",
    (_RENT_TIME, Param("operator", "operator", "str | None", p.text, doc="operator, default any"), _country(),
     Param("currency", "currency", "int | None", p.int_range(1, 999), doc="ISO 4217 numeric"),
     Param("incoming_call", "incomingCall", "bool | None", p.true_flag, doc="numbers that take calls")),
    "RentServicesAndCountries", parse.parse_rent_services,
    "What can be rented, and for how much.", errors=("BAD_KEY", "OUT_OF_STOCK"),
)
GET_RENT_NUMBER: Action[Rent] = Action(
    "getRentNumber", "get_rent_number",
    (_service(), _RENT_TIME, Param("operator", "operator", "str | None", p.text, doc="operator"), _country(),
     Param("url", "url", "str | None", p.text, doc="webhook URL for incoming SMS"),
     Param("incoming_call", "incomingCall", "bool | None", p.true_flag, doc="numbers that take calls")),
    "Rent", parse.parse_rent,
    "Rent a number.", repeat=Repeat.PURCHASE_RENT,
    errors=("BAD_KEY", "BAD_SERVICE", "NO_BALANCE", "NO_NUMBERS", "ACCOUNT_INACTIVE", "SERVER_ERROR", "SQL_ERROR",
            "CHANNELS_LIMIT"),
)
GET_RENT_STATUS: Action[RentStatus] = Action(
    "getRentStatus", "get_rent_status",
    (_rent_id(), Param("page", "page", "int | None", p.int_range(0, 2**31), doc="0 = newest"),
     Param("size", "size", "int | None", p.int_range(1, 100), doc="messages per page")),
    "RentStatus", parse.parse_rent_status,
    "A rent's messages; empty while none came (``STATUS_WAIT_CODE``).",
    errors=("BAD_KEY", "NO_ID_RENT", "INVALID_PHONE", "STATUS_FINISH", "STATUS_CANCEL", "STATUS_WAIT_CODE", "STATUS_REVOKE"),
    empty_on=frozenset({"STATUS_WAIT_CODE"}), empty=lambda: RentStatus(quantity=0, values=[]),
)
SET_RENT_STATUS: Action[None] = Action(
    "setRentStatus", "set_rent_status",
    (_rent_id(), Param("status", "status", "int", p.choice(1, 2), required=True, positional=True,
                       doc="1 finish, 2 cancel")),
    "None", parse.parse_success,
    "Finish (1) or cancel (2, within 20 minutes) a rent.", repeat=Repeat.STATUS,
    errors=("BAD_KEY", "NO_ID_RENT", "INCORECT_STATUS", "CANT_CANCEL", "INVALID_PHONE", "ALREADY_FINISH",
            "ALREADY_CANCEL", "SERVER_ERROR"),
)
GET_RENT_LIST: Action[list[RentListEntry]] = Action(
    "getRentList", "get_rent_list", (), "list[RentListEntry]", parse.parse_rent_list,
    "The latest rents; ``[]`` when there are none.", errors=("BAD_KEY", "BAD_ACTION", "NO_NUMBERS", "SERVER_ERROR"),
    empty_on=frozenset({"NO_NUMBERS"}), empty=list,
)
CONTINUE_RENT_NUMBER: Action[Rent] = Action(
    "continueRentNumber", "continue_rent_number", (_rent_id(), _EXTEND_TIME), "Rent", parse.parse_rent,
    "Extend a rent (a finished rent is re-ordered under a new id).", repeat=Repeat.PURCHASE_OTHER,
    errors=("BAD_KEY", "BAD_ACTION", "SERVER_ERROR", "NO_ID_RENT", "INVALID_TIME", "MAX_HOURS_EXCEED", "INVALID_PHONE",
            "RENT_DIE", "NO_BALANCE", "CHANNELS_LIMIT"),
)
GET_CONTINUE_RENT_PRICE_NUMBER: Action[RentPrice] = Action(
    "getContinueRentPriceNumber", "get_continue_rent_price_number",
    (_rent_id(), Param("rent_time", "rent_time", "int", p.int_range(4, 1344), required=True, doc="hours, 4 to 1344"),
     Param("currency", "currency", "int | None", p.int_range(1, 999), doc="ISO 4217 numeric")),
    "RentPrice", parse.parse_rent_price, "The price of extending a rent.",
    errors=("BAD_KEY", "BAD_ACTION", "SERVER_ERROR", "NO_ID_RENT", "INVALID_PHONE", "INVALID_TIME", "RENT_DIE",
            "MAX_HOURS_EXCEED", "CHANNELS_LIMIT"),
)
CONTINUE_RENT_INFO: Action[RentExtensionInfo] = Action(
    "continueRentInfo", "continue_rent_info",
    (_rent_id(), Param("hours", "hours", "int", p.int_range(2, 1344), required=True, doc="hours, 2 to 1344"),
     Param("need_history", "needHistory", "bool | None", p.true_flag, doc="also list the past extensions")),
    "RentExtensionInfo", parse.parse_rent_extension_info,
    "What extending a rent by ``hours`` costs (replaces ``get_continue_rent_price_number``).",
    errors=("BAD_KEY", "BAD_ACTION", "SERVER_ERROR", "NO_ID_RENT", "INVALID_PHONE", "INVALID_TIME", "RENT_DIE",
            "MAX_HOURS_EXCEED", "CHANNELS_LIMIT"),
)
BUY_PARTNER_PRODUCT: Action[PartnerProduct] = Action(
    "buyPartnerProduct", "buy_partner_product",
    (Param("product_id", "productId", "int", p.identifier, required=True, doc="the product id"),),
    "PartnerProduct", parse.parse_partner_product, "Buy a partner product.", repeat=Repeat.PURCHASE_OTHER,
    errors=("BAD_DATA", "BAD_ACTION"),
)

# --- HeroSMS extras ---------------------------------------------------------------------------

FINISH_ACTIVATION: Action[None] = Action(
    "finishActivation", "finish_activation", (_id(),), "None", parse.parse_finished,
    "Finish an activation (HeroSMS; HTTP 204).", repeat=Repeat.STATUS, extra=True, allow_empty_body=True,
    errors=("NOT_FOUND", "ACTIVATION_NOT_ACTIVE"), text_prefixes=("ACCESS_",),
)
CANCEL_ACTIVATION: Action[None] = Action(
    "cancelActivation", "cancel_activation", (_id(),), "None", parse.parse_cancelled,
    "Cancel an activation with refund (HeroSMS; HTTP 204).", repeat=Repeat.STATUS, extra=True, allow_empty_body=True,
    errors=("NOT_FOUND", "EARLY_CANCEL_DENIED", "OTP_RECEIVED", "ACTIVATION_NOT_ACTIVE"), text_prefixes=("ACCESS_",),
)
GET_ALL_SMS: Action[list[SmsMessage]] = Action(
    "getAllSms", "get_all_sms", (_id(),), "list[SmsMessage]", parse.parse_all_sms,
    "Every SMS and call of an activation (HeroSMS).", extra=True, errors=("NOT_FOUND",),
)

#: Every action by Python name, in declaration order.
ACTIONS: dict[str, Action[Any]] = {
    a.name: a
    for a in (
        GET_NUMBERS_STATUS, GET_TOP_COUNTRIES_BY_SERVICE, GET_BALANCE, GET_BALANCE_AND_CASHBACK, GET_OPERATORS,
        GET_ACTIVE_ACTIVATIONS, GET_NUMBER, GET_NUMBER_V2, GET_MULTI_SERVICE_NUMBER, SET_STATUS, GET_STATUS,
        GET_STATUS_V2, GET_HISTORY, GET_LIST_OF_TOP_COUNTRIES_BY_SERVICE, GET_INCOMING_CALL_STATUS, GET_PRICES,
        GET_PRICES_EXTENDED, GET_PRICES_VERIFICATION, GET_COUNTRIES, GET_SERVICES_LIST, GET_ADDITIONAL_SERVICE,
        GET_EXTRA_ACTIVATION, CHECK_EXTRA_ACTIVATION, PARSE_CALL, CREATE_TASK_FOR_CALL, GET_OUTGOING_CALLS, GET_QIWI_REQUISITES,
        GET_FULL_SMS, GET_RENT_SERVICES_AND_COUNTRIES, GET_RENT_NUMBER, GET_RENT_STATUS, SET_RENT_STATUS,
        GET_RENT_LIST, CONTINUE_RENT_NUMBER, GET_CONTINUE_RENT_PRICE_NUMBER, CONTINUE_RENT_INFO, BUY_PARTNER_PRODUCT,
        FINISH_ACTIVATION, CANCEL_ACTIVATION, GET_ALL_SMS,
    )
}
