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
from typing import Any, Literal

import httpx

from ._exceptions import InvalidArgumentError, ReplayMismatchError

__all__ = ["RecordingTransport", "ReplayOrder", "ReplayTransport", "load_recording", "redact_body"]

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


#: how a replay holds the requests to the recording's order
ReplayOrder = Literal["strict", "per-action", "any"]


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers from a recording, in its order (``order``):

    - ``"strict"`` (the default): each request must be the recording's next one (action and
      parameters, order ids aside) — or the one just answered, asked again (a poll: the last answer
      repeats);
    - ``"per-action"``: each request gets the next recorded answer to the same action and parameters,
      whatever came between;
    - ``"any"``: any recorded answer to the same action and parameters not used yet (else the last).

    A request the recording does not hold (there, in that order) raises :class:`ReplayMismatchError`
    at once — never retried — naming the action and each parameter that differs from the nearest
    recorded request. ``unused`` lists the recorded requests never answered (the pytest plugin's
    ``sms_replay`` fails a test that leaves any). A recording made without ``record_secrets=True``
    replays phone numbers, codes and SMS texts as the placeholders ``<phone>``, ``<code>`` and
    ``<sms text>``.
    """

    def __init__(self, exchanges: str | Path | Iterable[dict[str, Any]], *, order: ReplayOrder = "strict") -> None:
        if order not in ("strict", "per-action", "any"):
            raise InvalidArgumentError(f"order must be 'strict', 'per-action' or 'any', got {order!r}")
        records = load_recording(exchanges) if isinstance(exchanges, (str, Path)) else list(exchanges)
        self.order: ReplayOrder = order
        self._records = [record for record in records if "status" in record]
        self._keys = [_key(record["params"]) for record in self._records]
        self._used: set[int] = set()
        self._next = 0  # strict: the index of the recording's next request
        self._last: int | None = None  # strict: the one answered last (a repeated poll gets it again)
        self._queues: dict[tuple[tuple[str, str], ...], deque[int]] = defaultdict(deque)
        for index, key in enumerate(self._keys):
            self._queues[key].append(index)
        #: requests the recording could not answer (for a test to assert on)
        self.unmatched: list[dict[str, str]] = []

    @property
    def unused(self) -> list[dict[str, Any]]:
        """The recorded requests never answered (their parameters), in the recording's order."""
        return [dict(self._records[i]["params"]) for i in range(len(self._records)) if i not in self._used]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The recorded answer to this request; :class:`ReplayMismatchError` if there is none."""
        params = _params(request)
        index = self._match(_key(params))
        if index is None:
            self.unmatched.append(params)
            raise self._mismatch(params)
        self._used.add(index)
        record = self._records[index]
        return httpx.Response(record["status"], headers=record.get("headers") or {},
                              content=str(record.get("body", "")).encode(), request=request)

    def _match(self, key: tuple[tuple[str, str], ...]) -> int | None:
        if self.order == "strict":
            if self._next < len(self._keys) and self._keys[self._next] == key:
                self._last, self._next = self._next, self._next + 1
                return self._last
            if self._last is not None and self._keys[self._last] == key:
                return self._last
            return None
        queue = self._queues.get(key)
        if not queue:
            return None
        if self.order == "per-action":
            return queue.popleft() if len(queue) > 1 else queue[0]
        fresh = next((i for i in queue if i not in self._used), None)
        return fresh if fresh is not None else queue[-1]

    def _mismatch(self, params: dict[str, str]) -> ReplayMismatchError:
        action = params.get("action", "")
        sent = {k: v for k, v in params.items() if k not in _UNMATCHED}
        expected = None
        if self.order == "strict" and self._next < len(self._records):
            expected = {k: v for k, v in self._records[self._next]["params"].items() if k not in _UNMATCHED}
        candidates = [expected] if expected is not None and expected.get("action") == action else [
            {k: v for k, v in r["params"].items() if k not in _UNMATCHED}
            for r in self._records if r["params"].get("action") == action]
        if candidates:
            nearest = min(candidates, key=lambda recorded: len(_differences(sent, recorded)))
            differences = _differences(sent, nearest)
            what = ", ".join(f"{name}={got!r} (recorded {was!r})" for name, (got, was) in differences.items())
            message = f"replay: {action} differs from the nearest recorded {action}: {what or 'only in order'}"
        else:
            differences = {}
            message = f"replay: the recording holds no {action} request"
        if expected is not None:
            shown = ", ".join(f"{k}={v}" for k, v in expected.items() if k != "action")
            message += f"; the recording's next request is {expected.get('action')}({shown})"
        elif self.order == "strict":
            message += "; the recording has no request left"
        return ReplayMismatchError(message, action=action, differences=differences, expected=expected)


def _differences(sent: dict[str, str], recorded: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {name: (sent.get(name), recorded.get(name)) for name in sorted(set(sent) | set(recorded))
            if sent.get(name) != recorded.get(name)}
