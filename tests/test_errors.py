"""Error answers in both dialects, and garbage: every failure is a typed SMSActivateError."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsactivate_async import (
    PROVIDERS,
    ActivationCancelledError,
    ActivationNotFoundError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    BannedError,
    ChannelsLimitError,
    EarlyCancelDeniedError,
    InsufficientBalanceError,
    NoNumbersError,
    OrderAlreadyExistsError,
    PurchaseUncertainError,
    RateLimitedError,
    RentNotFoundError,
    RentStateError,
    ServerError,
    SMSActivateError,
    TransportError,
    TruncatedResponseError,
    WrongMaxPriceError,
)
from smsactivate_async._actions import ACTIONS

from .conftest import mock_client, on_virtual_time, replying

pytestmark = pytest.mark.anyio



async def fail(body: str | bytes, *, status: int = 200, provider: str = "sms-activate", method: str = "get_number",
               args: tuple[Any, ...] = (), content_type: str = "text/html; charset=UTF-8", **kwargs: Any) -> SMSActivateError:
    kwargs = kwargs or ({"service": "tg"} if method in ("get_number", "get_number_v2", "get_rent_number") else {})
    async with mock_client(replying(status, body, content_type), provider=provider) as client:
        with pytest.raises(SMSActivateError) as info:
            await getattr(client, method)(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("body", "cls", "code"),
    [("NO_NUMBERS", NoNumbersError, "NO_NUMBERS"), ("NO_BALANCE", InsufficientBalanceError, "NO_BALANCE"),
     ("BAD_KEY", AuthenticationError, "BAD_KEY"), ("NO_KEY", AuthenticationError, "NO_KEY"),
     ("BAD_SERVICE", BadRequestError, "BAD_SERVICE"), ("BAD_ACTION", BadRequestError, "BAD_ACTION"),
     ("WRONG_EXCEPTION_PHONE", BadRequestError, "WRONG_EXCEPTION_PHONE"),
     ("CHANNELS_LIMIT", ChannelsLimitError, "CHANNELS_LIMIT"), ("ERROR_SQL", ServerError, "ERROR_SQL"),
     ("NO_BALANCE_FORWARD", InsufficientBalanceError, "NO_BALANCE_FORWARD"),
     ("SOME_NEW_CODE", APIError, "SOME_NEW_CODE"),
     ("UNPROCESSABLE_ENTITY:service:INVALID", BadRequestError, "UNPROCESSABLE_ENTITY")],
)
async def test_classic_text_errors(body: str, cls: type[SMSActivateError], code: str) -> None:
    # A server error on a purchase is ambiguous (reconciled: see test_reliability); read it on a read.
    error = await fail(body, method="get_balance" if cls is ServerError else "get_number")
    assert type(error) is cls and error.code == code
    assert body.split(":")[0] in str(error)


async def test_wrong_max_price_and_banned_payloads() -> None:
    error = await fail("WRONG_MAX_PRICE:0.500000")
    assert isinstance(error, WrongMaxPriceError) and error.min_price == Decimal("0.500000")
    banned = await fail("BANNED:'2024-1-2 10-11-12'")
    assert isinstance(banned, BannedError) and banned.until is not None
    assert banned.until.tzinfo is not None and (banned.until.year, banned.until.minute) == (2024, 11)


async def test_free_text_error_is_catchable() -> None:
    error = await fail("The service is prohibited for sale by administration")
    assert isinstance(error, APIError) and "prohibited" in error.code


@pytest.mark.parametrize(
    ("status", "doc", "cls", "check"),
    [(401, {"title": "BAD_KEY", "details": "Unauthorized"}, AuthenticationError, None),
     (404, {"title": "NO_NUMBERS", "details": "Numbers Not Found. Try Later"}, NoNumbersError, None),
     (404, {"title": "NOT_FOUND", "details": "Activation Not Found"}, ActivationNotFoundError, None),
     (404, {"title": "BAD_ACTION", "details": "Method Not Found"}, BadRequestError, None),
     (402, {"title": "NO_BALANCE", "details": "Payment Required"}, InsufficientBalanceError, None),
     (400, {"title": "WRONG_MAX_PRICE", "details": "x", "info": {"min": 0.1234}}, WrongMaxPriceError,
      lambda e: e.min_price == Decimal("0.1234")),
     (403, {"title": "BANNED", "details": "suspended", "info": {"scope": "global", "banned_until": 1739448000,
      "retry_after_seconds": 3600, "readable_date": "2026-02-13T12:00:00+00:00"}}, BannedError,
      lambda e: e.until == dt.datetime(2026, 2, 13, 12, tzinfo=dt.UTC) and e.retry_after == 3600),
     (403, {"title": "CHANNELS_LIMIT", "details": "x", "info": {"current_threads": 0, "max_allowed": -1}},
      ChannelsLimitError, lambda e: (e.current, e.max_allowed) == (0, -1)),
     (409, {"title": "EARLY_CANCEL_DENIED", "details": "x", "info": {"minActivationTime": 120}},
      EarlyCancelDeniedError, lambda e: e.retry_after == 120),
     (409, {"title": "OTP_RECEIVED", "details": "x"}, APIError, lambda e: e.code == "OTP_RECEIVED"),
     (400, {"title": "BAD_STATUS", "details": "Wrong status code"}, BadRequestError, None),
     (500, {"title": "SERVER_ERROR", "details": "Server Gone"}, ServerError, None),
     (422, {"title": "UNPROCESSABLE_ENTITY", "details": "Validation failed", "info": {"field": "api_key"}},
      BadRequestError, lambda e: e.info["field"] == "api_key")],
)
async def test_herosms_envelope(status: int, doc: dict[str, Any], cls: type[SMSActivateError], check: Any) -> None:
    error = await fail(json.dumps(doc), status=status, provider="herosms", method="get_balance",
                       content_type="application/json")
    assert isinstance(error, cls) and error.code == doc["title"]
    assert isinstance(error, APIError) and error.status_code == status
    if check is not None:
        assert check(error)


async def test_rate_limit_with_retry_after_is_raised_when_too_long() -> None:
    handler = replying(429, '{"title":"RATE_LIMIT","details":""}', "application/json", **{"retry-after": "3600"})
    async with mock_client(handler, provider="herosms") as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_balance()
    assert info.value.retry_after == 3600


@pytest.mark.parametrize(
    ("body", "method", "cls", "code"),
    [('{"status":"error","message":"NO_ID_RENT"}', "get_rent_status", RentNotFoundError, "NO_ID_RENT"),
     ('{"status":"error","msg":"STATUS_FINISH"}', "get_rent_status", RentStateError, "STATUS_FINISH"),
     ('{"status":"error","message":"CANT_CANCEL"}', "set_rent_status", RentStateError, "CANT_CANCEL"),
     ('{"status":"error","error":"OPERATORS_NOT_FOUND"}', "get_operators", BadRequestError, "OPERATORS_NOT_FOUND"),
     ('{"status":"false","msg":"service is incorrect"}', "get_prices", BadRequestError, "BAD_REQUEST"),
     ('{"status":"error","message":"MAX_HOURS_EXCEED","info":{"max":336}}', "continue_rent_number", BadRequestError,
      "MAX_HOURS_EXCEED"),
     ('{"title":"BAD_SERVICE","details":"This service/country combination is not available"}', "get_number_v2",
      BadRequestError, "BAD_SERVICE"),
     ("ORDER_ALREADY_EXISTS", "get_number_v2", OrderAlreadyExistsError, "ORDER_ALREADY_EXISTS"),
     ("STATUS_CANCEL", "parse_call", ActivationCancelledError, "STATUS_CANCEL"),
     ("NO_ACTIVATION", "get_status", ActivationNotFoundError, "NO_ACTIVATION"),
     ("EARLY_CANCEL_DENIED", "set_status", EarlyCancelDeniedError, "EARLY_CANCEL_DENIED")],
)
async def test_json_and_token_errors(body: str, method: str, cls: type[SMSActivateError], code: str) -> None:
    args: dict[str, Any] = {
        "get_rent_status": ((5,), {}), "set_rent_status": ((5, 2), {}), "get_operators": ((), {}),
        "get_prices": ((), {"service": "zz"}), "continue_rent_number": ((5,), {"rent_time": 4}),
        "get_number_v2": ((), {"service": "tg"}), "parse_call": ((5,), {"new_lang": "en"}),
        "get_status": ((5,), {}), "set_status": ((5, 8), {}),
    }
    positional, keywords = args[method]
    error = await fail(body, method=method, args=positional, **keywords)
    assert type(error) is cls and error.code == code


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [(200, "<html><body>Bad Gateway</body></html>", BadResponseError),
     (502, "<html>Bad Gateway</html>", ServerError),
     (200, "", BadResponseError),
     (200, '{"status":"success","activeActivations":[{"activationId":', TruncatedResponseError),
     (200, '["a", "b"]', BadResponseError),
     (200, '"just a string"', BadResponseError),
     (503, "", ServerError),
     (200, "ACCESS_BALANCE:not-a-number", BadResponseError),
     (200, "x" * 5000 + "\n" + "y", BadResponseError)],
)
async def test_garbage_is_typed_and_shows_the_body(status: int, body: str, cls: type[SMSActivateError]) -> None:
    error = await fail(body, status=status, method="get_balance")
    assert isinstance(error, cls)
    if body and isinstance(error, BadResponseError):
        assert body[:20] in error.excerpt


async def test_truncated_json_at_every_byte() -> None:
    body = ('{"status":"success","activeActivations":[{"activationId":"2890928091","serviceCode":"mm",'
            '"activationCost":"10.00","smsCode":"8932"}]}')
    for cut in range(0, len(body)):
        async with mock_client(replying(200, body[:cut])) as client:
            with pytest.raises(SMSActivateError):
                await client.get_active_activations()


_ALL = [a for a in ACTIONS.values()]
_ARGS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
for _action in _ALL:
    positional = tuple(1 for p in _action.params if p.positional and p.required)
    keywords: dict[str, Any] = {}
    for _param in _action.params:
        if _param.positional or not _param.required:
            continue
        keywords[_param.name] = {"service": "tg", "multi_service": "tg,wa", "new_lang": "en", "phone": "7900",
                                 "rent_time": 4, "hours": 4, "product_id": 1}[_param.name]
    _ARGS[_action.name] = (positional, keywords)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(_ALL),
    status=st.sampled_from([200, 200, 200, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12).map(lambda v: json.dumps(v).encode()),
        st.sampled_from([b"ACCESS_NUMBER:", b"STATUS_OK", b"ACCESS_BALANCE:", b'{"status":"error"}', b'{"title":1}',
                         b'{"data":[{}]}', b'{"status":"success","phone":{}}', b"ADDITIONAL:x:y", b"FULL_SMS"]),
    ),
)
async def test_fuzz_only_typed_errors(action: Any, status: int, body: bytes) -> None:
    positional, keywords = _ARGS[action.name]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async with mock_client(handler, provider="herosms", retry=None) as client:
        from smsactivate_async import RetryPolicy

        client._session.retry = RetryPolicy(attempts=1)
        try:
            await getattr(client, action.name)(*positional, **keywords)
        except SMSActivateError:
            pass


def _documented_cases() -> list[tuple[str, str, str]]:
    return [(action.name, code, dialect) for action in ACTIONS.values() for code in action.errors
            for dialect in (("herosms",) if action.extra else ("sms-activate", "herosms"))]


@pytest.mark.parametrize(("name", "code", "dialect"), _documented_cases())
async def test_every_documented_error_in_both_dialects(name: str, code: str, dialect: str) -> None:
    """Each action's documented errors, in the shape each dialect sends them, come out typed."""
    action = ACTIONS[name]
    rent = name in ("get_rent_number", "get_rent_status", "set_rent_status", "get_rent_list", "continue_rent_number",
                    "get_continue_rent_price_number", "continue_rent_info")
    if dialect == "herosms":
        status = 429 if code == "RATE_LIMIT" else 500 if code in ("ERROR_SQL", "SERVER_ERROR", "SQL_ERROR") else 400
        body, content_type = json.dumps({"title": code, "details": "x"}), "application/json"
    elif rent:
        status, body, content_type = 200, json.dumps({"status": "error", "message": code}), "text/html"
    else:
        payload = {"BANNED": ":'2024-1-2 10-11-12'", "WRONG_MAX_PRICE": ":0.5"}.get(code, "")
        status, body, content_type = 200, code + payload, "text/html"
    positional, keywords = _ARGS[name]
    if action.wire in PROVIDERS[dialect].country_required:
        keywords = {**keywords, "country": 2}
    async with mock_client(replying(status, body, content_type), provider=dialect) as client:
        from smsactivate_async import RetryPolicy

        client._session.retry = RetryPolicy(attempts=1)
        try:
            result = await getattr(client, name)(*positional, **keywords)
        except SMSActivateError as error:
            assert error.code == code or isinstance(error, PurchaseUncertainError | TransportError)
        else:
            assert code in action.empty_on, f"{name} swallowed {code}: {result!r}"


@on_virtual_time()
async def test_rent_errors_say_which_rent_and_why() -> None:
    """Issue 42: a wrong rent id is a rent-specific not-found error; CANT_CANCEL explains the refund window."""
    from smsactivate_async import RentNotFoundError, RentStateError, SMSActivate
    from smsactivate_async.simulator import LoopSimClock, Simulator

    sim = Simulator(clock=LoopSimClock())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        with pytest.raises(RentNotFoundError) as missing:
            await client.get_rent_status(123456)
        assert missing.value.code == "NO_ID_RENT" and "no such rent" in str(missing.value)
        rent = await client.get_rent_number(service="tg", rent_time=4)
        sim.deliver_rent_sms(rent.id, "hello")  # a rent with a message is not revoked
        await anyio.sleep(21 * 60)  # past the 20-minute refund window
        with pytest.raises(RentStateError) as late:
            await client.set_rent_status(rent.id, 2)
        assert late.value.code == "CANT_CANCEL" and "20 minutes" in str(late.value)
        await client.set_rent_status(rent.id, 1)


async def test_an_empty_rent_status_is_no_error_event() -> None:
    """Issue 42: an empty poll (STATUS_WAIT_CODE for a rent with no message) is an ordinary answer:
    the request hook sees no error."""
    from smsactivate_async import RequestEvent, SMSActivate
    from smsactivate_async.simulator import Simulator

    events: list[RequestEvent] = []
    sim = Simulator()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, on_request=events.append) as client:
        rent = await client.get_rent_number(service="tg", country=0, rent_time=4)
        status = await client.get_rent_status(rent.id)
        assert status.quantity == 0 and status.values == []
    polls = [e for e in events if e.action == "getRentStatus"]
    assert polls and all(e.error is None for e in polls)
