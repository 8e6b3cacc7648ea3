"""What a session has done, set by set, and the summary made of it for the record.

Kept apart from :class:`~console.therapy.session.SessionRunner`'s timer: the runner
says when a set ends and how many reps it had; this keeps the tally, the alarms
the session was told about, and builds the :class:`SessionSummary`.
"""

from __future__ import annotations

from console.therapy.session_cuffs import SessionCuffs
from console.therapy.session_types import PlanLike, SessionSummary


class SessionLog:
    """The sets done (reps and contractions seen in each) and the alarms of one session.

    Args:
        plan: the plan the session runs.
        patient_id: whose session it is.
        cuffs: the session's cuffs (occlusion and fidelity come from them).
        started_at: the start (station monotonic time).
        set_count: sets (or on-phases) planned.
    """

    def __init__(self, plan: PlanLike, patient_id: str, cuffs: SessionCuffs, started_at: float, set_count: int) -> None:
        self.plan = plan
        self.patient_id = patient_id
        self.cuffs = cuffs
        self.started_at = started_at
        self.set_count = set_count
        self.reps_by_set: list[int] = []
        """Reps of each set done (0 for an on-phase); the last can be corrected by hand."""
        self.detected_by_set: list[int] = []
        self.sets_stopped = 0
        """Sets recorded as cut short (stop, emergency, occlusion limit)."""
        self.alarms: list[tuple[float, str, str]] = []
        """(time, priority, cause) of each alarm the session was told about."""

    def record_set(self, reps: int, detected: int, *, stopped: bool = False) -> None:
        self.sets_stopped += int(stopped)
        self.reps_by_set.append(reps)
        self.detected_by_set.append(detected)

    def summary(self, now: float, outcome: str, message: str) -> SessionSummary:
        reps = tuple(self.reps_by_set)
        cuffs = self.cuffs
        return SessionSummary(
            plan_id=self.plan.id,
            plan_name=self.plan.name,
            patient_id=self.patient_id,
            cuffs=tuple(cuffs.tracks),
            mode=self.plan.mode,
            outcome=outcome,
            started_at=self.started_at,
            ended_at=now,
            sets_planned=self.set_count,
            sets_done=len(reps),
            sets_stopped=self.sets_stopped,
            reps_by_set=reps,
            detected_by_set=tuple(self.detected_by_set),
            reps_done=sum(reps),
            occlusion_s=cuffs.occlusion_s(),
            occlusion_by_cuff=cuffs.occlusion_by_cuff(),
            longest_episode_s=cuffs.longest_episode_s(now),
            fidelity=cuffs.fidelity(),
            fidelity_by_cuff=cuffs.fidelity_by_cuff(),
            alarms=tuple(self.alarms),
            message=message,
        )
