"""Request URLs built on a base URL parsed once (``_urls.py``) are the URLs httpx makes of their text."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsactivate_async import _urls
from smsactivate_async._urls import append_query, with_query

BASES = ["http://127.0.0.1:8080/stubs/handler_api.php", "https://api.example.com/stubs/handler_api.php?lang=en",
         "http://[::1]:9000/h.php", "https://xn--e1afmkfd.xn--p1ai/api/handler_api.php", "http://h/p?"]

wires = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=40), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(BASES), wire=wires, key=st.text(min_size=1, max_size=40))
def test_a_query_appended_to_a_parsed_url_is_what_httpx_parses_from_its_text(base: str, wire: dict[str, str],
                                                                             key: str) -> None:
    """What the session sends (the base URL, its query, then the key below httpx) is, field by field, what
    httpx makes of the same URL written out — whatever the names and values (any Unicode, ``&``, ``=``,
    ``#``, ``%``, spaces)."""
    query = urllib.parse.urlencode(wire)
    param = "api_key=" + urllib.parse.quote(key, safe="")
    made = append_query(append_query(httpx.URL(base), query), param)
    separator = "" if base.endswith("?") else "&" if "?" in base else "?"
    text = f"{base}{separator}{query}&{param}"
    parsed = httpx.URL(text)
    assert made == parsed and str(made) == str(parsed) and made.raw_path == parsed.raw_path
    assert (made.scheme, made.host, made.port, made.query) == (parsed.scheme, parsed.host, parsed.port, parsed.query)
    expected = urllib.parse.parse_qs(f"{httpx.URL(base).query.decode()}&{query}&{param}")
    assert urllib.parse.parse_qs(made.query.decode()) == expected


@pytest.mark.parametrize("replacing", [True, False])
def test_the_public_way_gives_the_same_url(monkeypatch: pytest.MonkeyPatch, replacing: bool) -> None:
    """Where httpx's parsed URL is not the named tuple it is today, the public ``copy_with`` is taken."""
    monkeypatch.setattr(_urls, "_REPLACING", replacing)
    url = append_query(httpx.URL("http://h:81/p.php?x=1"), "action=getStatus&id=5")
    assert str(url) == "http://h:81/p.php?x=1&action=getStatus&id=5" and url.raw_path == b"/p.php?x=1&action=getStatus&id=5"
    assert str(with_query(httpx.URL("http://h/p?old=1"), "a=%D0%B9+b")) == "http://h/p?a=%D0%B9+b"


def test_a_base_url_with_a_fragment_takes_the_public_way() -> None:
    assert str(with_query(httpx.URL("http://h/p#top"), "a=1")) == "http://h/p?a=1#top"


def test_the_check_at_import_says_the_fast_way_works_here() -> None:
    assert _urls._REPLACING  # the httpx this suite runs on (and httpx2, in CI's second run)
