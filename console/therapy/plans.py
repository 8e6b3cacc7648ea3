"""Therapy plans: what a session does with a cuff, and the built-in library.

A plan is pure data. The session runner turns it into a set/rep/rest timer (mode
``reps``) or an on/off timer (mode ``cycles``); the safety supervisor still
enforces every cuff limit on top of it. :func:`validate_plan` refuses plans that
make no sense, naming the key and what was expected, and collects every problem
at once so a technician fixes a config in one pass.

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

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from console.common.api import PlanSummary
from console.common.facts import LIMBS

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

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
REQUIRED: Final[Any] = object()
"""Marker default: the key must be present."""


class PlanError(ValueError):
    """A plan was refused; one line per problem, each starting with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _fmt(x: float) -> str:
    return f"{x:g}"


def describe(value: Any) -> str:
    """Describe a TOML value for an error message: its kind and (short) content."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{text}")'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({value})"


def _range_text(lo: float | None, hi: float | None, lo_open: bool, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        if lo_open:
            return f"above {_fmt(lo)} and at most {_fmt(hi)}{u}"
        return f"from {_fmt(lo)} to {_fmt(hi)}{u}"
    if lo is not None:
        return f"{'above' if lo_open else 'at least'} {_fmt(lo)}{u}"
    if hi is not None:
        return f"at most {_fmt(hi)}{u}"
    return ""


def _choices(options: Iterable[str]) -> str:
    quoted = [f'"{o}"' for o in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class TableReader:
    """Reads one TOML table, checking types and ranges and collecting problems.

    Shared with :mod:`console.config`. Each getter returns the value, the
    default when the key is absent, or None after recording a problem (the
    caller carries on so every problem gets reported, then raises).
    """

    def __init__(self, data: Mapping[str, Any], where: str, allowed: Iterable[str], problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.allowed = tuple(allowed)
        self.problems = problems
        for key in data:
            if key not in self.allowed:
                self.problem(key, self._unknown(key))

    def _unknown(self, key: str) -> str:
        close = difflib.get_close_matches(key, self.allowed, n=1, cutoff=0.6)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        return f"unknown key; {hint}valid keys here: {', '.join(self.allowed)}"

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: Any, expectation: str) -> tuple[bool, Any]:
        """(present, value); records a problem when a required key is missing."""
        if key in self.data:
            return True, self.data[key]
        if default is REQUIRED:
            self.problem(key, f"missing (expected {expectation})")
        return False, None if default is REQUIRED else default

    def text(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        choices: tuple[str, ...] | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        allow_empty: bool = False,
    ) -> Any:
        expectation = _choices(choices) if choices else "a string"
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if not isinstance(value, str):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if choices and value not in choices:
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if not value.strip() and not allow_empty:
            self.problem(key, "expected a non-empty string, found an empty one")
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(key, f"expected {pattern_text}, found {describe(value)}")
            return None
        return value

    def ident(self, key: str, default: Any = REQUIRED) -> Any:
        return self.text(
            key,
            default,
            pattern=_ID,
            pattern_text="an id of 1-40 letters, digits, '.', '_' or '-' starting with a letter or digit",
        )

    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        unit: str = "",
    ) -> Any:
        rng = _range_text(lo, hi, lo_open, unit)
        expectation = f"a number {rng}".strip()
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        value = float(value)
        if (
            value != value
            or (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and value > hi)
        ):
            self.problem(key, f"expected {expectation}, found {_fmt(value)}")
            return None
        return value

    def seconds(self, key: str, default: Any = REQUIRED, *, hi: float | None = None, lo: float = 0.0) -> Any:
        """A duration: strictly above ``lo`` (0 unless told), at most ``hi``."""
        return self.number(key, default, lo=lo, hi=hi, lo_open=True, unit="s")

    def integer(self, key: str, default: Any = REQUIRED, *, lo: int | None = None, hi: int | None = None) -> Any:
        rng = _range_text(lo, hi, False, "")
        expectation = f"an integer {rng}".strip()
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.problem(key, f"expected {expectation}, found {value}")
            return None
        return value

    def flag(self, key: str, default: Any = REQUIRED) -> Any:
        present, value = self._raw(key, default, "true or false")
        if not present:
            return value
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, found {describe(value)}")
            return None
        return value

    def numbers(
        self, key: str, default: Any = REQUIRED, *, lo: float, hi: float, integers: bool = False, unit: str = ""
    ) -> Any:
        """A non-empty array of numbers (or integers) within [lo, hi], as a tuple."""
        kind = "integers" if integers else "numbers"
        expectation = f"a non-empty array of {kind} {_range_text(lo, hi, False, unit)}"
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if not isinstance(value, list) or not value:
            found = "an empty array" if value == [] else describe(value)
            self.problem(key, f"expected {expectation}, found {found}")
            return None
        element = f"{'an integer' if integers else 'a number'} {_range_text(lo, hi, False, unit)}"
        out: list[float] = []
        ok = True
        for i, item in enumerate(value):
            bad_type = isinstance(item, bool) or not isinstance(item, int if integers else int | float)
            if bad_type:
                self.problems.append(f"{self.path(key)}[{i}]: expected {element}, found {describe(item)}")
                ok = False
            elif not lo <= item <= hi:
                self.problems.append(f"{self.path(key)}[{i}]: expected {element}, found {_fmt(item)}")
                ok = False
            else:
                out.append(item if integers else float(item))
        return tuple(out) if ok else None


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
    description = t.text("description", "", allow_empty=True)
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

    sets: tuple[int, ...] = ()
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
                f'with rest_mode = "release" the rest must be at least {_fmt(MIN_RELEASE_S)} s '
                f"(venting and refilling the cuff take that long), found {_fmt(rest)}",
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
                f"expected at least {_fmt(MIN_RELEASE_S)} s off (venting and refilling the cuff take that long), "
                f"found {_fmt(off_s)}",
            )
        if on_s is not None and max_occ is not None and on_s > max_occ:
            t.problem(
                "on_s",
                f"each on-phase ({_fmt(on_s)} s) is longer than max_occlusion_s ({_fmt(max_occ)} s)",
            )

    if len(problems) > before:
        return None
    assert plan_id is not None and pct is not None and mode is not None and full is not None
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
            reps = "+".join(str(r) for r in sets)
            t.problem(
                "sets",
                f'with rest_mode = "hold" the cuff stays inflated for the whole exercise: '
                f"{reps} reps at {_fmt(cadence)} s plus {len(sets) - 1} rests of {_fmt(rest)} s = {_fmt(total)} s, "
                f'more than max_occlusion_s ({_fmt(max_occ)} s); use fewer reps or rest_mode = "release"',
            )
        return
    for i, reps in enumerate(sets, start=1):
        if reps * cadence > max_occ:
            t.problem(
                "sets",
                f"set {i} ({reps} reps at {_fmt(cadence)} s = {_fmt(reps * cadence)} s) is longer than "
                f"max_occlusion_s ({_fmt(max_occ)} s)",
            )


def validate_plan(raw: Mapping[str, Any], where: str = "plan") -> Plan:
    """Build a :class:`Plan` from a TOML table or raise :class:`PlanError` listing every problem."""
    problems: list[str] = []
    plan = read_plan(raw, where, problems)
    if plan is None:
        raise PlanError(problems)
    return plan


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
