"""The HTTP layer below httpx's client: the API key is added here and nowhere else.

httpx logs every request URL at INFO. The client's requests carry no key; this transport adds
it for the moment of sending and takes it off again, so no URL that httpx logs, stores on a
response or puts in an exception holds the secret.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

import httpx

__all__ = ["BorrowedTransport", "KeyTransport", "RedactingFilter", "install_redaction", "redact"]

_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"'>]+")


def redact(text: str) -> str:
    return _KEY_IN_TEXT.sub(r"\1***", text)


class KeyTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, api_key: str) -> None:
        self._inner = inner
        self._api_key = api_key
        self._param = "api_key=" + urllib.parse.quote(api_key, safe="")  # encoded once, not per request

    def __repr__(self) -> str:
        return f"KeyTransport({self._inner!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The key is on the URL only while the request is sent: httpx logs, stores on the response
        # and puts in its exceptions this same request object, after this returns.
        url = request.url
        # appended to the URL's text: a third less CPU than copy_add_param's re-encoding of the query
        request.url = httpx.URL(f"{url}{'&' if url.query else '?'}{self._param}")
        try:
            return await self._inner.handle_async_request(request)
        finally:
            request.url = url

    async def aclose(self) -> None:
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
    """Defence in depth: masks ``api_key=…`` in any record of the loggers it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg = redact(message)
            record.args = ()
        return True


_FILTER = RedactingFilter()


def install_redaction() -> None:
    for name in ("httpx", "httpcore", "smsactivate_async"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
