"""Answer parsers, one per result shape. Each takes a decoded answer and returns a model.

Each parser first checks that the answer *is* its action's answer: the keys or token fields that
identify it (a purchase has a positive id and a phone; a listing has its rows key; a map keyed by
country has country-like keys). A proxy's JSON error page, a captive portal or another endpoint's
answer is well-formed JSON too, and must never come back as a default-filled value. They may raise
anything on a malformed answer: the session turns that into ``BadResponseError``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._convert import rows_structurer, structure, to_decimal, to_id, to_int, to_list, to_str
from ._models import (
    ActivationStatus,
    ActiveActivation,
    CallInfo,
    CallTaskResult,
    Country,
    ExtraActivationInfo,
    FullSms,
    HistoryEntry,
    IncomingCallState,
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
    RentServicePrice,
    RentServicesAndCountries,
    RentStatus,
    Service,
    SetStatusAnswer,
    SmsInfo,
    SmsMessage,
    StatusCode,
    StatusV2,
    TopCountry,
    TopCountryShare,
)
from ._wire import TextAnswer

__all__ = [
    "UnexpectedAnswer",
    "active_rows",
    "active_rows_unchecked",
    "not_active_rows",
    "parse_active_activations",
    "parse_all_sms",
    "parse_balance",
    "parse_call_task",
    "parse_cancelled",
    "parse_check_extra",
    "parse_countries",
    "parse_finished",
    "parse_full_sms",
    "parse_history",
    "parse_incoming_call",
    "parse_multi_service",
    "parse_number",
    "parse_numbers_status",
    "parse_operators",
    "parse_outgoing_calls",
    "parse_parse_call",
    "parse_partner_product",
    "parse_prices",
    "parse_prices_extended",
    "parse_prices_verification",
    "parse_qiwi",
    "parse_rent",
    "parse_rent_extension_info",
    "parse_rent_list",
    "parse_rent_price",
    "parse_rent_services",
    "parse_rent_status",
    "parse_services",
    "parse_set_status",
    "parse_status",
    "parse_status_v2",
    "parse_success",
    "parse_top_countries",
    "parse_top_country_shares",
    "split_code",
]

log = logging.getLogger("smsactivate_async")

_CODE_IN_TEXT = re.compile(r"(?<!\d)(\d{4,8})(?!\d)")
_NO_CODE = "Нет кода"  # "no code": the official Java client treats STATUS_OK:Нет кода as no code yet


class UnexpectedAnswer(ValueError):
    """Raised by a parser whose answer is not its action's answer; the session makes it a
    ``BadResponseError`` that carries the body as it came and the action's name."""


def _unexpected(answer: Any, what: str) -> UnexpectedAnswer:
    return UnexpectedAnswer(f"expected {what}")


def _text(answer: Any, *tokens: str) -> TextAnswer:
    if isinstance(answer, TextAnswer) and answer.token in tokens:
        return answer
    raise _unexpected(answer, " or ".join(tokens))


def _object(answer: Any, what: str = "a JSON object") -> Mapping[str, Any]:
    if isinstance(answer, Mapping):
        return answer
    raise _unexpected(answer, what)


def _keyed(answer: Any, what: str, *keys: str) -> Mapping[str, Any]:
    """A JSON object holding at least one of ``keys``: what makes it this action's answer."""
    doc = _object(answer, what)
    if any(key in doc for key in keys):
        return doc
    raise _unexpected(answer, what)


def _rows(value: Any, what: str, answer: Any) -> list[Mapping[str, Any]]:
    """A list (or a list in disguise) of JSON objects."""
    rows = to_list(value)
    if not all(isinstance(row, Mapping) for row in rows):
        raise _unexpected(answer, what)
    return rows


#: Keys of envelopes and error pages, never of a map keyed by service or country.
_ENVELOPE_KEYS = frozenset({"status", "title", "details", "error", "errors", "message", "msg", "info", "detail",
                            "code", "data", "result", "success"})
_SERVICE_CODE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def split_code(payload: str | None) -> tuple[str | None, str | None]:
    """``(code, full text)`` of a ``STATUS_OK:`` payload.

    HeroSMS may send the whole SMS instead of the code: then the code is the 4–8 digit run in it.
    """
    if payload is None:
        return None, None
    text = payload.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        # [peers' fixtures] STATUS_OK: '123456' — a code wrapped in quotes (and spaces): the quotes are
        # not part of it; a code with inner spaces keeps them
        text = text[1:-1].strip()
    if not text or text == _NO_CODE:
        return None, text or None
    if len(text) > 8 or " " in text:
        found = _CODE_IN_TEXT.findall(text)
        if len(found) == 1:
            return found[0], text
    return text, text


def parse_balance(answer: Any) -> Decimal:
    if isinstance(answer, Mapping) and "balance" in answer:
        return to_decimal(answer["balance"])
    return to_decimal(_text(answer, "ACCESS_BALANCE").payload)


def _phone(value: Any, answer: Any) -> str:
    phone = to_str(value).strip() if value is not None else ""
    if not phone or any(ch.isspace() for ch in phone) or ":" in phone:
        raise _unexpected(answer, "a phone number")
    return phone


def parse_number(answer: Any) -> Number:
    if isinstance(answer, TextAnswer):
        _text(answer, "ACCESS_NUMBER", "ADDITIONAL")
        activation_id, colon, phone = (answer.payload or "").partition(":")
        if not colon or not phone.strip():
            raise _unexpected(answer, "ACCESS_NUMBER:<id>:<phone>")
        return Number(activation_id=to_id(activation_id), phone_number=_phone(phone, answer))
    doc = _keyed(answer, "a purchase with activationId and phoneNumber", "activationId")
    number = structure(doc, Number)
    return attrs.evolve(number, phone_number=_phone(doc.get("phoneNumber"), answer))


def parse_multi_service(answer: Any) -> list[MultiServiceActivation]:
    # The vendor's labels are swapped: "activation" holds the id, "phone" the number.
    rows = _rows(answer, "a list of {phone, activation, service}", answer)
    if not rows:
        raise _unexpected(answer, "at least one bought activation")
    result = []
    for row in rows:
        service = to_str(row["service"]).strip()
        if not service:
            raise _unexpected(answer, "a service code in every row")
        result.append(MultiServiceActivation(
            activation_id=to_id(row["activation"]), phone_number=_phone(row["phone"], answer), service=service))
    return result


def parse_set_status(answer: Any) -> SetStatusAnswer:
    if isinstance(answer, TextAnswer):
        try:
            return SetStatusAnswer(answer.token)
        except ValueError:
            pass
    raise _unexpected(answer, "ACCESS_READY, ACCESS_RETRY_GET, ACCESS_ACTIVATION or ACCESS_CANCEL")


_STATUS_WORD = re.compile(r"^STATUS_[A-Z_]+$")


def _status_code(token: str) -> StatusCode:
    if token == "ACCESS_CANCEL":  # Tiger SMS says ACCESS_CANCEL for a cancelled activation
        return StatusCode.STATUS_CANCEL
    try:
        return StatusCode(token)
    except ValueError:
        pass
    if _STATUS_WORD.match(token):
        return StatusCode.UNKNOWN  # a state this library does not know yet: kept, with the answer in .raw
    raise UnexpectedAnswer(f"expected a STATUS_* word, got {token[:40]!r}")


def parse_status(answer: Any) -> ActivationStatus:
    if not isinstance(answer, TextAnswer):
        raise _unexpected(answer, "a STATUS_* answer")
    status = _status_code(answer.token)
    if status is StatusCode.STATUS_OK:
        if not (answer.payload or "").strip():
            raise _unexpected(answer, "STATUS_OK:<code>")
        code, text = split_code(answer.payload)
        return ActivationStatus(status=status, code=code, text=text, raw=answer.raw)
    text = answer.payload.strip() if answer.payload else None
    return ActivationStatus(status=status, text=text, raw=answer.raw)


_VERIFICATION_TYPES = {0: "sms", 1: "number", 2: "voice"}


def parse_status_v2(answer: Any) -> StatusV2:
    if isinstance(answer, TextAnswer):
        if answer.token == "STATUS_OK":
            if not (answer.payload or "").strip():
                raise _unexpected(answer, "STATUS_OK:<code>")
            code, text = split_code(answer.payload)
            return StatusV2(status=StatusCode.STATUS_OK, sms=SmsInfo(code=code, text=text))
        return StatusV2(status=_status_code(answer.token))
    doc = _object(answer)
    # Classic: {verificationType, sms, call}; HeroSMS: {verificationType, data}.
    if not ("sms" in doc or "call" in doc or ("data" in doc and "verificationType" in doc)):
        raise _unexpected(answer, "a getStatusV2 answer ({verificationType, sms, call} or {verificationType, data})")
    kind = doc.get("verificationType")
    verification: str | None
    if isinstance(kind, int):
        verification = _VERIFICATION_TYPES.get(kind, str(kind))
    else:
        verification = to_str(kind) if kind is not None else None
    sms: SmsInfo | None = None
    call: CallInfo | None = None
    if "data" in doc:
        # HeroSMS spec shape: {"verificationType":"sms","data":{id,phoneFrom,code,text,service,date,type}}
        data = doc["data"]
        if data is not None:
            message = structure(data, SmsMessage)
            if message.type == "call":
                call = CallInfo(from_=message.phone_from, text=message.text, code=message.code, date_time=message.date)
            else:
                sms = SmsInfo(date_time=message.date, code=message.code, text=message.text)
    else:
        sms = structure(doc["sms"], SmsInfo) if doc.get("sms") else None
        call = structure(doc["call"], CallInfo) if doc.get("call") else None
    result = StatusV2(status=StatusCode.STATUS_WAIT_CODE, verification_type=verification, sms=sms, call=call)
    if result.code is not None:
        result = StatusV2(status=StatusCode.STATUS_OK, verification_type=verification, sms=sms, call=call)
    return result


_ACTIVE_WHAT = "getActiveActivations rows (under activeActivations or data, each with an activationId)"


def active_rows(answer: Any) -> list[Any]:
    """The rows of a getActiveActivations answer, wherever the provider put them.

    An answer without the rows key is not a listing (an error page, another endpoint's answer):
    it raises, so that nobody concludes from it that there are no activations.
    """
    result = active_rows_unchecked(answer)
    for row in result:
        if (type(row) is not dict and not isinstance(row, Mapping)) or "activationId" not in row:
            raise not_active_rows(answer)
    return result


def not_active_rows(answer: Any) -> UnexpectedAnswer:
    """The error of an answer that is not getActiveActivations rows."""
    return _unexpected(answer, _ACTIVE_WHAT)


def active_rows_unchecked(answer: Any) -> list[Any]:
    """:func:`active_rows` without the check of each row, for a reader that checks them as it goes
    (a row that is no mapping with an ``activationId`` must raise :func:`not_active_rows`)."""
    if isinstance(answer, list):
        rows: Any = answer
    else:
        doc = _object(answer, _ACTIVE_WHAT)
        if isinstance(doc.get("data"), (list, Mapping)):
            rows = doc["data"]  # HeroSMS: rows in "data"; "activeActivations" is a leaked DB cursor
        elif "activeActivations" in doc:
            rows = doc["activeActivations"]
            if rows is None or (isinstance(rows, Mapping) and "num_rows" in rows):
                rows = []
        else:
            raise _unexpected(answer, _ACTIVE_WHAT)
    return to_list(rows)


def parse_active_activations(answer: Any) -> list[ActiveActivation]:
    return rows_structurer(ActiveActivation)(active_rows(answer))


def _history_sms(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except ValueError:
                return [value]
            return [to_str(v) for v in to_list(decoded)]
        return [value] if text else []
    return [to_str(v) for v in to_list(value)]


def parse_history(answer: Any) -> list[HistoryEntry]:
    if isinstance(answer, Mapping) and answer:
        # HeroSMS may wrap the rows; a bare object of anything else is not a history
        answer = _keyed(answer, "a list of history rows", "data", "0")
        answer = answer.get("data", answer)
    rows = _rows(answer, "a list of history rows", answer)
    result = []
    for row in rows:
        fixed = dict(row)
        fixed["sms"] = _history_sms(row.get("sms"))
        result.append(structure(fixed, HistoryEntry))
    return result


def parse_numbers_status(answer: Any) -> NumbersStatus:
    counts: dict[str, int] = {}
    forward: dict[str, int] = {}
    for key, value in _object(answer).items():
        if key in _ENVELOPE_KEYS or not _SERVICE_CODE.match(key):
            raise _unexpected(answer, "counts keyed by service code")
        count = to_int(value)
        if key.endswith("_1"):
            forward[key[:-2]] = count
        elif key.endswith("_0"):
            counts[key[:-2]] = count
        else:
            counts[key] = count
    return NumbersStatus(counts=counts, forward_counts=forward)


def _top_rows(value: Any, service: str | None) -> list[TopCountry]:
    rows = []
    for row in to_list(value):
        if isinstance(row, Mapping) and "country" not in row and service is None:
            # keyed by service: {"tg": {"0": {...}}}; an empty or non-service-keyed row is not that
            if not row or any(not _SERVICE_CODE.match(key) or key in _ENVELOPE_KEYS for key in row):
                raise _unexpected(value, "countries ranked per service")
            for svc, inner in row.items():
                rows.extend(_top_rows(inner, svc))
            continue
        entry = structure(row, TopCountry)
        rows.append(entry if service is None else attrs.evolve(entry, service=service))
    return rows


def parse_top_countries(answer: Any) -> list[TopCountry]:
    if isinstance(answer, Mapping) and answer and not all(k.isdigit() for k in answer):
        if any(key in _ENVELOPE_KEYS or not _SERVICE_CODE.match(key) for key in answer):
            raise _unexpected(answer, "countries ranked per service")
        result: list[TopCountry] = []
        for svc, inner in answer.items():
            result.extend(_top_rows(inner, svc))
        return result
    return _top_rows(answer, None)


def parse_top_country_shares(answer: Any) -> list[TopCountryShare]:
    return [structure(row, TopCountryShare) for row in to_list(answer)]


def parse_operators(answer: Any) -> dict[int, list[str]]:
    doc = _keyed(answer, '{"countryOperators": {...}}', "countryOperators")
    operators = doc["countryOperators"] if doc["countryOperators"] is not None else {}
    if isinstance(operators, list) and not operators:
        return {}
    return {to_int(k): [to_str(o) for o in to_list(v)] for k, v in _object(operators).items()}


def _int_keyed(value: Any, what: str, answer: Any) -> dict[int, Mapping[str, Any]]:
    """An object keyed by country id, each value an object. The live ``""`` key is skipped."""
    result: dict[int, Mapping[str, Any]] = {}
    for key, row in _object(value, what).items():
        if key == "":
            log.warning("%s: skipped a row keyed '' (no country id)", what)
            continue
        if not key.isdigit() or (type(row) is not dict and not isinstance(row, Mapping)):
            raise _unexpected(answer, f"{what}: objects keyed by country id")
        result[int(key)] = row
    return result


def _service_keyed(value: Any, what: str, answer: Any) -> Mapping[str, Mapping[str, Any]]:
    doc = _object(value, what)
    for key, row in doc.items():
        if (key in _ENVELOPE_KEYS or not _SERVICE_CODE.match(key)
                or (type(row) is not dict and not isinstance(row, Mapping))):
            raise _unexpected(answer, f"{what}: objects keyed by service code")
    return doc


def _prices(answer: Any, what: str) -> dict[int, dict[str, Price]]:
    if isinstance(answer, list) and not answer:
        return {}
    prices_of = rows_structurer(Price)
    result: dict[int, dict[str, Price]] = {}
    for country, services in _int_keyed(answer, what, answer).items():
        doc = _service_keyed(services, what, answer)
        result[country] = dict(zip(doc, prices_of(doc.values()), strict=True))
    return result


def parse_prices(answer: Any) -> dict[int, dict[str, Price]]:
    return _prices(answer, "getPrices")


def parse_prices_extended(answer: Any) -> dict[int, dict[str, Price]]:
    return _prices(answer, "getPricesExtended")


def parse_prices_verification(answer: Any) -> dict[str, dict[int, PriceVerification]]:
    if isinstance(answer, list) and not answer:
        return {}
    return {
        svc: {
            country: structure(row, PriceVerification)
            for country, row in _int_keyed(countries, "getPricesVerification", answer).items()
        }
        for svc, countries in _service_keyed(answer, "getPricesVerification", answer).items()
    }


def parse_countries(answer: Any) -> dict[int, Country]:
    what = "countries keyed by id, each with an id"
    if isinstance(answer, Mapping):
        if not all(isinstance(key, str) and key.isdigit() for key in answer):
            raise _unexpected(answer, what)
        # keyed by id: a row without its own "id" takes the key's (the key says it)
        rows = [{**row, "id": key} if isinstance(row, Mapping) and row.get("id") is None else row
                for key, row in answer.items()]
    else:
        rows = to_list(answer)
    result: dict[int, Country] = {}
    for row in rows:
        if not isinstance(row, Mapping) or row.get("id") is None:
            log.warning("getCountries: skipped a row without an id")
            continue
        country = structure(row, Country)
        result[country.id] = country
    if rows and not result:
        raise _unexpected(answer, what)
    return result


def parse_services(answer: Any) -> list[Service]:
    rows = answer if isinstance(answer, list) else _keyed(answer, '{"services": [...]}', "services")["services"]
    services = [structure(row, Service) for row in _rows(rows, "a list of services", answer)]
    return [Service(code=s.code.strip(), name=s.name.strip() if s.name else s.name) for s in services]


def parse_incoming_call(answer: Any) -> IncomingCallStatus:
    doc = _object(answer)
    raw_status = to_int(doc["status"])
    status: IncomingCallState | int
    try:
        status = IncomingCallState(raw_status)
    except ValueError:
        status = raw_status
    phone = doc.get("phone")
    return IncomingCallStatus(status=status, phone=None if phone in (False, None, "") else to_str(phone))


def parse_check_extra(answer: Any) -> ExtraActivationInfo:
    return structure(_keyed(answer, '{"status":"success","cost":…}', "cost"), ExtraActivationInfo)


def parse_parse_call(answer: Any) -> bool:
    doc = _object(answer)
    if doc.get("result") == "OK" or doc.get("status") == "success":
        return True
    raise _unexpected(answer, '{"result":"OK"}')


def parse_call_task(answer: Any) -> CallTaskResult:
    doc = _object(answer)
    if doc.get("status") != "success" and "msg" not in doc and "message" not in doc:
        raise _unexpected(answer, '{"status":"success","msg":…}')
    message = doc.get("msg", doc.get("message"))
    return CallTaskResult(message=to_str(message) if message is not None else None)


def parse_outgoing_calls(answer: Any) -> list[OutgoingCall]:
    if isinstance(answer, list):
        if not answer:
            return []
        raise _unexpected(answer, "an object keyed by task id")
    calls = []
    for key, row in _object(answer).items():
        if key in _ENVELOPE_KEYS or not isinstance(row, Mapping) or not ({"date", "phoneFrom", "status"} & set(row)):
            raise _unexpected(answer, "calls keyed by task id, each {date, phoneFrom, status}")
        calls.append(structure({**row, "taskId": key}, OutgoingCall))
    return calls


def parse_qiwi(answer: Any) -> QiwiRequisites:
    return structure(_keyed(answer, "{wallet, comment, upToDate}", "wallet"), QiwiRequisites)


def parse_full_sms(answer: Any) -> FullSms:
    if isinstance(answer, TextAnswer):
        if answer.token in ("FULL_SMS", "STATUS_OK"):
            if not (answer.payload or "").strip():
                raise _unexpected(answer, f"{answer.token}:<text>")
            return FullSms(status=StatusCode.STATUS_OK, text=answer.payload)
        return FullSms(status=_status_code(answer.token))
    raise _unexpected(answer, "FULL_SMS:<text>")


def parse_rent_services(answer: Any) -> RentServicesAndCountries:
    doc = _keyed(answer, "{countries, operators, services, currency}", "services")
    return RentServicesAndCountries(
        countries=[to_int(v) for v in _values(doc.get("countries"))],
        operators=[to_str(v) for v in _values(doc.get("operators"))],
        services={k: structure(v, RentServicePrice) for k, v in _object(doc.get("services", {})).items()},
        currency=to_int(doc["currency"]) if doc.get("currency") is not None else None,
    )


def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    return to_list(value)


def parse_rent(answer: Any) -> Rent:
    return structure(_object(answer)["phone"], Rent)


def parse_rent_status(answer: Any) -> RentStatus:
    return structure(answer, RentStatus)


def parse_success(answer: Any) -> None:
    doc = _object(answer)
    if doc.get("status") != "success":
        raise _unexpected(answer, '{"status":"success"}')


def parse_rent_list(answer: Any) -> list[RentListEntry]:
    # Tiger sends the rows as a bare array (FACTS §14); everyone else under "values".
    rows = answer if isinstance(answer, list) else _keyed(answer, '{"status":"success","values":{...}}', "values")["values"]
    return [structure(row, RentListEntry) for row in _rows(rows, "rent rows {id, phone}", answer)]


def parse_rent_price(answer: Any) -> RentPrice:
    return structure(answer, RentPrice)


def parse_rent_extension_info(answer: Any) -> RentExtensionInfo:
    return structure(_keyed(answer, '{"status":"success","price":…,"hours":…}', "price"), RentExtensionInfo)


def parse_partner_product(answer: Any) -> PartnerProduct:
    return structure(_keyed(answer, '{"status":"success","key":…,"manual":…}', "key"), PartnerProduct)


def _no_content_or(word: str) -> Callable[[Any], None]:
    """HTTP 204, ``{"status":"success"}``, or the one word setStatus would answer for the same change."""

    def parse(answer: Any) -> None:
        if answer is None or (isinstance(answer, Mapping) and answer.get("status") == "success"):
            return
        if isinstance(answer, TextAnswer) and answer.token == word and not answer.payload:
            return
        raise _unexpected(answer, f"an empty answer (HTTP 204) or {word}")

    return parse


parse_finished = _no_content_or("ACCESS_ACTIVATION")
parse_cancelled = _no_content_or("ACCESS_CANCEL")


def parse_all_sms(answer: Any) -> list[SmsMessage]:
    rows = _keyed(answer, '{"data": [...]}', "data")["data"] if isinstance(answer, Mapping) else answer
    return [structure(row, SmsMessage) for row in _rows(rows, "a list of messages", answer)]
