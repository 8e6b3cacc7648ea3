"""Immutable views of the station for the consoles, built at most once per change.

Kept out of the sample path: a sample only sets :attr:`SnapshotBuilder.dirty`;
:meth:`SnapshotBuilder.snapshot` rebuilds when something changed, the alarms moved, or the
cached view is older than :data:`SNAPSHOT_MAX_AGE_S` (so ages and timers move), however
many consoles ask. The station owns one builder and hands it the live state it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from console.common.api import (
    CONNECTING,
    OFFLINE,
    PRIORITY_RANK,
    ControllerSnapshot,
    CuffSnapshot,
    PlanSummary,
    Priority,
    Role,
    StationSnapshot,
)
from console.common.clock import Clock
from console.station.alarms import AlarmManager
from console.station.controller_state import ControllerState
from console.station.cuff import CuffState
from console.station.emergency import EmergencyDeflater
from console.station.session_hook import SessionHook

log = logging.getLogger(__name__)


class PlanLike(Protocol):
    """What a snapshot shows of a plan (the therapy's ``Plan`` has these and more)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def limb(self) -> str | None: ...
    @property
    def pct_lop(self) -> float: ...


SNAPSHOT_MAX_AGE_S = 0.1
"""A cached snapshot older than this (station clock) is rebuilt, so ages and timers move."""


class SnapshotBuilder:
    """The cached :class:`StationSnapshot` of one station and how it is built.

    Args:
        name: the station's name, shown on every console.
        clock: the station clock (sample ages, occlusion timers, the cache's age).
        alarms, emergency: read for the alarm list and the last emergency.
        cuffs, controllers: the station's live state (the same dicts, read at each rebuild).
        plans: the plan library, summarised once.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        alarms: AlarmManager,
        emergency: EmergencyDeflater,
        cuffs: dict[str, CuffState],
        controllers: dict[str, ControllerState],
        plans: Iterable[PlanLike],
    ) -> None:
        self.name = name
        self.clock = clock
        self.alarms = alarms
        self.emergency = emergency
        self.cuffs = cuffs
        self.controllers = controllers
        self._plan_source = plans
        self.sessions: SessionHook | None = None
        """The attached sessions/LOP engine, asked for each cuff's session and LOP progress."""
        self.dirty = True
        """Set by anything that changes what a snapshot shows; the next :meth:`snapshot` rebuilds."""
        self._snap: StationSnapshot | None = None
        self._snap_key: tuple[int, float] = (-1, 0.0)
        self._seq = 0
        self._plans: tuple[PlanSummary, ...] | None = None
        self.notices: list[Callable[[], str]] = []
        """Helpers' lines for the consoles (the MQTT publisher's); an empty one is not shown."""

    def snapshot(self) -> StationSnapshot:
        """The newest state, rebuilt only when something changed (or timers moved)."""
        now = self.clock.monotonic()
        snap = self._snap
        if (
            snap is not None
            and not self.dirty
            and self._snap_key[0] == self.alarms.version
            and now - self._snap_key[1] < SNAPSHOT_MAX_AGE_S
        ):
            return snap
        self.dirty = False
        self._seq += 1
        alarms = self.alarms.current()
        worst_cuff: dict[str, Priority] = {}
        worst_ctrl: dict[str, Priority] = {}
        for a in alarms:
            if a.cuff is not None:
                best = worst_cuff.get(a.cuff)
                if best is None or PRIORITY_RANK[a.priority] > PRIORITY_RANK[best]:
                    worst_cuff[a.cuff] = a.priority
            elif a.controller is not None:
                best = worst_ctrl.get(a.controller)
                if best is None or PRIORITY_RANK[a.priority] > PRIORITY_RANK[best]:
                    worst_ctrl[a.controller] = a.priority
        cuffs = tuple(self._cuff_snapshot(c, now, worst_cuff, worst_ctrl) for c in self.cuffs.values())
        ctrls = tuple(self._controller_snapshot(c) for c in self.controllers.values())
        snap = StationSnapshot(
            name=self.name,
            time=self.clock.wall(),
            cuffs=cuffs,
            controllers=ctrls,
            alarms=alarms,
            emergency=self.emergency.last,
            seq=self._seq,
            role=Role.OPERATOR,
            plans=self._plan_summaries(),
            notices=tuple(line for line in (n() for n in self.notices) if line),
        )
        self._snap = snap
        self._snap_key = (self.alarms.version, now)
        return snap

    def _cuff_snapshot(
        self, c: CuffState, now: float, worst_cuff: dict[str, Priority], worst_ctrl: dict[str, Priority]
    ) -> CuffSnapshot:
        ctrl = self.controllers[c.spec.controller]
        online = ctrl.online
        count = ctrl.channel_count() if online else None
        if count is not None and c.channel > count:
            online = False  # the controller has no such channel: the cuff cannot be used
        if not online:
            state = OFFLINE if ctrl.ever_ready else CONNECTING
        else:
            state = c.ctrl_state or CONNECTING
        pressure = c.pressure if online else None
        alarm = worst_cuff.get(c.id)
        ca = worst_ctrl.get(ctrl.id)
        if ca is not None and (alarm is None or PRIORITY_RANK[ca] > PRIORITY_RANK[alarm]):
            alarm = ca
        session = lop_measure = None
        if self.sessions is not None:
            try:
                session, lop_measure = self.sessions.cuff_extras(c.id)
            except Exception:
                log.exception("station: sessions.cuff_extras(%s) failed", c.id)
        spec = c.spec
        return CuffSnapshot(
            id=c.id,
            label=spec.label,
            limb=spec.limb,
            controller=spec.controller,
            channel=spec.channel,
            state=state,
            online=online,
            pressure=pressure,
            target=c.target,
            lop=c.lop,
            target_pct_lop=c.pct_lop(c.target) if c.target > 0 else (0.0 if c.lop else None),
            pressure_pct_lop=c.pct_lop(pressure),
            max_pct_lop=spec.max_pct_lop,
            tolerance=spec.tolerance,
            latched=c.latched,
            occlusion_s=c.occlusion_s(now),
            occlusion_warn_s=spec.occlusion_warn_s,
            occlusion_limit_s=spec.occlusion_limit_s,
            trace=c.trace(),
            samples=c.samples,
            sample_age_s=(now - c.last_sample_at) if c.last_sample_at is not None else None,
            alarm=alarm,
            session=session,
            lop_measure=lop_measure,
            patient_id=c.patient_id,
            pair=c.spec.pair,
            # Whole minutes: an age that changed every frame would make every snapshot differ (and repaint).
            lop_age_s=None if c.lop_at is None else 60.0 * (max(0.0, self.clock.wall() - c.lop_at) // 60),
            lop_position=c.lop_position,
            width_cm=spec.width_cm,
        )

    def _controller_snapshot(self, ctrl: ControllerState) -> ControllerSnapshot:
        link = ctrl.link
        info = link.info if link is not None else None
        stats = link.stats if link is not None else None
        return ControllerSnapshot(
            id=ctrl.id,
            port=ctrl.port,
            state=ctrl.link_state,
            model=info.model if info else "",
            firmware=info.fw if info else "",
            serial=info.serial if info else "",
            channels=info.channels if info else 0,
            dropped=stats.dropped.total if stats else 0,
            timeouts=stats.timeouts if stats else 0,
            reconnects=stats.reconnects if stats else 0,
            error=ctrl.error,
        )

    def _plan_summaries(self) -> tuple[PlanSummary, ...]:
        if self._plans is None:
            out = []
            for plan in self._plan_source:
                try:
                    out.append(PlanSummary(plan.id, plan.name, plan.description, plan.limb, float(plan.pct_lop)))
                except Exception:
                    log.exception("station: plan %r not summarised", plan)
            self._plans = tuple(out)
        return self._plans
