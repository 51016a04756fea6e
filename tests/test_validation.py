"""Bad input raises before any request is sent, as SMSActivateError and ValueError."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smsactivate_async import InvalidArgumentError, SMSActivate

pytestmark = pytest.mark.anyio



def no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a request was sent: {request.url.params.get('action')}")


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [("set_status", (1, 5), {}), ("set_status", (1, "x"), {}), ("set_status", (1, True), {}),
     ("get_number", (), {"service": ""}), ("get_number", (), {"service": "  "}), ("get_number", (), {"service": None}),
     ("get_number", (), {"service": "tg,wa"}), ("get_status", (0,), {}), ("get_status", (-5,), {}),
     ("get_status", ("abc",), {}), ("get_rent_number", (), {"service": "tg", "rent_time": 1}),
     ("get_rent_number", (), {"service": "tg", "rent_time": 1345}),
     ("continue_rent_number", (5,), {"rent_time": 0}),
     ("get_multi_service_number", (), {"multi_service": "tg,wa", "multi_forward": "1,1"}),
     ("get_multi_service_number", (), {"multi_service": "tg,wa", "multi_forward": "1"}),
     ("get_multi_service_number", (), {"multi_service": "tg,wa", "multi_forward": "2,0"}),
     ("get_number", (), {"service": "tg", "max_price": -1}), ("get_number", (), {"service": "tg", "max_price": "abc"}),
     ("get_number", (), {"service": "tg", "activation_type": 5}), ("get_number", (), {"service": "tg", "country": -1}),
     ("get_balance", (), {"unknown": 1}), ("get_number", (), {"service": "tg", "bogus": 2}),
     ("get_history", (), {"start": 0, "end": 40 * 86400}), ("get_history", (), {"limit": 500}),
     ("set_rent_status", (5, 3), {}), ("finish_activation", (5,), {}), ("wait_for_code", (0,), {"timeout": 1}),
     ("wait_for_code", (5,), {"timeout": 0}), ("wait_for_rent_sms", (5,), {"timeout": -1})],
)
async def test_rejected_before_sending(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    async with SMSActivate("k", transport=httpx.MockTransport(no_requests)) as client:
        with pytest.raises(InvalidArgumentError) as info:
            await getattr(client, method)(*args, **kwargs)
    assert isinstance(info.value, ValueError)


async def test_activation_options_validated() -> None:
    async with SMSActivate("k", transport=httpx.MockTransport(no_requests)) as client:
        with pytest.raises(InvalidArgumentError):
            client.activation(service="tg", bogus=1)
        with pytest.raises(InvalidArgumentError):
            client.activation(service="")


def test_constructor_checks() -> None:
    with pytest.raises(InvalidArgumentError):
        SMSActivate("")
    with pytest.raises(InvalidArgumentError):
        SMSActivate("k", provider="nope")
    with pytest.raises(InvalidArgumentError):
        SMSActivate("k", base_url="ftp://x")
    with pytest.raises(InvalidArgumentError):
        SMSActivate("k", timeout=0)
