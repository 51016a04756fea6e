"""Request URLs without a second parse: a query appended to a URL parsed once.

httpx validates and normalises every URL it is given as text (``httpx.URL(str)``), about 40 µs a URL
— a twentieth of a loopback call's CPU, paid twice a call (the request's URL, then the key added below
httpx). The provider's base URL is parsed once; each request's URL is that parsed URL with its query
set to text already percent-encoded (``urllib.parse.urlencode`` writes only characters httpx leaves as
they are), so parsing it again would change nothing.

This sets a field of httpx's parsed URL (``URL._uri_reference``, a named tuple). Whether that works
is checked once, at import, against httpx's own parse of the same URL; where it does not (another httpx),
:func:`with_query` takes the public, slower way.
"""

from __future__ import annotations

import httpx

__all__ = ["append_query", "with_query"]


def _replaced(url: httpx.URL, query: str) -> httpx.URL:
    made = httpx.URL.__new__(httpx.URL)
    made._uri_reference = url._uri_reference._replace(query=query)
    return made


def _public(url: httpx.URL, query: str) -> httpx.URL:
    return url.copy_with(query=query.encode("ascii"))


def _replacing_works() -> bool:
    try:
        probe = httpx.URL("http://127.0.0.1:8080/stubs/handler_api.php?a=1")
        query = "a=1&b=%D0%B9+x&c=%2A~-._"
        made, parsed = _replaced(probe, query), _public(probe, query)
        return (str(made) == str(parsed) and made.raw_path == parsed.raw_path and made == parsed
                and made.host == parsed.host and made.port == parsed.port and made.query == parsed.query)
    except Exception:  # another httpx, whose URL is built otherwise
        return False


_REPLACING = _replacing_works()


def with_query(url: httpx.URL, query: str) -> httpx.URL:
    """``url`` with its query replaced by ``query``: percent-encoded ASCII, as ``urlencode`` writes it."""
    if _REPLACING and url.fragment == "":
        return _replaced(url, query)
    return _public(url, query)


def append_query(url: httpx.URL, extra: str) -> httpx.URL:
    """``url`` with ``extra`` (percent-encoded ``name=value`` pairs) after its query."""
    query = url._uri_reference.query if _REPLACING else url.query.decode("ascii")
    return with_query(url, f"{query}&{extra}" if query else extra)
