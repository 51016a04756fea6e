"""What the simulator's modules share: the reply type, the catalogue's data, and formatting.

Built from the protocol documents and captures; it imports nothing of the client.
"""

from __future__ import annotations

import datetime as _dt
import json
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["CatalogueEntry"]


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
    """One HTTP answer: status, body, content type, extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)


class _Error(Exception):
    """Raised by a handler to answer with ``reply`` at once (an error, in the dialect's form)."""

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

#: countries that can be rented (getCountries ``rent: 1``), of those a dialect has
_RENT_COUNTRIES = (0, 2, 16)


#: [LIVE getCountries dump, FACTS §10] HeroSMS has no Russia (0) and no USA virtual (12).
_HEROSMS_ABSENT = frozenset({0, 12})


def _default_catalogue(absent: frozenset[int]) -> list[CatalogueEntry]:
    entries = []
    for country in _COUNTRIES:
        if country in absent:
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


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(type(value).__name__)


def _plain(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=_json_default))

#: continueRentNumber's errors carry an ``info`` with the reason [DOC 000 continueRentNumber:
#: ``{"status":"error","message":…,"info":"*details*"}``], worded as the reference's list
_RENT_INFO = {
    "NO_ID_RENT": "there is no rent ID",
    "INVALID_TIME": "wrong time. Available number of hours from 4 to 1344",
    "RENT_DIE": "the rent cannot be extended: the number is no longer available",
    "NO_BALANCE": "not enough money in the account",
}

