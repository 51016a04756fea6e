"""Decoding one HTTP answer: the single place where error answers become typed exceptions.

An answer is either a text answer (``PREFIX:payload``, split at the first ``:`` only, since
codes and SMS texts contain colons) or a JSON document. Errors arrive as plain tokens with HTTP
200, as ``{"status":"error"|"false", "message"|"msg"|"error": CODE}`` JSON, or as the HeroSMS
``{"title","details","info"}`` envelope with a real HTTP status — all are handled here, whatever
the provider, because providers mix them.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._exceptions import (
    KNOWN_ERROR_CODES,
    APIError,
    BadRequestError,
    BadResponseError,
    RateLimitedError,
    ServerError,
    TruncatedResponseError,
    error_for_code,
    excerpt,
)

__all__ = ["Answer", "TextAnswer", "decode_answer", "loads_plain", "parse_retry_after"]

_fast_loads: Callable[[bytes], Any] | None
try:  # the ``speed`` extra: a JSON reader in Rust, for the largest answers that carry no money (the scan)
    from orjson import loads as _orjson_loads

    _fast_loads = _orjson_loads
except ImportError:  # pragma: no cover - the extra is installed where tests run; the fallback is tested apart
    _fast_loads = None


def loads_plain(data: bytes) -> Any:
    """``json.loads(data)``, by orjson where it is installed: the same value for every document, but
    for integers past 64 bits, which orjson reads as floats — a reader of this must take no such
    number at its word (the scan refuses an id that is not an integer and confirms a code that is not
    a string or an integer by getStatus). What orjson refuses that ``json`` reads (NaN, lone
    surrogates, UTF-16) is read by ``json``, which also decides what is malformed."""
    if _fast_loads is not None:
        try:
            return _fast_loads(data)
        except ValueError:  # orjson.JSONDecodeError
            pass
    return json.loads(data)

_CODE_LIKE = re.compile(r"^[A-Z][A-Z0-9_]*( [A-Z0-9_]+)?$")
_SENTENCE = re.compile(r"^[A-Za-z][A-Za-z0-9 ,.'()/-]{2,200}$")
_HTML = re.compile(rb"^\s*<|<html|<body|<!doctype", re.IGNORECASE)
_RATE_BLOCK_PAGE = re.compile(rb"error(?: code)?:?\s*1020", re.IGNORECASE)


@attrs.frozen
class TextAnswer:
    """A text answer: ``token`` before the first ``:``, ``payload`` after it (``None`` if no ``:``)."""

    token: str
    payload: str | None
    raw: str


#: A decoded answer: a :class:`TextAnswer`, parsed JSON (floats as ``Decimal``), or ``None`` (empty 2xx).
Answer = Any


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _code_of(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _json_error(doc: Any, status_code: int, action: str, retry_after: float | None) -> APIError | None:
    if not isinstance(doc, Mapping):
        return None
    info = doc.get("info")
    info = info if isinstance(info, Mapping) else ({"value": info} if info is not None else {})
    title = _code_of(doc.get("title"))
    if title is not None and ("details" in doc or status_code >= 400):
        details = doc.get("details")
        return error_for_code(
            title,
            details=details if isinstance(details, str) and details else None,
            info=info,
            action=action,
            status_code=status_code,
            retry_after=retry_after,
        )
    status = doc.get("status")
    if status in ("error", "false", False):
        message = _code_of(doc.get("message")) or _code_of(doc.get("msg")) or _code_of(doc.get("error"))
        if message is None:
            return APIError(f"error answer {excerpt(json.dumps(doc, default=str))}", action=action, status_code=status_code)
        if _CODE_LIKE.match(message):
            return error_for_code(message, info=info, action=action, status_code=status_code, retry_after=retry_after)
        # {"status":"false","msg":"service is incorrect"}: a human sentence about a bad filter.
        return BadRequestError(message, code="BAD_REQUEST", action=action, details=message, info=info, status_code=status_code)
    return None


def _status_error(status_code: int, body: bytes, action: str, retry_after: float | None) -> APIError | None:
    if status_code == 429:
        return RateLimitedError(
            f"rate limited; got {excerpt(body)}", code="RATE_LIMIT", action=action, status_code=429, retry_after=retry_after
        )
    if status_code >= 500:
        return ServerError(
            f"HTTP {status_code}; got {excerpt(body)}", code=f"HTTP_{status_code}", action=action, status_code=status_code
        )
    return None


def decode_answer(
    *,
    action: str,
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
    text_prefixes: tuple[str, ...] = (),
    allow_empty: bool = False,
    decimals: bool = True,
    typed_read: Callable[[bytes], Any] | None = None,
) -> Answer:
    """Decode one answer of ``action`` or raise the typed error it carries.

    ``text_prefixes`` are the text tokens that are success answers of this action (they win over
    the error vocabulary: ``STATUS_CANCEL`` is an answer of getStatus but an error of parseCall).
    JSON fractions are ``Decimal`` unless ``decimals`` is false (a reader that uses none).
    ``typed_read`` (the action's own reader of its usual success answer) is tried first on a 2xx JSON
    answer; when it answers ``None`` the answer is decoded here as any other.
    """
    retry_after = parse_retry_after(headers.get("retry-after"))
    stripped = body.strip()
    if not stripped:
        if 200 <= status_code < 300 and allow_empty:
            return None
        raise _status_error(status_code, body, action, retry_after) or BadResponseError(
            "empty answer", body=body, status_code=status_code, action=action
        )
    if stripped[:1] in (b"{", b"["):
        if typed_read is not None and 200 <= status_code < 300:
            typed = typed_read(stripped)
            if typed is not None:
                return typed
        try:
            doc = json.loads(stripped, parse_float=Decimal) if decimals else loads_plain(stripped)
        except (ValueError, RecursionError):
            raise _status_error(status_code, body, action, retry_after) or TruncatedResponseError(
                "truncated or malformed JSON", body=body, status_code=status_code, action=action
            ) from None
        error = _json_error(doc, status_code, action, retry_after)
        if error is not None:
            raise error
        if status_code >= 300:
            raise _status_error(status_code, body, action, retry_after) or APIError(
                f"HTTP {status_code}; got {excerpt(body)}", code=f"HTTP_{status_code}", action=action, status_code=status_code
            )
        return doc
    if status_code in (403, 429) and _RATE_BLOCK_PAGE.search(stripped[:2048]):
        # HeroSMS's rules: over 50 requests/s, "error 1020" (the edge's block page) and a 10 s block.
        raise RateLimitedError(f"rate block (error 1020); got {excerpt(body)}", code="RATE_LIMIT", action=action,
                               status_code=status_code, retry_after=retry_after)
    if _HTML.search(stripped[:512]):
        raise _status_error(status_code, body, action, retry_after) or BadResponseError(
            "an HTML page instead of an answer", body=body, status_code=status_code, action=action
        )
    text = stripped.decode("utf-8", errors="replace")
    token, colon, payload = text.partition(":")
    token = token.strip()
    answer = TextAnswer(token=token, payload=payload if colon else None, raw=text)
    if token.startswith(text_prefixes) and text_prefixes and 200 <= status_code < 300:
        return answer
    if any(prefix.startswith(token) and prefix != token for prefix in text_prefixes) and answer.payload is None:
        raise TruncatedResponseError("a cut-off answer", body=body, status_code=status_code, action=action)
    if token in KNOWN_ERROR_CODES:
        raise error_for_code(token, payload=answer.payload, action=action, status_code=status_code, retry_after=retry_after)
    status_error = _status_error(status_code, body, action, retry_after)
    if status_error is not None:
        raise status_error
    if _CODE_LIKE.match(token) and len(text) <= 300:
        # A code we do not know: still an API error the caller can catch, carrying the raw code.
        raise error_for_code(token, payload=answer.payload, action=action, status_code=status_code, retry_after=retry_after)
    if _SENTENCE.match(text):
        # Free-text errors exist (Grizzly: "The service is prohibited for sale by administration").
        raise APIError(text, code=text, action=action, status_code=status_code)
    raise BadResponseError("unexpected answer", body=body, status_code=status_code, action=action)
