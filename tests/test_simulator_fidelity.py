"""Simulator fidelity, second pass (issue 28): each difference from ../shared/protocol checked on the
wire, with the source it follows; where the sources disagree, a documented option."""

from __future__ import annotations

import functools
import inspect
from decimal import Decimal
from typing import Any

import anyio
import attrs
import httpx
import pytest

from smsactivate_async import PROVIDERS, SMSActivate
from smsactivate_async.simulator import CodeSchedule, Faults, Simulator

pytestmark = pytest.mark.anyio


async def raw(sim: Simulator, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        return await http.get("http://sim/stubs/handler_api.php", params={"api_key": sim.api_key, **params})


# --- A. rent only where getCountries says `rent: 1`, of the countries the dialect has -------------------


async def test_herosms_rents_no_country_it_does_not_have() -> None:
    sim = Simulator(provider="herosms")
    countries = (await raw(sim, action="getCountries")).json()
    rentable = {int(c) for c, row in countries.items() if row["rent"] == 1}
    assert rentable == {2, 16} and "0" not in countries and "12" not in countries  # [FACTS §1/§10: no 0, 12]
    for country in ("0", "12", "6"):  # absent, absent, and Indonesia (present, `rent: 0`)
        # a rent error keeps the rent API's form, HeroSMS's included [SA-DOC25, FACTS §14]
        refused = await raw(sim, action="getRentNumber", service="tg", country=country)
        assert refused.status_code == 200 and refused.json() == {"status": "error", "message": "NO_NUMBERS"}, country
    assert sim.rents == {}
    for country in ("0", "12", "6"):  # [DOC 000 getRentServicesAndCountries] OUT_OF_STOCK, not a priced list
        assert "OUT_OF_STOCK" in (await raw(sim, action="getRentServicesAndCountries", country=country)).text
    listed = (await raw(sim, action="getRentServicesAndCountries", country="2")).json()
    assert set(listed["countries"].values()) == {2, 16}
    assert set((await raw(sim, action="getRentServicesAndCountries")).json()["countries"].values()) == {2, 16}
    # no default to Russia, which it lacks, nor to a country of our choosing: its purchases need a
    # country, and a rent without one is the same 422 [INFER from HERO-TR, RUSTX-HERO]
    no_country = await raw(sim, action="getRentNumber", service="tg")
    assert no_country.status_code == 422 and no_country.json()["info"]["field"] == "country"
    assert sim.rents == {}


async def test_classic_rent_still_defaults_to_country_0() -> None:
    sim = Simulator()
    answer = (await raw(sim, action="getRentNumber", service="tg")).json()
    assert answer["status"] == "success" and next(iter(sim.rents.values())).country == 0
    refused = await raw(sim, action="getRentNumber", service="tg", country="6")
    assert refused.json() == {"status": "error", "message": "NO_NUMBERS"}


# --- C. BAD_STATUS is a 400 on HeroSMS [FACTS §17] ------------------------------------------------------------


@pytest.mark.parametrize("status", ["3", "6"])
async def test_herosms_status_before_a_code_is_a_400_bad_status(status: str) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    bought = (await raw(sim, action="getNumberV2", service="tg", country="6")).json()
    answer = await raw(sim, action="setStatus", id=bought["activationId"], status=status)
    assert answer.status_code == 400 and answer.json()["title"] == "BAD_STATUS"


# --- D. nothing active on HeroSMS: NO_ACTIVATIONS [HERO-OAS1, FACTS §8] -------------------------------------


async def test_herosms_nothing_active_is_no_activations_and_the_client_says_empty() -> None:
    sim = Simulator(provider="herosms")
    answer = await raw(sim, action="getActiveActivations", start="0", limit="100")
    assert answer.json() == {"status": "error", "error": "NO_ACTIVATIONS"}
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=None) as client:
        assert await client.get_active_activations() == []


# --- E. getNumberV2's times: live by default, the spec's as an option [FACTS §4] --------------------------


async def test_herosms_number_v2_live_and_spec_shapes() -> None:
    live = (await raw(Simulator(provider="herosms"), action="getNumberV2", service="tg", country="6")).json()
    assert len(live["activationTime"]) == 19 and "T" not in live["activationTime"]  # "2026-04-26 19:57:12"
    assert "verificationType" not in live
    spec_sim = Simulator(provider="herosms", herosms_number_v2="spec")
    spec = (await raw(spec_sim, action="getNumberV2", service="tg", country="6")).json()
    assert spec["activationTime"].endswith("+00:00") and "T" in spec["activationTime"]
    assert spec["verificationType"] == "sms" and spec["status"] == 4
    async with SMSActivate(spec_sim.api_key, provider="herosms", transport=spec_sim.transport(), rate_limit=None) as c:
        number = await c.get_number_v2(service="tg", country=6)
    assert number.activation_time is not None and number.activation_time.tzinfo is not None
    with pytest.raises(ValueError):
        Simulator(provider="herosms", herosms_number_v2="newest")


# --- F. a purchase without a country; getOutgoingCalls takes activationId ------------------------------------


async def test_herosms_purchase_without_country_is_the_documented_422_shape() -> None:
    answer = await raw(Simulator(provider="herosms"), action="getNumberV2", service="tg")
    assert answer.status_code == 422
    assert answer.json() == {"title": "UNPROCESSABLE_ENTITY", "details": "Validation failed",
                             "info": {"field": "country", "code": "REQUIRED", "message": ""}}


async def test_get_outgoing_calls_filters_by_activation_id_not_id() -> None:
    sim = Simulator()
    for _ in range(2):
        bought = (await raw(sim, action="getNumber", service="tg", country="0")).text.split(":")[1]
        await raw(sim, action="createTaskForCall", activationId=bought, phone="79001112233")
    calls = [a.id for a in sim.activations.values() if a.call_task]
    assert len(calls) == 2
    one = (await raw(sim, action="getOutgoingCalls", activationId=str(calls[0]))).json()
    assert list(one) == [str(calls[0])]
    ignored = (await raw(sim, action="getOutgoingCalls", id=str(calls[0]))).json()
    assert sorted(ignored) == sorted(map(str, calls))  # `id` is an unknown parameter: ignored [FACTS §1]


# --- G. 5xx pages say what they are ------------------------------------------------------------------------


async def test_fault_pages_are_titled_by_their_status() -> None:
    sim = Simulator(faults=Faults(), seed=1)
    titles = set()
    for _ in range(20):
        sim.faults.inject("html_5xx")
        page = await raw(sim, action="getBalance")
        titles.add((page.status_code, page.text.split("<title>")[1].split("</title>")[0]))
    assert titles == {(502, "502 Bad Gateway"), (503, "503 Service Temporarily Unavailable")}


# --- the presets' endpoints, from FACTS §1 -------------------------------------------------------------------


def test_preset_base_urls_are_the_observed_endpoints() -> None:
    assert PROVIDERS["grizzly"].base_url == "https://api.grizzlysms.com/stubs/handler_api.php"
    assert PROVIDERS["smshub"].base_url == "https://smshub.org/stubs/handler_api.php"
    assert PROVIDERS["tiger"].base_url == "https://api.tiger-sms.com/stubs/handler_api.php"
    assert PROVIDERS["smsbower"].base_url in {f"https://smsbower.{tld}/stubs/handler_api.php"
                                               for tld in ("online", "page", "com")}
    source = inspect.getsource(__import__("smsactivate_async._providers", fromlist=["x"]))
    for line in source.splitlines():
        if "base_url=" in line:
            assert "[INFER]" not in line, line


# --- every documented simulator option is a `simulate` option -------------------------------------------------


def test_every_simulator_option_is_a_simulate_option() -> None:
    from click.testing import CliRunner

    from smsactivate_async._cli import simulate

    by_object = {"clock"}  # an object, not a command-line value
    spelled = {"api_keys": "api-key", "faults": "faults", "codes": "codes", "dialect": "dialect", "seed": "seed",
               "early_cancel_seconds": "early-cancel", "lifetime_seconds": "lifetime",
               "rent_cancel_seconds": "rent-cancel", "webhook_duplicate_rate": "webhook-duplicates",
               "webhook_drop_rate": "webhook-drops", "herosms_accepts_ready": "herosms-accepts-ready"}
    help_text = CliRunner().invoke(simulate, ["--help"]).output
    for name in inspect.signature(Simulator.__init__).parameters:
        if name == "self" or name in by_object:
            continue
        option = "--" + spelled.get(name, name.replace("_", "-"))
        assert option in help_text, f"Simulator({name}=…) has no {option} in `smsactivate simulate`"
    # and every knob of its Faults
    faults_spelled = {"rates": "fault", "rps_budget": "rps", "block_seconds": "block", "actions": "fault-actions",
                      "late_commit_seconds": "late-commit", "_script": "inject"}
    for field in attrs.fields(Faults):
        option = "--" + faults_spelled.get(field.name, field.name.replace("_", "-"))
        assert option in help_text, f"Faults({field.name}=…) has no {option} in `smsactivate simulate`"


def test_simulate_builds_faults_balances_and_a_catalogue(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from smsactivate_async import simulator
    from smsactivate_async._cli import simulate
    from smsactivate_async.simulator import FaultKind

    made: list[Simulator] = []
    monkeypatch.setattr(simulator, "serve", lambda sim, **kw: made.append(sim))
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text('[{"service": "tg", "country": 6, "price": "0.25", "count": 3, "success_rate": 0.5}]')
    result = CliRunner().invoke(simulate, [
        "--key-balance", "rich=500", "--key-balance", "poor=0.5", "--fault", "drop=0.1", "--fault", "late_purchase=0.05",
        "--inject", "html_5xx@getNumberV2*2", "--inject", "timeout", "--fault-actions", "getStatus,getNumber",
        "--truncate-at", "fraction", "--truncate-fraction", "0.3", "--hang-seconds", "4", "--retry-after", "2",
        "--no-retry-after-header", "--block-page", "--purchase-rps", "1", "--late-commit", "9",
        "--catalogue", str(catalogue)])
    assert result.exit_code == 0, result.output
    sim = made[0]
    f = sim.faults
    assert {k: r for k, r in f.rates.items() if r} == {FaultKind.DROP: 0.1, FaultKind.LATE_PURCHASE: 0.05}
    assert list(f._script) == [(FaultKind.HTML_5XX, "getNumberV2")] * 2 + [(FaultKind.TIMEOUT, None)]
    assert (f.actions, f.truncate_at, f.truncate_fraction, f.hang_seconds, f.retry_after, f.retry_after_header,
            f.block_page, f.purchase_rps, f.late_commit_seconds) == (
        frozenset({"getStatus", "getNumber"}), None, 0.3, 4.0, 2.0, False, True, 1.0, 9.0)
    assert {k: a.balance for k, a in sim.accounts.items()} == {
        "test-key": Decimal(1000), "rich": Decimal(500), "poor": Decimal("0.5")}
    assert list(sim.catalogue) == [("tg", 6)] and sim.catalogue[("tg", 6)].success_rate == 0.5
    for bad in (["--fault", "nonsense=0.1"], ["--inject", "drop*x"], ["--key-balance", "nokey"],
                ["--catalogue", str(catalogue.with_name("missing.json"))], ["--truncate-at", "soon"]):
        refused = CliRunner().invoke(simulate, bad)
        assert refused.exit_code == 2 and "Error" in refused.output, bad


def test_simulate_passes_its_options_to_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from smsactivate_async import simulator
    from smsactivate_async._cli import simulate

    made: list[Simulator] = []
    monkeypatch.setattr(simulator, "serve", lambda sim, **kw: made.append(sim))
    result = CliRunner().invoke(simulate, ["--provider", "herosms", "--early-cancel", "5", "--webhook-url",
                                           "http://127.0.0.1:9/hook", "--herosms-accepts-ready", "--herosms-number-v2",
                                           "spec", "--webhook-drops", "0.2", "--lifetime", "60"])
    assert result.exit_code == 0, result.output
    sim = made[0]
    assert (sim.early_cancel_seconds, sim.webhook_url, sim.herosms_accepts_ready, sim.herosms_number_v2,
            sim.webhook_drop_rate, sim.lifetime_seconds) == (5.0, "http://127.0.0.1:9/hook", True, "spec", 0.2, 60.0)


def test_simulate_takes_a_rent_sms_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from smsactivate_async import simulator
    from smsactivate_async._cli import simulate
    from smsactivate_async.simulator import RentSchedule

    made: list[Simulator] = []
    monkeypatch.setattr(simulator, "serve", lambda sim, **kw: made.append(sim))
    for args, expected in [([], RentSchedule.never()),
                           (["--rent-sms", "600", "--rent-sms-burst", "3"], RentSchedule.periodic(600, burst=3)),
                           (["--rent-sms", "60:900", "--rent-sms-count", "10"], RentSchedule.within(60, 900, count=10))]:
        result = CliRunner().invoke(simulate, args)
        assert result.exit_code == 0, result.output
        assert made[-1].rent_sms == expected
    bad = CliRunner().invoke(simulate, ["--rent-sms", "900:60"])
    assert bad.exit_code != 0 and "low <= high" in bad.output


def test_a_rent_sms_schedule_delivers_bursts_until_its_count_and_a_silent_rent_is_revoked() -> None:
    from smsactivate_async.simulator import ManualClock, RentSchedule

    clock = ManualClock()
    sim = Simulator(clock=clock, rent_sms=RentSchedule.periodic(600, burst=2, count=5), rent_cancel_seconds=1200)
    rent = _rent(sim)
    at = 0
    for minutes, expected in [(9, 0), (10, 2), (20, 4), (30, 5), (240, 5)]:
        clock.advance(minutes * 60 - at)
        at = minutes * 60
        sim.advance()
        assert len(sim.rents[rent].messages) == expected, minutes
    assert len({m.text for m in sim.rents[rent].messages}) == 5
    quiet_clock = ManualClock()
    quiet = Simulator(clock=quiet_clock, rent_sms=RentSchedule.periodic(1500))
    silent = _rent(quiet)
    balance = quiet.accounts[quiet.api_key].balance
    quiet_clock.advance(1201)
    quiet.advance()
    assert quiet.rents[silent].state == "revoked"  # no SMS within the 20 minutes: revoked, refunded
    assert quiet.accounts[quiet.api_key].balance == balance + quiet.rents[silent].cost
    with pytest.raises(ValueError):
        RentSchedule.periodic(0)
    with pytest.raises(ValueError):
        RentSchedule.periodic(60, burst=0)


def _rent(sim: Simulator) -> int:
    answer = anyio.run(functools.partial(raw, sim, action="getRentNumber", service="tg", rent_time="4"))
    return int(answer.json()["phone"]["id"])


def test_a_ban_needs_an_aware_time() -> None:
    """Issue 44: a naive datetime made every purchase answer 500 (a TypeError inside); now refused."""
    import datetime as dt

    sim = Simulator()
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.ban(dt.datetime(2030, 1, 1))
    sim.ban(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert sim.accounts[sim.api_key].banned_until is not None


async def test_multi_service_only_where_the_country_offers_it() -> None:
    """[FACTS §11] NOT_AVAILABLE where getCountries does not say ``"multiService": 1``; the client
    raises NoNumbersError (nothing bought)."""
    from smsactivate_async import NoNumbersError

    sim = Simulator(early_cancel_seconds=0)
    countries = (await raw(sim, action="getCountries")).json()
    assert countries["0"]["multiService"] == 1 and countries["6"]["multiService"] == 0
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        with pytest.raises(NoNumbersError) as refused:
            await client.get_multi_service_number(multi_service=["tg", "wa"], country=6)
        assert refused.value.code == "NOT_AVAILABLE" and not sim.activations
        assert len(await client.get_multi_service_number(multi_service=["tg", "wa"], country=0)) == 2


async def test_a_served_simulator_shows_its_ledger_and_simulate_prints_it_at_exit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 39 item 8: the operator of a run sees what the server saw — requests, blocks, money —
    on an admin path while it runs, and printed when `smsactivate simulate` stops."""
    import json

    from click.testing import CliRunner

    from smsactivate_async import simulator
    from smsactivate_async._cli import simulate

    sim = Simulator(early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        number = await client.get_number_v2(service="tg", country=0)
        await client.set_status(number.activation_id, 8)
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        answer = await http.get("http://sim/_simulator/ledger")
    ledger = answer.json()
    assert answer.status_code == 200 and ledger["purchases"] == 1 and ledger["requests_by_action"]["getNumberV2"] == 1
    assert ledger["spent"] == ledger["refunded"] != "0" and ledger["open_activations"] == 0
    assert ledger["blocks"] == [] and ledger["over_budget"] == 0 and sim.api_key not in answer.text

    async with httpx.AsyncClient(transport=sim.transport()) as http:
        rows = (await http.get("http://sim/_simulator/ledger?records=1")).json()
    # a benchmark with the simulator in a process of its own reads every row from here
    assert [row[1:3] for row in rows["requests"]] == [["getNumberV2", 200], ["setStatus", 200]]
    assert [row[1:3] for row in rows["purchases"]] == [["activation", number.activation_id]]
    assert isinstance(rows["purchases"][0][3], str)  # the client's order id
    assert rows["open_activation_ids"] == [] and rows["now"] >= rows["requests"][-1][0] >= 0
    assert "records" not in ledger and "requests" in ledger and isinstance(ledger["requests"], int)
    assert sim.api_key not in json.dumps(rows)

    import signal

    handlers: list[object] = []

    def serve_then_stop(served: Simulator, **options: Any) -> None:
        served.ledger.over_budget = 3  # as if a client had gone over the budget
        handlers.append(signal.getsignal(signal.SIGTERM))
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator, "serve", serve_then_stop)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(simulate, [])
    assert '"over_budget": 3' in result.output and '"requests": 0' in result.output
    printed, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{"):])
    assert printed["over_budget"] == 3
    # while serving, SIGTERM ends it through the ledger's print (a real SIGTERM: test_fleet's benchmark
    # test); the process's own handler is back afterwards
    assert signal.getsignal(signal.SIGTERM) is before
    if before is signal.SIG_DFL:
        assert handlers and handlers[0] not in (signal.SIG_DFL, None)


def test_the_simulator_is_named_for_the_provider_it_plays_and_dialect_is_its_former_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 38 item 5, one name one meaning: a *dialect* is the wire decoding (`Provider.dialect`, two
    of them); the simulator plays a *provider* (six profiles). The former spelling still works, warned."""
    from click.testing import CliRunner

    from smsactivate_async import simulator
    from smsactivate_async._cli import simulate

    tiger = Simulator(provider="tiger")
    assert tiger.provider == "tiger" and Simulator().provider == "sms-activate"
    with pytest.warns(DeprecationWarning, match=r"Simulator\(provider="):
        old = Simulator(dialect="tiger")
    assert old.provider == "tiger" and old.profile == tiger.profile
    with pytest.warns(DeprecationWarning, match="Simulator.provider"):
        assert old.dialect == "tiger"
    with pytest.raises(ValueError, match="alone"):
        Simulator(provider="tiger", dialect="herosms")
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        Simulator(provider="nope")
    made: list[Simulator] = []
    monkeypatch.setattr(simulator, "serve", lambda sim, **kw: made.append(sim))
    for flag in ("--provider", "--dialect"):  # the flag's former name is still taken
        assert CliRunner().invoke(simulate, [flag, "grizzly"]).exit_code == 0
    assert [sim.provider for sim in made] == ["grizzly", "grizzly"]
