"""Published third-party clients against the simulator on a loopback port (issue 12).

Each test drives one client that nobody here wrote, through the calls its own README or docstrings
show working against the real server, and checks what it returns against the simulator's own state.
If one of them breaks here, either the simulator answers something a real server does not, or that
client has a bug the simulator now shows (then the test says which, with the source).

Out of the default run (``-m conformance``; ``nox -s conformance``; CI runs it). The clients are
pinned by the ``conformance`` extra; one that is not installed is skipped, not failed.
``asmsactivate`` 1.25 is not on the package index this project installs from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from smsactivate_async.simulator import CodeSchedule, Simulator, serve_in_thread

pytestmark = [
    pytest.mark.conformance,
    # aiosmsactivate's alru_cache notices each test's new event loop: its concern, not ours
    pytest.mark.filterwarnings("ignore:alru_cache detected event loop change"),
]

CODE_DELAY = CodeSchedule.within(0.05, 0.2)  # codes arrive quickly: the peers poll on the wall clock


@pytest.fixture
def classic() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(codes=CODE_DELAY, early_cancel_seconds=0)
    with serve_in_thread(sim) as url:
        yield sim, url


@pytest.fixture
def hero() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(provider="herosms", codes=CODE_DELAY, early_cancel_seconds=0)
    with serve_in_thread(sim) as url:
        yield sim, url


def code_of(sim: Simulator, activation_id: int | str) -> str | None:
    return sim.activations[int(activation_id)].last_code


def state_of(sim: Simulator, activation_id: int | str) -> str:
    return str(sim.activations[int(activation_id)].state.value)


# --- herosms 0.1.1 (HeroSMS dialect) -----------------------------------------------------------


@pytest.mark.anyio
async def test_herosms_client(hero: tuple[Simulator, str]) -> None:
    herosms = pytest.importorskip("herosms")
    sim, url = hero
    async with herosms.HeroSMSClient(api_key=sim.api_key, base_url=url, poll_interval=0.05, retry_attempts=1) as client:
        balance = await client.get_balance()
        assert Decimal(str(balance.balance if hasattr(balance, "balance") else balance)) == sim.balance()
        countries = await client.get_countries()
        ids = {int(getattr(c, "id", -1)) for c in (countries.values() if isinstance(countries, dict) else countries)}
        assert 2 in ids and 0 not in ids and 12 not in ids  # FACTS §10: HeroSMS has no 0 and no 12
        # getServicesList answers its documented envelope {"status","services":[…]} [SA-DOC25]; herosms
        # 0.1.1's model parse expects a bare list or map (no HeroSMS capture shows which is right), so
        # its "json" format is the call that works against either.
        services = await client.get_services(response_format="json")
        assert {"code": "tg", "name": "Telegram"} in services["services"]
        with pytest.raises(Exception, match="valid dictionary or instance of Service"):
            await client.get_services(force_refresh=True)
        operators = await client.get_operators(country=2)
        assert operators
        prices = await client.get_prices(service="tg", country=2)
        assert prices
        assert await client.get_top_countries(service="tg")

        activation = await client.activations.create(service="tg", country=2)
        sms = await activation.wait_for_sms(timeout=10)
        code = code_of(sim, activation.id)
        assert code and code in str(sms)
        await activation.complete()
        assert state_of(sim, activation.id) == "6"

        spare = await client.activations.create(service="tg", country=2)
        active = await client.activations.list_active()
        assert int(spare.id) in {int(getattr(row, "id", getattr(row, "activation_id", -1))) for row in active}
        await spare.cancel()
        assert state_of(sim, spare.id) in ("8", "6")  # 6 only if its code beat the cancel
        assert await client.activations.get_history() is not None


# --- aiosmsactivate 1.5.1 (classic dialect) ----------------------------------------------------


@pytest.mark.anyio
async def test_aiosmsactivate(classic: tuple[Simulator, str]) -> None:
    aiosmsactivate = pytest.importorskip("aiosmsactivate")
    sim, url = classic
    client = aiosmsactivate.SmsActivate(sim.api_key, base_url=url)
    assert Decimal(str(await client.get_balance())) == sim.balance()
    assert isinstance(await client.get_available_countries("tg"), dict)
    assert isinstance(await client.get_available_countries("tg", freePrice=True), dict)
    assert "countryOperators" in await client.get_operators("0")
    assert "0" in await client.get_prices(service="tg")
    assert "0" in await client.get_countries()
    assert await client.get_count_numbers("0", "any")
    # getPricesExtended and getTopCountriesByService with freePrice (the 12.5 additions)
    service = await client.get_service("tg", 0)
    assert service.code == "tg" and service.free_price_map

    number = await client.purchase("tg", country=0)
    assert isinstance(number, aiosmsactivate.models.Number) and state_of(sim, number.activation_id) == "4"
    code = await client.wait_sms_code(number.activation_id, timeout=10, per_attempt=0.05)
    assert code == code_of(sim, number.activation_id)
    status = await client.get_activation_status(number.activation_id)
    assert status.sms is not None and status.sms.code == code
    done = await client.set_activation_status(number.activation_id, 6)
    assert done.value == "ACCESS_ACTIVATION" and state_of(sim, number.activation_id) == "6"

    spare = await client.get_number("tg", country=0)  # getNumber: it hands back the text answer
    prefix, spare_id, _phone = spare.split(":")
    assert prefix == "ACCESS_NUMBER" and state_of(sim, spare_id) == "4"
    active = await client.get_active_activations()
    assert spare_id in {row["activationId"] for row in active["activeActivations"]}
    cancelled = await client.set_activation_status(spare_id, 8)
    assert cancelled.value == "ACCESS_CANCEL" and state_of(sim, spare_id) == "8"
    # Its error check calls .get() on every JSON answer; getHistory is a bare array [SA-DOC25, FACTS §9],
    # so its get_history fails against the real server the same way.
    with pytest.raises(AttributeError, match="'list' object has no attribute 'get'"):
        await client.get_history()


@pytest.mark.anyio
async def test_aiosmsactivate_rent_and_catalogue(classic: tuple[Simulator, str]) -> None:
    aiosmsactivate = pytest.importorskip("aiosmsactivate")
    sim, url = classic
    client = aiosmsactivate.SmsActivate(sim.api_key, base_url=url)
    assert {"code": "tg", "name": "Telegram"} in (await client.get_service_list())["services"]
    assert await client.get_service_name("tg") == "Telegram"
    assert "tg" in await client.get_prices_verification(service="tg")
    with pytest.raises(AttributeError):  # a bare array [SA-DOC25]: the same .get() on a list as getHistory
        await client.get_list_top_countries("tg")
    assert "services" in await client.get_rent_services_and_countries()
    rent = await client.get_rent_number("tg")  # its "time " key (sic) is ignored: the default 4 hours
    assert rent["status"] == "success" and sim.rents[rent["phone"]["id"]].service == "tg"
    rent_id = rent["phone"]["id"]
    assert (await client.get_rent_status(rent_id))["status"] in ("success", "error")
    price = await client.get_continue_rent_price_number(rent_id, rent_time=4)
    assert Decimal(str(price["price"])) > 0
    extended = await client.continue_rent_number(rent_id, rent_time=4)
    assert extended["status"] == "success"


# --- smsactivate 1.5, the vendor's official client (classic dialect, sync) ---------------------


def test_official_smsactivate(classic: tuple[Simulator, str]) -> None:
    api_module = pytest.importorskip("smsactivate.api")
    sim, url = classic
    api = api_module.SMSActivateAPI(sim.api_key)
    api._SMSActivateAPI__api_url = url  # hard-coded upstream; no option to change it
    api.debug_mode = False
    assert Decimal(api.getBalance()["balance"]) == sim.balance()
    assert api.getNumbersStatus(country=0)["tg"] == "100000"  # [SA-POSTMAN] bare keys, counts as strings
    assert "0" in api.getPrices(service="tg")
    assert "0" in api.getCountries()
    assert api.getTopCountriesByService(service="tg")
    assert "countryOperators" in api.getOperators(country=0)

    number = api.getNumber(service="tg", country=0)
    activation_id = number["activation_id"]
    assert state_of(sim, activation_id) == "4"
    assert api.setStatus(id=activation_id, status=1) == "ACCESS_READY"
    status = api.getStatus(id=activation_id)
    deadline = time.monotonic() + 10
    while status == "STATUS_WAIT_CODE" and time.monotonic() < deadline:  # its README's loop
        time.sleep(0.05)
        status = api.getStatus(id=activation_id)
    assert status == f"STATUS_OK:{code_of(sim, activation_id)}"
    assert api.getActiveActivations()["status"] == "success"
    assert api.setStatus(id=activation_id, status=6) == "ACCESS_ACTIVATION"
    v2 = api.getNumberV2(service="tg", country=0)
    assert int(v2["activationId"]) in sim.activations and api.setStatus(id=v2["activationId"], status=8) == "ACCESS_CANCEL"

    assert api.getRentServicesAndCountries(time=4)["services"]
    rent = api.getRentNumber(service="tg", time=4, country=0)
    assert rent["status"] == "success"
    rent_id = rent["phone"]["id"]
    assert api.getRentStatus(id=rent_id)["status"] in ("success", "error")  # STATUS_WAIT_CODE is an "error"
    assert rent_id in {int(v["id"]) for v in api.getRentList()["values"].values()}
    assert api.setRentStatus(id=rent_id, status=2)["status"] == "success"


# --- async-sms-activate 0.1.2 (classic dialect) -------------------------------------------------


@pytest.mark.anyio
async def test_async_sms_activate(classic: tuple[Simulator, str]) -> None:
    client_module = pytest.importorskip("async_sms_activate.client")
    sim, url = classic
    client = client_module.SmsActivateClient(sim.api_key)
    client.api_url = url
    try:
        assert Decimal(str(await client.get_balance())) == sim.balance()
        countries = await client.get_countries_list()
        assert any(str(c.code) == "0" for c in countries)
        assert await client.top_countries_by_service("tg")
        assert 0 in await client.get_country_codes_by_service("tg")
        activation = await client.buy_number_by_country("tg", 0)
        assert state_of(sim, activation.activation_id) == "4"
        await activation.sms_sent()
        assert await activation.wait_for_code(timeout=10) == code_of(sim, activation.activation_id)
        assert await activation.complete_activation() == "ACCESS_ACTIVATION"
        assert state_of(sim, activation.activation_id) == "6"
        spare = await client.buy_number_any_country("tg")
        assert await spare.cancel_activation() == "ACCESS_CANCEL"
    finally:
        await client.close()


# --- smsactivateru 1.2.6 (classic dialect, sync) ------------------------------------------------


def test_smsactivateru(classic: tuple[Simulator, str]) -> None:
    smsactivateru = pytest.importorskip("smsactivateru")
    sim, url = classic
    wrapper = smsactivateru.Sms(sim.api_key)
    wrapper.url = url
    assert Decimal(str(smsactivateru.GetBalance().request(wrapper))) == sim.balance()
    activation = smsactivateru.GetNumber(service=smsactivateru.SmsService().Telegram,
                                         country=smsactivateru.SmsTypes.Country.RU).request(wrapper)
    assert state_of(sim, activation.id) == "4"
    assert activation.was_sent() == {"status": "ACCESS_READY"}
    assert activation.wait_code(timeout=10) == code_of(sim, activation.id)
    assert state_of(sim, activation.id) == "6"  # wait_code finishes it
    spare = smsactivateru.GetNumber(service=smsactivateru.SmsService().Telegram,
                                    country=smsactivateru.SmsTypes.Country.RU).request(wrapper)
    # What fails against the live server fails here the same way (PEERS §3.7):
    # its cancel sends the retired status -1, which the 2025 API refuses with BAD_STATUS
    with pytest.raises(Exception, match="BAD_STATUS"):
        spare.cancel()
    cancel = smsactivateru.SetStatus(id=spare.id, status=8).request(wrapper)
    assert cancel == {"status": "ACCESS_CANCEL"}
    with pytest.raises(Exception, match="STATUS_CANCEL"):  # it raises on the STATUS_CANCEL answer by design
        smsactivateru.GetStatus(id=spare.id).request(wrapper)
    # and GetFreeSlots reads the old forward-suffixed keys ("vk_0"); live 2025 keys are bare [SA-POSTMAN]
    with pytest.raises(KeyError, match="_0"):
        smsactivateru.GetFreeSlots(country=0).request(wrapper)
