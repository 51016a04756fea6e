"""The functions written per answer shape make exactly what the general path makes.

Rows of a long listing are structured by a function generated for their set of keys (issue 27);
the general path (one key at a time, ``cls(**kwargs)``) is the reference. For every model, random
rows in the wire's loose forms must give an equal model, or fail alike, on both.
"""

from __future__ import annotations

import datetime as dt
import inspect
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsactivate_async import _models
from smsactivate_async._convert import _GENERIC_STRUCTURERS, _shape_builder, converter, rows_structurer, structurer


def _structured(cls: Any) -> bool:
    try:
        converter.get_structure_hook(cls)  # also registers the class's reference path
    except Exception:  # read by hand in _parse (IncomingCallStatus: an enum or an int)
        return False
    return True


MODELS = sorted((cls for _, cls in inspect.getmembers(_models, inspect.isclass)
                 if attrs.has(cls) and cls.__module__ == _models.__name__ and _structured(cls)),
                key=lambda cls: cls.__name__)


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part.title() for part in rest)


WIRE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**33), st.sampled_from(["1", "0", "true", "", " 7 ", "-2", "x", "²"]),
    st.from_regex(r"\A[0-9]{1,11}\Z"), st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.sampled_from(["2026-04-26 19:57:12", "0000-00-00 00:00:00", "2026-04-26T19:57:12Z", "1700000000",
                     "2026-04-26 19:57+03", "2026-13-26 19:57:12"]),
    st.lists(st.sampled_from(["123456", 42, None]), max_size=3), st.dictionaries(st.sampled_from(["0", "1"]),
                                                                                 st.sampled_from(["a", 1]), max_size=2),
)


def _outcome(make: Any, row: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "made", make(row)
    except Exception:  # the session turns any into BadResponseError; with two bad fields the paths
        return "failed", None  # may name a different one first


@st.composite
def rows_of(draw: st.DrawFn, cls: Any) -> dict[str, Any]:
    keys = []
    for field in attrs.fields(cls):
        for key in draw(st.lists(st.sampled_from([field.name, _camel(field.name), field.name.rstrip("_")]),
                                 max_size=2, unique=True)):
            keys.append(key)
    keys += draw(st.lists(st.sampled_from(["status", "unknownKey", "0"]), max_size=2, unique=True))
    order = draw(st.permutations(keys))
    return {key: draw(WIRE_VALUES) for key in order}


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_shapes_function_agrees_with_the_general_path(cls: Any, data: st.DataObject) -> None:
    row = data.draw(rows_of(cls))
    build = _shape_builder(cls, tuple(row), converter)
    reference = _outcome(_GENERIC_STRUCTURERS[cls], row)
    if build is None:  # a required field is absent: the general path reports which
        assert reference[0] == "failed"
        return
    assert _outcome(build, row) == reference


def test_listing_rows_share_one_function_and_stay_independent() -> None:
    row_of = structurer(_models.ActiveActivation)
    rows = [{"activationId": str(10 + i), "smsCode": None, "activationCost": Decimal("0.5"),
             "activationTime": "2026-04-26 19:57:12"} for i in range(3)]
    made = [row_of(row) for row in rows]
    assert [m.activation_id for m in made] == [10, 11, 12]
    assert made[0].sms_code == [] and made[0].sms_code is not made[1].sms_code  # a fresh list each
    assert made[0].activation_time == dt.datetime(2026, 4, 26, 19, 57, 12)
    with pytest.raises(ValueError, match="positive"):  # validators still run
        row_of({"activationId": "0", "smsCode": None})


def test_shapes_per_class_are_bounded() -> None:
    from smsactivate_async import _convert

    row_of = structurer(_models.SmsInfo)
    for index in range(_convert._SHAPES_PER_CLASS + 10):  # a server inventing keys
        assert row_of({f"k{index}": 1, "code": "1234"}).code == "1234"
    assert row_of({"k_new": 1, "code": 5}).code == "5"  # beyond the bound: the general path


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rows_of_several_shapes_come_out_as_one_at_a_time(data: st.DataObject) -> None:
    """``rows_structurer`` switches function when the shape changes from one row to the next."""
    cls = _models.ActiveActivation
    shapes = data.draw(st.lists(rows_of(cls), min_size=1, max_size=3))
    rows = [dict(data.draw(st.sampled_from(shapes))) for _ in range(data.draw(st.integers(0, 8)))]
    one_by_one = [_outcome(_GENERIC_STRUCTURERS[cls], row) for row in rows]
    if any(kind == "failed" for kind, _ in one_by_one):
        with pytest.raises(Exception):  # noqa: B017 - any; the session makes it a BadResponseError
            rows_structurer(cls)(rows)
    else:
        assert rows_structurer(cls)(rows) == [made for _, made in one_by_one]
