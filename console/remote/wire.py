"""Station snapshots to JSON-ready dicts and back, unchanged.

Remote consoles see the same :mod:`console.common.api` dataclasses as the
local UI; this module is the only place that knows how they look on the wire.
It is generic over the api's frozen dataclasses (read from their type hints),
so a field added to the api travels without touching this file: enums go by
value, tuples as lists and come back as tuples, ``None`` stays ``None``.

Decoding is strict about what it needs (a missing field or a value of the
wrong kind raises :class:`WireError`) and lenient about what it does not know
(unknown keys are ignored, so a newer station can talk to an older console).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from console.common.api import AlarmSnapshot, EmergencySnapshot, StationSnapshot

T = TypeVar("T")

_NoneType = type(None)


class WireError(ValueError):
    """A wire value does not fit the dataclass it should become; the message names the field."""

    def __init__(self, detail: str, path: str = "") -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.detail = detail
        self.path = path

    def within(self, outer: str) -> WireError:
        return WireError(self.detail, outer + self.path)


def to_wire(obj: Any) -> Any:
    """Turn an api dataclass (or a value inside one) into plain JSON types."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (int, float)):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {name: to_wire(getattr(obj, name)) for name in _field_names(type(obj))}
    if isinstance(obj, (tuple, list)):
        if all(type(v) is float for v in obj):
            return list(obj)  # the traces: thousands of floats a frame, already plain
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    raise WireError(f"cannot send a {type(obj).__name__} on the wire")


def from_wire(cls: type[T], data: Any) -> T:
    """Rebuild a ``cls`` dataclass from what :func:`to_wire` made of it."""
    try:
        return _decoder(cls)(data)  # type: ignore[no-any-return]
    except WireError as exc:
        raise exc.within(cls.__name__) from None


def snapshot_from_wire(data: Any) -> StationSnapshot:
    return from_wire(StationSnapshot, data)


def alarm_from_wire(data: Any) -> AlarmSnapshot:
    return from_wire(AlarmSnapshot, data)


def emergency_from_wire(data: Any) -> EmergencySnapshot:
    return from_wire(EmergencySnapshot, data)


_NAMES: dict[type, tuple[str, ...]] = {}
_DECODERS: dict[Any, Callable[[Any], Any]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    found = _NAMES.get(cls)
    if found is None:
        found = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return found


def _decoder(tp: Any) -> Callable[[Any], Any]:
    """One decoding function per type, built once from the type hints (20 frames a second, per console)."""
    found = _DECODERS.get(tp)
    if found is None:
        found = _DECODERS[tp] = _build(tp)
    return found


def _build(tp: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _build_union(tp)
    if origin is tuple or origin is list:
        return _build_sequence(tp, origin)
    if tp is Any:
        return lambda value: value
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _build_dataclass(tp)
        if issubclass(tp, Enum):
            return _build_enum(tp)
        if tp in _SCALARS:
            return _SCALARS[tp]
    raise TypeError(f"no wire form for {tp!r}")


def _build_union(tp: Any) -> Callable[[Any], Any]:
    options = [a for a in typing.get_args(tp) if a is not _NoneType]
    nullable = len(options) < len(typing.get_args(tp))
    decoders = [_decoder(o) for o in options]

    def decode(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise WireError("missing value")
        errors: list[WireError] = []
        for dec in decoders:
            try:
                return dec(value)
            except WireError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise WireError(f"{value!r} fits none of {tp}")

    return decode


def _build_sequence(tp: Any, origin: Any) -> Callable[[Any], Any]:
    args = typing.get_args(tp)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        fixed = [_decoder(a) for a in args]

        def decode_fixed(value: Any) -> Any:
            if type(value) is not list:
                raise WireError(f"expected a list, got {type(value).__name__}")
            if len(value) != len(fixed):
                raise WireError(f"expected {len(fixed)} items, got {len(value)}")
            return tuple(_item(dec, v, i) for i, (dec, v) in enumerate(zip(fixed, value)))

        return decode_fixed
    item_type = args[0]
    item = _decoder(item_type)
    make = tuple if origin is tuple else list
    plain = item_type if item_type in (float, str) else None

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise WireError(f"expected a list, got {type(value).__name__}")
        if plain is not None and all(type(v) is plain for v in value):
            return make(value)  # the fast path for traces
        return make(_item(item, v, i) for i, v in enumerate(value))

    return decode


def _item(dec: Callable[[Any], Any], value: Any, index: int) -> Any:
    try:
        return dec(value)
    except WireError as exc:
        raise exc.within(f"[{index}]") from None


def _build_dataclass(cls: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(cls)
    plan = [
        (
            f.name,
            _decoder(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    ]

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise WireError(f"expected an object, got {type(value).__name__}")
        kwargs: dict[str, Any] = {}
        for name, dec, required in plan:
            if name in value:
                try:
                    kwargs[name] = dec(value[name])
                except WireError as exc:
                    raise exc.within(f".{name}") from None
            elif required:
                raise WireError(f"missing field {name!r}")
        return cls(**kwargs)

    return decode


def _build_enum(cls: type[Enum]) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise WireError(f"{value!r} is not a {cls.__name__}") from None

    return decode


def _mismatch(name: str, value: Any) -> WireError:
    return WireError(f"expected {name}, got {type(value).__name__} {value!r}")


def _bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _mismatch("bool", value)


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _mismatch("float", value)


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    raise _mismatch("int", value)


def _str(value: Any) -> str:
    if type(value) is str:
        return value
    raise _mismatch("str", value)


_SCALARS: dict[type, Callable[[Any], Any]] = {bool: _bool, float: _float, int: _int, str: _str}
