"""The API key appears in no log record, exception (nor its causes), repr or URL shown."""

from __future__ import annotations

import logging
import traceback

import httpcore
import httpx
import pytest

from smsactivate_async import SMSActivate, SMSActivateError
from smsactivate_async.simulator import Faults, LoopSimClock, Simulator

from .conftest import on_virtual_time

pytestmark = pytest.mark.anyio

KEY = "sk-SUPER-SECRET-9f8e7d"
#: the HTTP stack's logger names: "httpx2"/"httpcore2" where an application aliased httpx to httpx2 (CI's job)
HTTPX = httpx.__name__
HTTPCORE = httpcore.__name__



def _chain(error: BaseException) -> list[BaseException]:
    seen = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@on_virtual_time()
async def test_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("", HTTPX, HTTPCORE, "smsactivate_async", "smsactivate_async.simulator"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    sim = Simulator(api_keys={KEY: 100}, clock=LoopSimClock())
    errors: list[BaseException] = []
    async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None) as client:
        assert KEY not in repr(client)
        await client.get_balance()
        number = await client.get_number_v2(service="tg", country=0)
        for fault in ("drop", "timeout", "html_5xx", "truncate", "error_sql"):
            sim.faults.inject(fault, times=10)
            try:
                await client.get_status(number.activation_id)
            except SMSActivateError as exc:
                errors.append(exc)
        for bad in (client.set_status(number.activation_id, 3), client.get_status(999)):
            try:
                await bad
            except SMSActivateError as exc:
                errors.append(exc)
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    async with SMSActivate(KEY, transport=httpx.MockTransport(refuse), rate_limit=None) as client:
        try:
            await client.get_balance()
        except SMSActivateError as exc:
            errors.append(exc)
    assert len(errors) >= 5
    for error in errors:
        for link in _chain(error):
            assert KEY not in str(link) and KEY not in repr(link)
        assert KEY not in "".join(traceback.format_exception(error))
    assert caplog.records, "logging must have produced records"
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)


async def test_httpx_logged_url_has_no_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=HTTPX)
    sim = Simulator(api_keys={KEY: 1}, faults=Faults())
    async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None) as client:
        await client.get_balance()
    messages = [r.getMessage() for r in caplog.records if r.name == HTTPX]
    assert messages and all("action=getBalance" in m and KEY not in m for m in messages)
