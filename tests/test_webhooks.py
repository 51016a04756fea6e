"""Webhooks: the receiver (parsing, trust, dedupe), the scheduler's safety net, and pushes from the
simulator over loopback HTTP into waiting clients. Payload shapes: FACTS §16."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from smsactivate_async import InvalidArgumentError, SMSActivate, WebhookPayloadError
from smsactivate_async.simulator import CodeSchedule, Simulator, free_port
from smsactivate_async.webhooks import WebhookApp, WebhookEvent, parse_event, serve

from .conftest import FakeClock

pytestmark = pytest.mark.anyio

SECRET = "s3cret-token-0123456789"
SA_PUSH = {"activationId": 123456, "service": "go", "text": "Sms text", "code": "12345", "country": 2,
           "receivedAt": "2023-01-01 12:00:00"}  # [SA-DOC25]
HERO_PUSH = {"activationId": 123456, "phoneFrom": "89854", "service": "wa", "text": "Your code is 12345",
             "code": "12345", "country": 62, "receivedAt": "2026-09-08T10:15:30.000000Z"}  # [HERO-CN, HERO-TR]
RENT_PUSH = {"rentId": "26251422", "sms": {"phoneFrom": "SPORTMASTER", "text": "Код 2792",
                                           "date": "2025-06-17 16:01:10"}}  # [SA-BLOG]


# --- parsing --------------------------------------------------------------------------------------


def test_both_dialects_and_rent_parse() -> None:
    classic = parse_event(json.dumps(SA_PUSH))
    assert classic == WebhookEvent("activation", 123456, code="12345", text="Sms text", service="go", country=2,
                                   received_at=dt.datetime(2023, 1, 1, 12))  # no zone given: naive
    hero = parse_event(json.dumps(HERO_PUSH).encode())
    assert hero.phone_from == "89854" and hero.received_at == dt.datetime(2026, 9, 8, 10, 15, 30, tzinfo=dt.UTC)
    nulls = parse_event(json.dumps({**HERO_PUSH, "code": None, "text": None, "country": 0}))
    assert nulls.code is None and nulls.text is None and nulls.country == 0  # "code and text may be null"
    rent = parse_event(json.dumps(RENT_PUSH))
    assert rent.kind == "rent" and rent.id == 26251422 and rent.text == "Код 2792" and rent.phone_from == "SPORTMASTER"
    big = parse_event(json.dumps({**SA_PUSH, "activationId": "3936040355"}))
    assert big.id == 3936040355  # ids beyond 2**31, as strings too


@pytest.mark.parametrize("body", [b"", b"<html>502</html>", b"[1,2]", b'{"id": 1}', b'{"activationId": "abc"}',
                                  b'{"activationId": -4}', b'{"activationId": 1, "receivedAt": "yesterday"}',
                                  b'{"activationId": 1, "code": {"x": 1}}', b'{"rentId": 1, "sms": "text"}',
                                  b'{"activationId": 1, "receivedAt": 5}', b"\xff\xfe"])
def test_a_body_that_is_not_a_push_is_a_typed_error_that_shows_it(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        parse_event(body)
    assert info.value.code == "BAD_WEBHOOK" and isinstance(info.value.excerpt, str)


# --- the receiver over ASGI -----------------------------------------------------------------------


def client_for(sim: Simulator, **options: Any) -> SMSActivate:
    return SMSActivate(sim.api_key, provider=sim.provider, transport=sim.transport(), rate_limit=None, **options)


async def post(app: WebhookApp, body: Any, *, path: str | None = None, source: str = "188.42.218.183",
               method: str = "POST", headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(source, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hook") as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.request(method, path if path is not None else app.path, content=content,
                                  headers=headers or {})


async def test_receiver_checks_path_method_and_source_and_drops_repeats(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET)
        assert app.path == f"/sms/{SECRET}" and SECRET not in repr(app)
        assert (await post(app, SA_PUSH, path="/sms/wrong-token-0123456789")).status_code == 404
        assert (await post(app, SA_PUSH, path="/sms")).status_code == 404
        assert (await post(app, SA_PUSH, method="PUT")).status_code == 405
        # [SA-DOC25] webhooks come from 188.42.218.183 and 142.91.156.119 only
        assert (await post(app, SA_PUSH, source="203.0.113.9")).status_code == 403
        with caplog.at_level(logging.WARNING, "smsactivate_async.webhooks"):
            assert (await post(app, b"<html>oops</html>")).status_code == 400
        assert "not JSON" in caplog.text and sim.api_key not in caplog.text
        assert (await post(app, b"x" * 70_000)).status_code == 413
        first = await post(app, SA_PUSH)
        again = await post(app, SA_PUSH, source="142.91.156.119")  # the provider resends until it sees 200
        assert first.status_code == again.status_code == 200
        assert (app.stats.received, app.stats.duplicates, app.stats.rejected, app.stats.invalid) == (1, 1, 1, 2)


async def test_behind_a_proxy_the_forwarded_address_is_checked() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app(secret=SECRET, trusted_proxies=["10.0.0.2"])
        hero_ip = {"x-forwarded-for": "198.51.100.1, 84.32.223.53"}  # [HERO-CN] 84.32.223.53
        assert (await post(app, HERO_PUSH, source="10.0.0.2", headers=hero_ip)).status_code == 200
        forged = {"x-forwarded-for": "84.32.223.53, 203.0.113.9"}  # the proxy appends the real peer last
        assert (await post(app, HERO_PUSH, source="10.0.0.2", headers=forged)).status_code == 403
        # an untrusted peer's own X-Forwarded-For is ignored
        assert (await post(app, HERO_PUSH, source="203.0.113.9", headers=hero_ip)).status_code == 403
        open_app = client.webhook_app(secret=SECRET, allowed_sources=None)
        assert (await post(open_app, HERO_PUSH, source="203.0.113.9")).status_code == 200


async def test_mounted_in_a_starlette_style_router_strips_the_root_path() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None)

        async def mounted(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "root_path": "/hooks"}, receive, send)  # what Starlette's Mount passes

        transport = httpx.ASGITransport(app=mounted)
        async with httpx.AsyncClient(transport=transport, base_url="http://hook") as http:
            response = await http.post(f"/hooks/sms/{SECRET}", json=SA_PUSH)
        assert response.status_code == 200 and app.stats.received == 1


async def test_mounted_in_a_real_starlette_app() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None)

        async def health(request: Any) -> PlainTextResponse:
            return PlainTextResponse("ok")

        api = Starlette(routes=[Route("/health", health), Mount("/hooks", app=app)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://bot") as http:
            pushed = await http.post(f"/hooks/sms/{SECRET}", json=SA_PUSH)
            unmounted = await http.post(f"/sms/{SECRET}", json=SA_PUSH)
            health_ok = await http.get("/health")
    assert (pushed.status_code, unmounted.status_code, health_ok.text) == (200, 404, "ok")
    assert app.stats.received == 1


def test_bad_options_are_refused() -> None:
    client = SMSActivate("k", rate_limit=None)
    with pytest.raises(InvalidArgumentError, match="secret"):
        client.webhook_app(secret="short")
    with pytest.raises(InvalidArgumentError, match="secret"):
        client.webhook_app(secret="has/a/slash-0123456789")
    with pytest.raises(InvalidArgumentError, match="path"):
        client.webhook_app("sms", secret=SECRET)
    with pytest.raises(InvalidArgumentError, match="fallback_interval"):
        client.webhook_app(secret=SECRET, fallback_interval=0)
    generated = client.webhook_app()
    assert len(generated.path) > 20 and generated.path != client.webhook_app().path  # a fresh random token


async def test_on_event_hook_sees_each_push_once_and_cannot_break_delivery() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    seen: list[WebhookEvent] = []
    async with client_for(sim) as client:
        app = client.webhook_app(secret=SECRET, allowed_sources=None, on_event=seen.append)
        await post(app, SA_PUSH)
        await post(app, SA_PUSH)
        broken = client.webhook_app(secret=SECRET, allowed_sources=None, on_event=lambda event: 1 / 0)
        assert (await post(broken, RENT_PUSH)).status_code == 200
    assert [event.id for event in seen] == [123456]


# --- the scheduler: pushes are news, polling the safety net ------------------------------------------


async def test_polling_slows_while_pushes_arrive_and_resumes_when_they_stop() -> None:
    clock = FakeClock()
    client = SMSActivate("k", rate_limit=None, clock=clock, poll_interval=2.0)
    scheduler = client._get_scheduler()
    assert scheduler._interval() == 2.0  # no webhooks configured: as before
    client.webhook_app(secret=SECRET, fallback_interval=30.0)
    assert scheduler._interval() == 2.0  # configured, but nothing has arrived yet
    client.notify(5)
    assert scheduler._interval() == 2.0  # a push alone proves nothing (it may be forged) ...
    scheduler._last_push = clock.now()  # ... one that its getStatus bore out does
    assert scheduler.pushes_arriving and scheduler._interval() == 30.0
    clock.t += 59.0
    assert scheduler._interval() == 30.0
    clock.t += 2.0  # two fallback intervals without a push: they stopped
    assert not scheduler.pushes_arriving and scheduler._interval() == 2.0


async def test_a_forged_push_changes_nothing() -> None:
    """A push is confirmed with getStatus before any waiter sees a code."""
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim, poll_interval=0.05) as client:
        app = client.webhook_app(secret=SECRET, allowed_sources=None)
        number = await client.get_number_v2(service="tg", country=0)
        result: list[str] = []

        async def wait() -> None:
            result.append(await client.wait_for_code(number.activation_id, timeout=5))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.1)
            statuses = sim.ledger.requests_for("getStatus")
            await post(app, {**SA_PUSH, "activationId": number.activation_id, "code": "666666"})
            await anyio.sleep(0.1)
            assert result == [] and sim.ledger.requests_for("getStatus") == statuses + 1  # asked once, no code
            sim.deliver_sms(number.activation_id, "Your code is 424242")
        assert result == ["424242"]


async def test_a_push_before_the_wait_starts_is_confirmed_at_once() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim, poll_interval=3600) as client:  # polling alone would take an hour
        app = client.webhook_app(secret=SECRET, allowed_sources=None)
        number = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(number.activation_id, "Your code is 777777")
        await post(app, {**SA_PUSH, "activationId": number.activation_id, "code": "777777"})
        with anyio.fail_after(2):
            # the first scan comes at once anyway; the remembered push makes the confirmation immediate too
            assert await client.wait_for_code(number.activation_id, timeout=10) == "777777"


# --- end to end: the simulator pushes over loopback HTTP -------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: WebhookApp) -> AsyncIterator[str]:
    """``app`` on a loopback port (the library's own ``serve``); yields the URL to push to."""
    port = free_port()
    async with anyio.create_task_group() as group:
        group.start_soon(serve, app, "127.0.0.1", port)
        with anyio.fail_after(5):
            while True:
                try:
                    async with httpx.AsyncClient() as http:
                        await http.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.TransportError:
                    await anyio.sleep(0.02)
        yield f"http://127.0.0.1:{port}{app.path}"
        group.cancel_scope.cancel()


async def wait_for_all(sim: Simulator, client: SMSActivate, ids: list[int]) -> dict[int, str]:
    """Every activation's code, with the simulator running (codes and pushes), then its pushes settled."""
    codes: dict[int, str] = {}

    async def wait(activation_id: int) -> None:
        codes[activation_id] = await client.wait_for_code(activation_id, timeout=10)

    async with sim.running():
        async with anyio.create_task_group() as group:
            for activation_id in ids:
                group.start_soon(wait, activation_id)
        await settled(sim, len(ids))
    return codes


async def settled(sim: Simulator, pushes: int) -> None:
    """Until the simulator has recorded every push's try (a code found by a scan may beat its push)."""
    with anyio.fail_after(5):
        while len(sim.ledger.webhook_deliveries) < pushes:  # noqa: ASYNC110 - filled by the pump
            await anyio.sleep(0.01)


@pytest.mark.parametrize("dialect", ["sms-activate", "herosms"])
async def test_pushed_codes_cost_one_getstatus_each(dialect: str) -> None:
    sim = Simulator(provider=dialect, codes=CodeSchedule.within(0.2, 0.6))
    async with client_for(sim, poll_interval=0.05) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=30)
        async with serving(app) as url:
            sim.webhook_url = url
            numbers = [await client.get_number_v2(service="tg", country=2) for _ in range(20)]
            before = {action: sim.ledger.requests_for(action) for action in ("getStatus", "getActiveActivations")}
            codes = await wait_for_all(sim, client, [n.activation_id for n in numbers])
            from_rows = client._get_scheduler().row_deliveries
    assert codes == {n.activation_id: sim.activations[n.activation_id].last_code for n in numbers}
    # one confirming getStatus per code (or none, where a scan before the first push saw it exactly)
    assert sim.ledger.requests_for("getStatus") - before["getStatus"] + from_rows == 20
    # once pushes arrive the scan slows to the fallback interval (30 s): none after the first push
    first_push = sim.ledger.webhook_deliveries[0][0]
    scans = [r.at for r in sim.ledger.requests if r.action == "getActiveActivations"]
    assert len(scans) - before["getActiveActivations"] >= 1 and all(at <= first_push + 0.06 for at in scans)
    assert app.stats.received == 20


async def test_dropped_pushes_cost_latency_never_a_code() -> None:
    # half the pushes lost for good (no resend, as sms.online does): polling at the fallback finds them
    sim = Simulator(codes=CodeSchedule.within(0.05, 0.3), webhook_drop_rate=0.5, webhook_retries=1, seed=3)
    async with client_for(sim, poll_interval=0.05) as client:
        app = client.webhook_app(secret=SECRET, allowed_sources=None, fallback_interval=0.3)
        async with serving(app) as url:
            sim.webhook_url = url
            numbers = [await client.get_number_v2(service="tg", country=0) for _ in range(30)]
            codes = await wait_for_all(sim, client, [n.activation_id for n in numbers])
    lost = sum(1 for _, _, status in sim.ledger.webhook_deliveries if status == 0)
    assert 5 < lost < 25 and app.stats.received == 30 - lost
    assert len(codes) == 30 and all(codes[n.activation_id] == sim.activations[n.activation_id].last_code for n in numbers)


async def test_rent_push_wakes_its_waiter() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim, poll_interval=3600) as client:  # only the push can end this wait in time
        app = client.webhook_app(secret=SECRET, allowed_sources=None, fallback_interval=3600)
        async with serving(app) as url:
            rent = await client.get_rent_number(service="tg", rent_time=4, country=0, url=url)
            async with sim.running(), anyio.create_task_group() as group:
                got: list[str | None] = []

                async def wait() -> None:
                    got.append((await client.wait_for_rent_sms(rent.id, timeout=5)).text)

                first_look = anyio.Event()
                client._session.add_hook(lambda event: first_look.set() if event.action == "getRentStatus" else None)
                group.start_soon(wait)
                await first_look.wait()  # its first look found nothing
                sim.deliver_rent_sms(rent.id, "Код 2792")  # the next look is 10 s away: only the push helps
    assert got == ["Код 2792"] and app.stats.received == 1


@contextlib.asynccontextmanager
async def aiohttp_serving(app: WebhookApp) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` behind the aiohttp adapter on a real aiohttp server on loopback; an HTTP client to it."""
    pytest.importorskip("aiohttp")
    from aiohttp import web

    from smsactivate_async.webhooks import aiohttp_handler

    web_app = web.Application()
    web_app.router.add_post("/sms/{token}", aiohttp_handler(app))
    runner = web.AppRunner(web_app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


async def test_aiohttp_adapter() -> None:
    sim = Simulator(codes=CodeSchedule.never())
    async with client_for(sim) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=["127.0.0.1"])
        async with aiohttp_serving(app) as http:
            ok = await http.post(app.path, json=SA_PUSH)
            bad = await http.post(app.path, content=b"nope")
            wrong = await http.post("/sms/not-the-secret-000000", json=SA_PUSH)
    assert (ok.status_code, bad.status_code, wrong.status_code) == (200, 400, 404) and app.stats.received == 1


# --- the simulator's delivery: FACTS §16 ----------------------------------------------------------


def test_simulator_retry_schedule_per_dialect() -> None:
    hero = Simulator(provider="herosms")
    delays = [hero._webhook_retry_delay() for _ in range(50)]
    assert hero.webhook_retries == 8 and min(delays) >= 20 and max(delays) <= 30  # [HERO-CN] 7+ every 20-30 s
    classic = Simulator()
    assert classic.webhook_retries == 8 and classic._webhook_retry_delay() * 8 == 7200  # [SA-DOC25] 8 in 2 h
    assert Simulator(webhook_retry_delay=0.1)._webhook_retry_delay() == 0.1


async def test_simulator_times_out_a_slow_receiver_and_reorders() -> None:
    port = free_port()
    arrivals: list[int] = []
    slow = {"first": True}

    async def receiver(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = json.loads((await receive())["body"])
        if slow["first"]:
            slow["first"] = False
            await anyio.sleep(1.0)  # beyond the simulator's timeout: a failed try, tried again
        arrivals.append(body["activationId"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn's own flag
            await anyio.sleep(0.01)
        sim = Simulator(codes=CodeSchedule.never(), webhook_url=f"http://127.0.0.1:{port}/", webhook_timeout=0.2,
                        webhook_retry_delay=0.1, webhook_reorder=0.3, seed=7)
        ids = [int((await client_for(sim).get_number(service="tg", country=0)).activation_id) for _ in range(12)]
        async with sim.running():
            for activation_id in ids:
                sim.deliver_sms(activation_id, "Your code is 111111")
            with anyio.fail_after(5):
                while len(set(arrivals)) < len(ids):  # noqa: ASYNC110 - filled by the receiver
                    await anyio.sleep(0.02)
        server.should_exit = True
    statuses = [status for _, _, status in sim.ledger.webhook_deliveries]
    assert statuses.count(0) >= 1  # the slow first try timed out and was tried again
    assert set(arrivals) == set(ids) and [a for a in arrivals if a in ids] != sorted(ids)  # overtaken


def test_cli_webhook_prints_each_push_confirmed() -> None:
    import os
    import subprocess
    import sys
    import time

    from smsactivate_async.simulator import serve_in_thread

    sim = Simulator(codes=CodeSchedule.never())
    port = free_port()
    with serve_in_thread(sim) as url:
        number = httpx.get(url, params={"api_key": sim.api_key, "action": "getNumber", "service": "tg", "country": 0})
        activation_id = int(number.text.split(":")[1])
        sim.deliver_sms(activation_id, "Your code is 135790")
        process = subprocess.Popen(
            [sys.executable, "-m", "smsactivate_async", "--base-url", url, "--json", "webhook", "--host", "127.0.0.1",
             "--port", str(port), "--secret", SECRET, "--any-source"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SMSACTIVATE_API_KEY": sim.api_key})
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    pushed = httpx.post(f"http://127.0.0.1:{port}/sms/{SECRET}",
                                        json={**SA_PUSH, "activationId": activation_id, "code": "135790"})
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and process.poll() is None, process.stderr
                    time.sleep(0.1)
            assert pushed.status_code == 200
            assert process.stdout is not None
            raw = process.stdout.readline()
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
    assert raw, stderr  # what the receiver said, if it printed nothing
    line = json.loads(raw)
    assert line == {"kind": "activation", "id": activation_id, "pushed_code": "135790", "text": "Sms text",
                    "confirmed": {"status": "STATUS_OK", "code": "135790"}}
    assert sim.api_key not in stderr and f"/sms/{SECRET}" in stderr  # the path to register, never the key
