"""The simulator against the documented and captured answers, its state machine, clock and faults.

Raw HTTP only: these tests do not go through the client, so a shared misunderstanding cannot
pass on both sides. [LIVE] marks behaviour from a capture, [DOC] from the vendor text, [INFER]
our reading.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest

from smsactivate_async.simulator import CodeSchedule, FaultKind, Faults, ManualClock, Simulator

pytestmark = pytest.mark.anyio



async def raw(sim: Simulator, key: str | None = None, **params: Any) -> httpx.Response:
    query = {"api_key": key if key is not None else sim.api_key, **{k: str(v) for k, v in params.items()}}
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        return await http.get("http://sim/stubs/handler_api.php", params=query)


def classic(**kwargs: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock()
    kwargs.setdefault("codes", CodeSchedule.fixed(10))
    return Simulator(clock=clock, **kwargs), clock


def hero(**kwargs: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock()
    kwargs.setdefault("codes", CodeSchedule.fixed(10))
    return Simulator(provider="herosms", clock=clock, **kwargs), clock


async def buy(sim: Simulator, action: str = "getNumber") -> int:
    # HeroSMS has no country 0 (Russia): its purchases go to Kazakhstan (2)
    response = await raw(sim, action=action, service="tg", country=2 if sim.provider == "herosms" else 0)
    if action == "getNumber":
        return int(response.text.split(":")[1])
    return int(response.json()["activationId"])


async def test_classic_text_and_content_type() -> None:  # [LIVE]
    sim, _ = classic()
    response = await raw(sim, action="getBalance")
    assert response.status_code == 200 and response.text == "ACCESS_BALANCE:1000"
    assert response.headers["content-type"].startswith("text/html")
    prices = await raw(sim, action="getNumbersStatus", country=0)
    assert prices.headers["content-type"].startswith("text/html")
    assert all(isinstance(v, str) for v in prices.json().values())  # counts as strings


async def test_keys_and_actions() -> None:
    sim, _ = classic()
    assert (await raw(sim, key="nope", action="getBalance")).text == "BAD_KEY"
    assert (await raw(sim, key="", action="getBalance")).text == "NO_KEY"
    assert (await raw(sim, action="doSomething")).text == "BAD_ACTION"
    h, _ = hero()
    bad_key = await raw(h, key="nope", action="getBalance")
    assert bad_key.status_code == 401 and bad_key.json() == {"title": "BAD_KEY", "details": "Unauthorized"}
    bad_action = await raw(h, action="getFullSms", id=1)  # [LIVE] HeroSMS dropped it
    assert bad_action.status_code == 404 and bad_action.json()["title"] == "BAD_ACTION"
    no_key = await raw(h, key="", action="getBalance")
    assert no_key.status_code == 422 and no_key.json()["info"]["field"] == "api_key"


async def test_purchase_shapes_and_big_ids() -> None:
    sim, _ = classic()
    text = await raw(sim, action="getNumber", service="tg", country=0)
    prefix, activation_id, phone = text.text.split(":")
    assert prefix == "ACCESS_NUMBER" and int(activation_id) > 2**31 and phone.startswith("79")
    v2 = (await raw(sim, action="getNumberV2", service="tg", country=0)).json()
    assert isinstance(v2["activationId"], int) and isinstance(v2["countryCode"], str) and v2["canGetAnotherSms"] == "1"
    h, _ = hero()
    hv2 = (await raw(h, action="getNumberV2", service="tg", country=2)).json()
    assert isinstance(hv2["activationId"], str) and isinstance(hv2["countryCode"], int) and hv2["canGetAnotherSms"] is True
    assert "activationEndTime" in hv2
    bad = await raw(h, action="getNumber", service="zz")
    assert (bad.status_code, bad.text) == (200, "UNPROCESSABLE_ENTITY:service:INVALID")  # [LIVE]


async def test_purchase_refusals() -> None:
    sim, _ = classic(api_keys={"poor": Decimal("0.01")})
    assert (await raw(sim, action="getNumber", service="tg", country=0)).text == "NO_BALANCE"
    sim.accounts["poor"].balance = Decimal(100)
    assert (await raw(sim, action="getNumber", service="tg", country=0, maxPrice="0.01")).text == "WRONG_MAX_PRICE:0.1"
    # [LIVE] a garbage maxPrice is ignored
    assert (await raw(sim, action="getNumber", service="tg", country=0, maxPrice="maxPrice")).text.startswith("ACCESS_NUMBER")
    sim.set_stock("tg", 0, 0)
    assert (await raw(sim, action="getNumber", service="tg", country=0)).text == "NO_NUMBERS"
    h, _ = hero()
    h.set_stock("tg", 2, 0)
    none = await raw(h, action="getNumberV2", service="tg", country=2)
    assert none.status_code == 404 and none.json()["details"] == "Numbers Not Found. Try Later"  # [LIVE]
    wrong = await raw(h, action="getNumberV2", service="wa", country=2, maxPrice="0.01")
    assert wrong.status_code == 400 and wrong.json()["info"]["min"] > 0.01


async def test_ban() -> None:
    sim, clock = classic()
    sim.ban(clock.wall().replace(year=2027))
    answer = (await raw(sim, action="getNumber", service="tg", country=0)).text
    assert answer.startswith("BANNED:'2027-") and answer.count("-") == 4  # [DOC] dashes in the time part
    h, hclock = hero()
    h.ban(hclock.wall().replace(year=2027))
    response = await raw(h, action="getNumber", service="tg", country=2)
    assert response.status_code == 403 and response.json()["info"]["scope"] == "global"


async def test_order_id_idempotency() -> None:  # [DOC]
    sim, _ = classic()
    first = await raw(sim, action="getNumberV2", service="tg", country=0, orderId="A1")
    again = await raw(sim, action="getNumberV2", service="tg", country=0, orderId="A1")
    assert first.json()["activationId"] and again.text == "ORDER_ALREADY_EXISTS"
    assert len(sim.ledger.purchases) == 1 and sim.ledger.duplicate_orders() == {}
    h, _ = hero()  # HeroSMS has no idempotency: both are bought
    await raw(h, action="getNumberV2", service="tg", country=2, orderId="A1")
    await raw(h, action="getNumberV2", service="tg", country=2, orderId="A1")
    assert len(h.ledger.purchases) == 2


async def test_state_machine_classic() -> None:
    sim, clock = classic()
    activation = await buy(sim)
    assert (await raw(sim, action="getStatus", id=activation)).text == "STATUS_WAIT_CODE"
    assert (await raw(sim, action="setStatus", id=activation, status=8)).text == "EARLY_CANCEL_DENIED"
    assert (await raw(sim, action="setStatus", id=activation, status=1)).text == "ACCESS_READY"
    assert (await raw(sim, action="setStatus", id=activation, status=3)).text == "BAD_STATUS"
    clock.advance(10)
    first = (await raw(sim, action="getStatus", id=activation)).text
    assert first.startswith("STATUS_OK:")
    assert (await raw(sim, action="setStatus", id=activation, status=8)).text == "BAD_STATUS"  # 8 refused after a code
    assert (await raw(sim, action="setStatus", id=activation, status=3)).text == "ACCESS_RETRY_GET"
    old = first.split(":", 1)[1]
    assert (await raw(sim, action="getStatus", id=activation)).text == f"STATUS_WAIT_RETRY:{old}"
    clock.advance(10)
    second = (await raw(sim, action="getStatus", id=activation)).text
    assert (second.startswith("STATUS_OK:") and second != first) or second.split(":")[1] != old
    assert (await raw(sim, action="setStatus", id=activation, status=6)).text == "ACCESS_ACTIVATION"
    assert (await raw(sim, action="getStatus", id=activation)).text == "STATUS_CANCEL"  # [DOC] "canceled or completed"
    assert (await raw(sim, action="getStatusV2", id=activation)).text == "STATUS_CANCEL"
    assert (await raw(sim, action="getStatus", id=1)).text == "NO_ACTIVATION"
    assert (await raw(sim, action="setStatus", id=activation, status=5)).text == "BAD_STATUS"


async def test_cancel_after_window_refunds_and_six_before_code_cancels() -> None:
    sim, clock = classic()
    sim.codes = CodeSchedule.never()
    activation = await buy(sim)
    clock.advance(121)
    assert (await raw(sim, action="setStatus", id=activation, status=8)).text == "ACCESS_CANCEL"
    assert sim.balance() == Decimal(1000) and sim.ledger.refunded() == sim.ledger.spent()
    sim.codes = CodeSchedule.never()
    other = await buy(sim)
    clock.advance(121)
    assert (await raw(sim, action="setStatus", id=other, status=6)).text == "ACCESS_ACTIVATION"
    assert sim.activations[other].state.name == "CANCELLED"  # [DOC] 6 while preparing acts as a cancel


async def test_state_machine_herosms() -> None:
    sim, clock = hero()
    activation = await buy(sim, "getNumberV2")
    early = await raw(sim, action="setStatus", id=activation, status=8)
    assert early.status_code == 409 and early.json()["info"] == {"minActivationTime": 120}  # [LIVE]
    ready = await raw(sim, action="setStatus", id=activation, status=1)
    assert ready.status_code == 400 and ready.json()["title"] == "BAD_STATUS"
    waiting = (await raw(sim, action="getStatusV2", id=activation)).json()
    assert waiting == {"verificationType": 0, "sms": None, "call": None}  # [LIVE]
    clock.advance(10)
    late = await raw(sim, action="setStatus", id=activation, status=8)
    assert late.status_code == 409 and late.json()["title"] == "OTP_RECEIVED"
    v2 = (await raw(sim, action="getStatusV2", id=activation)).json()
    assert v2["sms"]["code"] and v2["call"] is None
    assert (await raw(sim, action="finishActivation", id=activation)).status_code == 204
    missing = await raw(sim, action="getStatus", id=12345)
    assert missing.status_code == 404 and missing.json()["title"] == "NOT_FOUND"
    spec = Simulator(provider="herosms", clock=clock, status_v2_shape="spec", codes=CodeSchedule.fixed(1))
    sid = await buy(spec, "getNumberV2")
    clock.advance(2)
    doc = (await raw(spec, action="getStatusV2", id=sid)).json()
    assert doc["verificationType"] == "sms" and doc["data"]["code"]


async def test_lifetime_refund_and_active_lists() -> None:
    sim, clock = classic(lifetime_seconds=1200, codes=CodeSchedule.never())
    assert (await raw(sim, action="getActiveActivations")).json() == {"status": "error", "error": "NO_ACTIVATIONS"}
    activation = await buy(sim)
    rows = (await raw(sim, action="getActiveActivations")).json()["activeActivations"]
    assert rows[0]["activationId"] == str(activation) and rows[0]["activationCost"] == "0.10"
    clock.advance(1201)
    assert sim.open_activations() == [] and sim.balance() == Decimal(1000)
    assert (await raw(sim, action="getStatus", id=activation)).text == "STATUS_CANCEL"
    h, _ = hero()
    for _ in range(120):
        await buy(h, "getNumberV2")
    first = (await raw(h, action="getActiveActivations", start=0, limit=100)).json()
    second = (await raw(h, action="getActiveActivations", start=100, limit=100)).json()
    assert len(first["data"]) == 100 and len(second["data"]) == 20 and "num_rows" in first["activeActivations"]


async def test_history_and_catalogue() -> None:
    sim, _ = classic()
    await buy(sim)
    history = (await raw(sim, action="getHistory")).json()
    assert isinstance(history, list) and history[0]["cost"] == 0  # [DOC] 0 while active
    assert (await raw(sim, action="getHistory", start=0, end=40 * 86400)).text == "WRONG_DATE"
    countries = (await raw(sim, action="getCountries")).json()
    assert countries["0"]["eng"] == "Russia"
    h, _ = hero()
    assert "0" not in (await raw(h, action="getCountries")).json()  # [LIVE] no Russia on HeroSMS
    assert (await raw(h, action="getPrices", service="zz")).json() == {"status": "false", "msg": "service is incorrect"}
    assert (await raw(h, action="getNumbersStatus")).status_code == 422
    assert (await raw(sim, action="getPrices", service="tg", country=99)).json() == {}
    top = (await raw(sim, action="getTopCountriesByService", service="tg", freePrice="true")).json()
    assert list(top)[:2] == ["0", "1"] and "freePriceMap" in top["0"]
    assert (await raw(sim, action="getOperators", country=999)).json() == {"status": "error", "error": "OPERATORS_NOT_FOUND"}


async def test_rent_life_cycle() -> None:
    sim, clock = classic()
    rent = (await raw(sim, action="getRentNumber", service="tg", rent_time=4)).json()
    rent_id = rent["phone"]["id"]
    waiting = (await raw(sim, action="getRentStatus", id=rent_id)).json()
    assert waiting == {"status": "error", "message": "STATUS_WAIT_CODE"}  # [DOC] an error while empty
    sim.deliver_rent_sms(rent_id, "code 1")
    sim.deliver_rent_sms(rent_id, "code 2")
    status = (await raw(sim, action="getRentStatus", id=rent_id)).json()
    assert status["quantity"] == "2" and status["values"]["0"]["text"] == "code 2"  # newest first
    assert (await raw(sim, action="getRentStatus", id=1)).json()["message"] == "NO_ID_RENT"
    clock.advance(1201)
    assert (await raw(sim, action="setRentStatus", id=rent_id, status=2)).json()["message"] == "CANT_CANCEL"
    assert (await raw(sim, action="setRentStatus", id=rent_id, status=3)).json()["message"] == "INCORECT_STATUS"
    assert (await raw(sim, action="setRentStatus", id=rent_id, status=1)).json() == {"status": "success"}
    assert (await raw(sim, action="setRentStatus", id=rent_id, status=1)).json()["message"] == "ALREADY_FINISH"
    renewed = (await raw(sim, action="continueRentNumber", id=rent_id, rent_time=4)).json()
    assert renewed["phone"]["id"] != rent_id  # [DOC] a finished rent is re-ordered under a new id
    assert (await raw(sim, action="continueRentNumber", id=rent_id, rent_time=5000)).json()["message"] == "INVALID_TIME"
    other = (await raw(sim, action="getRentNumber", service="tg")).json()["phone"]["id"]
    assert (await raw(sim, action="setRentStatus", id=other, status=2)).json() == {"status": "success"}


async def test_a_late_committed_rent_is_out_of_the_rent_list_until_it_is_committed() -> None:
    """``FaultKind.LATE_PURCHASE`` on getRentNumber: bought on the server, its answer lost, and listed by
    getRentList only ``late_commit_seconds`` later — as a late activation is by getActiveActivations."""
    sim, clock = hero(faults=Faults(late_commit_seconds=5.0, hang_seconds=0.01))
    sim.faults.inject(FaultKind.LATE_PURCHASE, action="getRentNumber")
    with pytest.raises(httpx.ReadTimeout):
        await raw(sim, action="getRentNumber", service="tg", country=2)
    assert len(sim.rents) == 1 and len(sim.ledger.purchases) == 1
    assert (await raw(sim, action="getRentList")).json()["message"] == "NO_NUMBERS"
    clock.advance(5.0)
    listed = (await raw(sim, action="getRentList")).json()
    assert [int(r["id"]) for r in listed["values"].values()] == list(sim.rents)


@pytest.mark.parametrize("kind", list(FaultKind))
async def test_each_fault(kind: FaultKind) -> None:
    sim, _ = hero()
    sim.faults.inject(kind, action="getNumberV2")
    if kind in (FaultKind.DROP, FaultKind.TIMEOUT, FaultKind.LOST_PURCHASE, FaultKind.LATE_PURCHASE):
        expected = httpx.RemoteProtocolError if kind is FaultKind.DROP else httpx.ReadTimeout
        with pytest.raises(expected):
            await raw(sim, action="getNumberV2", service="tg", country=2)
        bought = len(sim.ledger.purchases)
        assert bought == (0 if kind is FaultKind.DROP else 1)  # a lost answer: bought on the server
        listed = (await raw(sim, action="getActiveActivations")).json()
        # committed late: out of the listings for late_commit_seconds
        assert (listed.get("data") in (None, [])) == (kind in (FaultKind.DROP, FaultKind.LATE_PURCHASE)), listed
        return
    response = await raw(sim, action="getNumberV2", service="tg", country=2)
    if kind is FaultKind.HTML_5XX:
        assert response.status_code in (502, 503) and response.text.startswith("<html>")
    elif kind is FaultKind.TRUNCATE:
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)
    elif kind is FaultKind.RATE_LIMIT:
        # [LIVE fixture] HeroSMS's 429 has no Retry-After (documented only on /api/v1/activations/offers)
        assert response.status_code == 429 and "retry-after" not in response.headers
    elif kind is FaultKind.ERROR_SQL:
        assert response.text == "ERROR_SQL"
    assert sim.ledger.requests[-1].fault == kind.value


async def test_truncation_at_18323_bytes() -> None:
    from smsactivate_async.simulator import CatalogueEntry

    big = [CatalogueEntry(f"s{i}", c, Decimal("0.5"), 10) for i in range(40) for c in range(30)]
    sim, _ = hero(faults=Faults(truncate_at=18323), catalogue=big)
    assert len((await raw(sim, action="getPrices")).content) > 18323
    sim.faults.inject("truncate")
    body = (await raw(sim, action="getPrices")).content
    assert len(body) == 18323


async def test_rate_budget_and_seeded_faults_replay() -> None:
    sim, clock = hero(faults=Faults(rps_budget=3))
    statuses = [(await raw(sim, action="getBalance")).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    clock.advance(1)
    assert (await raw(sim, action="getBalance")).status_code == 200
    runs = []
    for _ in range(2):
        seeded = Simulator(seed=7, faults=Faults.uniform(0.5), clock=ManualClock())
        for _ in range(30):
            try:
                await raw(seeded, action="getBalance")
            except httpx.HTTPError:
                pass
        runs.append([r.fault for r in seeded.ledger.requests])
    assert runs[0] == runs[1] and any(runs[0])


async def test_ledger_window() -> None:
    sim, clock = classic()
    for _ in range(4):
        await raw(sim, action="getBalance")
    clock.advance(2)
    await raw(sim, action="getBalance")
    assert sim.ledger.max_requests_in_window(1.0) == 4 and sim.ledger.requests_for("getBalance") == 5


async def test_webhooks_with_retries_and_duplicates() -> None:
    received: list[dict[str, Any]] = []
    calls = {"n": 0}

    async def receiver(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        calls["n"] += 1
        status = 500 if calls["n"] == 1 else 200  # the first delivery fails: it must be retried
        if status == 200:
            received.append(json.loads(message["body"]))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    import threading

    import anyio
    import uvicorn

    from smsactivate_async.simulator import free_port

    port = free_port()
    config = uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:  # noqa: ASYNC110 - set by uvicorn in another thread
            await anyio.sleep(0.01)
        sim = Simulator(codes=CodeSchedule.never(), webhook_url=f"http://127.0.0.1:{port}/hook", webhook_retry_delay=0.05)
        activation = await buy(sim)
        async with sim.running():
            sim.deliver_sms(activation, "Your code is 4321")
            with anyio.fail_after(5):
                # a try is recorded once the receiver's answer is in, after `received` has filled
                while len(sim.ledger.webhook_deliveries) < 2:  # noqa: ASYNC110 - filled by the pump
                    await anyio.sleep(0.02)
    finally:
        server.should_exit = True
        thread.join(5)
    assert received[0]["activationId"] == activation and received[0]["code"] == "4321"
    assert [d[2] for d in sim.ledger.webhook_deliveries][:2] == [500, 200]


async def test_served_on_a_loopback_port_with_network_faults() -> None:
    from smsactivate_async.simulator import serve_in_thread

    sim = Simulator(provider="herosms", faults=Faults(hang_seconds=0.2))
    with serve_in_thread(sim) as url:
        async with httpx.AsyncClient(timeout=2) as http:
            ok = await http.get(url, params={"api_key": sim.api_key, "action": "getBalance"})
            assert ok.text == "ACCESS_BALANCE:1000"
            # [LIVE, REAL_RESPONSES §A] one `Server: cloudflare`, not uvicorn's beside it
            assert ok.headers.get_list("server") == ["cloudflare"]
            sim.faults.inject("drop")
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(url, params={"api_key": sim.api_key, "action": "getBalance"})
            sim.faults.inject("lost_purchase")
            with pytest.raises(httpx.TransportError):
                await http.get(url, params={"api_key": sim.api_key, "action": "getNumberV2", "service": "tg", "country": 2})
    assert len(sim.ledger.purchases) == 1


async def test_post_with_form_fields() -> None:  # [DOC] "POST or GET request"
    sim, _ = classic()
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        response = await http.post("http://sim/stubs/handler_api.php", data={"api_key": sim.api_key, "action": "getBalance"})
    assert response.text == "ACCESS_BALANCE:1000"


async def test_herosms_dead_activation_set_status_is_activation_not_active() -> None:
    """FACTS §7/§17: HeroSMS's 409 for a terminated activation is titled ACTIVATION_NOT_ACTIVE."""
    sim = Simulator(provider="herosms", early_cancel_seconds=0, codes=CodeSchedule.never())
    key = sim.api_key
    bought = await sim.handle({"api_key": key, "action": "getNumberV2", "service": "tg", "country": "6"})
    activation_id = json.loads(bought.body)["activationId"]
    assert json.loads(bought.body)["countryPhoneCode"] == 62  # Indonesia's calling code, not always 7
    assert (await sim.handle({"api_key": key, "action": "setStatus", "id": activation_id, "status": "8"})).status == 200
    dead = await sim.handle({"api_key": key, "action": "setStatus", "id": activation_id, "status": "8"})
    assert dead.status == 409 and json.loads(dead.body)["title"] == "ACTIVATION_NOT_ACTIVE"


@pytest.mark.parametrize(("accepts", "status"), [(False, 400), (True, 200)])
async def test_herosms_status_1_is_a_documented_switch(accepts: bool, status: int) -> None:
    """FACTS §7: the current HeroSMS spec lists 3/6/8 only, its first OpenAPI listed 1 — a switch, default off."""
    sim = Simulator(provider="herosms", herosms_accepts_ready=accepts, codes=CodeSchedule.never())
    bought = await sim.handle({"api_key": sim.api_key, "action": "getNumberV2", "service": "tg", "country": "6"})
    activation_id = json.loads(bought.body)["activationId"]
    ready = await sim.handle({"api_key": sim.api_key, "action": "setStatus", "id": activation_id, "status": "1"})
    assert ready.status == status


async def test_herosms_operators_not_found_is_text_and_a_bad_country_is_status_false() -> None:
    """REAL_RESPONSES §B (OPERATORS_NOT_FOUND as 200 text on HeroSMS) and §E (getPrices, bad country)."""
    sim = Simulator(provider="herosms")
    key = sim.api_key
    none = await sim.handle({"api_key": key, "action": "getOperators", "country": "999"})
    assert (none.status, none.body) == (200, b"OPERATORS_NOT_FOUND")
    bad = await sim.handle({"api_key": key, "action": "getPrices", "country": "999"})
    assert json.loads(bad.body) == {"status": "false", "msg": "country is incorrect"}
    classic = await Simulator().handle({"api_key": key, "action": "getOperators", "country": "999"})
    assert json.loads(classic.body) == {"status": "error", "error": "OPERATORS_NOT_FOUND"}



@pytest.mark.parametrize("action", ["getExtraActivation", "checkExtraActivation", "createTaskForCall"])
async def test_activation_id_only_by_its_documented_name(action: str) -> None:
    """ACTIONS.md: these take `activationId`; nothing shows a real server taking `id` for them."""
    sim = Simulator(codes=CodeSchedule.never())
    key = sim.api_key
    bought = (await sim.handle({"api_key": key, "action": "getNumber", "service": "tg", "country": "0"})).body
    activation_id = bought.decode().split(":")[1]
    wrong = await sim.handle({"api_key": key, "action": action, "id": activation_id, "phone": "7900"})
    assert wrong.body in (b"WRONG_ACTIVATION_ID", b"NO_ACTIVATION")
    right = await sim.handle({"api_key": key, "action": action, "activationId": activation_id, "phone": "7900"})
    assert right.body not in (b"WRONG_ACTIVATION_ID", b"NO_ACTIVATION")


async def test_herosms_sells_no_country_it_does_not_have() -> None:
    """REAL_RESPONSES §E / FACTS §10: HeroSMS has no country 0 and no 12, so nothing lists or sells them."""
    sim, _ = hero()
    countries = (await raw(sim, action="getCountries")).json()
    assert "0" not in countries and "12" not in countries and "2" in countries
    listed: set[str] = set((await raw(sim, action="getPrices")).json())
    listed |= {str(row["country"]) for row in (await raw(sim, action="getTopCountriesByService", service="tg")).json().values()}
    listed |= set((await raw(sim, action="getOperators")).json()["countryOperators"])
    listed |= set((await raw(sim, action="getPricesExtended")).json())
    assert listed and not listed & {"0", "12"}
    assert (await raw(sim, action="getNumbersStatus", country=0)).json() == {}
    assert (await raw(sim, action="getOperators", country=12)).text == "OPERATORS_NOT_FOUND"
    assert (await raw(sim, action="getPrices", country=0)).json() == {"status": "false", "msg": "country is incorrect"}
    for country in ("0", "12"):
        refused = await raw(sim, action="getNumberV2", service="tg", country=country)
        assert refused.status_code == 404 and refused.json()["title"] == "NO_NUMBERS"
        assert (await raw(sim, action="getNumber", service="tg", country=country)).text == "NO_NUMBERS"
    # No default country: HeroSMS requires one [HERO-TR]; the answer takes its documented 422's shape
    # (FACTS §17) [INFER], getNumbersStatus's own text being shown only for that action [RUSTX-HERO].
    for action in ("getNumber", "getNumberV2"):
        missing = await raw(sim, action=action, service="tg")
        assert missing.status_code == 422 and missing.json()["details"] == "Validation failed"
    assert sim.ledger.purchases == []
    classic_sim, _ = classic()
    assert (await raw(classic_sim, action="getNumber", service="tg")).text.startswith("ACCESS_NUMBER:")  # Russia


@pytest.mark.parametrize("make", [classic, hero])
async def test_prices_extended_and_free_price_tiers(make: Any) -> None:
    """SA-DOC25: getPricesExtended {"Country":{"Service":{"cost":Cost,"count":Count}}}, numbers not strings."""
    sim, _ = make()
    plain = (await raw(sim, action="getPricesExtended", service="tg", country=2)).json()
    assert set(plain) == {"2"} and set(plain["2"]) == {"tg"}
    row = plain["2"]["tg"]
    assert isinstance(row["cost"], float) and isinstance(row["count"], int) and "freePriceMap" not in row
    tiers = (await raw(sim, action="getPricesExtended", service="tg", country=2, freePrice="true")).json()["2"]["tg"]
    prices = sorted(tiers["freePriceMap"], key=Decimal)
    # [LIVE HeroSMS, REAL_RESPONSES §E] the tiers start below the regular price (0.2353 against 0.4),
    # with few numbers there, and their counts are cumulative up to all of them
    assert Decimal(prices[0]) < Decimal(str(row["cost"])) in {Decimal(p) for p in prices}
    counts = [tiers["freePriceMap"][p] for p in prices]
    assert counts == sorted(counts) and counts[0] < counts[-1] == row["count"]
    top = (await raw(sim, action="getTopCountriesByService", service="tg", freePrice="true")).json()
    plain_top = (await raw(sim, action="getTopCountriesByService", service="tg")).json()
    here = next(r for r in top.values() if r["country"] == 2)
    assert Decimal(str(here["price"])) == Decimal(min(here["freePriceMap"], key=Decimal))
    assert Decimal(str(here["price"])) < Decimal(str(next(r for r in plain_top.values() if r["country"] == 2)["price"]))


async def test_continue_rent_info_with_history() -> None:
    """SA-DOC25: continueRentInfo {status, price, currency, hours, history{"0":{createDate, price, hours}}}."""
    sim, _ = classic()
    rent_id = (await raw(sim, action="getRentNumber", service="tg", rent_time=4)).json()["phone"]["id"]
    info = (await raw(sim, action="continueRentInfo", id=rent_id, hours=8)).json()
    assert info["status"] == "success" and info["hours"] == 8 and info["currency"] == 840 and "history" not in info
    quoted = (await raw(sim, action="getContinueRentPriceNumber", id=rent_id, rent_time=8)).json()["price"]
    assert info["price"] == quoted
    await raw(sim, action="continueRentNumber", id=rent_id, rent_time=4)
    history = (await raw(sim, action="continueRentInfo", id=rent_id, hours=4, needHistory="true")).json()["history"]
    assert list(history) == ["0"] and history["0"]["hours"] == 4 and isinstance(history["0"]["price"], str)
    assert (await raw(sim, action="continueRentInfo", id=rent_id)).json()["message"] == "INVALID_TIME"  # hours required
    assert (await raw(sim, action="continueRentInfo", id=1, hours=4)).json()["message"] == "NO_ID_RENT"
    await raw(sim, action="setRentStatus", id=rent_id, status=2)
    assert (await raw(sim, action="continueRentInfo", id=rent_id, hours=4)).json()["message"] == "RENT_DIE"


async def test_classic_json_labels_as_captured() -> None:
    """[LIVE, REAL_RESPONSES §A] application/json only on getOperators and getTopCountriesByServiceRank;
    text/html on every other JSON answer (getNumbersStatus, getTopCountriesByService)."""
    sim, _ = classic()
    for action in ("getOperators", "getTopCountriesByServiceRank"):
        assert (await raw(sim, action=action, service="tg")).headers["content-type"] == "application/json"
    for action in ("getTopCountriesByService", "getNumbersStatus", "getCountries"):
        assert (await raw(sim, action=action, service="tg")).headers["content-type"].startswith("text/html")


async def test_classic_money_history_and_free_price() -> None:
    sim, clock = classic(lifetime_seconds=60, codes=CodeSchedule.never())
    sim.catalogue[("tg", 0)] = attrs.evolve(sim.catalogue[("tg", 0)], price=Decimal(10))
    await buy(sim)
    row = (await raw(sim, action="getActiveActivations")).json()["activeActivations"][0]
    assert row["activationCost"] == "10.00"  # [LIVE 2024-10, REAL_RESPONSES §C] two decimals kept
    clock.advance(61)
    # "10" is HeroSMS's auto-refund status [DOC HeroSMS]; the classic API has none: expired = cancelled
    assert (await raw(sim, action="getHistory")).json()[0]["status"] == "8"
    before = sim.balance()
    bought = await raw(sim, action="getNumber", service="tg", country=0, freePrice="true", maxPrice="25")
    assert bought.text.startswith("ACCESS_NUMBER:")
    # [SA-DOC es] Free Price buys "al precio máximo al que está listo para comprar": maxPrice is charged
    assert before - sim.balance() == Decimal(25)
    cheap = await raw(sim, action="getNumber", service="tg", country=0, freePrice="true", maxPrice="7")
    assert cheap.text.startswith("ACCESS_NUMBER:")  # below the regular 10, at or above the cheapest tier (6)
    low = await raw(sim, action="getNumber", service="tg", country=0, freePrice="true", maxPrice="5")
    assert low.text == "WRONG_MAX_PRICE:6"  # the least Free Price accepts is its cheapest tier
    plain = await raw(sim, action="getNumber", service="tg", country=0, maxPrice="7")
    assert plain.text == "WRONG_MAX_PRICE:10"
    h, hclock = hero(lifetime_seconds=60, codes=CodeSchedule.never())
    await buy(h, "getNumberV2")
    hclock.advance(61)
    assert (await raw(h, action="getHistory")).json()[0]["status"] == "10"


async def test_herosms_leaked_cursor_row_is_an_object() -> None:
    """[HERO-LIVE, FACTS §8] ``activeActivations`` is ``{affected_rows,num_rows,row:{…},rows:[]}``."""
    h, _ = hero()
    await buy(h, "getNumberV2")
    cursor = (await raw(h, action="getActiveActivations")).json()["activeActivations"]
    assert isinstance(cursor["row"], dict) and cursor["rows"] == [] and set(cursor) == {"affected_rows", "num_rows",
                                                                                        "row", "rows"}


@pytest.mark.parametrize(("dialect", "option", "header"), [("herosms", None, False), ("sms-activate", None, True),
                                                           ("herosms", True, True), ("sms-activate", False, False)])
async def test_retry_after_follows_the_dialect_unless_chosen(dialect: str, option: bool | None, header: bool) -> None:
    """HeroSMS's live 429 fixture has no Retry-After (it documents one only on /api/v1/activations/offers);
    Tiger's classic edge sends one [LIVE]. ``Faults(retry_after_header=)`` chooses either."""
    sim = Simulator(provider=dialect, faults=Faults(retry_after_header=option))
    sim.faults.inject("rate_limit")
    limited = await raw(sim, action="getBalance")
    assert limited.status_code == 429 and ("retry-after" in limited.headers) is header


async def test_six_before_a_code_is_not_an_early_cancel_classic() -> None:
    """FACTS §7 [SA-DOC25]: status 6 while "preparing" deletes the activation; EARLY_CANCEL_DENIED is the
    rule of a cancel (8) within the first two minutes, a case of its own."""
    sim, _ = classic(codes=CodeSchedule.never())
    first = await buy(sim)
    assert (await raw(sim, action="setStatus", id=first, status=8)).text == "EARLY_CANCEL_DENIED"
    assert (await raw(sim, action="setStatus", id=first, status=6)).text == "ACCESS_ACTIVATION"
    assert sim.activations[first].state.name == "CANCELLED" and sim.balance() == Decimal(1000)


async def test_herosms_six_before_a_code_is_the_api_bad_status() -> None:
    """FACTS §7/§17: HeroSMS refuses a finish without a code; the API's documented BAD_STATUS is a 400
    "Wrong status code" ("Activation cannot be completed, no code." is its website's text)."""
    sim, _ = hero(codes=CodeSchedule.never())
    activation = await buy(sim, "getNumberV2")
    for refused in (await raw(sim, action="setStatus", id=activation, status=6),
                    await raw(sim, action="finishActivation", id=activation)):
        assert refused.status_code == 400 and refused.json() == {"title": "BAD_STATUS", "details": "Wrong status code"}


async def test_bad_service_on_getnumberv2_by_dialect() -> None:
    """FACTS §3–4: every getNumber error applies to getNumberV2; HeroSMS's bad service is a 200
    ``UNPROCESSABLE_ENTITY:service:INVALID`` [RUSTX-HERO]; Tiger's V2 probe a 200 envelope [RUSTX-TIGER]."""
    h, _ = hero()
    for action in ("getNumber", "getNumberV2"):
        answer = await raw(h, action=action, service="nope", country=2)
        assert (answer.status_code, answer.text) == (200, "UNPROCESSABLE_ENTITY:service:INVALID")
    tiger = Simulator(provider="tiger", clock=ManualClock())
    answer = await raw(tiger, action="getNumberV2", service="nope", country=2)
    assert answer.status_code == 200 and answer.json()["title"] == "BAD_SERVICE"
    classic_sim, _ = classic()
    assert (await raw(classic_sim, action="getNumberV2", service="nope")).text == "BAD_SERVICE"


async def test_continue_rent_errors_carry_info() -> None:
    """[DOC 000 continueRentNumber] ``{"status":"error","message":…,"info":"*details*"}``; extensions 4–1344 h."""
    sim, _ = classic()
    rent_id = (await raw(sim, action="getRentNumber", service="tg", rent_time=4)).json()["phone"]["id"]
    short = (await raw(sim, action="continueRentNumber", id=rent_id, rent_time=3)).json()
    assert short["message"] == "INVALID_TIME" and "4 to 1344" in short["info"]
    unknown = (await raw(sim, action="continueRentNumber", id=1, rent_time=4)).json()
    assert unknown["message"] == "NO_ID_RENT" and unknown["info"]
    await raw(sim, action="setRentStatus", id=rent_id, status=2)
    dead = (await raw(sim, action="continueRentNumber", id=rent_id, rent_time=4)).json()
    assert dead["message"] == "RENT_DIE" and dead["info"]
    # the price check keeps its plain form (the reference shows no info there)
    assert "info" not in (await raw(sim, action="continueRentInfo", id=1, hours=4)).json()
