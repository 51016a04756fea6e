"""Parameter encoders: each validates one argument and turns it into its wire text.

They raise :class:`InvalidArgumentError` before any request is sent.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

from ._exceptions import InvalidArgumentError

__all__ = [
    "Encoder",
    "boolean",
    "choice",
    "country",
    "csv",
    "decimal_amount",
    "identifier",
    "int_range",
    "service",
    "text",
    "timestamp",
    "true_flag",
]

Encoder = Callable[[str, object], str]


def _fail(name: str, why: str, value: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"{name}: {why}, got {value!r}", code="INVALID_ARGUMENT")


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise _fail(name, "expected an integer", value)
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _fail(name, "expected an integer", value)


def identifier(name: str, value: object) -> str:
    number = _int(name, value)
    if number <= 0:
        raise _fail(name, "must be a positive id", value)
    return str(number)


def country(name: str, value: object) -> str:
    number = _int(name, value)
    if number < 0:
        raise _fail(name, "must be a country id (0 or more)", value)
    return str(number)


def service(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, "must be a non-empty service code", value)
    if "," in value:
        raise _fail(name, "must be one service code", value)
    return value.strip()


def text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(name, "expected text", value)
    result = str(value).strip()
    if not result:
        raise _fail(name, "must not be empty", value)
    return result


def csv(name: str, value: object) -> str:
    """A comma list: a string, or an iterable of strings/ints."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(v).strip() for v in value]
    else:
        raise _fail(name, "expected a list or a comma-separated string", value)
    if not items or any(not item for item in items):
        raise _fail(name, "must be a non-empty list without empty items", value)
    return ",".join(items)


def boolean(name: str, value: object) -> str:
    """A 0/1 flag."""
    if isinstance(value, bool) or value in (0, 1):
        return "1" if value else "0"
    raise _fail(name, "expected a bool", value)


def true_flag(name: str, value: object) -> str:
    """A flag the wire spells ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    raise _fail(name, "expected a bool", value)


def decimal_amount(name: str, value: object) -> str:
    if isinstance(value, bool):
        raise _fail(name, "expected an amount", value)
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, (int, float, str)) else value
    except InvalidOperation:
        raise _fail(name, "expected an amount", value) from None
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise _fail(name, "must be a positive amount", value)
    return format(amount, "f")


def choice(*allowed: int) -> Encoder:
    def encode(name: str, value: object) -> str:
        number = _int(name, value)
        if number not in allowed:
            raise _fail(name, f"must be one of {', '.join(map(str, allowed))}", value)
        return str(number)

    return encode


def int_range(low: int, high: int) -> Encoder:
    def encode(name: str, value: object) -> str:
        number = _int(name, value)
        if not low <= number <= high:
            raise _fail(name, f"must be between {low} and {high}", value)
        return str(number)

    return encode


def timestamp(name: str, value: object) -> str:
    """Unix time from an int or an aware datetime."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise _fail(name, "datetime must be timezone-aware", value)
        return str(int(value.timestamp()))
    number = _int(name, value)
    if number < 0:
        raise _fail(name, "must be a unix time", value)
    return str(number)
