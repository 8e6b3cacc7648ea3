"""The station engine: links, live cuff state, safety, alarms, emergency.

One :class:`Station` owns every controller link (the real driver, also for the
built-in emulator, which it serves on a fresh pseudo-terminal), keeps every
cuff's state from the samples, status lines and events, runs the supervisor on
each of them and on a periodic tick, and answers the console's commands (StationHandle). No Textual.

This module holds the state and the commands; collaborators with one job each are handed what they
need: ``connections`` (links up and down), ``link_reports`` (the per-sample hot path), ``events``
(observers, audit trail, records), ``targets`` (inflates, deflates and their retries), ``alarm_desk``
(acknowledge, silence, latches), ``session_commands`` (sessions/LOP) and ``snapshots`` (the view).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from console.common.api import AlarmSnapshot, CommandRefused, EmergencySnapshot, Priority, Role, StationSnapshot
from console.common.clock import Clock, SystemClock
from console.common.figures import figure, number_arg
from console.common.patients import PatientHistory, PatientSummary
from console.common.ticks import sleep_until_tick
from console.config.schema import StationConfig
from console.station.alarm_desk import AlarmDesk
from console.station.alarms import AlarmManager
from console.station.connections import Connections
from console.station.controller_state import ControllerState
from console.station.cuff import CuffSpec, CuffState
from console.station.cuff_details import CuffDetails
from console.station.emergency import EmergencyDeflater
from console.station.events import (
    AuditTrail,
    Observer,
    RecordsSink,
    SampleListener,
    StationEvent,
    actor_role_var,
    actor_var,
)
from console.station.limits import Limits
from console.station.link_reports import LinkReports
from console.station.lop_records import restore_lops
from console.station.patient_desk import PatientDesk
from console.station.records_watch import RecordsWatch
from console.station.session_commands import SessionCommands
from console.station.session_hook import SessionHook
from console.station.snapshots import SnapshotBuilder
from console.station.supervisor import Supervisor
from console.station.targets import Targets
from drivers.emulator.pty_port import PtyEmulator
from drivers.link import CuffLink
from drivers.link_errors import CommandError, LinkDown, LinkError

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.05  # the supervisor's tick (real time; it reads the station clock), on console.common.ticks' grid

READY_TIMEOUT_S = 3.0
"""How long :meth:`Station.start` waits for the links before carrying on without the slow ones."""


class Station:
    """The engine behind every console (role operator).

    Args:
        config: a :class:`console.config.schema.StationConfig`.
        clock: the station's time; samples are stamped with ``clock.monotonic()`` on arrival.
        records: a :class:`console.records.store.Records` (alarms, emergencies and commands are
            written to it; its failures are logged and never reach the station), or None.
        check_interval_s: the periodic supervisor tick, real seconds. With a ManualClock pass None
            and call :meth:`check_now` after stepping the clock and letting fresh samples arrive,
            or an advance of the clock looks like silent links.
        ready_timeout_s: how long :meth:`start` waits for the links before going on without them.
    """

    def __init__(
        self,
        config: StationConfig,
        *,
        clock: Clock | None = None,
        records: RecordsSink | None = None,
        check_interval_s: float | None = CHECK_INTERVAL_S,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.check_interval_s = check_interval_s
        self.heartbeats: list[Callable[[], None]] = []
        """Called after every periodic check that ran (systemd's watchdog ping: a stalled loop stops it)."""
        self.ready_timeout_s = ready_timeout_s
        st, sf = config.station, config.safety
        self.limits = Limits(sf, st)
        self.audit = AuditTrail(self.clock, records, self.mark_changed)
        self.alarms = AlarmManager(self.clock, silence_max_s=config.alarms.silence_max_s, listener=self.audit.on_alarm)
        self.cuffs: dict[str, CuffState] = {}
        for c in config.cuffs:
            lim = config.limits(c.id)
            spec = CuffSpec(
                id=c.id,
                controller=c.controller,
                channel=c.channel,
                limb=c.limb,
                label=c.label,
                max_pct_lop=lim.max_pct_lop,
                tolerance=lim.tolerance_mmhg,
                occlusion_warn_s=lim.occlusion_warn_s,
                occlusion_limit_s=lim.occlusion_limit_s,
                max_mmhg_without_lop=lim.max_mmhg_without_lop,
                width_cm=c.width_cm,
                lop=c.lop,
                pair=c.pair,
            )
            self.cuffs[c.id] = CuffState(spec)
        self.controllers: dict[str, ControllerState] = {}
        for cc in config.controllers:
            mine = tuple(cuff for cuff in self.cuffs.values() if cuff.spec.controller == cc.id)
            self.controllers[cc.id] = ControllerState(cc.id, cc.port, mine, watchdog_s=cc.watchdog_ms / 1000)
        self.supervisor = Supervisor(
            self.limits,
            self.alarms,
            self.controllers,
            self._deflate_soon,
            vent_controller=lambda ctrl, why: self.targets.vent_controller(ctrl, why),
        )
        self.emergency = EmergencyDeflater(
            self.clock,
            confirm_s=sf.deflate_confirm_s,
            on_unconfirmed=lambda cid: self.alarm_desk.on_unconfirmed(cid),
            on_confirmed=lambda cid: self.alarm_desk.on_late_confirm(cid),
            on_update=self.audit.on_emergency_update,
        )
        self.view = SnapshotBuilder(
            st.name, self.clock, self.alarms, self.emergency, self.cuffs, self.controllers, config.plans.values()
        )
        self.failed = asyncio.Event()
        """Set when the supervisor itself crashed: the station deflated everything and must stop."""
        self.reports = LinkReports(
            clock=self.clock,
            supervisor=self.supervisor,
            alarms=self.alarms,
            audit=self.audit,
            view=self.view,
            spawn=self._spawn,
            fail_safe=self._fail_safe,
            failed=self.failed,
            deflate_soon=self._deflate_soon,
        )
        threshold = self.limits.occlusion_threshold_mmhg
        self.connections = Connections(
            config.controllers,
            self.controllers,
            lambda ctrl: self.reports.listener_for(ctrl, threshold),
            ready_timeout_s,
            blind_after_s=sf.link_timeout_s,
        )
        self.details = CuffDetails(self.lookup, self._refuse, self.audit, self.view)
        self.patients = PatientDesk(lambda: self.records, self.cuffs, self.details, config)
        self.records_watch = RecordsWatch(self.alarms, records, lambda: self.audit.refused_rows)
        self.sessions = SessionCommands(self._refuse, self.record_command, lambda: self.records_watch.broken)
        self.alarm_desk = AlarmDesk(
            alarms=self.alarms,
            supervisor=self.supervisor,
            controllers=self.controllers,
            confirm_s=sf.deflate_confirm_s,
            view=self.view,
            refuse=self._refuse,
            record_command=self.record_command,
        )
        self.targets = Targets(
            clock=self.clock,
            supervisor=self.supervisor,
            emergency=self.emergency,
            cuffs=self.cuffs,
            controllers=self.controllers,
            view=self.view,
            record_command=self.record_command,
            spawn=self._spawn,
            alarms=self.alarms,
            confirm_s=sf.deflate_confirm_s,
            link_timeout_s=sf.link_timeout_s,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._check_task: asyncio.Task[None] | None = None
        self.started = False
        self.stopped = False

    # ================================================================== collaborators' faces

    @property
    def records(self) -> RecordsSink | None:
        return self.audit.records

    @property
    def links(self) -> dict[str, CuffLink]:
        return self.connections.links

    @property
    def emulators(self) -> dict[str, PtyEmulator]:
        """Controller id -> PtyEmulator for ``port = "emulator"`` (tests reach the firmware here)."""
        return self.connections.emulators

    def snapshot(self) -> StationSnapshot:
        """The newest state, rebuilt only when something changed (or timers moved)."""
        return self.view.snapshot()

    def mark_changed(self) -> None:
        """Something shown in the snapshot changed outside the station (session timer, LOP progress)."""
        self.view.dirty = True

    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Hear every alarm change, command, refusal, emergency and controller event; returns an unsubscribe."""
        return self.audit.add_observer(fn)

    def add_sample_listener(self, fn: SampleListener) -> Callable[[], None]:
        """fn(cuff_id, t, mmHg) for every sample of every cuff, on the hot path: keep it cheap."""
        return self.audit.add_sample_listener(fn)

    def record_command(self, who: str, what: str) -> None:
        """Put a command in the audit trail (and tell observers)."""
        self.audit.record_command(who, what)

    def command_log(self, limit: int = 100) -> list[tuple[float, str, str]]:
        return self.audit.command_log(limit)

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        return self.alarms.log(limit)

    def attach_sessions(self, hook: SessionHook) -> None:
        """Plug in the sessions/LOP engine; until then those commands are refused."""
        self.sessions.hook = hook
        self.view.sessions = hook

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        await self.sessions.measure_lop(cuff_id, position=position)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        await self.sessions.start_session(cuff_ids, plan_id, patient_id)

    async def session_command(self, cuff_id: str, command: str) -> None:
        await self.sessions.session_command(cuff_id, command)

    # ================================================================== lifecycle

    async def start(self) -> None:
        """Open every link (serving emulators on fresh ptys), wait briefly for READY, DEFLATE ALL."""
        if self.started:
            return
        self.started = True
        now = self.clock.monotonic()
        for ctrl in self.controllers.values():
            ctrl.down_since = now
        await self.connections.open()
        self.audit.emit(StationEvent("station", self.clock.wall(), "station", "station started"))
        for said in restore_lops(self.audit, self.cuffs, self.config.therapy.lop_max_age_days * 86400.0):
            self.audit.record_command("station", said)
        self.view.dirty = True
        if self.check_interval_s is not None:
            self._check_task = asyncio.create_task(self._check_loop(), name="station:supervisor")

    async def stop(self) -> None:
        """Deflate every cuff, then close every link and emulator. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if self._check_task is not None:
            self._check_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._check_task
        self.targets.all_zero()
        try:
            links = {cid: ctrl.link for cid, ctrl in self.controllers.items() if ctrl.link is not None}
            run = self.emergency.fire(links, by="station stop")
            if run.futures:
                await asyncio.wait(list(run.futures.values()), timeout=max(0.5, self.emergency.confirm_s))
        finally:
            await self.emergency.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.connections.close()
            self.audit.emit(StationEvent("station", self.clock.wall(), "station", "station stopped"))

    async def _check_loop(self) -> None:
        assert self.check_interval_s is not None
        while True:
            await sleep_until_tick(self.check_interval_s)
            try:
                self.check_now()
                for beat in self.heartbeats:
                    beat()
            except Exception:
                log.exception("station: supervisor check crashed; deflating everything")
                await self._fail_safe("the safety supervisor crashed")
                return

    async def _fail_safe(self, why: str) -> None:
        """The supervisor cannot be trusted any more: deflate all, alarm, and ask to be stopped."""
        if self.failed.is_set():
            return
        self.failed.set()
        with contextlib.suppress(Exception):
            self.alarms.raise_alarm("SUPERVISOR", Priority.HIGH, f"Station fault: {why}; every cuff deflated.")
        with contextlib.suppress(Exception):
            token = actor_var.set("station")
            try:
                await self.emergency_deflate()
            finally:
                actor_var.reset(token)

    def check_now(self) -> None:
        """Run every time-based rule now (tests with a ManualClock step the clock, then call this)."""
        now = self.clock.monotonic()
        self.supervisor.check(now)
        self.records_watch.check(now)
        self.view.dirty = True

    # ================================================================== commands

    @contextlib.contextmanager
    def acting_as(self, who: str, role: Role | str | None = None) -> Iterator[None]:
        """Attribute the commands issued inside this block to ``who`` (and its role, for the records)."""
        token = actor_var.set(who)
        role_token = actor_role_var.set(getattr(role, "value", role) if role is not None else None)
        try:
            yield
        finally:
            actor_role_var.reset(role_token)
            actor_var.reset(token)

    def lookup(self, cuff_id: str) -> tuple[CuffState, ControllerState]:
        """The cuff and its controller's state, or a refusal naming the unknown cuff."""
        cuff = self.cuffs.get(cuff_id)
        if cuff is None:
            raise CommandRefused(f"No cuff named {cuff_id!r}.")
        return cuff, self.controllers[cuff.spec.controller]

    async def zero_sensor(self, cuff_id: str) -> str:
        """ZERO the cuff's pressure sensor: ``""`` when done, else why not (``BUSY``, a link error).

        Only the LOP measurement asks, on a vented cuff, before its staircase; ZERO never inflates.
        Therapy reaches the controller through this, never through the link itself.
        """
        cuff, ctrl = self.lookup(cuff_id)
        link = ctrl.link
        if link is None:
            return "controller not connected"
        try:
            await link.zero(cuff.channel)
        except CommandError as exc:
            return exc.code
        except LinkError as exc:
            return str(exc)
        return ""

    def _refuse(self, what: str, why: str) -> CommandRefused:
        self.audit.emit(StationEvent("refused", self.clock.wall(), actor_var.get(), f"{what}: {why}"))
        return CommandRefused(why)

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        what = f"inflate {cuff_id} " + (f"{figure(mmhg)} mmHg" if mmhg is not None else f"{pct_lop} % LOP")
        try:
            cuff, ctrl = self.lookup(cuff_id)
            if (mmhg is None) == (pct_lop is None):
                raise CommandRefused(f"{cuff_id}: give a pressure in mmHg or in % LOP (one of them).")
            if pct_lop is not None:
                pct = number_arg(pct_lop, f"{cuff_id}: % LOP")
                if not cuff.lop:
                    raise CommandRefused(
                        f"{cuff_id}: LOP unknown, so % LOP cannot be used. Measure or enter the LOP first."
                    )
                if not pct > 0:
                    raise CommandRefused(f"{cuff_id}: % LOP must be above 0.")
                value = cuff.lop * pct / 100.0
            else:
                value = number_arg(mmhg, f"{cuff_id}: the pressure")
            busy = self.sessions.manual_refusal(cuff_id)
            if busy:
                raise CommandRefused(busy)
            await self.targets.set(cuff, ctrl, round(value, 1))
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(actor_var.get(), what)

    async def apply_target(self, cuff_id: str, mmhg: float, *, purpose: str, what: str) -> None:
        """The therapy engine's inflate: ``purpose`` ``lop`` or ``full_occlusion`` lifts only the % LOP
        limits (see :func:`~console.station.limits.check_target`); the ceiling, the controller maximum, latches,
        links and an unconfirmed emergency still refuse. Not put in the audit trail (the engine
        records what it does); a refusal is told to observers."""
        try:
            cuff, ctrl = self.lookup(cuff_id)
            await self.targets.set(cuff, ctrl, round(number_arg(mmhg, f"{cuff_id}: the pressure"), 1), purpose=purpose)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        shown = f"{delta_mmhg:+g} mmHg" if isinstance(delta_mmhg, (int, float)) else repr(delta_mmhg)
        what = f"nudge {cuff_id} {shown}"
        try:
            cuff, ctrl = self.lookup(cuff_id)
            delta = number_arg(delta_mmhg, f"{cuff_id}: the change")
            await self.targets.nudge(cuff, ctrl, delta, self.sessions.manual_refusal(cuff_id))
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(actor_var.get(), f"{what} -> {figure(cuff.target)} mmHg")

    async def deflate(self, cuff_id: str) -> None:
        what = f"deflate {cuff_id}"
        try:
            cuff, ctrl = self.lookup(cuff_id)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.targets.mark_deflated(cuff)
        self.record_command(actor_var.get(), what)
        asked_at = self.clock.monotonic()
        link = ctrl.link
        try:
            if link is None:
                raise LinkDown("not connected")
            await link.deflate(cuff.channel)
            cuff.pending_deflate = False
        except LinkError as exc:
            if not isinstance(exc, LinkDown):
                retry = self.targets.confirm_deflate(cuff, what, first=exc, asked_at=asked_at)
                self._spawn(retry, f"station:deflate:{cuff.id}")
            raise self._refuse(
                what,
                f"{cuff_id}: controller {ctrl.id} did not confirm the deflate ({exc}); the station keeps sending it, "
                f"its watchdog vents the cuff within {ctrl.watchdog_s:g} s of losing the station, and the station "
                f"deflates it again when the link is back.",
            ) from None

    def _deflate_soon(self, cuff: CuffState, reason: str, *, record: bool = True) -> None:
        """Deflate without awaiting (supervisor rules, races): target 0 now, DEFLATE on the wire next."""
        self.targets.deflate_soon(cuff, reason, record=record)

    def emergency_deflate(self) -> Coroutine[Any, Any, EmergencySnapshot]:
        """DEFLATE ALL to every controller, written in this call, not when awaited (the key's handler calls it,
        ahead of any frame being drawn); never refused. Awaiting it gives the controllers' confirmations."""
        links = {cid: ctrl.link for cid, ctrl in self.controllers.items()}
        run = self.emergency.fire(links, by=actor_var.get())  # the writes, first
        self.targets.all_zero()
        hook = self.sessions.hook
        if hook is not None:
            with contextlib.suppress(Exception):
                hook.on_emergency()
        self.record_command(actor_var.get(), "EMERGENCY DEFLATE ALL")
        return self.emergency.confirm(run)

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        await self.alarm_desk.acknowledge(alarm_id)

    async def silence(self, seconds: float = 120.0) -> None:
        await self.alarm_desk.silence(seconds)

    # -- the PatientBook port (console.common.patients), answered by the patient desk

    async def find_patients(self, text: str, limit: int = 50) -> list[PatientSummary]:
        return await self.patients.find_patients(text, limit)

    async def patient_history(self, patient_id: str) -> PatientHistory:
        return await self.patients.patient_history(patient_id)

    async def session_plot(self, session_id: int) -> Any:
        return await self.patients.session_plot(session_id)

    async def use_recorded_lop(self, cuff_id: str, lop_id: int) -> None:
        await self.patients.use_recorded_lop(cuff_id, lop_id)

    async def set_lop(
        self,
        cuff_id: str,
        lop: float,
        *,
        position: str,
        cuff_width_cm: float | None,
        source: str = "doppler",
        confidence: float | None = None,
    ) -> None:
        """Set a cuff's LOP; it is filed in the records (``confidence``: of an automatic measurement)."""
        await self.details.set_lop(
            cuff_id, lop, position=position, cuff_width_cm=cuff_width_cm, source=source, confidence=confidence
        )

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        await self.details.set_patient(cuff_id, patient_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A background task that fails is logged, never lost silently."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("station: task %s failed", task.get_name(), exc_info=task.exception())
