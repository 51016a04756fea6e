"""Webhooks: a receiver that feeds the client's waiters, with polling kept as the safety net.

::

    app = client.webhook_app(path="/sms", secret=SECRET)       # an ASGI application
    # FastAPI / Starlette:  api.mount("/hooks", app)            → register https://host/hooks/sms/<SECRET>
    # aiohttp (aiogram):    web_app.router.add_post("/sms/{token}", aiohttp_handler(app))
    # alone, in your loop:  task_group.start_soon(serve, app, "0.0.0.0", 8080)

What a push may do: a push is news, never a code. The receiver answers 200 at once (providers
resend otherwise: sms-activate up to 8 times in 2 hours, HeroSMS at least 7 times every 20–30 s,
FACTS §16), drops repeats, and hands the activation id to the client's scheduler, which confirms
with one ``getStatus`` before any waiter sees a code. So a forged or replayed push costs one
request and changes nothing; a lost one costs latency, because polling goes on at a slower
``fallback_interval`` while pushes arrive and at the normal interval once they stop.

Who may push: neither provider signs its webhooks. The receiver checks two things:

- an unguessable path token (``secret``): the URL you register in the provider's panel ends with
  it; any other path gets 404;
- the source address, against the addresses the provider documents (sms-activate:
  188.42.218.183, 142.91.156.119; HeroSMS: 84.32.223.53, 185.138.88.87 — ``Provider.webhook_sources``).
  Behind a reverse proxy, name it in ``trusted_proxies`` and the right-most ``X-Forwarded-For``
  address (over all of the header's lines) is checked instead; no forwarding header is trusted from
  any other peer, loopback included (``serve()`` turns uvicorn's own off); ``allowed_sources=None``
  turns the check off (the simulator on loopback, a provider that names no addresses).

A body that is not a push gets 400 and one log line (never the body's secrets, never the API key),
never a 500. Repeats are recognised by a digest (bounded memory), and the scheduler confirms at most
one push per activation per poll interval, so a flood of forged pushes costs no more than polling.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import hmac
import json
import logging
import secrets as _secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from ._convert import to_datetime, to_id, to_int
from ._exceptions import InvalidArgumentError, WebhookPayloadError
from ._hooks import call_hook

if TYPE_CHECKING:
    from ._providers import Provider
    from ._store import Kind

__all__ = ["WebhookApp", "WebhookEvent", "WebhookStats", "aiohttp_handler", "parse_event", "serve"]

log = logging.getLogger("smsactivate_async.webhooks")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MAX_BODY = 64 * 1024


@attrs.frozen
class WebhookEvent:
    """One push as the provider sent it: unconfirmed news, not a code to act on.

    ``kind`` is ``"activation"`` (``id`` an activation id) or ``"rent"`` (``id`` a rent id).
    ``received_at`` is timezone-aware where the payload names the zone (HeroSMS's ``…Z``), naive
    where it does not (sms-activate's ``"2023-01-01 12:00:00"``).
    """

    kind: Literal["activation", "rent"]
    id: int
    code: str | None = None
    text: str | None = None
    service: str | None = None
    country: int | None = None
    phone_from: str | None = None
    received_at: _dt.datetime | None = None


@attrs.define
class WebhookStats:
    """What the receiver has seen since it was made."""

    received: int = 0
    duplicates: int = 0
    invalid: int = 0
    rejected: int = 0


def _text(value: Any, field: str, body: bytes) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise WebhookPayloadError(f"webhook field {field!r} is not text", body=body)


def _when(value: Any, body: bytes) -> _dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise WebhookPayloadError("webhook time is not a string", body=body)
    try:
        # HeroSMS: ISO 8601 with Z (aware); sms-activate: "Y-m-d H:i:s" with no zone given (naive)
        return to_datetime(value)
    except (ValueError, OverflowError, OSError):  # a date out of any calendar's range too
        raise WebhookPayloadError("webhook time is not a date", body=body) from None


def _id(value: Any, field: str, body: bytes, convert: Callable[[object], int] = to_id) -> int:
    try:
        result = convert(value)
    except Exception:
        raise WebhookPayloadError(f"webhook {field} is not an id", body=body) from None
    if not 0 <= result < 2**63:  # out of any provider's range: not a push
        raise WebhookPayloadError(f"webhook {field} is out of range", body=body)
    return result


def parse_event(body: bytes | str) -> WebhookEvent:
    """A provider's push (either dialect, activation or rent) as a :class:`WebhookEvent`.

    Raises :class:`WebhookPayloadError`, which shows what came, for anything else.
    """
    raw = body.encode() if isinstance(body, str) else body
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than a push's
        raise WebhookPayloadError("webhook body is not JSON", body=raw) from None
    if not isinstance(doc, dict):
        raise WebhookPayloadError("webhook body is not a JSON object", body=raw)
    if "activationId" in doc:
        country = doc.get("country")
        return WebhookEvent(
            kind="activation",
            id=_id(doc["activationId"], "activationId", raw),
            code=_text(doc.get("code"), "code", raw) or None,
            text=_text(doc.get("text"), "text", raw),
            service=_text(doc.get("service"), "service", raw),
            country=None if country in (None, "") else _id(country, "country", raw, to_int),
            phone_from=_text(doc.get("phoneFrom"), "phoneFrom", raw),
            received_at=_when(doc.get("receivedAt"), raw),
        )
    if "rentId" in doc:  # [SA-BLOG] {"rentId": "…", "sms": {"phoneFrom", "text", "date"}}
        sms = doc.get("sms")
        if sms is not None and not isinstance(sms, dict):
            raise WebhookPayloadError("rent webhook 'sms' is not an object", body=raw)
        sms = sms or {}
        return WebhookEvent(
            kind="rent",
            id=_id(doc["rentId"], "rentId", raw),
            text=_text(sms.get("text"), "text", raw),
            phone_from=_text(sms.get("phoneFrom"), "phoneFrom", raw),
            received_at=_when(sms.get("date"), raw),
        )
    raise WebhookPayloadError("webhook body has neither activationId nor rentId", body=raw)


class WebhookTarget(Protocol):
    """What a receiver needs of the client it feeds (an :class:`SMSActivate` is one)."""

    @property
    def provider(self) -> Provider:
        """The provider preset: where its pushes come from (``webhook_sources``)."""

    def _pushed(self, kind: Kind, entry_id: int) -> None:
        """A confirmed push for this activation or rent: look at it now."""

    def webhooks_stopped(self) -> None:
        """Pushes stopped: polling goes back to its own interval."""


class WebhookApp:
    """An ASGI application receiving a provider's pushes for one client. Made by
    :meth:`SMSActivate.webhook_app`; see the module docs for mounting and trust."""

    def __init__(
        self,
        client: WebhookTarget,
        *,
        path: str = "/",
        secret: str | None = None,
        allowed_sources: Iterable[str] | Literal["provider"] | None = "provider",
        trusted_proxies: Iterable[str] = (),
        on_event: Callable[[WebhookEvent], object] | None = None,
        remember: int = 10_000,
    ) -> None:
        if secret is None:
            secret = _secrets.token_urlsafe(24)
        if len(secret) < 16 or not all(c.isalnum() or c in "-_" for c in secret):
            raise InvalidArgumentError("webhook secret must be at least 16 URL-safe characters (letters, digits, - and _)")
        if not path.startswith("/"):
            raise InvalidArgumentError(f"webhook path must start with '/', got {path!r}")
        self._client = client
        self._secret = secret
        self.path = path.rstrip("/") + "/" + secret
        """The path to register with the provider (after your host and any mount prefix)."""
        sources = client.provider.webhook_sources if allowed_sources == "provider" else allowed_sources
        self.allowed_sources: frozenset[str] | None = None if sources is None else frozenset(sources)
        self.trusted_proxies = frozenset(trusted_proxies)
        self.on_event = on_event
        self.stats = WebhookStats()
        self._seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._remember = remember

    def __repr__(self) -> str:
        return f"WebhookApp(provider={self._client.provider.name!r}, path=<secret>)"

    # --- one request, whatever serves it --------------------------------------------------------

    async def handle(self, method: str, path: str, source: str | None, headers: Mapping[str, str],
                     body: bytes) -> tuple[int, bytes]:
        """Answer one request: ``(status, body)``. The ASGI and aiohttp faces both call this."""
        refusal = self.refusal(method, path, source, headers)
        if refusal is not None:
            return refusal
        origin = self._origin(source, headers)
        if len(body) > _MAX_BODY:
            self.stats.invalid += 1
            log.warning("webhook from %s refused: body of %d bytes", origin, len(body))
            return 413, b"too large"
        try:
            event = parse_event(body)
        except WebhookPayloadError as exc:
            self.stats.invalid += 1
            log.warning("webhook from %s: %s", origin, exc.message)
            return 400, b"bad payload"
        except Exception as exc:  # whatever a body does to a parser, the sender gets a 400, never a 500
            self.stats.invalid += 1
            log.warning("webhook from %s: unreadable body (%s)", origin, type(exc).__name__)
            return 400, b"bad payload"
        self.receive(event)
        return 200, b"OK"

    def refusal(self, method: str, path: str, source: str | None, headers: Mapping[str, str]) -> tuple[int, bytes] | None:
        """The answer to a request refused on its path, method or source — known before its body is
        read, so that nobody without the secret path can make the receiver hold a body — or ``None``."""
        if not hmac.compare_digest(path.rstrip("/").encode(), self.path.encode()):
            return 404, b"not found"
        if method != "POST":
            return 405, b"POST only"
        origin = self._origin(source, headers)
        if self.allowed_sources is not None and origin not in self.allowed_sources:
            self.stats.rejected += 1
            log.warning("webhook from %s refused: not one of the provider's documented addresses", origin)
            return 403, b"forbidden"
        return None

    def receive(self, event: WebhookEvent) -> bool:
        """Hand one parsed push to the client (from your own endpoint, say). False if a repeat."""
        # A digest, not the push: the memory of repeats is bounded in bytes (16 a push), not only in count.
        key = hashlib.blake2b(repr((event.kind, event.id, event.code, event.text, event.received_at)).encode(),
                              digest_size=16).digest()
        if key in self._seen:
            self.stats.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.stats.received += 1
        self._client._pushed(event.kind, event.id)
        if self.on_event is not None:  # the user's hook must not turn a delivered push into a resend
            call_hook("on_event", self.on_event, event)
        return True

    def stopped(self) -> None:
        """The receiver stops taking pushes (its server is shutting down): the client polls at its own
        interval again at once. ``serve()`` and the app's own lifespan call this; an app mounted in
        yours (whose lifespan a mount does not run) should call it, or
        :meth:`SMSActivate.webhooks_stopped`, from your shutdown."""
        self._client.webhooks_stopped()

    def _origin(self, source: str | None, headers: Mapping[str, str]) -> str | None:
        """The peer; behind a trusted proxy, the LAST hop of ``X-Forwarded-For`` (all its lines joined:
        a proxy appends its own line after whatever the client sent)."""
        if source is not None and source in self.trusted_proxies:
            forwarded = headers.get("x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return source

    # --- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stopped()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted: Starlette keeps the prefix in `path`
            path = path[len(root):]
        headers = _joined((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers", []))
        client = scope.get("client")
        source, method = (client[0] if client else None), scope.get("method", "GET")
        answer = self.refusal(method, path, source, headers)
        if answer is None:
            body = bytearray()
            while True:
                message = await receive()
                if message.get("type") == "http.disconnect":
                    return  # the sender left (or serve() cut a slow one off): nobody to answer
                body += message.get("body", b"")
                if len(body) > _MAX_BODY or not message.get("more_body"):
                    break
            answer = await self.handle(method, path, source, headers, bytes(body))
        status, text = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]})
        await send({"type": "http.response.body", "body": text})


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name, a repeated header's lines joined in order (as one
    ``X-Forwarded-For`` list: a proxy appends its own line after the client's)."""
    headers: dict[str, str] = {}
    for raw_name, value in pairs:
        name = raw_name.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def aiohttp_handler(app: WebhookApp) -> Callable[[Any], Awaitable[Any]]:
    """An aiohttp request handler for ``app`` (aiogram's web server):
    ``web_app.router.add_post("/sms/{token}", aiohttp_handler(app))`` with ``path="/sms"``."""
    from aiohttp import web

    async def handler(request: Any) -> Any:
        headers = _joined(request.headers.items())
        answer = app.refusal(request.method, request.path, request.remote, headers)
        if answer is None:
            body = await request.content.read(_MAX_BODY + 1)
            answer = await app.handle(request.method, request.path, request.remote, headers, body)
        status, text = answer
        return web.Response(status=status, body=text, content_type="text/plain")

    return handler


async def serve(app: WebhookApp, host: str = "0.0.0.0", port: int = 8080, *, log_level: str = "warning",
                request_timeout: float = 5.0, max_connections: int = 1000) -> None:
    """Serve ``app`` alone with uvicorn in the current event loop, until cancelled
    (``pip install 'smsactivate-async[webhooks]'``).

    Facing the internet: a connection must deliver a whole request — headers and body — within
    ``request_timeout`` seconds of its first byte (a push is a few hundred bytes), or it is closed;
    at most ``max_connections`` are held at once (more are closed as they come). When it ends
    (cancelled, or the server stops), the client is told that pushes stopped
    (:meth:`SMSActivate.webhooks_stopped`), so polling goes back to its own interval at once."""
    try:
        import uvicorn
    except ImportError:
        raise InvalidArgumentError("serving webhooks needs uvicorn: pip install 'smsactivate-async[webhooks]'") from None
    if not request_timeout > 0:
        raise InvalidArgumentError(f"request_timeout must be positive, got {request_timeout!r}")
    if max_connections < 1:
        raise InvalidArgumentError(f"max_connections must be at least 1, got {max_connections!r}")
    from ._serving import bounded_h11

    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from loopback peers as the
    # source (its default allow-list), and anything that connects from loopback could pass as the provider.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off",
                                           access_log=False, server_header=False, proxy_headers=False,
                                           forwarded_allow_ips="", http=bounded_h11(request_timeout, max_connections),
                                           limit_concurrency=max_connections,
                                           timeout_keep_alive=max(1, round(request_timeout))))
    try:
        await server.serve()
    finally:
        app.stopped()
