"""The ``speed`` extra's JSON reader (orjson) gives what ``json.loads`` gives, or leaves the document to it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsactivate_async import _wire
from smsactivate_async._wire import decode_answer, loads_plain

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                     st.text(), st.text(alphabet=st.characters(codec="utf-8")))
_DOCS = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                     max_leaves=20)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_the_speed_extra_is_installed_where_the_tests_run() -> None:
    assert _wire._fast_loads is not None  # else the tests below compare json with itself


@given(_DOCS, st.booleans(), st.sampled_from([None, 2]))
def test_a_document_reads_as_json_loads_reads_it(doc: Any, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(doc, ensure_ascii=ascii_only, indent=indent).encode()
    assert _same(loads_plain(body), json.loads(body))


@pytest.mark.parametrize("body", [
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',  # json's extensions, refused by orjson
    b'["\\ud800"]',  # a lone surrogate
    '{"a": "\u00e9"}'.encode("utf-16"),  # UTF-16 with its byte order mark
    b'{"a": 1, "a": 2}',  # the last of a repeated key
    b'[1e400, -0.0, 0.1]',
])
def test_what_orjson_refuses_or_reads_its_own_way_is_read_as_json_reads_it(body: bytes) -> None:
    assert _same(loads_plain(body), json.loads(body))


def test_integers_past_64_bits_come_as_floats_with_orjson() -> None:
    """The one difference, which loads_plain's readers allow for (the scan: a float id is refused, a
    float code means "look")."""
    assert loads_plain(b"[18446744073709551615, -9223372036854775808]") == [2**64 - 1, -(2**63)]
    assert [type(n) for n in loads_plain(b"[18446744073709551616, -9223372036854775809]")] == [float, float]


@pytest.mark.parametrize("body", [b'{"a": ', b'{"a": 1} x', b"\xff\xfe\x00", b'{"a": [' * 5000])
def test_what_neither_reads_fails_as_json_fails(body: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        json.loads(body)
    with pytest.raises((ValueError, RecursionError)):
        loads_plain(body)


@pytest.mark.parametrize("fast", [True, False])
def test_the_scan_decodes_alike_with_the_extra_and_without(fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not fast:
        monkeypatch.setattr(_wire, "_fast_loads", None)
    body = b'{"status": "success", "activeActivations": [{"activationId": "7", "activationCost": 0.0608}]}'
    doc = decode_answer(action="getActiveActivations", status_code=200, body=body, headers={}, decimals=False)
    assert doc == {"status": "success", "activeActivations": [{"activationId": "7", "activationCost": 0.0608}]}
    assert type(doc["activeActivations"][0]["activationCost"]) is float
