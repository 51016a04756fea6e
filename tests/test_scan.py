"""The scheduler's two readings of getActiveActivations agree: the sweep against the waited activations
(a client alone, one answer) says what the table of every row, compared track by track, says."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smsactivate_async import ActivationCancelledError, SMSActivateError
from smsactivate_async._parse import UnexpectedAnswer
from smsactivate_async._scan import NOTHING_SWEPT, SWEEP_ACTIVE, Row, Sweep, TypedRows, read_listing, scan_rows, sweep_rows
from smsactivate_async._waiting import _compare, _Track
from smsactivate_async._wire import decode_answer

from .conftest import mock_client

pytestmark = pytest.mark.anyio

_TRACKED = [7, 12, 4_000_000_001, 2**40]
#: the ways a row may spell a waited id, and others nobody waits on
_IDS = st.one_of(st.sampled_from(_TRACKED), st.sampled_from(_TRACKED).map(str), st.integers(1, 30),
                 st.integers(1, 30).map(str))
#: ids no reading may take (each one refuses the whole answer)
_BAD_IDS = st.sampled_from(["007", "0", " 7", "7.0", "+7", "²", "٣", "x", "-3", True, 7.0, [7], {"a": 1}])
_STATUSES = st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4", "6", "8", "99", "x"]), st.integers(0, 120))
_CODES = st.one_of(st.none(), st.just(""), st.sampled_from(["1234", "0000"]), st.integers(0, 10**6),
                   st.lists(st.sampled_from(["11", "22"]), max_size=2), st.floats(allow_nan=False))
_GOOD_ROWS = st.one_of(
    st.fixed_dictionaries({"activationId": _IDS, "activationStatus": _STATUSES, "smsCode": _CODES}),
    st.fixed_dictionaries({"activationId": _IDS}, optional={"activationStatus": _STATUSES, "smsCode": _CODES}),
)
_BAD_ROWS = st.one_of(
    st.fixed_dictionaries({"activationId": _BAD_IDS, "activationStatus": _STATUSES}),
    st.sampled_from([None, "activationId", ["activationId"], 7, {"id": "1"}]),  # not a row
)
#: an answer: good rows, and now and then one that refuses it, anywhere
_ANSWERS = st.tuples(st.lists(_GOOD_ROWS, max_size=7),
                     st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 7), _BAD_ROWS))).map(
    lambda drawn: drawn[0] if drawn[1] is None else [*drawn[0][:drawn[1][0]], drawn[1][1], *drawn[0][drawn[1][0]:]])
#: what a track may have acted on last: nothing, a quiet row (the shared tuple or an equal copy), a code
_LAST: st.SearchStrategy[Row | None] = st.one_of(
    st.none(), st.sampled_from(["1", "4", "2", "99", None]).flatmap(
        lambda status: st.sampled_from([scan_rows({"activeActivations": [{"activationId": "1", "activationStatus": status}]})[1],
                                        (status, None, True)])),
    st.tuples(st.sampled_from(["2", "4"]), st.sampled_from(["1234", "22"]), st.booleans()),
)


def _tracks(lasts: list[Row | None]) -> list[_Track]:
    tracks = []
    for activation_id, last in zip(_TRACKED, lasts, strict=False):
        track = _Track(activation_id, last_row=last)
        track.waiters.append(object())  # type: ignore[arg-type]  # somebody waits on it
        tracks.append(track)
    return tracks


def _by_sweep(tracks: list[_Track], stamps: Any, answer: Any) -> tuple[dict[int, Row], set[int]]:
    waited = {str(t.activation_id): t for t in tracks}
    sweep = sweep_rows(waited, stamps, answer)
    gone = set() if sweep.seen == len(waited) else {t.activation_id for t in tracks if t.swept != sweep.stamp}
    return {i: row for i, (_, row) in sweep.news.items()}, gone


def _by_table(tracks: list[_Track], answer: Any) -> tuple[dict[int, Row], set[int]]:
    news, gone = _compare(tracks, scan_rows(answer), set())
    return {t.activation_id: row for t, row in news}, {t.activation_id for t in gone}


@settings(max_examples=300)
# statuses outside the shared quiet rows, as a string and as a number, without a code
@example(lasts=[None, ("99", None, True), ("4", None, True)], answers=[[
    {"activationId": "7", "activationStatus": "99"}, {"activationId": 12, "activationStatus": 99, "smsCode": None},
    {"activationId": "4000000001", "activationStatus": 4}]])
@given(st.lists(_LAST, min_size=1, max_size=4), st.lists(_ANSWERS, min_size=1, max_size=3))
def test_the_sweep_says_what_the_table_of_rows_says(lasts: list[Row | None], answers: list[list[Any]]) -> None:
    """Answer after answer against the same tracks (stamps carry over, as they do tick after tick):
    the same rows are news, the same tracks are gone, and an answer one reading refuses the other
    refuses too."""
    tracks = _tracks(lasts)
    stamps = itertools.count(1)
    for rows in answers:
        answer = {"activeActivations": rows}
        try:
            expected = _by_table(tracks, answer)
        except (UnexpectedAnswer, ValueError, TypeError):
            with pytest.raises((UnexpectedAnswer, ValueError, TypeError)):
                _by_sweep(tracks, stamps, answer)
            continue
        assert _by_sweep(tracks, stamps, answer) == expected
        for track in tracks:  # the tick acts on the news: the next answer is read against it
            track.last_row = expected[0].get(track.activation_id, track.last_row)


def test_a_quiet_row_is_told_by_identity_and_a_later_row_of_one_id_wins() -> None:
    track = _Track(5)
    stamps = itertools.count(1)
    first = sweep_rows({"5": track}, stamps, {"activeActivations": [{"activationId": "5", "activationStatus": "4"}]})
    assert (first.seen, list(first.news)) == (1, [5])
    track.last_row = first.news[5][1]
    assert track.swept == first.stamp
    # the same row again is no news; a code then its retraction in one answer: the later row wins
    again = sweep_rows({"5": track}, stamps, {"activeActivations": [
        {"activationId": "5", "activationStatus": "2", "smsCode": "1234"}, {"activationId": 5, "activationStatus": "4"}]})
    assert (again.seen, again.news, again.stamp) == (1, {}, first.stamp + 1)
    assert sweep_rows({}, stamps, {"activeActivations": []}) == Sweep(first.stamp + 2, 0, {})
    # each waited activation counted once, however many rows name it
    other = _Track(6)
    both = sweep_rows({"5": track, "6": other}, stamps, {"activeActivations": [
        {"activationId": "6"}, {"activationId": "5", "activationStatus": "4"}, {"activationId": "6"}]})
    assert both.seen == 2 and track.swept == other.swept == both.stamp


def test_the_sweep_action_is_read_only_through_its_reader() -> None:
    assert SWEEP_ACTIVE.empty is not None and SWEEP_ACTIVE.empty() is NOTHING_SWEPT
    with pytest.raises(TypeError, match="sweep_action"):
        SWEEP_ACTIVE.parse({"activeActivations": []})


async def test_an_answer_read_again_after_a_bad_one_is_swept_anew() -> None:
    """A malformed answer is retried; what its sweep stamped before it failed counts for nothing: a
    number it saw that the good answer no longer lists is confirmed as gone, and the code in the good
    answer is handed over."""
    listings = [
        [{"activationId": "11", "activationStatus": "4"}, {"activationId": "12", "activationStatus": "4"},
         {"activationId": "x1", "activationStatus": "4"}],  # a bad id: the answer is refused, read again
        [{"activationId": "11", "activationStatus": "2", "smsCode": "4321"}],
    ]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        action = request.url.params["action"]
        asked.append(action)
        if action == "getActiveActivations":
            rows = listings.pop(0) if listings else [{"activationId": "11", "activationStatus": "2", "smsCode": "4321"}]
            return httpx.Response(200, json={"status": "success", "activeActivations": rows})
        assert action == "getStatus" and request.url.params["id"] == "12"
        return httpx.Response(200, text="STATUS_CANCEL")

    async with mock_client(handler, poll_interval=600.0) as client:
        scheduler = client._get_scheduler()
        scheduler._last_tick = float("inf")  # the poller never ticks: the one tick is this test's
        results: dict[int, Any] = {}

        async def wait(activation_id: int) -> None:
            try:
                results[activation_id] = await client.wait_for_code(activation_id, timeout=5, cancel_on_timeout=False)
            except ActivationCancelledError as exc:
                results[activation_id] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(wait, 11)
            group.start_soon(wait, 12)
            while scheduler.waiting < 2:
                await anyio.lowlevel.checkpoint()
            await scheduler._tick()
    assert results[11] == "4321"
    assert isinstance(results[12], ActivationCancelledError)
    assert asked[:2] == ["getActiveActivations", "getActiveActivations"] and asked.count("getStatus") == 1


def test_the_scan_reads_a_listing_the_wire_spells_plainly() -> None:
    body = json.dumps({"activeActivations": [{"activationId": "9", "activationStatus": 4, "smsCode": 77}]})
    assert scan_rows(json.loads(body)) == {9: ("4", "77", True)}


# --- the typed reader of the listing's usual form (the ``speed`` extra) against the general decoding ---

_LISTING_STATUSES = st.sampled_from([None, "success", "error", "false", False, "ok"])


def _listing(rows: list[Any], how: str, status: Any, extra: dict[str, Any]) -> Any:
    doc: dict[str, Any] = {} if status is None else {"status": status}
    if how == "classic":
        doc["activeActivations"] = rows
    elif how == "herosms":  # rows in "data", a database cursor leaked beside them
        doc.update(data=rows, activeActivations={"num_rows": len(rows), "current_field": None})
    elif how == "keyed":  # rows keyed by id
        doc["activeActivations"] = {str(i): row for i, row in enumerate(rows)}
    elif how == "null":
        doc["activeActivations"] = None
    elif how == "bare":
        return rows
    return {**doc, **extra}


_EXTRAS: st.SearchStrategy[dict[str, Any]] = st.sampled_from([
    {}, {"message": "NO_ACTIVATIONS"}, {"title": "NO_ACTIVATIONS", "details": "x"}, {"data": "x"},
    {"phoneNumber": "79990001122", "nested": [[{"a": 1.5}]]}])


def _read_both(body: bytes, typed: bool) -> Any:
    answer = decode_answer(action="getActiveActivations", status_code=200, body=body, headers={},
                           decimals=False, typed_read=read_listing if typed else None)
    table = scan_rows(answer)
    tracks = _tracks([None, ("4", None, True), ("2", "1234", True), None])
    news, gone = _by_sweep(tracks, itertools.count(1), answer)
    return table, news, gone


@settings(max_examples=400)
@given(st.lists(st.one_of(_GOOD_ROWS, _GOOD_ROWS, _BAD_ROWS), max_size=6),
       st.sampled_from(["classic", "classic", "herosms", "keyed", "null", "bare"]), _LISTING_STATUSES, _EXTRAS)
def test_the_typed_reader_reads_what_the_general_decoding_reads(rows: list[Any], how: str, status: Any,
                                                               extra: dict[str, Any]) -> None:
    """Whatever the body, the typed reader and the general decoding give the same rows, the same news and
    the same gone — or both refuse the answer with an error of one kind."""
    body = json.dumps(_listing(rows, how, status, extra)).encode()
    outcomes = []
    for typed in (True, False):
        try:
            outcomes.append(_read_both(body, typed))
        except (SMSActivateError, UnexpectedAnswer, ValueError, TypeError) as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


def test_the_typed_reader_takes_the_usual_forms_and_leaves_the_rest() -> None:
    assert read_listing is not None  # the speed extra is installed where tests run
    classic = b'{"status": "success", "activeActivations": [{"activationId": "9", "activationStatus": "2", "smsCode": "55",'\
              b' "phoneNumber": "7999", "activationCost": "0.12"}]}'
    herosms = b'{"status": "success", "data": [{"activationId": 9, "activationStatus": 2}], "activeActivations": {"num_rows": 1}}'
    for body in (classic, herosms):
        typed = read_listing(body)
        assert type(typed) is TypedRows and len(typed.rows) == 1 and typed.rows[0].activationId in ("9", 9)
    assert scan_rows(read_listing(classic)) == {9: ("2", "55", True)}
    deep = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "activeActivations": []}'
    for other in (b'{"status": "error", "message": "NO_ACTIVATIONS"}', b'{"title": "BAD_KEY", "details": "x"}',
                  b'{"activeActivations": null}', b'{"activeActivations": {"9": {"activationId": "9"}}}',
                  b'[{"activationId": "9"}]', b'{"activeActivations": [{"activationStatus": "4"}]}',
                  b'{"activeActivations": [{"activationId": 9.0}]}', b'{"activeActivations": [', deep,
                  b'{"activeActivations": [], "x": NaN}'):
        assert read_listing(other) is None, other
