"""Balance and catalogue: prices, stock, countries, services, operators, top lists.

Each handler is a small function registered for its wire action; it reads and changes the
simulator's state and answers through the dialect's renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._common import (
    _SERVICES,
    CatalogueEntry,
    _Error,
    _fmt,
    _Reply,
)
from ._core import Account
from ._handlers import handles

if TYPE_CHECKING:
    from ._handlers import Server

__all__: list[str] = []


@handles("getBalance")
def get_balance(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    return sim.render.text(f"ACCESS_BALANCE:{_balance(sim, account.balance)}")


@handles("getBalanceAndCashBack")
def get_balance_and_cashback(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    return sim.render.text(f"ACCESS_BALANCE:{_balance(sim, account.balance + account.cashback)}")


@handles("getNumbersStatus")
def get_numbers_status(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    if sim.profile.country_required and not params.get("country", "").isdigit():
        raise sim.render.envelope("UNPROCESSABLE_ENTITY", 422, "Param 'country' must be a number")  # [RUSTX-HERO]
    country = sim._country(params)
    counts = {e.service: e.count for e in sim.catalogue.values() if e.country == country}
    if not sim.profile.numbers_status_counts_as_strings:
        return sim.render.json(counts)
    return sim.render.json({service: str(count) for service, count in counts.items()})  # [LIVE] counts as strings


@handles("getTopCountriesByService")
def get_top_countries(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    free_price = params.get("freePrice") == "true"
    service = params.get("service")
    if service:
        return sim.render.json(sim._top_rows(service, free_price))
    return sim.render.json({svc: sim._top_rows(svc, free_price) for svc in _SERVICES})  # [LIVE HeroSMS] by service


@handles("getTopCountriesByServiceRank")
def get_top_countries_rank(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    reply = get_top_countries(sim, account, params)
    return _Reply(reply.status, reply.body, "application/json", reply.headers)  # [LIVE, REAL_RESPONSES §A]


@handles("getOperators")
def get_operators(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    if "country" in params:
        country = sim._country(params, -1)
        if country not in sim._operators:
            if sim.profile.operators_not_found_text:
                raise _Error(sim.render.text("OPERATORS_NOT_FOUND"))
            raise sim.render.fail("OPERATORS_NOT_FOUND", json_key="error")  # [solodecode errors.go]
        operators = {str(country): sim._operators[country]}
    else:
        operators = {str(c): ops for c, ops in sim._operators.items()}
    return sim.render.json({"status": "success", "countryOperators": operators}, labelled=True)  # [LIVE §A]


@handles("getPrices")
def get_prices(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    service = params.get("service")
    status_false = sim.profile.filters_answer_status_false
    if status_false and service and service not in _SERVICES:
        return sim.render.json({"status": "false", "msg": "service is incorrect"})  # [DOC HeroSMS]
    if status_false and "country" in params and sim._country(params, -1) not in sim._countries:
        return sim.render.json({"status": "false", "msg": "country is incorrect"})  # [DOC HeroSMS, REAL_RESPONSES §E]
    result: dict[str, dict[str, Any]] = {}
    for entry in _matching(sim, params):
        row = _price_row(entry)
        if sim.profile.price_string_decimals is not None:  # [RUSTX-TIGER] "0.2500"
            row["cost"] = format(entry.price.quantize(Decimal(1).scaleb(-sim.profile.price_string_decimals)), "f")
        result.setdefault(str(entry.country), {})[entry.service] = row
    if sim.profile.prices_blank_country_row and result:  # [RUSTX] a row keyed "" (Faroe Islands, no id)
        result[""] = {service: dict(rows) for service, rows in next(iter(result.values())).items()}
    return sim.render.json(result)  # [DOC] "if there are no numbers, an empty object is returned"


@handles("getPricesExtended")
def get_prices_extended(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    # getPrices' rows {"cost","count","physicalCount"} (numbers, not strings) [SA-DOC25, §10]:
    # aiosmsactivate 1.5.1, written to the 2025 docs, reads physicalCount from them; with
    # freePrice=true the tiers as getTopCountriesByService gives them (price string -> cumulative count).
    free_price = params.get("freePrice") == "true"
    result: dict[str, dict[str, Any]] = {}
    for entry in _matching(sim, params):
        row = _price_row(entry)
        if free_price:
            row["freePriceMap"] = sim._free_price_map(entry)
        result.setdefault(str(entry.country), {})[entry.service] = row
    return sim.render.json(result)


@handles("getPricesVerification")
def get_prices_verification(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    service = params.get("service")
    result: dict[str, dict[str, Any]] = {}
    for entry in sim.catalogue.values():
        if service and entry.service != service:
            continue
        result.setdefault(entry.service, {})[str(entry.country)] = {"count": entry.count, "price": _fmt(entry.price)}
    return sim.render.json(result)


@handles("getCountries")
def get_countries(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    result = {}
    for country, (rus, eng, chn) in sim._countries.items():
        result[str(country)] = {"id": country, "rus": rus, "eng": eng, "chn": chn, "visible": 1, "retry": 1,
                                "rent": 1 if country in sim.rent_countries else 0, "multiService": 1 if country == 0 else 0}
    return sim.render.json(result)


@handles("getServicesList")
def get_services_list(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    services = _SERVICES
    if "country" in params:
        country = sim._country(params, -1)
        services = {s: n for s, n in _SERVICES.items() if (s, country) in sim.catalogue}
    return sim.render.json({"status": "success", "services": [{"code": c, "name": n} for c, n in services.items()]})


@handles("getListOfTopCountriesByService")
def get_list_of_top_countries(sim: Server, account: Account, params: Mapping[str, str]) -> _Reply:
    service = params.get("service")
    if not service or service not in _SERVICES:
        raise sim.render.fail("WRONG_SERVICE", status=400, details="Wrong service")
    rows = [e for e in sim.catalogue.values() if e.service == service]
    total = sum(e.count for e in rows) or 1
    return sim.render.json([{"country": e.country, "share": round(100 * e.count / total), "rate": 50} for e in rows])


def _matching(sim: Server, params: Mapping[str, str]) -> list[CatalogueEntry]:
    """The catalogue entries a getPrices-like filter (``service``, ``country``) selects."""
    service = params.get("service")
    country = sim._country(params, -1) if "country" in params else None
    return [e for e in sim.catalogue.values()
            if (not service or e.service == service) and (country is None or e.country == country)]


def _price_row(entry: CatalogueEntry) -> dict[str, Any]:
    return {"cost": entry.price, "count": entry.count, "physicalCount": entry.count // 3}


def _balance(sim: Server, amount: Decimal) -> str:
    places = sim.profile.balance_decimals
    return _fmt(amount) if places is None else format(amount.quantize(Decimal(1).scaleb(-places)), "f")
