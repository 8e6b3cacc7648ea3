"""The plan library: built-ins are valid and sensible; nonsensical plans are refused clearly."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.common.api import PlanSummary
from console.therapy.plan_library import BUILTIN_PLANS
from console.therapy.plans import (
    HARD_OCCLUSION_LIMIT_S,
    Plan,
    PlanError,
    validate_plan,
)


def as_raw(plan: Plan) -> dict[str, Any]:
    """The TOML table a user would write for this plan."""
    raw: dict[str, Any] = {}
    for f in fields(plan):
        value = getattr(plan, f.name)
        if value is None:
            continue
        if plan.mode == "cycles" and f.name in ("sets", "cadence_s", "rest_s", "rest_mode"):
            continue
        raw[f.name] = list(value) if isinstance(value, tuple) else value
    return raw


def refused(raw: dict[str, Any], key: str) -> str:
    """The one problem about ``plan.<key>``."""
    with pytest.raises(PlanError) as info:
        validate_plan(raw, "plan")
    err = info.value
    assert str(err) == "\n".join(err.problems)
    hits = [p for p in err.problems if p.split(": ", 1)[0] == f"plan.{key}"]
    assert len(hits) == 1, f"expected one problem at plan.{key}, got {err.problems}"
    return hits[0].split(": ", 1)[1]


REPS = {"id": "p", "pct_lop": 60, "sets": [10, 10, 10], "cadence_s": 2, "rest_s": 30}
CYCLES = {"id": "c", "pct_lop": 70, "mode": "cycles", "on_s": 300, "off_s": 180, "cycles": 5}


# ------------------------------------------------------------------ built-ins


@pytest.mark.parametrize("plan_id", sorted(BUILTIN_PLANS))
def test_builtin_plan_is_valid_and_round_trips(plan_id: str) -> None:
    plan = BUILTIN_PLANS[plan_id]
    assert validate_plan(as_raw(plan), f"plans.{plan_id}") == plan
    assert plan.longest_occlusion_s <= plan.max_occlusion_s <= HARD_OCCLUSION_LIMIT_S
    assert plan.description and plan.name


def test_library_covers_the_clinical_modes() -> None:
    legs, arms = BUILTIN_PLANS["legs-30-15"], BUILTIN_PLANS["arms-30-15"]
    assert (legs.limb, legs.pct_lop, legs.sets) == ("leg", 80.0, (30, 15, 15, 15))
    assert (legs.cadence_s, legs.rest_mode) == (2.0, "hold")
    assert (arms.limb, arms.pct_lop, arms.sets) == ("arm", 50.0, (30, 15, 15, 15))
    assert 30.0 <= legs.rest_s <= 60.0 and 30.0 <= arms.rest_s <= 60.0
    assert BUILTIN_PLANS["legs-30-15-release"].rest_mode == "release"
    four = BUILTIN_PLANS["4x10-60"]
    assert (four.sets, four.pct_lop) == ((10, 10, 10, 10), 60.0)
    passive = BUILTIN_PLANS["passive-legs"]
    assert (passive.mode, passive.on_s, passive.off_s, passive.cycles) == ("cycles", 300.0, 180.0, 5)
    walk = BUILTIN_PLANS["walk-legs"]
    assert walk.mode == "cycles" and walk.limb == "leg" and walk.pct_lop == 60.0
    ipc = BUILTIN_PLANS["ipc"]
    assert (ipc.mode, ipc.pct_lop, ipc.on_s, ipc.off_s, ipc.cycles, ipc.full_occlusion) == (
        "cycles",
        100.0,
        300.0,
        300.0,
        4,
        True,
    )
    assert [p.id for p in BUILTIN_PLANS.values() if p.full_occlusion] == ["ipc"]


def test_durations_and_occlusion_stretches() -> None:
    legs = BUILTIN_PLANS["legs-30-15"]
    assert legs.total_reps == 75
    assert legs.duration_s == 75 * 2.0 + 3 * 30.0
    assert legs.longest_occlusion_s == legs.duration_s  # held rests: one long stretch
    release = BUILTIN_PLANS["legs-30-15-release"]
    assert release.longest_occlusion_s == 30 * 2.0  # the longest set
    ipc = BUILTIN_PLANS["ipc"]
    assert ipc.duration_s == 4 * 300.0 + 3 * 300.0 and ipc.longest_occlusion_s == 300.0


def test_summary_for_the_ui() -> None:
    s = BUILTIN_PLANS["arms-30-15"].summary()
    assert s == PlanSummary(id="arms-30-15", name=s.name, description=s.description, limb="arm", pct_lop=50.0)


def test_minimal_reps_plan_gets_defaults() -> None:
    plan = validate_plan({"id": "x", "pct_lop": 50, "sets": [15]})
    assert (plan.name, plan.mode, plan.limb) == ("x", "reps", None)
    assert (plan.cadence_s, plan.rest_s, plan.rest_mode) == (2.0, 30.0, "hold")
    assert plan.on_s is None and plan.cycles is None and plan.full_occlusion is False


def test_cycles_plan_has_no_reps_fields() -> None:
    plan = validate_plan(CYCLES)
    assert plan.sets == () and plan.cadence_s == 0.0 and plan.rest_mode == "release"


# ------------------------------------------------------------------ nonsense refused


def test_no_sets() -> None:
    assert refused({**REPS, "sets": []}, "sets").endswith("found an empty array")


def test_sets_missing() -> None:
    assert refused({"id": "p", "pct_lop": 60}, "sets").startswith("missing (expected a non-empty array of integers")


def test_zero_reps() -> None:
    assert refused({**REPS, "sets": [10, 0]}, "sets[1]") == "expected an integer from 1 to 100, found 0"


def test_negative_reps() -> None:
    assert refused({**REPS, "sets": [-5]}, "sets[0]") == "expected an integer from 1 to 100, found -5"


def test_fractional_reps() -> None:
    assert refused({**REPS, "sets": [10.5]}, "sets[0]").endswith("found a number (10.5)")


def test_cadence_zero() -> None:
    assert refused({**REPS, "cadence_s": 0}, "cadence_s") == "expected a number above 0 and at most 20 s, found 0"


def test_cadence_negative() -> None:
    assert "found -2" in refused({**REPS, "cadence_s": -2}, "cadence_s")


def test_pct_too_low() -> None:
    assert refused({**REPS, "pct_lop": 5}, "pct_lop") == "expected a number from 10 to 100 % LOP, found 5"


def test_pct_too_high() -> None:
    assert refused({**REPS, "pct_lop": 120}, "pct_lop") == "expected a number from 10 to 100 % LOP, found 120"


def test_pct_missing() -> None:
    assert refused({"id": "p", "sets": [10]}, "pct_lop").startswith("missing")


def test_held_exercise_longer_than_max_occlusion() -> None:
    msg = refused({**REPS, "sets": [30, 30, 30], "max_occlusion_s": 200}, "sets")
    assert "30+30+30 reps at 2 s plus 2 rests of 30 s = 240 s" in msg
    assert "more than max_occlusion_s (200 s)" in msg and 'rest_mode = "release"' in msg
    # the same reps with released rests fit: no set is longer than 200 s
    assert validate_plan({**REPS, "sets": [30, 30, 30], "max_occlusion_s": 200, "rest_mode": "release"}).sets


def test_released_set_longer_than_max_occlusion() -> None:
    raw = {**REPS, "sets": [10, 60], "rest_mode": "release", "max_occlusion_s": 100}
    assert refused(raw, "sets") == "set 2 (60 reps at 2 s = 120 s) is longer than max_occlusion_s (100 s)"


def test_max_occlusion_over_20_min() -> None:
    assert "at most 1200 s, found 1800" in refused({**REPS, "max_occlusion_s": 1800}, "max_occlusion_s")


def test_release_rest_too_short_to_vent_and_refill() -> None:
    assert "at least 10 s" in refused({**REPS, "rest_mode": "release", "rest_s": 5}, "rest_s")


def test_bad_rest_mode() -> None:
    msg = refused({**REPS, "rest_mode": "pause"}, "rest_mode")
    assert msg == 'expected "hold" or "release", found a string ("pause")'


def test_cycles_without_on_off() -> None:
    raw = {"id": "c", "pct_lop": 70, "mode": "cycles", "cycles": 3}
    assert refused(raw, "on_s").startswith("missing (expected a number above 0")
    assert refused(raw, "off_s").startswith("missing")


def test_zero_cycles() -> None:
    assert refused({**CYCLES, "cycles": 0}, "cycles") == "expected an integer from 1 to 50, found 0"


def test_on_phase_longer_than_max_occlusion() -> None:
    raw = {**CYCLES, "on_s": 900}
    assert refused(raw, "on_s") == "each on-phase (900 s) is longer than max_occlusion_s (600 s)"
    assert validate_plan({**raw, "max_occlusion_s": 900}).on_s == 900.0


def test_off_phase_too_short() -> None:
    assert "at least 10 s off" in refused({**CYCLES, "off_s": 3}, "off_s")


def test_reps_keys_in_cycles_plan() -> None:
    assert refused({**CYCLES, "sets": [10]}, "sets") == 'only used with mode = "reps", this plan has mode "cycles"'


def test_cycles_keys_in_reps_plan() -> None:
    assert refused({**REPS, "on_s": 60}, "on_s") == 'only used with mode = "cycles", this plan has mode "reps"'


def test_full_occlusion_only_for_cycles() -> None:
    msg = refused({**REPS, "pct_lop": 100, "full_occlusion": True}, "full_occlusion")
    assert 'only allowed for mode "cycles"' in msg and 'this plan has mode "reps"' in msg


def test_bad_mode_and_limb() -> None:
    assert refused({**REPS, "mode": "sets"}, "mode") == 'expected "reps" or "cycles", found a string ("sets")'
    assert refused({**REPS, "limb": "both"}, "limb") == 'expected "arm" or "leg", found a string ("both")'


def test_bad_id() -> None:
    assert "an id of 1-40 letters" in refused({**REPS, "id": "my plan!"}, "id")


def test_unknown_key_with_hint() -> None:
    assert 'did you mean "cadence_s"?' in refused({**REPS, "cadence": 2}, "cadence")


def test_every_problem_at_once() -> None:
    with pytest.raises(PlanError) as info:
        validate_plan({"id": "x", "pct_lop": 0, "sets": [0], "cadence_s": -1, "on_s": 5}, "plans.x")
    keys = sorted(p.split(": ", 1)[0] for p in info.value.problems)
    assert keys == ["plans.x.cadence_s", "plans.x.on_s", "plans.x.pct_lop", "plans.x.sets[0]"]


def test_not_a_table() -> None:
    with pytest.raises(PlanError, match=r"^plans\[0\]: expected a table"):
        validate_plan("legs", "plans[0]")  # type: ignore[arg-type]


# ------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(
    sets=st.lists(st.integers(-5, 120), max_size=25),
    cadence=st.floats(-1, 25, allow_nan=False),
    rest=st.floats(-1, 700, allow_nan=False),
    rest_mode=st.sampled_from(["hold", "release"]),
    max_occ=st.floats(-1, 1500, allow_nan=False),
    pct=st.floats(0, 130, allow_nan=False),
)
def test_accepted_reps_plans_respect_their_limits(
    sets: list[int], cadence: float, rest: float, rest_mode: str, max_occ: float, pct: float
) -> None:
    raw = {
        "id": "h",
        "pct_lop": pct,
        "sets": sets,
        "cadence_s": cadence,
        "rest_s": rest,
        "rest_mode": rest_mode,
        "max_occlusion_s": max_occ,
    }
    try:
        plan = validate_plan(raw)
    except PlanError as exc:
        assert exc.problems and all(p.startswith("plan.") for p in exc.problems)
        return
    assert 10 <= plan.pct_lop <= 100
    assert plan.sets and all(r >= 1 for r in plan.sets)
    assert plan.cadence_s > 0 and plan.rest_s > 0
    assert plan.longest_occlusion_s <= plan.max_occlusion_s <= HARD_OCCLUSION_LIMIT_S
