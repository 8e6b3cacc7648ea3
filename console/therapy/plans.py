"""Therapy plans: what a session does with a cuff, and the reader that checks one.

A plan is pure data. The session runner turns it into a set/rep/rest timer (mode
``reps``) or an on/off timer (mode ``cycles``); the safety supervisor still
enforces every cuff limit on top of it. :func:`validate_plan` refuses plans that
make no sense, naming the key and what was expected, and collects every problem
at once so a technician fixes a config in one pass. The plans shipped with the
station are in :mod:`~console.therapy.plan_library`.

Full occlusion. Everyday BFR stays below a per-limb ceiling of % LOP
(``safety.max_pct_lop_arm`` / ``_leg``, or a cuff's ``max_pct_lop``). Ischaemic
preconditioning needs the artery shut, i.e. 100 % LOP. A plan may go above a
cuff's everyday maximum only when it says so: ``mode = "cycles"`` (timed on/off
phases with reperfusion in between, no exercise) **and** ``full_occlusion =
true``. The station must still (a) require a known LOP for the cuff, (b) never
exceed the station ceiling, and (c) stop every on-phase at ``max_occlusion_s``
and at the cuff's occlusion limit, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from console.common.api import PlanSummary
from console.common.facts import LIMBS
from console.therapy.table_reader import TableReader, describe, plain

MODES: Final = ("reps", "cycles")
REST_MODES: Final = ("hold", "release")

HARD_OCCLUSION_LIMIT_S: Final = 1200.0
"""Never more than 20 min of continuous occlusion (SmartCuffs guidance)."""
MIN_RELEASE_S: Final = 10.0
"""A released rest or off phase shorter than this is pointless: a thigh cuff
takes about 2 s to vent and 3-5 s to refill (protocol.md, section 6)."""
MIN_PCT_LOP: Final = 10.0
MAX_PCT_LOP: Final = 100.0
DEFAULT_MAX_OCCLUSION_S: Final = 600.0
"""5-10 min of restriction per exercise (Patterson et al. 2019)."""


class PlanError(ValueError):
    """A plan was refused; one line per problem, each starting with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Plan:
    """One exercise (mode ``reps``) or one timed on/off protocol (mode ``cycles``).

    For mode ``reps``: ``sets`` holds the reps of each set, one rep every
    ``cadence_s`` seconds, ``rest_s`` between sets with the cuff held at target
    (``rest_mode = "hold"``, continuous BFR) or vented (``"release"``,
    intermittent). For mode ``cycles``: ``cycles`` times ``on_s`` inflated then
    ``off_s`` vented; ``sets`` is empty, ``cadence_s``/``rest_s`` are 0 (not
    applicable) and ``rest_mode`` is ``release``. ``max_occlusion_s`` bounds any stretch of continuous occlusion
    the plan asks for; ``between_exercises_s`` is the vented pause before the
    next exercise.
    """

    id: str
    name: str
    pct_lop: float
    mode: str = "reps"
    description: str = ""
    limb: str | None = None
    sets: tuple[int, ...] = ()
    cadence_s: float = 2.0
    rest_s: float = 30.0
    rest_mode: str = "hold"
    on_s: float | None = None
    off_s: float | None = None
    cycles: int | None = None
    max_occlusion_s: float = DEFAULT_MAX_OCCLUSION_S
    between_exercises_s: float = 120.0
    full_occlusion: bool = False

    @property
    def total_reps(self) -> int:
        return sum(self.sets)

    @property
    def duration_s(self) -> float:
        """Length of the plan from first inflation to last deflation (fill/vent times excluded)."""
        if self.mode == "cycles":
            assert self.on_s is not None and self.off_s is not None and self.cycles is not None
            return self.cycles * self.on_s + (self.cycles - 1) * self.off_s
        return self.total_reps * self.cadence_s + max(len(self.sets) - 1, 0) * self.rest_s

    @property
    def longest_occlusion_s(self) -> float:
        """The longest stretch the plan keeps the cuff inflated without a break."""
        if self.mode == "cycles":
            assert self.on_s is not None
            return self.on_s
        if self.rest_mode == "hold":
            return self.duration_s
        return max(self.sets, default=0) * self.cadence_s

    def summary(self) -> PlanSummary:
        return PlanSummary(
            id=self.id, name=self.name, description=self.description, limb=self.limb, pct_lop=self.pct_lop
        )


PLAN_KEYS: Final = (
    "id",
    "name",
    "description",
    "limb",
    "pct_lop",
    "mode",
    "sets",
    "cadence_s",
    "rest_s",
    "rest_mode",
    "on_s",
    "off_s",
    "cycles",
    "max_occlusion_s",
    "between_exercises_s",
    "full_occlusion",
)
_REPS_ONLY: Final = ("sets", "cadence_s", "rest_s", "rest_mode")
_CYCLES_ONLY: Final = ("on_s", "off_s", "cycles")


def read_plan(raw: Mapping[str, Any], where: str, problems: list[str]) -> Plan | None:
    """Check one plan table, appending problems; returns the plan when it has none."""
    before = len(problems)
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a table ([[plans]]), found {describe(raw)}")
        return None
    t = TableReader(raw, where, PLAN_KEYS, problems)
    plan_id = t.ident("id")
    name = t.text("name", plan_id or "")
    description = t.text("description", "", allow_empty=True, multiline=True)
    limb = t.text("limb", None, choices=LIMBS)
    pct = t.number("pct_lop", lo=MIN_PCT_LOP, hi=MAX_PCT_LOP, unit="% LOP")
    mode = t.text("mode", "reps", choices=MODES)
    full = t.flag("full_occlusion", False)
    max_occ = t.seconds("max_occlusion_s", DEFAULT_MAX_OCCLUSION_S, hi=HARD_OCCLUSION_LIMIT_S)
    between = t.seconds("between_exercises_s", 120.0, hi=3600.0)

    if full and mode is not None and mode != "cycles":
        t.problem(
            "full_occlusion",
            f'full occlusion is only allowed for mode "cycles" (timed on/off phases with reperfusion), '
            f'this plan has mode "{mode}"',
        )

    sets: tuple[int, ...] | None = ()
    cadence = rest = 0.0
    rest_mode = "hold"
    on_s = off_s = None
    cycles = None
    if mode == "reps":
        for key in _CYCLES_ONLY:
            if t.has(key):
                t.problem(key, 'only used with mode = "cycles", this plan has mode "reps"')
        sets = t.numbers("sets", lo=1, hi=100, integers=True)
        if sets is not None and len(sets) > 20:
            t.problem("sets", f"expected at most 20 sets, found {len(sets)}")
            sets = None
        cadence = t.seconds("cadence_s", 2.0, hi=20.0)
        rest_mode = t.text("rest_mode", "hold", choices=REST_MODES)
        rest = t.seconds("rest_s", 30.0, hi=600.0)
        if rest_mode == "release" and rest is not None and rest < MIN_RELEASE_S:
            t.problem(
                "rest_s",
                f'with rest_mode = "release" the rest must be at least {plain(MIN_RELEASE_S)} s '
                f"(venting and refilling the cuff take that long), found {plain(rest)}",
            )
        if sets and cadence and rest and rest_mode and max_occ:
            _check_reps_occlusion(t, sets, cadence, rest, rest_mode, max_occ)
    elif mode == "cycles":
        rest_mode = "release"  # the off phases are vented
        for key in _REPS_ONLY:
            if t.has(key):
                t.problem(key, 'only used with mode = "reps", this plan has mode "cycles"')
        on_s = t.seconds("on_s", hi=HARD_OCCLUSION_LIMIT_S)
        off_s = t.seconds("off_s", hi=3600.0)
        cycles = t.integer("cycles", lo=1, hi=50)
        if off_s is not None and off_s < MIN_RELEASE_S:
            t.problem(
                "off_s",
                f"expected at least {plain(MIN_RELEASE_S)} s off (venting and refilling the cuff take that long), "
                f"found {plain(off_s)}",
            )
        if on_s is not None and max_occ is not None and on_s > max_occ:
            t.problem(
                "on_s",
                f"each on-phase ({plain(on_s)} s) is longer than max_occlusion_s ({plain(max_occ)} s)",
            )

    if len(problems) > before:
        return None
    assert plan_id is not None and pct is not None and mode is not None and full is not None and sets is not None
    return Plan(
        id=plan_id,
        name=name,
        pct_lop=pct,
        mode=mode,
        description=description,
        limb=limb,
        sets=sets,
        cadence_s=cadence,
        rest_s=rest,
        rest_mode=rest_mode,
        on_s=on_s,
        off_s=off_s,
        cycles=cycles,
        max_occlusion_s=max_occ,
        between_exercises_s=between,
        full_occlusion=full,
    )


def _check_reps_occlusion(
    t: TableReader, sets: tuple[int, ...], cadence: float, rest: float, rest_mode: str, max_occ: float
) -> None:
    """Refuse a plan whose continuous occlusion would run past ``max_occlusion_s``."""
    if rest_mode == "hold":
        work = sum(sets) * cadence
        total = work + (len(sets) - 1) * rest
        if total > max_occ:
            counts = "+".join(str(r) for r in sets)
            t.problem(
                "sets",
                f'with rest_mode = "hold" the cuff stays inflated for the whole exercise: '
                f"{counts} reps at {plain(cadence)} s plus {len(sets) - 1} rests of {plain(rest)} s = {plain(total)} s, "
                f'more than max_occlusion_s ({plain(max_occ)} s); use fewer reps or rest_mode = "release"',
            )
        return
    for i, reps in enumerate(sets, start=1):
        if reps * cadence > max_occ:
            t.problem(
                "sets",
                f"set {i} ({reps} reps at {plain(cadence)} s = {plain(reps * cadence)} s) is longer than "
                f"max_occlusion_s ({plain(max_occ)} s)",
            )


def validate_plan(raw: Mapping[str, Any], where: str = "plan") -> Plan:
    """Build a :class:`Plan` from a TOML table or raise :class:`PlanError` listing every problem."""
    problems: list[str] = []
    plan = read_plan(raw, where, problems)
    if plan is None:
        raise PlanError(problems)
    return plan
