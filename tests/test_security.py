"""Security, second pass (issue 36): the key where servers echo it, the journal's file, slow
clients on ``serve()``, hooks that raise, forged pushes."""

from __future__ import annotations

import gzip
import html
import http.server
import json
import logging
import os
import socket
import stat
import threading
import traceback
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsactivate_async import RequestEvent, RetryPolicy, SMSActivate, SMSActivateError, StoreError
from smsactivate_async._hooks import hook_failures
from smsactivate_async._transport import _FILTER
from smsactivate_async.simulator import CodeSchedule, LoopSimClock, Simulator
from smsactivate_async.simulator._transport import free_port
from smsactivate_async.webhooks import serve

from .conftest import on_virtual_time
from .test_webhooks import SECRET, serving

pytestmark = pytest.mark.anyio

KEY = "sk-Echo/Secret+9f8e7d&x=1"  # characters that travel percent-encoded and HTML-escaped
HTTPCORE = httpcore.__name__  # "httpcore2" where httpx is aliased to httpx2 (CI's job)
FORMS = (KEY, urllib.parse.quote(KEY, safe=""), urllib.parse.quote_plus(KEY, safe=""), html.escape(KEY))


def _all_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error)),
                      repr(getattr(error, "excerpt", "")), repr(vars(error))])


def _assert_clean(text: str) -> None:
    for form in FORMS:
        assert form not in text, f"the key leaked as {form!r} in {text[:300]!r}"


# --- 1. a server that echoes the request: bodies, headers, redirects, reason phrases -------------------------


def _echo(place: str, status: int, form: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url).replace(urllib.parse.quote(KEY, safe=""), form)  # as the server spells it
        line = f"GET {url} HTTP/1.1"
        if place == "html":
            return httpx.Response(status, html=f"<html><body><h1>Bad request</h1><pre>{line}</pre></body></html>")
        if place == "text":
            return httpx.Response(status, text=f"ERROR: {line}")
        if place == "json":
            return httpx.Response(status, json={"status": "error", "request": url, "key": form})
        if place == "gzip":
            return httpx.Response(status, content=gzip.compress(f"<p>{line}</p>".encode()),
                                  headers={"content-encoding": "gzip", "content-type": "text/html"})
        if place == "location":
            return httpx.Response(302, headers={"location": url})
        if place == "header":
            return httpx.Response(status, text="<html>no</html>", headers={"x-debug-request": url})
        if place == "reason":
            return httpx.Response(status, text="oops", extensions={"reason_phrase": f"Bad {url}".encode()})
        raise AssertionError(place)

    return httpx.MockTransport(handler)


PLACES = ("html", "text", "json", "gzip", "location", "header", "reason")


async def _exercise(transport: httpx.AsyncBaseTransport, record: Path) -> tuple[list[SMSActivateError], list[str]]:
    events: list[str] = []

    def hook(event: RequestEvent) -> None:
        events.append(f"{event!r} {event.error!s}")

    errors: list[SMSActivateError] = []
    async with SMSActivate(KEY, transport=transport, rate_limit=None, on_request=hook, record=record,
                           retry=RetryPolicy(attempts=2, base_delay=0, max_delay=0)) as client:
        for call in (client.get_balance(), client.get_status(123), client.get_prices(service="tg", country=0)):
            try:
                await call
            except SMSActivateError as exc:
                errors.append(exc)
    return errors, events


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("status", [200, 400, 500])
async def test_an_echoed_key_is_in_no_error_log_hook_or_recording(place: str, status: int, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    record = tmp_path / "traffic.jsonl"
    for form in FORMS:
        errors, events = await _exercise(_echo(place, status, form), record)
        assert errors, "an echo page is not an answer: every call must fail with a typed error"
        for error in errors:
            _assert_clean(_all_text(error))
        for event in events:
            _assert_clean(event)
    _assert_clean(record.read_text())
    _assert_clean("\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records))
    if place not in ("header", "reason"):  # headers other than the kept ones are not recorded
        assert "***" in record.read_text()  # the key was there, and masked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 301, 302, 400, 403, 404, 429, 500, 502, 503]),
    places=st.lists(st.sampled_from(["body", "header", "location", "reason", "retry"]), min_size=1, unique=True),
    form=st.sampled_from(FORMS),
    before=st.text(max_size=30), after=st.text(max_size=30),
    gzipped=st.booleans(),
)
async def test_fuzz_the_key_never_leaves(status: int, places: list[str], form: str, before: str, after: str,
                                         gzipped: bool, tmp_path: Path) -> None:
    """Random answers with the key in random places never let it out through errors, hooks or recordings."""
    def handler(request: httpx.Request) -> httpx.Response:
        text = f"{before}{form}{after}"
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        body = text if "body" in places else f"{before}{after}" or "x"
        if "header" in places:
            headers["x-echo"] = urllib.parse.quote(text, safe="/:?&=+%")
        if "location" in places:
            headers["location"] = "https://example.invalid/?api_key=" + urllib.parse.quote(form, safe="%")
        if "retry" in places:
            headers["retry-after"] = form
        if "reason" in places:
            extensions["reason_phrase"] = text.encode("utf-8", "replace")
        content = body.encode()
        if gzipped:
            content, headers["content-encoding"] = gzip.compress(content), "gzip"
        return httpx.Response(status, content=content, headers=headers, extensions=extensions)

    record = tmp_path / f"fuzz-{os.getpid()}-{id(handler)}.jsonl"
    errors, events = await _exercise(httpx.MockTransport(handler), record)
    for error in errors:
        _assert_clean(_all_text(error))
    for event in events:
        _assert_clean(event)
    _assert_clean(record.read_text())


class _Redirector(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", f"https://moved.invalid{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def _redirecting_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stubs/handler_api.php"
    finally:
        server.shutdown()
        server.server_close()


async def test_httpcore_child_loggers_redact_a_redirect_with_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, httpcore.http11 logs the response headers (a Location with the key in it): the filter
    must sit on that child logger, not only on ``httpcore``."""
    for name in ("", HTTPCORE, f"{HTTPCORE}.http11"):
        caplog.set_level(logging.DEBUG, logger=name)
    with _redirecting_server() as url:
        async with SMSActivate(KEY, base_url=url, rate_limit=None) as client:
            with pytest.raises(SMSActivateError) as caught:
                await client.get_balance()
    assert caught.value.code == "REDIRECT"
    assert _FILTER in logging.getLogger(f"{HTTPCORE}.http11").filters
    http11 = [r for r in caplog.records if r.name == f"{HTTPCORE}.http11"]
    assert any("receive_response_headers" in r.getMessage() for r in http11), "httpcore must have logged headers"
    _assert_clean("\n".join(r.getMessage() for r in caplog.records))
    assert any("api_key=***" in r.getMessage() for r in http11)


# --- 2. the sqlite journal's file --------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX file modes")
async def test_the_sqlite_journal_is_private(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    sim = Simulator(api_keys={KEY: 10}, codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None, store=f"sqlite:///{path}") as client:
        number = await client.get_number_v2(service="tg", country=0)
        await client.set_status(number.activation_id, 8)
        files = [tmp_path / name for name in os.listdir(tmp_path) if name.startswith("journal.db")]
        assert {p.name for p in files} >= {"journal.db", "journal.db-wal", "journal.db-shm"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX file modes")
async def test_a_journal_others_can_write_is_refused_and_a_readable_one_tightened(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.touch()
    path.chmod(0o666)
    sim = Simulator(api_keys={KEY: 10}, codes=CodeSchedule.never())
    with pytest.raises(StoreError) as caught:
        async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None, store=f"sqlite:///{path}"):
            pass
    assert caught.value.code == "STORE_INSECURE" and "chmod 600" in str(caught.value)
    assert sim.ledger.requests_for("getBalance") == 0
    path.chmod(0o644)  # ours, made by an older version: made private, not refused
    async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None, store=f"sqlite:///{path}"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a file away")
async def test_a_journal_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.touch()
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(StoreError) as caught:
        async with SMSActivate(KEY, transport=Simulator(api_keys={KEY: 1}).transport(), rate_limit=None,
                               store=f"sqlite:///{path}"):
            pass
    assert caught.value.code == "STORE_INSECURE" and "another user" in str(caught.value)


# --- 3. serve(): slow clients are cut off, connections bounded, bodies read only for the right path ---------


async def _serve(app: Any, **options: Any) -> tuple[int, anyio.abc.TaskGroup]:
    port = free_port()
    group = anyio.create_task_group()
    await group.__aenter__()
    group.start_soon(lambda: serve(app, "127.0.0.1", port, **options))
    with anyio.fail_after(5):
        while True:
            try:
                async with httpx.AsyncClient() as http:
                    await http.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                await anyio.sleep(0.02)
    return port, group


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_serve_cuts_off_slow_requests_and_bounds_connections() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=None) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None)
        port, group = await _serve(app, request_timeout=0.5, max_connections=40)
        try:
            half_header = [socket.create_connection(("127.0.0.1", port)) for _ in range(15)]
            for sock in half_header:
                sock.sendall(b"POST " + app.path.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            short_body = [socket.create_connection(("127.0.0.1", port)) for _ in range(15)]
            for sock in short_body:
                sock.sendall(b"POST " + app.path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n{")
            await anyio.sleep(0.1)
            extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # 50 > 40
            await anyio.sleep(0.2)
            over = await anyio.to_thread.run_sync(lambda: sum(_closed_by_server(s, 0.3) for s in extra))
            assert over >= 10, "connections beyond max_connections must be closed at once"
            for sock in extra:
                sock.close()
            closed = await anyio.to_thread.run_sync(
                lambda: [_closed_by_server(s, 2.0) for s in half_header + short_body])
            assert all(closed), "a request not whole within request_timeout must be cut off"
            # a real push still gets through, and a wrong path is answered before any body is read
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                ok = await http.post(app.path, json={"activationId": 1, "code": "1"})
            assert ok.status_code == 200
            def wrong_path() -> bytes:
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"POST /wrong HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
                    sock.settimeout(0.4)  # well under request_timeout: answered without waiting for the body
                    return sock.recv(1024)

            assert (await anyio.to_thread.run_sync(wrong_path)).startswith(b"HTTP/1.1 404")
            for sock in half_header + short_body:
                sock.close()
        finally:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)


async def test_serve_ending_puts_polling_back_to_its_interval() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=None,
                           poll_interval=1.0) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=30.0)
        scheduler = client._scheduler
        scheduler._last_push = scheduler._clock.now()  # pushes were arriving
        assert scheduler._interval() == 30.0
        async with serving(app):
            pass
        assert scheduler._interval() == 1.0


# --- 4. hooks that raise -----------------------------------------------------------------------------------


@on_virtual_time()
async def test_a_raising_request_hook_changes_no_outcome_and_leaves_nothing_open(
        caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(api_keys={KEY: 100}, clock=LoopSimClock(), codes=CodeSchedule.fixed(2.0))
    calls = 0

    def hook(event: RequestEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"hook broke on {event.action}")

    before = hook_failures["on_request"]
    async with SMSActivate(KEY, transport=sim.transport(), rate_limit=None, on_request=hook,
                           poll_interval=0.5) as client:
        number = await client.get_number_v2(service="tg", country=0)  # the hook raises on the purchase
        async with sim.running():
            async with client.activation(service="tg", country=0) as act:
                code = await act.wait_for_code(timeout=30)
        await client.set_status(number.activation_id, 6)  # its code came too
    assert code and calls >= 4
    assert not sim.open_activations(), "a raising hook must leave no number open"
    assert hook_failures["on_request"] - before == calls
    assert sum("hook failed (it is ignored" in r.getMessage() for r in caplog.records) <= 1  # once per kind


# --- 5. a forged push never delays the real one -------------------------------------------------------------


@on_virtual_time()
async def test_a_forged_push_does_not_delay_the_real_one() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), clock=LoopSimClock(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=None,
                           poll_interval=10.0, early_cancel_window=0) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=30.0)
        number = await client.get_number_v2(service="tg", country=6)
        got: dict[str, float] = {}

        async def wait() -> None:
            await client.wait_for_code(number.activation_id, timeout=60)
            got["at"] = anyio.current_time()

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(1.0)
            forged = json.dumps({"activationId": number.activation_id, "code": "000000"}).encode()
            assert (await app.handle("POST", app.path, None, {}, forged))[0] == 200  # confirmed: nothing there
            await anyio.sleep(2.4)
            sim.deliver_sms(number.activation_id, "Your code 424242", code="424242")
            sent = anyio.current_time()
            real = json.dumps({"activationId": number.activation_id, "code": "424242"}).encode()
            assert (await app.handle("POST", app.path, None, {}, real))[0] == 200
        assert got["at"] - sent < 0.5, f"the real push waited {got['at'] - sent:.1f} s behind a forged one"


class _Slow(httpx.AsyncBaseTransport):
    """Reads the server's state at once, answers ``delay`` later (a confirmation on the wire)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float) -> None:
        self._inner, self._delay = inner, delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        await anyio.sleep(self._delay)
        return response


@on_virtual_time()
async def test_a_push_during_a_confirmation_on_the_wire_is_confirmed_after_it() -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), clock=LoopSimClock(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, provider="herosms", transport=_Slow(sim.transport(), 0.5), rate_limit=None,
                           poll_interval=10.0, early_cancel_window=0) as client:
        app = client.webhook_app("/sms", secret=SECRET, allowed_sources=None, fallback_interval=30.0)
        number = await client.get_number_v2(service="tg", country=6)
        got: dict[str, float] = {}

        async def wait() -> None:
            await client.wait_for_code(number.activation_id, timeout=60)
            got["at"] = anyio.current_time()

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(1.0)
            forged = json.dumps({"activationId": number.activation_id, "code": "1"}).encode()
            await app.handle("POST", app.path, None, {}, forged)
            await anyio.sleep(0.1)  # the confirmation is on the wire; the code comes after it was read
            sim.deliver_sms(number.activation_id, "code 777777", code="777777")
            sent = anyio.current_time()
            real = json.dumps({"activationId": number.activation_id, "code": "777777"}).encode()
            await app.handle("POST", app.path, None, {}, real)
        assert got["at"] - sent < 3.0, f"the real push waited {got['at'] - sent:.1f} s"


# --- 2b. Redis: the ACL user the docs give is enough for every step, and confined to the library's keys ----------

ACL_RULES = ["on", ">farm-password-123", "~smsactivate:*", "resetchannels", "&smsactivate:*", "+@read", "+@write", "+@scripting",
             "+@pubsub", "+@connection", "-@dangerous", "+ping", "+info", "+cluster|slots", "+cluster|shards"]


def test_the_documented_acl_line_is_the_one_tested() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "recipes" / "many-workers.md").read_text()
    assert "ACL SETUSER farm " + " ".join(ACL_RULES).replace(">farm-password-123", ">PASSWORD") in text


async def test_a_fleet_works_as_the_documented_acl_user_and_only_on_its_keys(redis_url: str) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import NoPermissionError

    admin = aioredis.Redis.from_url(redis_url)
    await admin.acl_setuser("farm", reset=True)
    await admin.execute_command("ACL", "SETUSER", "farm", *ACL_RULES)  # type: ignore[no-untyped-call]
    await admin.set("other-app:secret", "x")
    url = redis_url.replace("redis://", "redis://farm:farm-password-123@", 1)
    sim = Simulator(api_keys={KEY: 10}, codes=CodeSchedule.fixed(0.05), early_cancel_seconds=0)
    try:
        async with SMSActivate(KEY, transport=sim.transport(), store=url, poll_interval=0.05) as client:
            async with sim.running():
                async with client.activation(service="tg", country=0) as act:
                    assert await act.wait_for_code(timeout=10)
            await client.recover()
        confined = aioredis.Redis.from_url(url)
        with pytest.raises(NoPermissionError):
            await confined.get("other-app:secret")
        await confined.aclose()
    finally:
        await admin.acl_deluser("farm")
        await admin.aclose()
    assert not sim.open_activations()
