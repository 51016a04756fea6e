"""Recording and replaying traffic: a real run as JSON lines, safe to attach to a bug report.

``SMSActivate(..., record="traffic.jsonl")`` writes every exchange — the request without the key,
the status, the headers, the body, the time it took — as one JSON object a line. The API key is
never written (the recording sits below the client but above the transport that adds the key);
phone numbers and codes are replaced by placeholders unless ``record_secrets=True``.

:class:`ReplayTransport` answers from such a file, so that a run against a real provider becomes a
regression test: each request is matched with the next recorded exchange of the same action and
parameters (the order id, which is new on every run, left out of the match).
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from ._exceptions import InvalidArgumentError

__all__ = ["RecordingTransport", "ReplayTransport", "load_recording", "redact_body"]

#: headers worth keeping: what the doctor compares (content type, rate limits, the server's name)
_KEPT_HEADERS = ("content-type", "retry-after", "server", "x-ratelimit-limit", "x-ratelimit-remaining",
                 "x-ratelimit-reset", "location")
#: parameters that differ on every run and say nothing of the answer
_UNMATCHED = frozenset({"orderId"})
_PHONE = re.compile(r"(?<![\d.])\d{9,15}(?![\d.])")
_TEXT_CODE = re.compile(r"^(STATUS_OK|STATUS_WAIT_RETRY|ACCESS_NUMBER:\d+):(.+)$", re.S)
_CODE_KEYS = frozenset({"code", "smsCode", "sms_code"})
_TEXT_KEYS = frozenset({"text", "smsText", "sms_text"})
_PHONE_KEYS = frozenset({"phoneNumber", "phone", "number", "phoneFrom"})


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(key, v) for v in value]
    if value in (None, "", [], {}):
        return value
    if key in _CODE_KEYS:
        return "<code>"
    if key in _TEXT_KEYS:
        return "<sms text>"
    if key in _PHONE_KEYS:
        return "<phone>"
    return value


def redact_body(body: str) -> str:
    """A body with its phone numbers, codes and SMS texts replaced by placeholders (JSON by key,
    text answers by their known shapes, any long run of digits as a phone)."""
    stripped = body.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(_redact_value("", json.loads(stripped)), ensure_ascii=False)
        except ValueError:
            pass
    match = _TEXT_CODE.match(stripped)
    if match:
        head = match.group(1)
        if head.startswith("ACCESS_NUMBER"):
            return f"{head}:<phone>"
        return f"{head}:<code>"
    return _PHONE.sub("<phone>", body)


def _params(request: httpx.Request) -> dict[str, str]:
    return {k: v for k, v in request.url.params.multi_items() if k != "api_key"}


class RecordingTransport(httpx.AsyncBaseTransport):
    """Writes every exchange through it to a JSON-lines file (see the module docs)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str | Path, *, secrets: bool = False) -> None:
        self._inner = inner
        self.path = Path(path)
        self._secrets = secrets
        self._file = self.path.open("a", encoding="utf-8")
        self._started = time.monotonic()

    def __repr__(self) -> str:
        return f"RecordingTransport({self._inner!r}, {str(self.path)!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the transport below, and write the exchange."""
        started = time.monotonic()
        params = _params(request)  # taken before the key is added below this transport
        record: dict[str, Any] = {"at": round(started - self._started, 3), "method": request.method,
                                  "action": params.get("action"), "params": params}
        try:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
        except httpx.TransportError as exc:
            record.update(error=type(exc).__name__, elapsed=round(time.monotonic() - started, 3))
            self._write(record)
            raise
        text = body.decode("utf-8", errors="replace")
        record.update(
            status=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS},
            body=text if self._secrets else redact_body(text),
            elapsed=round(time.monotonic() - started, 3),
        )
        if not self._secrets:
            record["params"] = {k: ("<phone>" if k == "phone" else v) for k, v in params.items()}
        self._write(record)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    async def aclose(self) -> None:
        """Close the file and the transport below."""
        self._file.close()
        await self._inner.aclose()


def load_recording(path: str | Path) -> list[dict[str, Any]]:
    """The exchanges of a recording, in order; a clear error for a file that is not one."""
    exchanges = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise InvalidArgumentError(f"{path}:{number} is not a JSON line of a recording") from None
        if not isinstance(record, dict) or "params" not in record:
            raise InvalidArgumentError(f"{path}:{number} is not an exchange of a recording")
        exchanges.append(record)
    return exchanges


def _key(params: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in params.items() if k not in _UNMATCHED))


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers from a recording: each request gets the next recorded answer to the same action and
    parameters (order ids aside). A request the recording does not hold is answered 599 with a body
    that says so, which the client reports as a typed error."""

    def __init__(self, exchanges: str | Path | Iterable[dict[str, Any]]) -> None:
        records = load_recording(exchanges) if isinstance(exchanges, (str, Path)) else list(exchanges)
        self._answers: dict[tuple[tuple[str, str], ...], deque[dict[str, Any]]] = defaultdict(deque)
        for record in records:
            if "status" in record:
                self._answers[_key(record["params"])].append(record)
        #: requests the recording could not answer (for a test to assert on)
        self.unmatched: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The recorded answer to this request (or a 599 that says none was recorded)."""
        params = _params(request)
        queue = self._answers.get(_key(params))
        if not queue:
            self.unmatched.append(params)
            return httpx.Response(599, text=f"REPLAY_MISSING: no recorded answer to {params.get('action')}",
                                  request=request)
        record = queue.popleft() if len(queue) > 1 else queue[0]  # the last answer repeats (polling)
        return httpx.Response(record["status"], headers=record.get("headers") or {},
                              content=str(record.get("body", "")).encode(), request=request)
