"""The cuffs of a session as its runner sees them: targets, readings, fidelity, occlusion, contractions.

Pure bookkeeping for :class:`~console.therapy.session.SessionRunner`, which keeps
the timing rules. Every cuff of a session is inflated and vented together, so an
occlusion episode belongs to the session: it starts when the runner inflates
vented cuffs and ends when it vents them; the time under occlusion is counted
per cuff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from console.common.facts import FIDELITY_BAND
from console.therapy.reps import ContractionDetector

REACHED_BAND = 0.05
"""Inflating ends when every cuff is within this share of its target (at least 3 mmHg)."""
REACHED_MIN_MMHG = 3.0

MAX_SAMPLE_GAP_S = 0.5
"""A gap between samples longer than this is not counted towards fidelity."""


@dataclass
class CuffTrack:
    """One cuff: its target, newest reading, time held and within the band, occlusion, contractions."""

    target: float
    pressure: float | None = None
    last_t: float | None = None
    held_s: float = 0.0
    within_s: float = 0.0
    occlusion_s: float = 0.0
    detector: ContractionDetector = field(default_factory=ContractionDetector)


class SessionCuffs:
    """The cuffs of one session (one, or a pair) and its occlusion episodes.

    Args:
        cuffs: the session's cuff ids.
        lop_by_cuff: each cuff's LOP; a cuff without one refuses the session (ValueError).
        pct_lop: the plan's % LOP, which sets each cuff's target.
        ceiling_mmhg: a target above this refuses the session (ValueError); None for no check.
        now: the session's start (station monotonic time).
    """

    def __init__(
        self,
        cuffs: Sequence[str],
        lop_by_cuff: Mapping[str, float | None],
        pct_lop: float,
        ceiling_mmhg: float | None,
        now: float,
    ) -> None:
        self.tracks: dict[str, CuffTrack] = {}
        for c in cuffs:
            lop = lop_by_cuff.get(c)
            if lop is None or not math.isfinite(lop) or lop <= 0:
                raise ValueError(f"cuff {c} has no LOP: measure or enter it before a % LOP session")
            target = round(pct_lop / 100.0 * lop, 1)
            if ceiling_mmhg is not None and target > ceiling_mmhg:
                raise ValueError(
                    f"cuff {c}: {pct_lop:g} % of LOP {lop:g} is {target:g} mmHg, above the ceiling "
                    f"of {ceiling_mmhg:g} mmHg"
                )
            self.tracks[c] = CuffTrack(target)
        self.inflated = False
        """Whether the runner wants the cuffs inflated now."""
        self._episode_start: float | None = None
        self._occ_mark = now
        self._longest_episode = 0.0

    def target(self, cuff_id: str) -> float:
        return self.tracks[cuff_id].target

    # ------------------------------------------------------------------ samples

    def feed(self, cuff_id: str, t: float, pressure: float, *, holding: bool, counting: bool) -> None:
        """One sample of one cuff (others are ignored); ``holding``: fidelity counts, ``counting``: reps do."""
        tr = self.tracks.get(cuff_id)
        if tr is None or not (math.isfinite(t) and math.isfinite(pressure)):
            return
        if tr.last_t is not None and t < tr.last_t:
            return
        if holding and tr.last_t is not None:
            dt = t - tr.last_t
            if 0 < dt <= MAX_SAMPLE_GAP_S:
                tr.held_s += dt
                if abs(pressure - tr.target) <= FIDELITY_BAND * tr.target:
                    tr.within_s += dt
        tr.pressure = pressure
        tr.last_t = t
        if counting:
            tr.detector.feed(t, pressure)

    def all_reached(self) -> bool:
        """Every cuff is at its target (within the reached band)."""
        for tr in self.tracks.values():
            if tr.pressure is None:
                return False
            if abs(tr.pressure - tr.target) > max(REACHED_MIN_MMHG, REACHED_BAND * tr.target):
                return False
        return True

    def readings(self) -> str:
        """Each cuff's reading against its target, for a message (``A1 120/150, A2 no reading``)."""
        return ", ".join(
            f"{c} {tr.pressure:.0f}/{tr.target:.0f}" if tr.pressure is not None else f"{c} no reading"
            for c, tr in self.tracks.items()
        )

    def detected(self) -> int:
        """Contractions seen in this set: the most any cuff saw."""
        return max((tr.detector.count for tr in self.tracks.values()), default=0)

    def reset_detectors(self) -> None:
        for tr in self.tracks.values():
            tr.detector.reset()

    # ------------------------------------------------------------------ occlusion

    def inflate(self, now: float) -> None:
        """The runner asks for the targets: a new episode if the cuffs were vented."""
        if not self.inflated:
            self.inflated = True
            self._episode_start = now
            self._occ_mark = now

    def vent(self, now: float) -> None:
        """The runner vents the cuffs: the episode ends."""
        self.account(now)
        if self.inflated and self._episode_start is not None:
            self._longest_episode = max(self._longest_episode, now - self._episode_start)
        self.inflated = False
        self._episode_start = None

    def account(self, now: float) -> None:
        """Count the time under occlusion up to ``now``."""
        if self.inflated:
            mark = self._occ_mark
            if now > mark:
                for tr in self.tracks.values():
                    tr.occlusion_s += now - mark
                self._occ_mark = now

    def episode_s(self, now: float) -> float | None:
        """How long the cuffs have been inflated without a break; None while vented."""
        if not self.inflated or self._episode_start is None:
            return None
        return now - self._episode_start

    def longest_episode_s(self, now: float) -> float:
        """The longest episode so far, the one under way included."""
        longest = self._longest_episode
        if self.inflated and self._episode_start is not None:
            longest = max(longest, now - self._episode_start)
        return longest

    # ------------------------------------------------------------------ for the summary

    def occlusion_s(self) -> float:
        """Time under occlusion, longest over the cuffs."""
        return max(tr.occlusion_s for tr in self.tracks.values())

    def occlusion_by_cuff(self) -> dict[str, float]:
        return {c: tr.occlusion_s for c, tr in self.tracks.items()}

    def fidelity(self) -> float | None:
        """Share of held time within the band over all cuffs; None if never held."""
        held = sum(tr.held_s for tr in self.tracks.values())
        within = sum(tr.within_s for tr in self.tracks.values())
        return (within / held) if held > 0 else None

    def fidelity_by_cuff(self) -> dict[str, float | None]:
        return {c: (tr.within_s / tr.held_s if tr.held_s > 0 else None) for c, tr in self.tracks.items()}
