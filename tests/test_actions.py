"""Every action's success shapes, from REAL_RESPONSES.md / FACTS.md verbatim where a capture exists."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from smsactivate_async import (
    IncomingCallState,
    InvalidArgumentError,
    SetStatusAnswer,
    SMSActivate,
    StatusCode,
)
from smsactivate_async.simulator import CodeSchedule, Simulator

from .conftest import mock_client, replying

pytestmark = pytest.mark.anyio



async def call(body: str, method: str, *args: Any, status: int = 200, provider: str = "sms-activate", **kwargs: Any) -> Any:
    async with mock_client(replying(status, body), provider=provider) as client:
        return await getattr(client, method)(*args, **kwargs)


@pytest.mark.parametrize("provider", ["sms-activate", "herosms"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [("ACCESS_BALANCE:17.154", Decimal("17.154")), ("ACCESS_BALANCE:12.5085", Decimal("12.5085")),
     ("ACCESS_BALANCE:540", Decimal("540")), ("ACCESS_BALANCE:123456789.01234567", Decimal("123456789.01234567")),
     ('{"balance":"4.6820","currency":840}', Decimal("4.6820"))],
)
async def test_balance(body: str, expected: Decimal, provider: str) -> None:
    assert await call(body, "get_balance", provider=provider) == expected
    assert await call(body, "get_balance_and_cashback", provider=provider) == expected


async def test_get_number_text_big_id() -> None:
    number = await call("ACCESS_NUMBER:3936040355:6285872391152", "get_number", service="go", country=6)
    assert number.activation_id == 3936040355 and number.phone_number == "6285872391152"


async def test_get_number_v2_classic_doc_shape() -> None:
    body = ('{"activationId":635468024,"phoneNumber":"79584******","activationCost":12.50,"currency":840,'
            '"countryCode":"2","canGetAnotherSms":"1","activationTime":"2022-06-01 17:30:57","activationOperator":"mtt"}')
    number = await call(body, "get_number_v2", service="vk", country=2)
    assert number.activation_id == 635468024
    assert number.activation_cost == Decimal("12.50") and number.country_code == 2
    assert number.can_get_another_sms is True
    assert number.activation_time == dt.datetime(2022, 6, 1, 17, 30, 57)


async def test_get_number_v2_herosms_live_shape() -> None:
    body = ('{"activationId":"316232158","phoneNumber":"PHONE_NUMBER","activationCost":0.0608,"currency":840,'
            '"countryCode":52,"countryPhoneCode":66,"canGetAnotherSms":true,"activationTime":"2026-04-26 19:57:12",'
            '"activationEndTime":"2026-04-26 20:17:12","activationOperator":"truemove","serviceCode":"dr","subtype":1}')
    number = await call(body, "get_number_v2", service="dr", country=52, provider="herosms")
    assert number.activation_id == 316232158 and number.activation_cost == Decimal("0.0608")
    assert number.activation_end_time == dt.datetime(2026, 4, 26, 20, 17, 12)


async def test_get_number_v2_herosms_iso_times_are_aware() -> None:
    body = ('{"activationId":"635468024","phoneNumber":"79584000000","activationCost":12.5,"currency":840,'
            '"countryCode":6,"countryPhoneCode":62,"canGetAnotherSms":true,"activationTime":"2026-02-18T16:11:33+00:00",'
            '"activationEndTime":"2026-02-18T18:11:23+00:00","activationOperator":"any","verificationType":"sms",'
            '"subtype":1,"serviceCode":"vk","status":4}')
    number = await call(body, "get_number_v2", service="vk", country=6, provider="herosms")
    assert number.activation_time is not None and number.activation_time.tzinfo is not None


async def test_get_number_v2_answering_in_v1_text() -> None:
    number = await call("ACCESS_NUMBER:2640086027:60164432151", "get_number_v2", service="tg")
    assert number.activation_id == 2640086027


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [("STATUS_WAIT_CODE", StatusCode.STATUS_WAIT_CODE, None),
     ("STATUS_OK:100001", StatusCode.STATUS_OK, "100001"),
     ("STATUS_WAIT_RETRY:001234", StatusCode.STATUS_WAIT_RETRY, None),
     ("STATUS_WAIT_RESEND", StatusCode.STATUS_WAIT_RESEND, None),
     ("STATUS_CANCEL", StatusCode.STATUS_CANCEL, None),
     ("ACCESS_CANCEL", StatusCode.STATUS_CANCEL, None),
     ("STATUS_OK:Yo.ur c.ode is: 123456", StatusCode.STATUS_OK, "123456"),
     ("STATUS_OK:Нет кода", StatusCode.STATUS_OK, None),
     ("STATUS_WAIT_SCREEN", StatusCode.UNKNOWN, None)],
)
async def test_get_status(body: str, status: StatusCode, code: str | None) -> None:
    result = await call(body, "get_status", 1)
    assert result.status is status and result.code == code


async def test_get_status_keeps_leading_zero_and_full_text() -> None:
    retry = await call("STATUS_WAIT_RETRY:001234", "get_status", 1)
    assert retry.text == "001234"
    url = "…Please click the link https://link.sparkwallet.io/somesecretcode"
    result = await call(f"STATUS_OK:{url}", "get_status", 1)
    assert result.text == url


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [('{"verificationType": 0, "sms": null, "call": null}', StatusCode.STATUS_WAIT_CODE, None),
     ('{"verificationType":0,"sms":{"dateTime":"2026-04-26 20:04:05","code":"SMS_CODE","text":"x"},"call":null}',
      StatusCode.STATUS_OK, "SMS_CODE"),
     ('{"verificationType":2,"sms":null,"call":{"from":"79001","text":"t","code":"12345","dateTime":"0000-00-00 00:00:00",'
      '"url":null,"parsingCount":1}}', StatusCode.STATUS_OK, "12345"),
     ('{"verificationType":"sms","data":{"id":"3416693217","phoneFrom":"Telegram","code":"123456",'
      '"text":"Telegram code 123456","service":"tg","date":"2026-02-16T12:36:59+03:00","type":"sms"}}',
      StatusCode.STATUS_OK, "123456"),
     ('{"verificationType":"sms","data":null}', StatusCode.STATUS_WAIT_CODE, None),
     ("STATUS_CANCEL", StatusCode.STATUS_CANCEL, None),
     ("STATUS_WAIT_CODE", StatusCode.STATUS_WAIT_CODE, None)],
)
@pytest.mark.parametrize("provider", ["sms-activate", "herosms"])
async def test_get_status_v2_both_shapes(body: str, status: StatusCode, code: str | None, provider: str) -> None:
    result = await call(body, "get_status_v2", 1, provider=provider)
    assert result.status is status and result.code == code


async def test_get_status_v2_call_time_zero_is_none() -> None:
    body = ('{"verificationType":2,"sms":null,"call":{"from":"79001","code":"1","dateTime":"0000-00-00 00:00:00"}}')
    result = await call(body, "get_status_v2", 1)
    assert result.call is not None and result.call.date_time is None and result.call.from_ == "79001"


@pytest.mark.parametrize(
    ("status", "word"),
    [(1, "ACCESS_READY"), (3, "ACCESS_RETRY_GET"), (6, "ACCESS_ACTIVATION"), (8, "ACCESS_CANCEL")],
)
async def test_set_status(status: int, word: str) -> None:
    assert await call(word, "set_status", 1, status) is SetStatusAnswer(word)


async def test_active_activations_live_classic() -> None:
    body = ('{"status":"success","activeActivations":[{"activationId":"2890928091","serviceCode":"mm","phoneNumber":'
            '"5731692*****","activationCost":"10.00","activationStatus":"2","activationTime":"2024-10-1510:08:52",'
            '"discount":"0","repeated":"0","countryCode":"33","countryName":"Colombia","canGetAnotherSms":"1",'
            '"smsCode":"8932","smsText":"8932是 Microsoft 帐户验证码"}]}')
    (row,) = await call(body, "get_active_activations")
    assert row.activation_id == 2890928091 and row.activation_cost == Decimal("10.00")
    assert row.sms_code == ["8932"] and row.activation_status == 2 and row.country_code == 33


async def test_active_activations_doc_array_code_and_herosms_data() -> None:
    body = ('{"status":"success","data":[{"activationId":"635468021","serviceCode":"vk","phoneNumber":"79********1",'
            '"activationCost":12.5,"activationStatus":"4","smsCode":"12345","smsText":"Your code is 12345",'
            '"activationTime":"2022-06-01 16:59:16","countryCode":"2","countryName":"Kazakhstan","canGetAnotherSms":"1",'
            '"currency":840,"verificationType":"sms","subtype":1}],'
            '"activeActivations":{"affected_rows":0,"num_rows":0,"row":[],"rows":[]}}')
    (row,) = await call(body, "get_active_activations", provider="herosms")
    assert row.activation_id == 635468021 and row.sms_code == ["12345"]
    doc = ('{"status":"success","activeActivations":[{"activationId":"1","smsCode":["CODE"],"activationCost":12.50}]}')
    (row,) = await call(doc, "get_active_activations")
    assert row.sms_code == ["CODE"]


@pytest.mark.parametrize("provider", ["sms-activate", "herosms"])
async def test_nothing_there_is_empty(provider: str) -> None:
    assert await call('{"status":"error","error":"NO_ACTIVATIONS"}', "get_active_activations", provider=provider) == []
    assert await call('{"status":"error","message":"NO_NUMBERS"}', "get_rent_list", provider=provider) == []
    empty = await call('{"status":"error","message":"STATUS_WAIT_CODE"}', "get_rent_status", 5, provider=provider)
    assert empty.quantity == 0 and empty.values == []


async def test_history_bare_array_with_null_sms() -> None:
    body = ('[{"id":"635468024","date":"2026-08-29 12:00:36","phone":"7*********0","sms":"Your code is ****",'
            '"cost":0.1275,"status":"6","currency":840},{"id":"635468025","date":"2026-08-29 12:17:19",'
            '"phone":"7*********1","sms":null,"cost":0,"status":"8","currency":840}]')
    first, second = await call(body, "get_history")
    assert first.sms == ["Your code is ****"] and first.cost == Decimal("0.1275") and first.status == 6
    assert second.sms == [] and second.cost == 0
    doc = '[{"id":635468024,"date":"2022-11-12 15:58:39","phone":"7991","sms":"[\\"Your sms code\\"]","cost":100,"status":"4"}]'
    (row,) = await call(doc, "get_history")
    assert row.sms == ["Your sms code"]


async def test_numbers_status_suffixes_and_strings() -> None:
    result = await call('{"vk_0": 76, "av_1": 211, "wa": 90}', "get_numbers_status")
    assert result.counts == {"vk": 76, "wa": 90} and result.forward_counts == {"av": 211}
    live = await call('{"aww": "4758", "ig": "2"}', "get_numbers_status", country=0)
    assert live["aww"] == 4758


async def test_top_countries_shapes() -> None:
    live = await call('{"0":{"retail_price":0.2,"country":6,"price":0.105,"count":4393},'
                      '"1":{"retail_price":0.3075,"country":33,"price":0.205,"count":4861}}',
                      "get_top_countries_by_service", service="go")
    assert [r.country for r in live] == [6, 33] and live[0].price == Decimal("0.105")
    free = await call('{"0":{"country":73,"price":0.2353,"retail_price":0.48,"count":1213663,'
                      '"freePriceMap":{"0.2353":4,"2.9471":1213663}}}', "get_top_countries_by_service",
                      service="tg", free_price=True)
    assert free[0].free_price_map == {Decimal("0.2353"): 4, Decimal("2.9471"): 1213663}
    by_service = await call('{"tg":{"0":{"country":6,"price":0.1,"retail_price":0.2,"count":1}},'
                            '"wa":{"0":{"country":7,"price":0.1,"retail_price":0.2,"count":1}}}',
                            "get_top_countries_by_service")
    assert {(r.service, r.country) for r in by_service} == {("tg", 6), ("wa", 7)}
    arr = await call('[{"physicalTotalCount":7933,"retail_price":0.2,"country":6,"price":0.045,"count":5477}]',
                     "get_top_countries_by_service", service="tg")
    assert arr[0].count == 5477


async def test_operators_prices_countries_services() -> None:
    ops = await call('{"status":"success","countryOperators":{"0":["beeline","megafon"],"196":["maxx"]}}',
                     "get_operators")
    assert ops == {0: ["beeline", "megafon"], 196: ["maxx"]}
    prices = await call('{"170":{"tg":{"cost":0.45,"count":2369,"physicalCount":0}},"":{"tg":{"cost":"0.2500","count":1}}}',
                        "get_prices")
    assert prices[170]["tg"].cost == Decimal("0.45") and list(prices) == [170]
    assert await call("{}", "get_prices", service="tg") == {}
    countries = await call('{"0":{"id":0,"rus":"Россия","eng":"Russia","chn":"俄罗斯","visible":1,"retry":1,'
                           '"rent":1,"multiService":1}}', "get_countries")
    assert countries[0].eng == "Russia" and countries[0].multi_service is True
    bare = await call('[{"id":2,"rus":"Казахстан","eng":"Kazakhstan","chn":"x","visible":1,"retry":1},'
                      '{"eng":"junk row without id"}]', "get_countries", provider="herosms")
    assert list(bare) == [2]
    services = await call('{"status":"success","services":[{"code":"tg","name":"Claude "}]}', "get_services_list")
    assert services[0].code == "tg" and services[0].name == "Claude"
    verification = await call('{"tg":{"2":{"count":10,"price":"0.5"}}}', "get_prices_verification")
    assert verification["tg"][2].price == Decimal("0.5")
    shares = await call('[{"country":2,"share":50,"rate":50}]', "get_list_of_top_countries_by_service", service="tg")
    assert shares[0].share == 50


async def test_calls_and_extra() -> None:
    incoming = await call('{"status":"2","phone":false}', "get_incoming_call_status", 1)
    assert incoming.status is IncomingCallState.NEW and incoming.phone is None
    assert await call('{"result":"OK"}', "parse_call", 1, new_lang="en") is True
    task = await call('{"status":"success","msg":"queued"}', "create_task_for_call", 1, phone="7900")
    assert task.message == "queued"
    calls = await call('{"77":{"date":"2022-01-01 10:00:00","phoneFrom":"7900","status":"wait"}}', "get_outgoing_calls")
    assert calls[0].task_id == "77" and calls[0].phone_from == "7900"
    extra = await call("{'status': 'success', 'cost':200}".replace("'", '"'), "check_extra_activation", 1)
    assert extra.cost == 200
    additional = await call("ADDITIONAL:123:79001112233", "get_additional_service", 1, service="tg")
    assert additional.activation_id == 123
    renewed = await call("ACCESS_NUMBER:124:79001112233", "get_extra_activation", 1)
    assert renewed.phone_number == "79001112233"
    multi = await call('[{"phone":"79001","activation":"555","service":"tg"},{"phone":"79001","activation":556,'
                       '"service":"wa"}]', "get_multi_service_number", multi_service=["tg", "wa"])
    assert [(m.activation_id, m.service) for m in multi] == [(555, "tg"), (556, "wa")]


async def test_legacy_actions() -> None:
    full = await call("FULL_SMS:Your code: 1234, valid: 5 min", "get_full_sms", 1)
    assert full.status is StatusCode.STATUS_OK and full.text == "Your code: 1234, valid: 5 min"
    waiting = await call("STATUS_WAIT_CODE", "get_full_sms", 1)
    assert waiting.text is None
    qiwi = await call('{"status":"SUCCESS","wallet":79001,"comment":"x","upToDate":"y"}', "get_qiwi_requisites")
    assert qiwi.wallet == "79001"
    product = await call('{"status":"success","key":"F5qrz","manual":"Software download link:"}',
                         "buy_partner_product", product_id=1)
    assert product.key == "F5qrz"


async def test_rent_actions() -> None:
    services = await call('{"countries":{"0":2},"operators":{"0":"aiva","1":"any"},"services":{"full":{"cost":42.93,'
                          '"quant":20}},"currency":840}', "get_rent_services_and_countries")
    assert services.countries == [2] and services.services["full"].cost == Decimal("42.93")
    rent = await call('{"status":"success","phone":{"id":1049,"endDate":"2020-01-31T12:01:52","number":"79959707564"}}',
                      "get_rent_number", service="tg")
    assert rent.id == 1049 and rent.number == "79959707564"
    status = await call('{"status":"success","quantity":"2","values":{"0":{"phoneFrom":"79180230628","text":"5",'
                        '"service":"ot","date":"2020-01-30 14:31:58"},"1":{"phoneFrom":"79180230628","text":"4",'
                        '"service":"ot","date":"2020-01-30 14:04:16"}}}', "get_rent_status", 1049)
    assert status.quantity == 2 and [v.text for v in status.values] == ["5", "4"]
    assert await call('{"status":"success"}', "set_rent_status", 1049, 1) is None
    rents = await call('{"status":"success","values":{"0":{"id":"12345","phone":"79181234567"}}}', "get_rent_list")
    assert rents[0].id == 12345
    price = await call('{"status":"success","price":6.33,"currency":840}', "get_continue_rent_price_number", 1,
                       rent_time=4)
    assert price.price == Decimal("6.33")
    extended = await call('{"status":"success","phone":{"id":1050,"endDate":"2020-01-31T16:01:52","number":"7995"}}',
                          "continue_rent_number", 1049, rent_time=4)
    assert extended.id == 1050


async def test_herosms_extras() -> None:
    assert await call("", "finish_activation", 1, status=204, provider="herosms") is None
    assert await call("", "cancel_activation", 1, status=204, provider="herosms") is None
    body = ('{"data":[{"id":"3416693217","phoneFrom":"Telegram","code":"123456","text":"Telegram code 123456",'
            '"service":"tg","date":"2026-02-16T12:36:59+03:00","type":"sms"},{"id":"3416693218","phoneFrom":'
            '"213421421431","code":null,"text":null,"service":"tg","date":"2026-02-16T12:36:59+03:00","type":"call"}],'
            '"meta":{"total":2,"service":"tg"}}')
    sms = await call(body, "get_all_sms", 1, provider="herosms")
    assert [m.type for m in sms] == ["sms", "call"] and sms[1].code is None


@pytest.mark.parametrize(("dialect", "name"), [("herosms", "size"), ("sms-activate", "limit")])
async def test_history_pages_by_each_dialects_own_name(dialect: str, name: str) -> None:
    """FACTS §9 [HERO-LIVE]: HeroSMS pages getHistory by `size`, the classic protocol by `limit`;
    the client sends each dialect its own name."""
    sim = Simulator(provider=dialect, codes=CodeSchedule.never())
    sent: list[httpx.URL] = []
    inner = sim.transport()

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.url)
            return await inner.handle_async_request(request)

    async with SMSActivate(sim.api_key, provider=dialect, transport=Recording(), rate_limit=None) as client:
        for _ in range(3):
            await client.get_number_v2(service="tg", country=2)
        rows = await client.get_history(limit=1)
    assert len(rows) == 1
    assert sent[-1].params.get(name) == "1" and len(sent[-1].params.get_list("limit" if name == "size" else "size")) == 0


async def test_prices_extended_and_continue_rent_info_shapes() -> None:
    """SA-DOC25's two actions beyond API.md's list: getPricesExtended and continueRentInfo."""
    extended = await call('{"6":{"tg":{"cost":0.3,"count":120,"freePriceMap":{"0.3":20,"0.45":120}}}}',
                          "get_prices_extended", service="tg", free_price=True)
    assert extended[6]["tg"].cost == Decimal("0.3")
    assert extended[6]["tg"].free_price_map == {Decimal("0.3"): 20, Decimal("0.45"): 120}
    info = await call('{"status":"success","price":6.33,"currency":840,"hours":4,"history":{"0":{"createDate":'
                      '"2024-10-07 12:10:47","price":"101.9","hours":4}}}', "continue_rent_info", 1049, hours=4)
    assert info.price == Decimal("6.33") and info.hours == 4 and info.currency == 840
    assert info.history[0].price == Decimal("101.9") and info.history[0].create_date == dt.datetime(2024, 10, 7, 12, 10, 47)
    bare = await call('{"status":"success","price":"6.33","currency":840,"hours":4}', "continue_rent_info", 1, hours=4)
    assert bare.history == []


@pytest.mark.parametrize("dialect", ["sms-activate", "herosms"])
async def test_prices_extended_and_continue_rent_info_against_the_simulator(dialect: str) -> None:
    sim = Simulator(provider=dialect, codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, provider=dialect, transport=sim.transport(), rate_limit=None) as client:
        tiers = await client.get_prices_extended(service="tg", country=2, free_price=True)
        price = tiers[2]["tg"]
        # [LIVE HeroSMS] the tiers start below the regular price, which is one of them
        assert price.free_price_map and min(price.free_price_map) < price.cost in price.free_price_map
        rent = await client.get_rent_number(service="tg", rent_time=4, country=2)
        await client.continue_rent_number(rent.id, rent_time=4)
        info = await client.continue_rent_info(rent.id, hours=8, need_history=True)
        assert info.hours == 8 and info.price == (await client.get_continue_rent_price_number(rent.id, rent_time=8)).price
        assert [extension.hours for extension in info.history] == [4]
        with pytest.raises(InvalidArgumentError):
            await client.continue_rent_info(rent.id, hours=1)  # 2 to 1344 hours, refused before any request


@pytest.mark.parametrize(("name", "keywords"), [("get_number", {"service": "tg"}), ("get_number_v2", {"service": "tg"}),
                                                 ("get_numbers_status", {})])
async def test_herosms_purchase_without_country_is_refused_before_sending(name: str, keywords: dict[str, Any]) -> None:
    """HeroSMS has no country 0, the classic default (FACTS §10), and answers 422 without one
    ([RUSTX-HERO], [HERO-TR]): the client says so itself instead of buying whatever a default gives."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="ACCESS_NUMBER:1:79000000000")

    async with mock_client(handler, provider="herosms") as client:
        with pytest.raises(InvalidArgumentError, match="needs country on provider 'herosms'") as refused:
            await getattr(client, name)(**keywords)
    assert sent == []
    wire = {"get_number": "getNumber", "get_number_v2": "getNumberV2", "get_numbers_status": "getNumbersStatus"}[name]
    assert refused.value.action == wire  # the action it refused
