"""The HTTP layer below httpx's client: the API key is added here, and taken out of what comes back.

httpx logs every request URL at INFO. The client's requests carry no key; this transport adds
it for the moment of sending and takes it off again, so no URL that httpx logs, stores on a
response or puts in an exception holds the secret.

A server may echo the request back (an HTML "bad request" page, a 500 page with the request line,
a redirect's ``Location``). Every answer is scrubbed here, before anything above sees it: the key,
in every form it travels in (raw, percent-encoded, HTML-escaped), is replaced by ``***`` in the
body, the headers and the reason phrase. So error messages, recordings, hooks and logs above this
layer cannot show it. Below it, httpcore logs headers at DEBUG: :func:`install_redaction` puts a
filter on each logger of the stack (a filter on a parent logger is not applied to its children's
records), masking the keys of this process and any ``api_key=…``.
"""

from __future__ import annotations

import collections
import functools
import html
import logging
import re
import urllib.parse

import httpx

from ._urls import append_query

__all__ = ["BorrowedTransport", "KeyTransport", "RedactingFilter", "Scrubber", "install_redaction", "redact"]

_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"'<>]+")
MASK = "***"

#: the keys of this process's live transports (counted: two clients may share one key), for the log filter
_LIVE_KEYS: collections.Counter[str] = collections.Counter()


#: a key shorter than this is masked only after ``api_key=``: masking a short string everywhere would
#: garble answers and logs (real providers' keys are 32 characters; tests use "k")
MIN_SCRUBBED = 8


def _forms(key: str) -> tuple[str, ...]:
    """Every spelling the key can come back in, longest first (so a form is not cut by a shorter one)."""
    if len(key) < MIN_SCRUBBED:
        return ()
    forms = {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key, safe=""), html.escape(key)}
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _forms_of(key: str) -> tuple[str, ...]:
    return _forms(key)


class Scrubber:
    """Replaces one key, in every form, in text and bytes."""

    __slots__ = ("_bytes", "_text")

    def __init__(self, key: str) -> None:
        self._text = _forms(key)
        self._bytes = tuple(form.encode() for form in self._text)

    def __repr__(self) -> str:
        return "Scrubber(***)"

    def text(self, text: str) -> str:
        for form in self._text:
            if form in text:
                text = text.replace(form, MASK)
        return _KEY_IN_TEXT.sub(r"\1" + MASK, text) if "api_key=" in text else text

    def data(self, data: bytes) -> bytes:
        for form in self._bytes:
            if form in data:
                data = data.replace(form, MASK.encode())
        if b"api_key=" in data:
            data = re.sub(rb"(api_key=)[^&\s\"'<>]+", rb"\1***", data)
        return data

    def found_in(self, data: bytes) -> bool:
        return b"api_key=" in data or any(form in data for form in self._bytes)


def redact(text: str) -> str:
    """``text`` with the keys of this process's clients and any ``api_key=…`` masked."""
    for key in list(_LIVE_KEYS):
        for form in _forms_of(key):
            if form in text:
                text = text.replace(form, MASK)
    return _KEY_IN_TEXT.sub(r"\1" + MASK, text) if "api_key=" in text else text


#: headers whose value describes the body we replace (it is decoded and may change length)
_BODY_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


class KeyTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, api_key: str) -> None:
        self._inner = inner
        self._api_key = api_key
        self._param = "api_key=" + urllib.parse.quote(api_key, safe="")  # encoded once, not per request
        self._scrubber = Scrubber(api_key)
        self._registered = True
        _LIVE_KEYS[api_key] += 1

    def __repr__(self) -> str:
        return f"KeyTransport({self._inner!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The key is on the URL only while the request is sent: httpx logs, stores on the response
        # and puts in its exceptions this same request object, after this returns.
        url = request.url
        request.url = append_query(url, self._param)  # not parsed again: the key is encoded already
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            request.url = url
        return await self._scrubbed(response)

    async def _scrubbed(self, response: httpx.Response) -> httpx.Response:
        """The answer with the key taken out of its body, headers and reason phrase."""
        try:
            body = await response.aread()  # decoded: a compressed echo is scrubbed too
        finally:
            await response.aclose()
        scrub = self._scrubber
        reason = response.extensions.get("reason_phrase", b"")
        dirty_headers = any(scrub.found_in(value) for _, value in response.headers.raw)
        if not (dirty_headers or scrub.found_in(body) or (isinstance(reason, bytes) and scrub.found_in(reason))):
            if not response.headers.get("content-encoding"):
                return response  # the common case: nothing echoed, nothing rebuilt
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS]
            return httpx.Response(response.status_code, headers=headers, content=body, extensions=response.extensions)
        headers = [(k, scrub.data(v)) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS]
        extensions = dict(response.extensions)
        if isinstance(reason, bytes):
            extensions["reason_phrase"] = scrub.data(reason)
        return httpx.Response(response.status_code, headers=headers, content=scrub.data(body), extensions=extensions)

    async def aclose(self) -> None:
        if self._registered:
            self._registered = False
            _LIVE_KEYS[self._api_key] -= 1
            if _LIVE_KEYS[self._api_key] <= 0:
                del _LIVE_KEYS[self._api_key]
        await self._inner.aclose()


class BorrowedTransport(httpx.AsyncBaseTransport):
    """A transport used by a second httpx client that must not close it (its owner still uses it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class RedactingFilter(logging.Filter):
    """Masks the keys of this process's clients (every form) and any ``api_key=…`` in a record: its
    message, and its traceback when it carries one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: logging reports it itself
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = ()
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            clean = redact(text)
            if clean != text:
                record.exc_text = clean
        return True


_FILTER = RedactingFilter()
#: every logger of the stack by name: a parent's filter does not see its children's records (httpx2 and
#: httpcore2 too: an application that moved to httpx2 aliases ``httpx`` to it, and its loggers keep their names)
_HTTPCORE_CHILDREN = ("connection", "connection_pool", "http11", "http2", "proxy", "socks")
_STACK_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2",
                  *(f"{package}.{child}" for package in ("httpcore", "httpcore2") for child in _HTTPCORE_CHILDREN),
                  "hpack", "h11", "h2", "smsactivate_async", "smsactivate_async.buying", "smsactivate_async.webhooks",
                  "smsactivate_async.simulator")
_PREFIXES = ("httpx", "httpx2", "httpcore", "httpcore2", "hpack", "h11", "h2", "smsactivate_async")


def install_redaction() -> None:
    """Put the filter on each logger of the stack (those named above, and any other of these
    packages already made)."""
    names = set(_STACK_LOGGERS)
    names.update(name for name in list(logging.Logger.manager.loggerDict)
                 if name.split(".", 1)[0] in _PREFIXES)
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
