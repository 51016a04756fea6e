"""Answer parsers, one per result shape. Each takes a decoded answer and returns a model.

They may raise anything on a malformed answer: the session turns that into ``BadResponseError``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._convert import structure, to_decimal, to_int, to_list, to_str
from ._exceptions import BadResponseError
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
    "active_rows", "parse_active_activations", "parse_all_sms", "parse_balance", "parse_call_task", "parse_check_extra",
    "parse_countries", "parse_full_sms", "parse_history", "parse_incoming_call", "parse_multi_service",
    "parse_no_content", "parse_number", "parse_numbers_status", "parse_operators", "parse_outgoing_calls",
    "parse_parse_call", "parse_partner_product", "parse_prices", "parse_prices_verification", "parse_qiwi",
    "parse_rent", "parse_rent_list", "parse_rent_price", "parse_rent_services", "parse_rent_status",
    "parse_services", "parse_set_status", "parse_status", "parse_status_v2", "parse_success",
    "parse_top_countries", "parse_top_country_shares", "split_code",
]

log = logging.getLogger("smsactivate_async")

_CODE_IN_TEXT = re.compile(r"(?<!\d)(\d{4,8})(?!\d)")
_NO_CODE = "Нет кода"  # "no code": the official Java client treats STATUS_OK:Нет кода as no code yet


def _unexpected(answer: Any, what: str) -> BadResponseError:
    body = answer.raw if isinstance(answer, TextAnswer) else json.dumps(answer, default=str)
    return BadResponseError(f"expected {what}", body=body)


def _text(answer: Any, *tokens: str) -> TextAnswer:
    if isinstance(answer, TextAnswer) and answer.token in tokens:
        return answer
    raise _unexpected(answer, " or ".join(tokens))


def _object(answer: Any, what: str = "a JSON object") -> Mapping[str, Any]:
    if isinstance(answer, Mapping):
        return answer
    raise _unexpected(answer, what)


def split_code(payload: str | None) -> tuple[str | None, str | None]:
    """``(code, full text)`` of a ``STATUS_OK:`` payload.

    HeroSMS may send the whole SMS instead of the code: then the code is the 4–8 digit run in it.
    """
    if payload is None:
        return None, None
    text = payload.strip()
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


def parse_number(answer: Any) -> Number:
    if isinstance(answer, TextAnswer):
        _text(answer, "ACCESS_NUMBER", "ADDITIONAL")
        activation_id, colon, phone = (answer.payload or "").partition(":")
        if not colon or not phone.strip():
            raise _unexpected(answer, "ACCESS_NUMBER:<id>:<phone>")
        return Number(activation_id=to_int(activation_id), phone_number=phone.strip())
    return structure(answer, Number)


def parse_multi_service(answer: Any) -> list[MultiServiceActivation]:
    # The vendor's labels are swapped: "activation" holds the id, "phone" the number.
    return [
        MultiServiceActivation(
            activation_id=to_int(row["activation"]), phone_number=to_str(row["phone"]), service=to_str(row["service"])
        )
        for row in to_list(answer)
    ]


def parse_set_status(answer: Any) -> SetStatusAnswer:
    if isinstance(answer, TextAnswer):
        try:
            return SetStatusAnswer(answer.token)
        except ValueError:
            pass
    raise _unexpected(answer, "ACCESS_READY, ACCESS_RETRY_GET, ACCESS_ACTIVATION or ACCESS_CANCEL")


def _status_code(token: str) -> StatusCode:
    if token == "ACCESS_CANCEL":  # Tiger SMS says ACCESS_CANCEL for a cancelled activation
        return StatusCode.STATUS_CANCEL
    try:
        return StatusCode(token)
    except ValueError:
        return StatusCode.UNKNOWN


def parse_status(answer: Any) -> ActivationStatus:
    if not isinstance(answer, TextAnswer):
        raise _unexpected(answer, "a STATUS_* answer")
    status = _status_code(answer.token)
    if status is StatusCode.STATUS_OK:
        code, text = split_code(answer.payload)
        return ActivationStatus(status=status, code=code, text=text, raw=answer.raw)
    text = answer.payload.strip() if answer.payload else None
    return ActivationStatus(status=status, text=text, raw=answer.raw)


_VERIFICATION_TYPES = {0: "sms", 1: "number", 2: "voice"}


def parse_status_v2(answer: Any) -> StatusV2:
    if isinstance(answer, TextAnswer):
        if answer.token == "STATUS_OK":
            code, text = split_code(answer.payload)
            return StatusV2(status=StatusCode.STATUS_OK, sms=SmsInfo(code=code, text=text))
        return StatusV2(status=_status_code(answer.token))
    doc = _object(answer)
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


def active_rows(answer: Any) -> list[Any]:
    """The rows of a getActiveActivations answer, wherever the provider put them."""
    if isinstance(answer, list):
        return answer
    doc = _object(answer)
    if isinstance(doc.get("data"), (list, Mapping)):
        rows = doc["data"]  # HeroSMS: rows in "data"; "activeActivations" is a leaked DB cursor
    else:
        rows = doc.get("activeActivations") or []
        if isinstance(rows, Mapping) and "num_rows" in rows:
            rows = []
    return to_list(rows)


def parse_active_activations(answer: Any) -> list[ActiveActivation]:
    return [structure(row, ActiveActivation) for row in active_rows(answer)]


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
    rows = to_list(answer)
    result = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise _unexpected(answer, "a list of history rows")
        fixed = dict(row)
        fixed["sms"] = _history_sms(row.get("sms"))
        result.append(structure(fixed, HistoryEntry))
    return result


def parse_numbers_status(answer: Any) -> NumbersStatus:
    counts: dict[str, int] = {}
    forward: dict[str, int] = {}
    for key, value in _object(answer).items():
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
            # keyed by service: {"tg": {"0": {...}}}
            for svc, inner in row.items():
                rows.extend(_top_rows(inner, svc))
            continue
        entry = structure(row, TopCountry)
        rows.append(entry if service is None else attrs.evolve(entry, service=service))
    return rows


def parse_top_countries(answer: Any) -> list[TopCountry]:
    if isinstance(answer, Mapping) and answer and not all(k.isdigit() for k in answer):
        result: list[TopCountry] = []
        for svc, inner in answer.items():
            result.extend(_top_rows(inner, svc))
        return result
    return _top_rows(answer, None)


def parse_top_country_shares(answer: Any) -> list[TopCountryShare]:
    return [structure(row, TopCountryShare) for row in to_list(answer)]


def parse_operators(answer: Any) -> dict[int, list[str]]:
    doc = _object(answer)
    operators = doc.get("countryOperators", {})
    return {to_int(k): [to_str(o) for o in to_list(v)] for k, v in _object(operators).items()}


def _int_keyed(value: Any, what: str) -> dict[int, Any]:
    result: dict[int, Any] = {}
    for key, row in _object(value).items():
        try:
            result[to_int(key)] = row
        except ValueError:
            log.warning("%s: skipped a row keyed %r (no country id)", what, key)
    return result


def parse_prices(answer: Any) -> dict[int, dict[str, Price]]:
    if isinstance(answer, list) and not answer:
        return {}
    return {
        country: {svc: structure(price, Price) for svc, price in _object(services).items()}
        for country, services in _int_keyed(answer, "getPrices").items()
    }


def parse_prices_verification(answer: Any) -> dict[str, dict[int, PriceVerification]]:
    return {
        svc: {
            country: structure(row, PriceVerification)
            for country, row in _int_keyed(countries, "getPricesVerification").items()
        }
        for svc, countries in _object(answer).items()
    }


def parse_countries(answer: Any) -> dict[int, Country]:
    rows = answer.values() if isinstance(answer, Mapping) else to_list(answer)
    result: dict[int, Country] = {}
    for row in rows:
        if not isinstance(row, Mapping) or row.get("id") is None:
            log.warning("getCountries: skipped a row without an id")
            continue
        country = structure(row, Country)
        result[country.id] = country
    return result


def parse_services(answer: Any) -> list[Service]:
    rows = answer if isinstance(answer, list) else _object(answer).get("services", [])
    services = [structure(row, Service) for row in to_list(rows)]
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
    return structure(answer, ExtraActivationInfo)


def parse_parse_call(answer: Any) -> bool:
    doc = _object(answer)
    if doc.get("result") == "OK" or doc.get("status") == "success":
        return True
    raise _unexpected(answer, '{"result":"OK"}')


def parse_call_task(answer: Any) -> CallTaskResult:
    doc = _object(answer)
    message = doc.get("msg", doc.get("message"))
    return CallTaskResult(message=to_str(message) if message is not None else None)


def parse_outgoing_calls(answer: Any) -> list[OutgoingCall]:
    if isinstance(answer, list):
        if not answer:
            return []
        raise _unexpected(answer, "an object keyed by task id")
    return [structure({**_object(row), "taskId": key}, OutgoingCall) for key, row in _object(answer).items()]


def parse_qiwi(answer: Any) -> QiwiRequisites:
    return structure(answer, QiwiRequisites)


def parse_full_sms(answer: Any) -> FullSms:
    if isinstance(answer, TextAnswer):
        if answer.token == "FULL_SMS":
            return FullSms(status=StatusCode.STATUS_OK, text=answer.payload)
        return FullSms(status=_status_code(answer.token))
    raise _unexpected(answer, "FULL_SMS:<text>")


def parse_rent_services(answer: Any) -> RentServicesAndCountries:
    doc = _object(answer)
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
    return [structure(row, RentListEntry) for row in to_list(_object(answer).get("values", []))]


def parse_rent_price(answer: Any) -> RentPrice:
    return structure(answer, RentPrice)


def parse_partner_product(answer: Any) -> PartnerProduct:
    return structure(answer, PartnerProduct)


def parse_no_content(answer: Any) -> None:
    if answer is None or (isinstance(answer, Mapping) and answer.get("status") == "success"):
        return
    if isinstance(answer, TextAnswer) and answer.token.startswith("ACCESS_"):
        return
    raise _unexpected(answer, "an empty answer")


def parse_all_sms(answer: Any) -> list[SmsMessage]:
    rows = answer.get("data", []) if isinstance(answer, Mapping) else answer
    return [structure(row, SmsMessage) for row in to_list(rows)]
