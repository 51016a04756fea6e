"""The scheduler's reading of getActiveActivations: 10 000 rows a tick, read for what changed.

Two readers of one answer, which must agree row for row:

- :func:`scan_rows` makes every row ``id → (status, code, exact)`` — for a paged listing, and for the
  fleet's poller, which publishes the whole account's rows to the others;
- :func:`sweep_rows` reads the rows against the waited activations themselves, in the same pass
  (the one-answer listing of a client alone): it looks each row's id up as the wire spells it, builds
  no table of rows and converts no id, stops at once on a row that says what the last one said, and
  returns only the rows that changed, and how many waited activations it saw.

Both raise on a row that is no mapping with an ``activationId`` (:func:`_parse.not_active_rows`) or
whose id is no positive integer (``ValueError``), inside the session's parse: the caller gets a
``BadResponseError`` holding the body, and nothing of the answer is acted on.

Both read either the decoded JSON or, where the ``speed`` extra is installed, :class:`TypedRows`:
:func:`read_listing` reads the listing's usual form straight from the body's bytes into the three
fields a scan uses, skipping the dozen others of each row without making them (a fifth of the time
of decoding the whole document, and nothing to free). Any other form — an error, rows keyed by id,
a row without an id — is left to the general decoding, so the two paths need agree only where the
typed one answers (a property test holds them to it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from operator import attrgetter
from typing import Any, Protocol

import attrs

from . import _actions
from ._actions import Action
from ._convert import to_id
from ._parse import active_rows_unchecked, not_active_rows

__all__ = ["SCAN_ACTIVE", "SWEEP_ACTIVE", "Row", "Sweep", "Swept", "TypedRows", "read_listing", "row_of", "scan_rows",
           "sweep_action", "sweep_rows"]

#: a getActiveActivations row as the scheduler sees it: (status, code, whether the code is exact)
Row = tuple[str | None, str | None, bool]

#: the rows of a quiet tick, made once (most rows of most ticks: no code yet); a track keeps the very
#: tuple, so that a quiet row is told from a change by identity
_NO_CODE: dict[str | None, Row] = {status: (status, None, True) for status in (None, *map(str, range(11)))}


def row_of(status: Any, code: Any) -> Row:
    """One row's ``(status, code, exact)``.

    A code is exact when the row gives it as one string (the live shape) or integer; the documented
    array of codes says neither which is the newest nor whether it is stale, so it only means "look",
    as does anything else (a fraction: the answer is read without ``Decimal``, by orjson where it is
    installed, which reads integers past 64 bits as floats — their digits are lost).
    """
    if status is not None and type(status) is not str:
        status = str(status)
    if code is None:
        return _NO_CODE.get(status) or (status, None, True)
    exact = type(code) is str or type(code) is int
    if not exact and isinstance(code, list):
        code = code[-1] if code else None
    return status, None if code is None or code == "" else str(code), exact


@attrs.frozen
class TypedRows:
    """A listing's rows as :func:`read_listing` read them: each has ``activationId`` (a string or an
    integer), ``activationStatus`` and ``smsCode`` (any JSON value, ``None`` when absent)."""

    rows: list[Any]


read_listing: Callable[[bytes], TypedRows | None] | None
try:  # the ``speed`` extra
    import msgspec
except ImportError:  # pragma: no cover - the extra is installed where tests run; the general path is tested apart
    read_listing = None
else:
    class _WireRow(msgspec.Struct, gc=False):
        activationId: str | int
        activationStatus: Any = None
        smsCode: Any = None

    class _WireListing(msgspec.Struct, gc=False):
        status: Any = None
        title: Any = None
        data: list[_WireRow] | None = None
        #: HeroSMS leaks a database cursor here (an object), its rows being in ``data``
        activeActivations: list[_WireRow] | dict[str, Any] | None = None

    _decode_listing = msgspec.json.Decoder(_WireListing).decode

    def _read_listing(body: bytes) -> TypedRows | None:
        """The rows of a getActiveActivations success answer, or ``None`` for any other form."""
        try:
            listing = _decode_listing(body)
        except (msgspec.MsgspecError, RecursionError):  # malformed, too deep, or of another form
            return None
        status = listing.status
        if listing.title is not None or status == "error" or status == "false" or status is False:
            return None  # an error answer: the general decoding says which
        if listing.data is not None:
            return TypedRows(listing.data)
        rows = listing.activeActivations
        if type(rows) is not list:  # absent, null, a cursor, rows keyed by id: read the general way
            return None
        return TypedRows(rows)

    read_listing = _read_listing

#: a typed row's three fields, in the order the readers below take them
_FIELDS = attrgetter("activationId", "activationStatus", "smsCode")


def _fields(answer: Any) -> Iterable[tuple[Any, Any, Any]]:
    """Each row's ``(id, status, code)``; a row that is no mapping with an ``activationId`` raises
    :func:`not_active_rows` when it is reached (the rows before it are read)."""
    if type(answer) is TypedRows:
        return map(_FIELDS, answer.rows)
    return _fields_of_mappings(answer)


def _fields_of_mappings(answer: Any) -> Iterator[tuple[Any, Any, Any]]:
    for row in active_rows_unchecked(answer):
        try:
            yield row["activationId"], row.get("activationStatus"), row.get("smsCode")
        except (KeyError, TypeError, AttributeError):  # not a mapping with an activationId
            raise not_active_rows(answer) from None


def _canonical(raw_id: Any) -> bool:
    """Whether an id is spelled as ``str(int)`` spells it: looked up as it is, never converted."""
    return type(raw_id) is str and raw_id.isdigit() and raw_id.isascii() and raw_id[0] != "0"


def scan_rows(answer: Any) -> dict[int, Row]:
    """getActiveActivations rows as ``id → (status, code, exact)`` (a later row of one id wins)."""
    result: dict[int, Row] = {}
    for raw_id, status, code in _fields(answer):
        # the wire's common forms (a digit-string id, a string status, no code) first
        activation_id = int(raw_id) if _canonical(raw_id) else to_id(raw_id)
        if code is None and type(status) is str:
            result[activation_id] = _NO_CODE.get(status) or (status, None, True)
        else:
            result[activation_id] = row_of(status, code)
    return result


class Swept(Protocol):
    """What a sweep reads a row against: a waited activation and the row it last acted on."""

    activation_id: int
    last_row: Row | None
    #: the stamp of the last sweep that saw its row
    swept: int


@attrs.frozen
class Sweep:
    """One sweep of the rows: its stamp, how many of the waited activations it saw, and the rows that
    say something new (by activation id, in the answer's order; a later row of one id wins)."""

    stamp: int
    seen: int
    news: dict[int, tuple[Any, Row]]


#: the sweep of "no activations": it saw none
NOTHING_SWEPT = Sweep(-1, 0, {})


def sweep_rows(waited: Mapping[str, Swept], stamps: Iterator[int], answer: Any) -> Sweep:
    """The rows of ``answer`` read against ``waited`` (the activations waited on, by ``str(id)``).

    Each waited activation whose row is in the answer is stamped with this sweep's stamp (a new one
    per answer: an answer read again after a retry is a new sweep); a row is news when it differs
    from the activation's ``last_row``. Nothing else is changed: the caller acts on the news.
    """
    stamp = next(stamps)
    news: dict[int, tuple[Any, Row]] = {}
    seen = 0
    look_up = waited.get
    for raw_id, status, code in _fields(answer):
        try:
            track = look_up(raw_id)
        except TypeError:  # an id that is no string or number (a list, say)
            raise not_active_rows(answer) from None
        if track is None:
            if _canonical(raw_id):
                continue  # an activation nobody here waits on
            track = look_up(str(to_id(raw_id)))  # an id spelled otherwise (an integer, say); a bad one raises
            if track is None:
                continue
        if code is None and type(status) is str:
            found = _NO_CODE.get(status) or (status, None, True)
        else:
            found = row_of(status, code)
        if track.swept != stamp:
            track.swept = stamp
            seen += 1
        last = track.last_row
        if found is last or found == last:
            if news:
                news.pop(track.activation_id, None)  # a later row of one id wins
            continue
        news[track.activation_id] = (track, found)
    return Sweep(stamp, seen, news)


def sweep_action(waited: Mapping[str, Swept], stamps: Iterator[int]) -> Action[Sweep]:
    """getActiveActivations read by :func:`sweep_rows` against ``waited``, inside the session's parse."""
    return attrs.evolve(SWEEP_ACTIVE, parse=partial(sweep_rows, waited, stamps))


def _unswept(answer: Any) -> Sweep:
    raise TypeError("SWEEP_ACTIVE is read through sweep_action(), against the waited activations")


#: The scheduler's own view of getActiveActivations (not a public action: it skips the models).
SCAN_ACTIVE: Action[dict[int, Row]] = Action(
    _actions.GET_ACTIVE_ACTIVATIONS.wire, "scan_active_activations", _actions.GET_ACTIVE_ACTIVATIONS.params,
    "dict", scan_rows, "getActiveActivations as id → (status, code), for the scheduler.",
    empty_on=_actions.GET_ACTIVE_ACTIVATIONS.empty_on, empty=dict, decimals=False,
    typed_read=read_listing,
)

#: getActiveActivations swept against the waited activations (:func:`sweep_action` gives it its reader).
SWEEP_ACTIVE: Action[Sweep] = Action(
    _actions.GET_ACTIVE_ACTIVATIONS.wire, "sweep_active_activations", _actions.GET_ACTIVE_ACTIVATIONS.params,
    "Sweep", _unswept, "getActiveActivations read against the waited activations.",
    empty_on=_actions.GET_ACTIVE_ACTIVATIONS.empty_on, empty=lambda: NOTHING_SWEPT, decimals=False,
    typed_read=read_listing,
)
