"""The plan library shipped with the station: common BFR schemes, each with its source.

``[[plans]]`` in the config add to it or override a plan by id. Every plan here
goes through :func:`~console.therapy.plans.validate_plan`, so a typo fails at import.
"""

from __future__ import annotations

from typing import Any, Final

from console.therapy.plans import Plan, validate_plan


def _builtin(**raw: Any) -> Plan:
    return validate_plan(raw, f"BUILTIN_PLANS[{raw.get('id')!r}]")


BUILTIN_PLANS: Final[dict[str, Plan]] = {
    p.id: p
    for p in (
        _builtin(
            id="legs-30-15",
            name="Legs 30-15-15-15 at 80 %",
            description=(
                "The common BFR scheme: 30-15-15-15 reps at 20-30 % 1RM, 30 s rests with the cuff held "
                "(continuous). 60-80 % LOP for legs (Patterson et al. 2019, Front Physiol 10:533)."
            ),
            limb="leg",
            pct_lop=80.0,
            sets=[30, 15, 15, 15],
            cadence_s=2.0,
            rest_s=30.0,
            rest_mode="hold",
        ),
        _builtin(
            id="legs-30-15-release",
            name="Legs 30-15-15-15, released rests",
            description=(
                "As legs-30-15 but the cuff vents during each 60 s rest (intermittent BFR), "
                "for patients who tolerate continuous pressure poorly (Patterson et al. 2019)."
            ),
            limb="leg",
            pct_lop=80.0,
            sets=[30, 15, 15, 15],
            cadence_s=2.0,
            rest_s=60.0,
            rest_mode="release",
        ),
        _builtin(
            id="arms-30-15",
            name="Arms 30-15-15-15 at 50 %",
            description=(
                "30-15-15-15 reps, 30 s rests held (continuous); 40-50 % LOP for arms "
                "(Patterson et al. 2019, Front Physiol 10:533)."
            ),
            limb="arm",
            pct_lop=50.0,
            sets=[30, 15, 15, 15],
            cadence_s=2.0,
            rest_s=30.0,
            rest_mode="hold",
        ),
        _builtin(
            id="4x10-60",
            name="4 x 10 at 60 %",
            description=(
                "Four sets of 10 slower reps (3 s each), 60 s rests held; 60 % LOP suits legs and is "
                "the top of the usual arm range (Patterson et al. 2019)."
            ),
            pct_lop=60.0,
            sets=[10, 10, 10, 10],
            cadence_s=3.0,
            rest_s=60.0,
            rest_mode="hold",
        ),
        _builtin(
            id="passive-legs",
            name="Passive BFR, 5 x 5 min",
            description=(
                "No exercise, for an immobilised or non-weight-bearing patient: 5 cycles of 5 min "
                "inflated, 3 min vented (Takarada et al. 2000, Med Sci Sports Exerc 32:2035, after ACL "
                "surgery). Run at 70 % LOP, within the modern leg range rather than the original "
                "near-occlusive pressures."
            ),
            limb="leg",
            pct_lop=70.0,
            mode="cycles",
            on_s=300.0,
            off_s=180.0,
            cycles=5,
        ),
        _builtin(
            id="walk-legs",
            name="BFR walking, 5 x 2 min",
            description=(
                "Slow walking (or easy cycling) with both thighs cuffed: 5 bouts of 2 min, 1 min rest "
                "(Abe et al. 2006, J Appl Physiol 100:1460, KAATSU-walk). Aerobic BFR uses lower "
                "pressure: 60 % LOP; rests are vented here, the conservative choice."
            ),
            limb="leg",
            pct_lop=60.0,
            mode="cycles",
            on_s=120.0,
            off_s=60.0,
            cycles=5,
        ),
        _builtin(
            id="ipc",
            name="Ischaemic preconditioning 4 x 5 min",
            description=(
                "4 cycles of 5 min full occlusion (100 % LOP) with 5 min reperfusion (Panza et al. 2019). "
                "Goes beyond everyday BFR limits on purpose (full_occlusion): needs a measured LOP."
            ),
            pct_lop=100.0,
            mode="cycles",
            on_s=300.0,
            off_s=300.0,
            cycles=4,
            full_occlusion=True,
        ),
    )
}
"""The plan library shipped with the station; ``[[plans]]`` in the config add to it or override by id."""
