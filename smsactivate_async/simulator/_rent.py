"""Rent: what can be rented, renting, status, closing, extending.

Each handler is a small function registered for its wire action; it reads and changes the
simulator's state and answers through the dialect's renderer.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._common import (
    _OPERATORS,
    _PHONE_PREFIX,
    _RENT_INFO,
    _SERVICES,
    _fmt,
    _Reply,
    _wall,
)
from ._core import Account, Rent
from ._handlers import handles
from ._ledger import PurchaseRecord, RefundRecord

if TYPE_CHECKING:
    from ._handlers import Server

__all__: list[str] = []


def _rent_country(sim: Server, params: Mapping[str, str]) -> int | None:
    """The country asked for; without one the classic default (0, Russia) where the dialect has it,
    else the first it rents [INFER: no source shows a default for a dialect without Russia]."""
    rentable = sim.rent_countries
    default = 0 if 0 in rentable else (rentable[0] if rentable else 0)
    return sim._country(params, default)


@handles("getRentServicesAndCountries")
def get_rent_services_and_countries(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    hours = sim._rent_hours(params)
    country = _rent_country(sim, params)
    rentable = sim.rent_countries
    if country not in rentable:  # only the countries getCountries marks `rent: 1` [FACTS §10, §14]
        if params.get("country"):
            # [DOC 000 getRentServicesAndCountries] "OUT_OF_STOCK - numbers for that country are unavailable"
            raise sim.render.fail("OUT_OF_STOCK")
        country = rentable[0]
    services = {s: {"cost": sim._rent_price(s, country, hours), "quant": 20} for s in _SERVICES}
    services["full"] = {"cost": sim._rent_price("ot", country, hours) * 3, "quant": 20}
    return sim.render.json({"countries": {str(i): c for i, c in enumerate(rentable)}, "operators": {
        str(i): o for i, o in enumerate(["any", *_OPERATORS.get(country, [])])}, "services": services,
        "currency": sim.profile.currency})


@handles("getRentNumber")
def get_rent_number(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    service = params.get("service")
    if not service or service not in (*_SERVICES, "full"):
        raise sim.render.fail("BAD_SERVICE", json_key="message")
    hours = sim._rent_hours(params)
    # [INFER] a rent is a purchase: where purchases need a country (HeroSMS has no Russia, the
    # documented default, 000 getRentNumber) a rent without one is the purchase's 422
    sim._require_country(params)
    country = _rent_country(sim, params)
    if country not in sim.rent_countries:
        # a country the provider does not have, or does not rent in (getCountries `rent: 0`) [INFER: the
        # classic rent error vocabulary has no better word]. A rent error, so the rent API's form in
        # every dialect: 200 {"status":"error","message"} [SA-DOC25, FACTS §14]
        raise sim.render.fail("NO_NUMBERS", json_key="message")
    price = sim._rent_price(service, country, hours)
    if account.balance < price:
        raise sim.render.fail("NO_BALANCE", json_key="message")
    now = sim.clock.now()
    rent = Rent(id=next(sim._rent_ids), key=account.key, service=service, country=country,
                phone=_PHONE_PREFIX.get(country, "1") + f"{sim.rng.randrange(10**8, 10**9)}", cost=price,
                hours=hours, started_at=now, ends_at=now + hours * 3600,
                end_wall=sim.clock.wall() + _dt.timedelta(hours=hours), url=params.get("url") or None)
    account.balance -= price
    sim.rents[rent.id] = rent
    sim.ledger.purchases.append(PurchaseRecord(now, "rent", rent.id, account.key, price, service, None))
    sim._events.push(rent.ends_at, "rent_end", rent.id)
    sim._events.push(now + sim.rent_cancel_seconds, "rent_revoke", rent.id)
    sim.schedule_rent_sms(rent)
    return sim.render.json({"status": "success", "phone": {"id": rent.id, "endDate": rent.end_wall.strftime(
        "%Y-%m-%dT%H:%M:%S"), "number": rent.phone}})


@handles("getRentStatus")
def get_rent_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    rent = sim._rent(account, params)
    if rent.state != "active":
        raise sim.render.fail({"finished": "STATUS_FINISH", "cancelled": "STATUS_CANCEL",
                               "revoked": "STATUS_REVOKE"}[rent.state], json_key="message")
    if not rent.messages:
        raise sim.render.fail("STATUS_WAIT_CODE", json_key="message")  # [DOC] an error object while empty
    page = int(params["page"]) if params.get("page", "").isdigit() else 0
    size = int(params["size"]) if params.get("size", "").isdigit() else 10
    newest_first = list(reversed(rent.messages))[page * size:(page + 1) * size]
    values = {str(i): {"phoneFrom": m.phone_from, "text": m.text, "service": m.service, "date": _wall(m.at)}
              for i, m in enumerate(newest_first)}
    return sim.render.json({"status": "success", "quantity": str(len(rent.messages)), "values": values})


@handles("setRentStatus")
def set_rent_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    rent = sim._rent(account, params)
    status = params.get("status")
    if status not in ("1", "2"):
        raise sim.render.fail("INCORECT_STATUS", json_key="message")  # [DOC] sic
    if rent.state == "finished":
        raise sim.render.fail("ALREADY_FINISH", json_key="message")
    if rent.state in ("cancelled", "revoked"):
        raise sim.render.fail("ALREADY_CANCEL", json_key="message")
    if status == "1":
        rent.state = "finished"
        return sim.render.json({"status": "success"})
    if sim.clock.now() - rent.started_at > sim.rent_cancel_seconds:
        raise sim.render.fail("CANT_CANCEL", json_key="message")  # [DOC] more than 20 min
    rent.state = "cancelled"
    account.balance += rent.cost
    sim.ledger.refunds.append(RefundRecord(sim.clock.now(), rent.id, rent.cost, "rent cancelled"))
    return sim.render.json({"status": "success"})


@handles("getRentList")
def get_rent_list(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    now = sim.clock.now()
    rents = [r for r in sim.rents.values() if r.key == account.key and r.state == "active" and r.listed_from <= now][-10:]
    if not rents:
        raise sim.render.fail("NO_NUMBERS", json_key="message")
    return sim.render.json({"status": "success", "values": {str(i): {"id": str(r.id), "phone": r.phone}
                                                       for i, r in enumerate(rents)}})


@handles("continueRentNumber")
def continue_rent_number(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    rent, hours = _extendable(sim, account, params, explain=True)
    price = sim._rent_price(rent.service, rent.country, hours)
    if account.balance < price:
        raise sim.render.fail("NO_BALANCE", json_key="message", info=_RENT_INFO["NO_BALANCE"])
    account.balance -= price
    now = sim.clock.now()
    if rent.state == "finished":
        # [DOC] a finished rent is re-ordered under a new id
        rent = attrs.evolve(rent, id=next(sim._rent_ids), state="active", messages=[], started_at=now,
                            ends_at=now, end_wall=sim.clock.wall(), extensions=[])
        sim.rents[rent.id] = rent
    rent.ends_at += hours * 3600
    rent.end_wall += _dt.timedelta(hours=hours)
    rent.extensions.append((sim.clock.wall(), price, hours))
    sim.ledger.purchases.append(PurchaseRecord(now, "rent", rent.id, account.key, price, rent.service, None))
    sim._events.push(rent.ends_at, "rent_end", rent.id)
    return sim.render.json({"status": "success", "phone": {"id": rent.id, "endDate": rent.end_wall.strftime(
        "%Y-%m-%dT%H:%M:%S"), "number": rent.phone}})


@handles("getContinueRentPriceNumber")
def get_continue_rent_price(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    rent, hours = _extendable(sim, account, params)
    return sim.render.json({"status": "success", "price": sim._rent_price(rent.service, rent.country, hours),
                            "currency": sim.profile.currency})


@handles("continueRentInfo")
def continue_rent_info(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    # [SA-DOC25] {"status":"success","price":6.33,"currency":840,"hours":4,
    #             "history":{"0":{"createDate":"2024-10-07 12:10:47","price":"101.9","hours":4}}}
    rent, hours = _extendable(sim, account, params, hours_key="hours")  # [DOC] hours is required here
    answer: dict[str, Any] = {"status": "success", "price": sim._rent_price(rent.service, rent.country, hours),
                              "currency": sim.profile.currency, "hours": hours}
    if params.get("needHistory") == "true":
        answer["history"] = {str(i): {"createDate": _wall(at), "price": _fmt(price), "hours": h}
                             for i, (at, price, h) in enumerate(rent.extensions)}
    return sim.render.json(answer)


def _extendable(sim: Server, account: Account, params: Mapping[str, str], *,
                hours_key: str | None = None, explain: bool = False) -> tuple[Rent, int]:
    """The rent to extend and for how many hours; RENT_DIE if it can no longer be extended.
    ``explain``: errors carry the ``info`` continueRentNumber's are documented with."""
    rent = sim._rent(account, params, explain=explain)
    hours = (sim._rent_hours(params, least=4, explain=explain) if hours_key is None
             else sim._rent_hours(params, 0, key=hours_key))
    if rent.state in ("cancelled", "revoked"):
        raise sim.render.fail("RENT_DIE", json_key="message", info=_RENT_INFO["RENT_DIE"] if explain else None)
    return rent, hours
