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
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs

__all__ = [
    "converter",
    "rows_structurer",
    "structure",
    "structurer",
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
    if type(value) is Decimal and value.is_finite():  # what the session's json.loads makes
        return value
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
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit():
        return int(value)
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


_FLAGS = {"1": True, "0": False}


def to_bool(value: object) -> bool:
    if type(value) is str and value in _FLAGS:
        return _FLAGS[value]
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
    if type(value) is str and len(value) == 19 and value[10] == " " and value[0] != "0":
        try:  # the common ``Y-m-d H:i:s``, read by the C parser
            return _dt.datetime.fromisoformat(value)
        except ValueError:
            pass
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


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None`` (one type and None), else ``None``."""
    if get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    args = [arg for arg in get_args(tp) if arg is not type(None)]
    return args[0] if len(args) == 1 and len(get_args(tp)) == 2 else None


_SHAPES_PER_CLASS = 64
_ROW_STRUCTURERS: dict[Any, Callable[[Any], Any]] = {}
_ROWS_STRUCTURERS: dict[Any, Callable[[Iterable[Any]], list[Any]]] = {}
_GENERIC_STRUCTURERS: dict[Any, Callable[[Mapping[Any, Any]], Any]] = {}  # the reference the tests hold shapes to

# an inline test for the common case, the hook only for the rest: a call per field costs as much
# as the rest of a row's work
_INLINE: dict[Any, str] = {
    int: "{0} if type({0}) is int else int({0}) if type({0}) is str and {0}.isdigit() else to_int({0})",
    str: "{0} if type({0}) is str else to_str({0})",
    bool: "True if {0} == '1' else False if {0} == '0' else to_bool({0})",
    Decimal: "{0} if type({0}) is Decimal and {0}.is_finite() else to_decimal({0})",
    _dt.datetime: "to_datetime({0})",
}


def _direct_build(cls: Any) -> bool:
    """Whether instances may be made without ``__init__``: slots that are all fields, nothing run
    at construction but validators (which the builder runs itself)."""
    fields = attrs.fields(cls)
    slots = set(getattr(cls, "__slots__", ()) or ()) - {"__weakref__"}
    return (
        "__slots__" in cls.__dict__
        and not hasattr(cls, "__attrs_post_init__") and not hasattr(cls, "__attrs_pre_init__")
        and all(f.init and f.converter is None and f.on_setattr in (None, attrs.setters.NO_OP) for f in fields)
        and {f.name for f in fields} >= slots
        and all(hasattr(type(cls.__dict__.get(f.name)), "__set__") for f in fields)  # a slot of its own
    )


def _shape_builder(cls: Any, shape: tuple[object, ...], conv: cattrs.Converter) -> Callable[[Mapping[Any, Any]], Any] | None:
    """A function that makes ``cls`` from a mapping with exactly these keys in this order, or
    ``None`` when the general path must (a required field missing: ``__init__`` says which)."""
    fields = attrs.fields(cls)
    names = {f.name for f in fields}
    position: dict[str, list[int]] = {}
    for index, key in enumerate(shape):
        if isinstance(key, str) and _snake(key) in names:
            # camelCase and snake_case both sent: each is read (a bad one fails), the later wins
            position.setdefault(_snake(key), []).append(index)
    scope: dict[str, Any] = {
        "cls": cls, "new": object.__new__, "to_int": to_int, "to_str": to_str, "to_bool": to_bool,
        "to_decimal": to_decimal, "to_datetime": to_datetime, "int": int, "str": str, "Decimal": Decimal}
    lines = [f"    {', '.join(f'v{i}' for i in range(len(shape)))}, = value.values()"] if shape else []
    direct = _direct_build(cls)
    for number, field in enumerate(fields):
        name = f"a{number}"
        for index in position.get(field.name, ()):
            source = f"v{index}"
            inner = _optional_of(field.type)
            target = field.type if inner is None else inner
            if target in _INLINE:
                expr = _INLINE[target].format(source)
            else:
                scope[f"h{number}"], scope[f"t{number}"] = conv.get_structure_hook(target), target
                expr = f"h{number}({source}, t{number})"
                if get_origin(target) is list:  # a list the server sends as null: empty
                    expr = f"[] if {source} is None else {expr}"
            if inner is not None:
                expr = f"None if {source} is None else ({expr})"
            lines.append(f"    {name} = {expr}")
        if field.name in position:
            continue
        if field.default is attrs.NOTHING:
            return None
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            if field.default.takes_self:
                return None
            scope[f"f{number}"] = field.default.factory
            expr = f"f{number}()"
        else:
            scope[f"d{number}"] = field.default
            expr = f"d{number}"
        lines.append(f"    {name} = {expr}")
    if direct:
        lines.append("    made = new(cls)")
        for number, field in enumerate(fields):
            scope[f"s{number}"] = cls.__dict__[field.name].__set__
            lines.append(f"    s{number}(made, a{number})")
        for number, field in enumerate(fields):
            if field.validator is not None:
                scope[f"c{number}"], scope[f"F{number}"] = field.validator, field
                call = f"c{number}(made, F{number}, a{number})"
                passes = getattr(field.validator, "passes", None)  # the validator's own test, inline
                if isinstance(passes, str):
                    call = f"if not ({passes.format(f'a{number}')}): {call}"
                lines.append(f"    {call}")
        lines.append("    return made")
    else:
        arguments = ", ".join(f"{f.alias or f.name}=a{n}" for n, f in enumerate(fields))
        lines.append(f"    return cls({arguments})")
    source_text = "def build(value):\n" + "\n".join(lines) + "\n"
    exec(compile(source_text, f"<structure {cls.__name__}>", "exec"), scope)
    build: Callable[[Mapping[Any, Any]], Any] = scope["build"]
    return build


def _make_converter() -> cattrs.Converter:
    # Without detailed validation a bad field raises its own ValueError ("expected an integer, got
    # 'x'"), which the session quotes; and structuring a listing of 10 000 rows costs half as much.
    conv = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)
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

    def optional_hook(tp: Any) -> Callable[[Any, Any], Any]:
        inner = _optional_of(tp)
        inner_hook = conv.get_structure_hook(inner)

        def structure_optional(value: Any, _: Any) -> Any:
            return None if value is None else inner_hook(value, inner)

        return structure_optional

    # cattrs' own Optional handling dispatches again on every value; this looks the hook up once
    conv.register_structure_hook_factory(lambda tp: _optional_of(tp) is not None, optional_hook)

    direct: dict[Any, Callable[[Any], Any]] = {
        int: to_int, Decimal: to_decimal, bool: to_bool, str: to_str, _dt.datetime: to_datetime}

    def field_hook(tp: Any) -> tuple[Callable[[Any], Any], bool]:
        """The one-argument structurer of a field's type, and whether ``None`` passes as itself."""
        inner = _optional_of(tp)
        target = tp if inner is None else inner
        hook = direct.get(target)
        if hook is None:
            generic = conv.get_structure_hook(target)

            def hook(value: Any, generic: Callable[[Any, Any], Any] = generic, target: Any = target) -> Any:
                return generic(value, target)

        return hook, inner is not None

    def attrs_hook(cls: Any) -> Callable[[Any, Any], Any]:
        # One pass over the answer's keys, each key's field and structurer looked up once per class:
        # cattrs' generated function normalised every key and dispatched again on every value
        # (issue 27: a listing of 10 000 rows took 6-8x json.loads). The rows of one answer share
        # one set of keys in one order, so each such shape gets a function written for it.
        attrs.resolve_types(cls)
        fields = {f.name: (f.alias or f.name, *field_hook(f.type)) for f in attrs.fields(cls)}
        by_key: dict[object, tuple[str, Callable[[Any], Any], bool] | None] = {}
        shapes: dict[tuple[object, ...], Callable[[Mapping[Any, Any]], Any] | None] = {}

        def structure_generic(value: Mapping[Any, Any]) -> Any:
            kwargs = {}
            for key, item in value.items():
                try:
                    entry = by_key[key]
                except (KeyError, TypeError):
                    entry = fields.get(_snake(key)) if isinstance(key, str) else None
                    if len(by_key) < 256 and isinstance(key, str):  # keys come from servers: bounded
                        by_key[key] = entry
                if entry is not None:
                    alias, hook, optional = entry
                    kwargs[alias] = None if item is None and optional else hook(item)
            return cls(**kwargs)

        def shape_of(value: Any) -> tuple[object, ...]:
            if type(value) is not dict and not isinstance(value, Mapping):
                raise ValueError(f"expected an object, got {type(value).__name__}")
            return tuple(value)

        def builder_for(shape: tuple[object, ...]) -> Callable[[Mapping[Any, Any]], Any]:
            try:
                build = shapes[shape]
            except KeyError:
                build = None
                if len(shapes) < _SHAPES_PER_CLASS:  # shapes come from servers: bounded
                    build = shapes[shape] = _shape_builder(cls, shape, conv)
            return structure_generic if build is None else build

        def structure_attrs(value: Any, _: Any = None) -> Any:
            return builder_for(shape_of(value))(value)

        def structure_rows(values: Iterable[Any]) -> list[Any]:
            made = []
            last: tuple[object, ...] | None = None
            build: Callable[[Mapping[Any, Any]], Any] = structure_generic
            for value in values:
                shape = shape_of(value)
                if shape != last:  # the rows of one answer: one shape, its keys the same objects
                    last, build = shape, builder_for(shape)
                made.append(build(value))
            return made

        _ROW_STRUCTURERS[cls] = structure_attrs  # called with the row alone: one call less per row
        _ROWS_STRUCTURERS[cls] = structure_rows
        _GENERIC_STRUCTURERS[cls] = structure_generic
        return structure_attrs

    conv.register_structure_hook_factory(attrs.has, attrs_hook)
    return conv


converter = _make_converter()


def structure(value: object, cls: type[T]) -> T:
    return converter.structure(value, cls)


def rows_structurer(cls: type[T]) -> Callable[[Iterable[object]], list[T]]:
    """``[structure(row, cls) for row in rows]`` for the rows of one answer (one set of keys)."""
    converter.get_structure_hook(cls)
    many = _ROWS_STRUCTURERS.get(cls)
    if many is not None:
        return many
    one = structurer(cls)
    return lambda rows: [one(row) for row in rows]


def structurer(cls: type[T]) -> Callable[[object], T]:
    """``structure(·, cls)`` with its hook looked up once: for the rows of a long listing."""
    hook = converter.get_structure_hook(cls)
    direct = _ROW_STRUCTURERS.get(cls)
    if direct is not None:
        return direct

    def structure_one(value: object) -> T:
        result: T = hook(value, cls)
        return result

    return structure_one
