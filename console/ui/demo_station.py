"""A scripted, in-memory :class:`StationHandle` for trying the console without cuffs.

``python -m console.ui.demo --fake N`` runs the app on it, and the UI tests
drive it (``tests/ui_support.py`` adds call recording and refusals). Pressures,
alarms and offline controllers are scripted by the caller; the obvious effect
of each command (target, state, acknowledge) shows up in the next snapshot, so
what the screen shows stays deterministic. No serial I/O, no real controller.
"""

from __future__ import annotations

from dataclasses import replace

from console.common.api import (
    OFFLINE,
    PRIORITY_RANK,
    AlarmSnapshot,
    CommandRefused,
    ControllerSnapshot,
    CuffSnapshot,
    EmergencySnapshot,
    LopProgress,
    PlanSummary,
    Priority,
    Role,
    SessionSnapshot,
    StationSnapshot,
)

WALL0 = 1_800_000_000.0
"""The scripted wall clock's fixed time (epoch seconds), so alarm times render the same every run."""


def make_cuff(
    cuff_id: str,
    *,
    label: str = "left thigh",
    limb: str = "leg",
    controller: str = "rack",
    channel: int = 1,
    state: str = "VENTED",
    pressure: float | None = 0.0,
    target: float = 0.0,
    lop: float | None = 230.0,
    online: bool = True,
    **kw: object,
) -> CuffSnapshot:
    """A cuff snapshot with plausible figures; ``kw`` scripts any other field."""
    values: dict[str, object] = dict(
        id=cuff_id,
        label=label,
        limb=limb,
        controller=controller,
        channel=channel,
        state=state,
        online=online,
        pressure=pressure if online else None,
        target=target,
        lop=lop,
        target_pct_lop=(target / lop * 100 if lop and target else None),
        pressure_pct_lop=(pressure / lop * 100 if lop and pressure is not None and online else None),
        max_pct_lop=80.0,
        tolerance=15.0,
        latched=False,
        occlusion_s=0.0,
        occlusion_warn_s=480.0,
        occlusion_limit_s=600.0,
        trace=tuple([pressure or 0.0] * 100) if online else (),
        samples=0,
        sample_age_s=0.01 if online else None,
    )
    values.update(kw)
    return CuffSnapshot(**values)  # type: ignore[arg-type]


PLANS = (
    PlanSummary("legs-30-15", "Legs 30-15-15-15", "30-15-15-15 reps, 30 s rests held.", "leg", 80.0),
    PlanSummary("arms-30-15", "Arms 30-15-15-15", "30-15-15-15 reps, 30 s rests held.", "arm", 50.0),
    PlanSummary("4x10-60", "4 x 10 at 60 %", "Four sets of 10 slower reps, 60 s rests held.", None, 60.0),
    PlanSummary("walk-legs", "BFR walking, 5 x 2 min", "5 bouts of 2 min, 1 min vented rest.", "leg", 60.0),
)
"""A small plan library: two per limb plus one for either limb."""


def make_session(plan: PlanSummary, cuffs: tuple[str, ...], patient_id: str, **kw: object) -> SessionSnapshot:
    """A session snapshot at its start (inflating, set 1); ``kw`` scripts any field."""
    timed = plan.id.startswith("walk")
    values: dict[str, object] = dict(
        plan_id=plan.id,
        plan_name=plan.name,
        patient_id=patient_id,
        phase="inflating",
        set_index=1,
        set_count=5 if timed else 4,
        rep=0,
        reps_target=0 if timed else 30,
        beat=False,
        cadence_s=0.0 if timed else 2.0,
        phase_remaining_s=None,
        cuffs=cuffs,
    )
    values.update(kw)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


class DemoStation:
    """Implements :class:`StationHandle`; the caller edits ``cuffs``/``alarms`` and calls ``bump()``."""

    def __init__(self, n_cuffs: int = 4, *, name: str = "Bay A", role: Role = Role.OPERATOR) -> None:
        labels = ["left thigh", "right thigh", "left arm", "right arm"]
        self.name = name
        self.role = role
        self.cuffs: list[CuffSnapshot] = [
            make_cuff(
                f"{'ABCDEFGH'[i // 2]}{i % 2 + 1}",
                label=labels[i % 4],
                limb="leg" if i % 4 < 2 else "arm",
                controller=f"ctl{i // 4 + 1}",
                channel=i % 4 + 1,
            )
            for i in range(n_cuffs)
        ]
        self.controllers = [
            ControllerSnapshot(id=f"ctl{k + 1}", port="emulator", state="ready") for k in range((n_cuffs + 3) // 4)
        ]
        self.alarms: list[AlarmSnapshot] = []
        self.log: list[AlarmSnapshot] = []
        self.emergency: EmergencySnapshot | None = None
        self.plans: tuple[PlanSummary, ...] = PLANS
        self.seq = 1
        self.time = WALL0
        self._next_alarm = 1

    # -- scripting ---------------------------------------------------------------
    def bump(self) -> None:
        self.seq += 1

    def set_cuff(self, cuff_id: str, **changes: object) -> None:
        i = self.index(cuff_id)
        c = replace(self.cuffs[i], **changes)  # type: ignore[arg-type]
        self.cuffs[i] = replace(c, samples=c.samples + 1)
        self.bump()

    def index(self, cuff_id: str) -> int:
        for i, c in enumerate(self.cuffs):
            if c.id == cuff_id:
                return i
        raise CommandRefused(f"There is no cuff {cuff_id}.")

    def go_offline(self, controller: str) -> None:
        for i, c in enumerate(self.cuffs):
            if c.controller == controller:
                self.cuffs[i] = replace(
                    c, state=OFFLINE, online=False, pressure=None, pressure_pct_lop=None, trace=(), sample_age_s=None
                )
        self.bump()

    def raise_alarm(
        self, priority: Priority, cause: str, cuff: str | None, message: str, controller: str | None = None
    ) -> AlarmSnapshot:
        a = AlarmSnapshot(
            id=self._next_alarm,
            priority=priority,
            cause=cause,
            message=message,
            cuff=cuff,
            controller=controller,
            raised_at=self.time,
            active=True,
            acknowledged=False,
        )
        self._next_alarm += 1
        self.alarms.append(a)
        self.log.insert(0, a)
        self._sync_alarms()
        return a

    def _sync_alarms(self) -> None:
        self.alarms.sort(key=lambda a: (-PRIORITY_RANK[a.priority], -a.raised_at, -a.id))
        for i, c in enumerate(self.cuffs):
            mine = [a for a in self.alarms if a.cuff == c.id]
            self.cuffs[i] = replace(c, alarm=mine[0].priority if mine else None)
        self.bump()

    # -- StationHandle ------------------------------------------------------------
    def snapshot(self) -> StationSnapshot:
        return StationSnapshot(
            name=self.name,
            time=self.time,
            cuffs=tuple(self.cuffs),
            controllers=tuple(self.controllers),
            alarms=tuple(self.alarms),
            emergency=self.emergency,
            seq=self.seq,
            role=self.role,
            plans=self.plans,
        )

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        return self.log[:limit]

    async def emergency_deflate(self) -> EmergencySnapshot:
        for i, c in enumerate(self.cuffs):
            if c.online:
                self.cuffs[i] = replace(c, target=0.0, state="VENTING", target_pct_lop=None)
        online = tuple(k.id for k in self.controllers if any(c.controller == k.id and c.online for c in self.cuffs))
        pending = tuple(k.id for k in self.controllers if k.id not in online)
        self.emergency = EmergencySnapshot(
            started_at=self.time, confirmed=online, pending=pending, latency_s=None if pending else 0.004
        )
        self.bump()
        return self.emergency

    async def before_command(self, name: str, *args: object, **kwargs: object) -> None:
        """Runs first in every command but the emergency deflate: refuses what an observer may not do.

        A test double overrides it to record, refuse or hold commands.
        """
        if self.role is Role.OBSERVER:
            raise CommandRefused("An observer may only use the emergency deflate.")

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        await self.before_command("inflate", cuff_id, mmhg=mmhg, pct_lop=pct_lop)
        c = self.cuffs[self.index(cuff_id)]
        target = mmhg if mmhg is not None else (pct_lop or 0) * (c.lop or 0) / 100
        self.set_cuff(cuff_id, target=target, state="INFLATING", target_pct_lop=target / c.lop * 100 if c.lop else None)

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        await self.before_command("nudge_target", cuff_id, delta_mmhg)
        c = self.cuffs[self.index(cuff_id)]
        if c.target <= 0:
            raise CommandRefused(f"Cuff {cuff_id} is not inflated: nothing to nudge.")
        self.set_cuff(cuff_id, target=c.target + delta_mmhg)

    async def deflate(self, cuff_id: str) -> None:
        await self.before_command("deflate", cuff_id)
        self.set_cuff(cuff_id, target=0.0, state="VENTING", target_pct_lop=None)

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        await self.before_command("acknowledge", alarm_id)
        self.alarms = [replace(a, acknowledged=True) if alarm_id in (None, a.id) else a for a in self.alarms]
        self.log = [replace(a, acknowledged=True) if alarm_id in (None, a.id) else a for a in self.log]
        self._sync_alarms()

    async def silence(self, seconds: float = 120.0) -> None:
        await self.before_command("silence", seconds)
        until = self.time + min(seconds, 120.0)
        self.alarms = [replace(a, silenced_until=until) for a in self.alarms]
        self.bump()

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None:
        await self.before_command(
            "set_lop", cuff_id, lop, position=position, cuff_width_cm=cuff_width_cm, source=source
        )
        self.set_cuff(cuff_id, lop=lop)

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        await self.before_command("measure_lop", cuff_id, position=position)
        self.set_cuff(cuff_id, lop_measure=LopProgress("running", 40.0, 0.0), state="INFLATING", target=40.0)

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        await self.before_command("set_patient", cuff_id, patient_id)
        self.set_cuff(cuff_id, patient_id=patient_id)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        await self.before_command("start_session", cuff_ids, plan_id, patient_id)
        plan = next((p for p in self.plans if p.id == plan_id), None)
        if plan is None:
            raise CommandRefused(f"There is no plan {plan_id}.")
        for cid in cuff_ids:
            c = self.cuffs[self.index(cid)]
            target = plan.pct_lop * (c.lop or 0) / 100
            self.set_cuff(
                cid,
                session=make_session(plan, tuple(cuff_ids), patient_id),
                patient_id=patient_id,
                state="INFLATING",
                target=target,
                target_pct_lop=plan.pct_lop,
            )

    def set_session(self, cuff_id: str, **changes: object) -> None:
        """Script the session on a cuff and on every cuff it drives (a pair shows the same timer)."""
        s = self.cuffs[self.index(cuff_id)].session
        assert s is not None, f"no session on {cuff_id}"
        new = replace(s, **changes)  # type: ignore[arg-type]
        for cid in s.cuffs:
            self.set_cuff(cid, session=new)

    async def session_command(self, cuff_id: str, command: str) -> None:
        await self.before_command("session_command", cuff_id, command)
        s = self.cuffs[self.index(cuff_id)].session
        if s is None:
            raise CommandRefused(f"No session runs on {cuff_id}.")
        if command in ("pause", "pause-vent"):
            self.set_session(cuff_id, phase="paused", beat=False)
            if command == "pause-vent":
                for cid in s.cuffs:
                    self.set_cuff(cid, target=0.0, state="VENTING", target_pct_lop=None)
        elif command == "resume":
            self.set_session(cuff_id, phase="set")
        elif command == "skip":
            self.set_session(cuff_id, phase="rest", phase_remaining_s=30.0)
        elif command == "stop":
            self.set_session(cuff_id, phase="stopped", message="stopped by the operator")
            for cid in s.cuffs:
                self.set_cuff(cid, target=0.0, state="VENTING", target_pct_lop=None)
        elif command in ("rep+", "rep-"):
            self.set_session(cuff_id, rep=max(0, s.rep + (1 if command == "rep+" else -1)))
