"""The cattrs converter that turns the wire's loose JSON into the models.

The wire sends numbers as strings and strings as numbers, flags as 0/1/"1"/true, lists as
objects keyed "0", "1"…, camelCase and snake_case keys side by side. Each hook below accepts
every form seen in the wild and rejects the rest with ``ValueError`` (turned into
``BadResponseError`` by the session), so nothing passes as a silently wrong value.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

__all__ = [
    "converter",
    "structure",
    "to_bool",
    "to_datetime",
    "to_decimal",
    "to_id",
    "to_int",
    "to_list",
    "to_str",
]

T = TypeVar("T")

_INDEX_KEY = re.compile(r"^\d+$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def to_decimal(value: object) -> Decimal:
    """An amount of money: finite, never a float's binary approximation, never ``NaN``/``Infinity``."""
    result: Decimal
    if isinstance(value, bool):
        raise ValueError(f"expected an amount, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"expected an amount, got {value!r}") from None
    else:
        raise ValueError(f"expected an amount, got {value!r}")
    if not result.is_finite():
        raise ValueError(f"expected a finite amount, got {value!r}")
    return result


def to_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    raise ValueError(f"expected an integer, got {value!r}")


def to_id(value: object) -> int:
    """An activation or rent id: a positive integer (ids beyond 2**31 included)."""
    result = to_int(value)
    if result <= 0:
        raise ValueError(f"expected a positive id, got {value!r}")
    return result


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"expected a flag, got {value!r}")


def to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, got {value!r}")


_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d%H:%M:%S", "%Y-%m-%d")


def to_datetime(value: object) -> _dt.datetime | None:
    """ISO-8601 (aware when it carries a zone), ``Y-m-d H:i:s`` (naive: no zone is stated), unix time.

    The all-zero date the vendor uses for "not yet" becomes ``None``.
    """
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(int(value), tz=_dt.UTC)
    if not isinstance(value, str):
        raise ValueError(f"expected a date, got {value!r}")
    text = value.strip()
    if not text or text.startswith("0000-00-00"):
        return None
    if text.isdigit():
        return _dt.datetime.fromtimestamp(int(text), tz=_dt.UTC)
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _NAIVE_FORMATS:
        try:
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"expected a date, got {value!r}")


def to_list(value: object) -> list[Any]:
    """A list, or an object keyed "0", "1"… (a list in disguise), or nothing."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        if not value:
            return []
        if all(isinstance(k, str) and _INDEX_KEY.match(k) for k in value):
            return [value[k] for k in sorted(value, key=int)]
    raise ValueError(f"expected a list, got {type(value).__name__}")


@functools.lru_cache(maxsize=1024)
def _snake(key: str) -> str:
    if key == "from":
        return "from_"
    return _CAMEL.sub(r"_\1", key).lower()


def _normalise_keys(data: object) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    return {_snake(k): v for k, v in data.items() if isinstance(k, str)}


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, lambda v, _: to_decimal(v))
    conv.register_structure_hook(int, lambda v, _: to_int(v))
    conv.register_structure_hook(bool, lambda v, _: to_bool(v))
    conv.register_structure_hook(str, lambda v, _: to_str(v))
    conv.register_structure_hook(_dt.datetime, lambda v, _: to_datetime(v))

    def is_list(tp: Any) -> bool:
        return get_origin(tp) is list

    def list_hook(tp: Any) -> Callable[[Any, Any], list[Any]]:
        (item,) = get_args(tp) or (Any,)
        if item is str:
            def structure_str_list(value: Any, _: Any) -> list[Any]:
                if isinstance(value, str):
                    return [value]
                return [to_str(v) for v in to_list(value)]

            return structure_str_list
        item_hook = conv.get_structure_hook(item)

        def structure_list(value: Any, _: Any) -> list[Any]:
            return [item_hook(v, item) for v in to_list(value)]

        return structure_list

    conv.register_structure_hook_factory(is_list, list_hook)

    def attrs_hook(cls: Any) -> Callable[[Any, Any], Any]:
        base = make_dict_structure_fn(cls, conv)

        def structure_attrs(value: Any, _: Any) -> Any:
            return base(_normalise_keys(value), cls)

        return structure_attrs

    conv.register_structure_hook_factory(attrs.has, attrs_hook)
    return conv


converter = _make_converter()


def structure(value: object, cls: type[T]) -> T:
    return converter.structure(value, cls)
