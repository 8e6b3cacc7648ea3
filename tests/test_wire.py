"""Snapshots survive the trip to JSON text and back exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.common import api
from console.common.api import (
    AlarmSnapshot,
    ControllerSnapshot,
    CuffSnapshot,
    EmergencySnapshot,
    Priority,
    Role,
    StationSnapshot,
)
from console.remote.wire import (
    WireError,
    alarm_from_wire,
    emergency_from_wire,
    from_wire,
    snapshot_from_wire,
    to_wire,
)

_floats = st.floats(allow_nan=False, width=64)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Every field of every api dataclass, filled (defaults included), from its type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of(*[_strategy(a) for a in typing.get_args(tp)])
    if origin is tuple:
        item, _ = typing.get_args(tp)
        return st.lists(_strategy(item), max_size=3).map(tuple)
    if tp is type(None):
        return st.none()
    if tp is float:
        return _floats
    if tp is int:
        return st.integers(-(2**53), 2**53)
    if tp is bool:
        return st.booleans()
    if tp is str:
        return st.text(max_size=8)
    if isinstance(tp, type) and issubclass(tp, api.Enum):
        return st.sampled_from(list(tp))
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{f.name: _strategy(hints[f.name]) for f in dataclasses.fields(tp)})
    raise AssertionError(f"no strategy for {tp!r}")


def _through_text(obj: Any) -> Any:
    return json.loads(json.dumps(to_wire(obj)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_strategy(StationSnapshot))
def test_any_snapshot_round_trips_exactly(snap: StationSnapshot) -> None:
    back = snapshot_from_wire(_through_text(snap))
    assert back == snap
    # Exact types, not just equal values: tuples stay tuples, enums stay enums.
    assert type(back.cuffs) is tuple and all(type(c.trace) is tuple for c in back.cuffs)
    assert type(back.role) is Role
    assert all(type(a.priority) is Priority for a in back.alarms)


@settings(max_examples=60, deadline=None)
@given(_strategy(AlarmSnapshot), _strategy(EmergencySnapshot))
def test_alarms_and_emergency_round_trip(alarm: AlarmSnapshot, emergency: EmergencySnapshot) -> None:
    assert alarm_from_wire(_through_text(alarm)) == alarm
    assert emergency_from_wire(_through_text(emergency)) == emergency


def _cuff(**over: Any) -> CuffSnapshot:
    base = dict(
        id="A1",
        label="left thigh",
        limb="leg",
        controller="rack",
        channel=1,
        state="HOLDING",
        online=True,
        pressure=182.4,
        target=184.0,
        lop=230.0,
        target_pct_lop=80.0,
        pressure_pct_lop=79.3,
        max_pct_lop=100.0,
        tolerance=15.0,
        latched=False,
        occlusion_s=12.0,
        occlusion_warn_s=540.0,
        occlusion_limit_s=600.0,
        trace=(180.0, 181.5),
        samples=17,
        sample_age_s=0.01,
    )
    base.update(over)
    return CuffSnapshot(**base)  # type: ignore[arg-type]


def test_enums_go_by_value_and_none_is_kept() -> None:
    snap = StationSnapshot(
        name="Bay A",
        time=1.0,
        cuffs=(_cuff(pressure=None, alarm=Priority.HIGH),),
        controllers=(ControllerSnapshot(id="rack", port="/dev/ttyACM0", state="ready"),),
        alarms=(),
        role=Role.OBSERVER,
    )
    wire = to_wire(snap)
    assert wire["role"] == "observer"
    assert wire["cuffs"][0]["alarm"] == "high"
    assert wire["cuffs"][0]["pressure"] is None
    assert wire["cuffs"][0]["trace"] == [180.0, 181.5]


def test_integers_in_float_fields_come_back_as_floats() -> None:
    wire = _through_text(_cuff())
    wire["target"] = 184
    cuff = from_wire(CuffSnapshot, wire)
    assert cuff.target == 184.0 and type(cuff.target) is float


def test_unknown_keys_are_ignored_for_newer_stations() -> None:
    wire = _through_text(_cuff())
    wire["added_in_proto_2"] = {"x": 1}
    assert from_wire(CuffSnapshot, wire) == _cuff()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda w: w.pop("pressure"), "missing field 'pressure'"),
        (lambda w: w.update(samples="many"), "CuffSnapshot.samples: expected int"),
        (lambda w: w.update(trace=[1.0, "x"]), "CuffSnapshot.trace[1]"),
        (lambda w: w.update(alarm="purple"), "CuffSnapshot.alarm"),
        (lambda w: w.update(online=1), "CuffSnapshot.online: expected bool"),
        (lambda w: w.update(trace=5), "expected a list"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(change: Any, words: str) -> None:
    wire = _through_text(_cuff())
    change(wire)
    with pytest.raises(WireError) as err:
        from_wire(CuffSnapshot, wire)
    assert words in str(err.value)


def test_a_snapshot_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(WireError, match="expected an object"):
        snapshot_from_wire([1, 2])
