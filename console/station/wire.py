"""Station snapshots to JSON-ready dicts and back, unchanged.

Remote consoles see the same :mod:`console.station.api` dataclasses as the
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
from enum import Enum
from typing import Any, TypeVar

from console.station.api import AlarmSnapshot, EmergencySnapshot, StationSnapshot

T = TypeVar("T")

_NoneType = type(None)


class WireError(ValueError):
    """A wire value does not fit the dataclass it should become."""


def to_wire(obj: Any) -> Any:
    """Turn an api dataclass (or a value inside one) into plain JSON types."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (int, float)):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in _fields(type(obj))}
    if isinstance(obj, (tuple, list)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    raise WireError(f"cannot send a {type(obj).__name__} on the wire")


def from_wire(cls: type[T], data: Any) -> T:
    """Rebuild a ``cls`` dataclass from what :func:`to_wire` made of it."""
    return _decode(cls, data, cls.__name__)


def snapshot_from_wire(data: Any) -> StationSnapshot:
    return from_wire(StationSnapshot, data)


def alarm_from_wire(data: Any) -> AlarmSnapshot:
    return from_wire(AlarmSnapshot, data)


def emergency_from_wire(data: Any) -> EmergencySnapshot:
    return from_wire(EmergencySnapshot, data)


_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = dataclasses.fields(cls)
    return found


def _hints(cls: type) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if value is None:
            if _NoneType in options:
                return None
            raise WireError(f"{where}: missing value")
        errors: list[str] = []
        for option in options:
            if option is _NoneType:
                continue
            try:
                return _decode(option, value, where)
            except WireError as exc:
                errors.append(str(exc))
        raise WireError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is tuple:
        if not isinstance(value, list):
            raise WireError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise WireError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list):
            raise WireError(f"{where}: expected a list, got {type(value).__name__}")
        (arg,) = typing.get_args(tp)
        return [_decode(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _decode_dataclass(tp, value, where)
        if issubclass(tp, Enum):
            try:
                return tp(value)
            except ValueError:
                raise WireError(f"{where}: {value!r} is not a {tp.__name__}") from None
        if tp is bool:
            if isinstance(value, bool):
                return value
        elif tp is float:
            if isinstance(value, float):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return float(value)
        elif tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif tp is str:
            if isinstance(value, str):
                return value
        else:
            raise WireError(f"{where}: no wire form for {tp.__name__}")
        raise WireError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    raise WireError(f"{where}: no wire form for {tp!r}")


def _decode_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise WireError(f"{where}: expected an object, got {type(value).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
        if f.name in value:
            kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise WireError(f"{where}: missing field {f.name!r}")
    return cls(**kwargs)
