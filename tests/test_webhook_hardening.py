"""The webhook receiver attacked as an adversary would (issue 25): the source check through
``serve()`` and a real aiohttp server, malformed bodies, memory under a flood of unique large
pushes, and the request count under a flood of forged pushes."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import httpx
import pytest

from smsactivate_async import SMSActivate, WaitTimeoutError
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, Simulator
from smsactivate_async.webhooks import WebhookApp

from .conftest import on_virtual_time
from .test_webhooks import SECRET, aiohttp_serving, serving

pytestmark = pytest.mark.anyio
PROVIDER_ADDRESS = "84.32.223.53"  # a documented HeroSMS source (FACTS §16)


def client_for(sim: Simulator, **options: Any) -> SMSActivate:
    return SMSActivate(sim.api_key, provider=sim.provider, transport=sim.transport(), rate_limit=None, **options)


# --- 1. serve() trusts no forwarding header, loopback included ----------------------------------------


async def test_serve_ignores_x_forwarded_for_from_loopback() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET)  # the provider's documented addresses only
        async with serving(app) as url, httpx.AsyncClient() as http:
            forged = await http.post(url, json={"activationId": 1}, headers={"X-Forwarded-For": PROVIDER_ADDRESS})
            plain = await http.post(url, json={"activationId": 1})
    assert (forged.status_code, plain.status_code) == (403, 403)
    assert app.stats.received == 0 and app.stats.rejected == 2


# --- 2. the LAST X-Forwarded-For hop, however many lines ----------------------------------------------


async def test_aiohttp_reads_the_last_forwarded_hop_across_lines() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET, trusted_proxies=["127.0.0.1"])
        async with aiohttp_serving(app) as http:
            body = json.dumps({"activationId": 1})

            async def push(*lines: str) -> int:
                headers = [("X-Forwarded-For", line) for line in lines] + [("Content-Type", "application/json")]
                return (await http.post(app.path, content=body, headers=headers)).status_code

            # HAProxy's `option forwardfor` appends its own line after the one the client forged
            forged = await push(PROVIDER_ADDRESS, "203.0.113.9")
            real = await push("203.0.113.9", PROVIDER_ADDRESS)
    assert (forged, real) == (403, 200)


async def test_asgi_reads_the_last_forwarded_hop_across_lines() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    client = client_for(sim)
    app = client.webhook_app("/sms", secret=SECRET, trusted_proxies=["127.0.0.1"])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as http:
        forged = await http.post(app.path, json={"activationId": 1},
                                 headers=[("X-Forwarded-For", PROVIDER_ADDRESS), ("X-Forwarded-For", "203.0.113.9")])
    assert forged.status_code == 403


# --- 3. a 400 for any body that is not a push, never a 500 --------------------------------------------


@pytest.mark.parametrize("body", [
    b"[" * 60_000,                                                        # RecursionError in the decoder
    json.dumps({"activationId": 1, "receivedAt": "99999999999999999999"}).encode(),  # OverflowError
    json.dumps({"activationId": 1, "receivedAt": "-99999999999999"}).encode(),
    json.dumps({"activationId": 10**400}).encode(),
    json.dumps({"activationId": 1, "country": 1e308 * 10}).encode().replace(b"Infinity", b"1e999"),
    b'{"activationId": 1, "code": ' + b"9" * 50_000 + b"}",
    b"\xff\xfe{}",
])
async def test_malformed_bodies_get_400(body: bytes) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    app = client_for(sim).webhook_app("/sms", secret=SECRET, allowed_sources=None)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as http:
        response = await http.post(app.path, content=body)
    assert response.status_code in (400, 413), response.text
    assert app.stats.received == 0


# --- 4. the memory of repeats is bounded in bytes -------------------------------------------------------


def test_twelve_thousand_unique_large_pushes_keep_little_memory() -> None:
    from .test_independent_waiters import kept_bytes

    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    app = WebhookApp(client_for(sim), path="/sms", secret=SECRET, allowed_sources=None)
    app._client.notify = lambda activation_id: None  # type: ignore[attr-defined]  # the receiver alone
    filler = "x" * 60_000
    for index in range(12_000):
        event = app_event(index, filler)
        assert app.receive(event)
    kept = kept_bytes(app._seen, stop=())
    assert len(app._seen) == 10_000 and kept < 2_500_000, kept  # was ~580 MB: the pushes themselves
    assert not app.receive(app_event(11_999, filler))  # a recent repeat is still known


def app_event(index: int, filler: str) -> Any:
    from smsactivate_async.webhooks import WebhookEvent

    return WebhookEvent(kind="activation", id=index, code=str(index), text=filler)


# --- 5. a flood of forged pushes costs no more requests than polling would --------------------------


@on_virtual_time()
async def test_a_flood_of_pushes_costs_no_more_than_polling() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), clock=LoopSimClock(), early_cancel_seconds=0)
    client = client_for(sim, poll_interval=1.0, early_cancel_window=0)
    app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=1.0)
    async with client:
        numbers = [await client.get_number_v2(service="tg", country=6) for _ in range(20)]
        before = sim.ledger.requests_for("getStatus")
        flood_seconds = 2.0

        async def wait(activation_id: int) -> None:
            with pytest.raises(WaitTimeoutError):  # nothing but forged pushes came
                await client.wait_for_code(activation_id, timeout=flood_seconds + 0.5, cancel_on_timeout=False)

        async with anyio.create_task_group() as group:
            for number in numbers:
                group.start_soon(wait, number.activation_id)
            await anyio.sleep(0.01)
            pushes = 0
            started = anyio.current_time()
            while anyio.current_time() - started < flood_seconds:
                for number in numbers:  # each push unique: a new forged code every time
                    body = json.dumps({"activationId": number.activation_id, "code": str(pushes)}).encode()
                    status, _ = await app.handle("POST", app.path, "127.0.0.1", {}, body)
                    assert status == 200
                    pushes += 1
                await anyio.sleep(0.005)
        confirmations = sim.ledger.requests_for("getStatus") - before
        for number in numbers:
            await client.set_status(number.activation_id, 8)
    # at most one confirmation per activation per poll interval (what polling each one would cost), and
    # one more at the start (a real push right after a forged one is confirmed at once)
    assert pushes > 4000
    assert confirmations <= 20 * (flood_seconds / 1.0 + 2) + 5, confirmations
    assert client._scheduler.pushes_coalesced >= pushes - confirmations - 20
    print(f"{pushes} forged pushes → {confirmations} getStatus", file=sys.stderr)
