"""The station engine: links, live cuff state, safety, alarms, emergency.

One :class:`Station` owns every controller link (the real driver, also for the
built-in emulator, which it serves on a fresh pseudo-terminal), keeps every
cuff's state from the samples, status lines and events, runs the supervisor on
each of them and on a periodic tick, and answers the console's commands
(:class:`~console.station.api.StationHandle`). No Textual in here.

Samples are handled synchronously in the link's listener: O(channels) work
per sample and no snapshot building; :meth:`Station.snapshot` builds an
immutable view at most once per change, however many consoles ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from console.station.alarms import AlarmManager
from console.station.api import (
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
    CONNECTING,
    OFFLINE,
)
from console.station.clock import Clock, SystemClock
from console.station.cuff import CuffSpec, CuffState
from console.station.emergency import EmergencyDeflater
from console.station.supervisor import LATCHING_EVENTS, ControllerState, Limits, Supervisor
from drivers.codec import Event, Sample, Status
from drivers.link import CommandError, CuffLink, LinkDown, LinkError, LinkStateChange, LinkTimeout, Rebooted, Superseded

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.05
"""The supervisor's periodic tick (real time; it reads the station clock)."""

READY_TIMEOUT_S = 3.0
"""How long :meth:`Station.start` waits for the links before carrying on without the slow ones."""

SNAPSHOT_MAX_AGE_S = 0.1
"""A cached snapshot older than this (station clock) is rebuilt, so ages and timers move."""

_actor: contextvars.ContextVar[str] = contextvars.ContextVar("station_actor", default="local")
_actor_role: contextvars.ContextVar[str | None] = contextvars.ContextVar("station_actor_role", default=None)


@dataclass(frozen=True, slots=True)
class StationEvent:
    """What observers (records, remote) hear about as it happens."""

    kind: str
    """``alarm`` | ``command`` | ``refused`` | ``emergency`` | ``controller`` | ``lop`` | ``patient`` | ``station``."""
    time: float
    """Wall-clock time."""
    who: str
    text: str
    action: str = ""
    """For alarms: raised, escalated, reoccurred, cleared, acknowledged, retired, silenced."""
    alarm: AlarmSnapshot | None = None
    emergency: EmergencySnapshot | None = None
    cuff: str | None = None
    controller: str | None = None


Observer = Callable[[StationEvent], None]
SampleListener = Callable[[str, float, float], None]
"""fn(cuff_id, station_monotonic_time, pressure): every sample of every cuff."""


class SessionHook(Protocol):
    """What the sessions/LOP engine plugs into the station (see :meth:`Station.attach_sessions`)."""

    async def measure_lop(self, cuff_id: str, *, position: str) -> None: ...

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None: ...

    async def session_command(self, cuff_id: str, command: str) -> None: ...

    def cuff_extras(self, cuff_id: str) -> tuple[SessionSnapshot | None, LopProgress | None]: ...

    def on_emergency(self) -> None: ...

    def manual_refusal(self, cuff_id: str) -> str | None:
        """Why the operator may not inflate this cuff by hand now (it is being measured), or None."""
        ...


def _f(x: object) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or x != x or x in (float("inf"), float("-inf")):
        return repr(x)
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def _number(value: object, what: str) -> float:
    """A finite number from a command argument, or a refusal saying what was wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandRefused(f"{what} must be a number, not {value!r}.")
    try:
        v = float(value)
    except OverflowError:
        raise CommandRefused(f"{what} is far out of range: {value!r}.") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise CommandRefused(f"{what} must be a finite number, not {value!r}.")
    return v


class Station:
    """The engine behind every console (role operator).

    Args:
        config: a :class:`console.config.StationConfig`.
        clock: the station's time; samples are stamped with ``clock.monotonic()`` on arrival.
        records: a :class:`console.station.records.Records` (alarms, emergencies and commands are
            written to it; its failures are logged and never reach the station), or None.
        check_interval_s: the periodic supervisor tick, real seconds. With a ManualClock pass None
            and call :meth:`check_now` after stepping the clock and letting fresh samples arrive,
            or an advance of the clock looks like silent links.
        ready_timeout_s: how long :meth:`start` waits for the links before going on without them.
    """

    def __init__(
        self,
        config: Any,
        *,
        clock: Clock | None = None,
        records: Any = None,
        check_interval_s: float | None = CHECK_INTERVAL_S,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.records = records
        self.check_interval_s = check_interval_s
        self.ready_timeout_s = ready_timeout_s
        st, sf = config.station, config.safety
        self.limits = Limits(
            ceiling_mmhg=st.ceiling_mmhg,
            occlusion_threshold_mmhg=st.occlusion_threshold_mmhg,
            tolerance_mmhg=sf.tolerance_mmhg,
            grace_s=sf.grace_s,
            link_timeout_s=sf.link_timeout_s,
            leak_pump_s=sf.leak_pump_s,
            max_mmhg_without_lop=sf.max_mmhg_without_lop,
        )
        self.alarms = AlarmManager(self.clock, silence_max_s=config.alarms.silence_max_s, listener=self._on_alarm)
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
                width_cm=c.width_cm,
                lop=c.lop,
                pair=c.pair,
            )
            self.cuffs[c.id] = CuffState(spec)
        self.controllers: dict[str, ControllerState] = {}
        for cc in config.controllers:
            mine = tuple(cuff for cuff in self.cuffs.values() if cuff.spec.controller == cc.id)
            self.controllers[cc.id] = ControllerState(cc.id, cc.port, mine)
        self.supervisor = Supervisor(self.limits, self.alarms, self.controllers, self._deflate_soon)
        self.emergency = EmergencyDeflater(
            self.clock,
            confirm_s=sf.deflate_confirm_s,
            on_unconfirmed=self._on_unconfirmed,
            on_confirmed=self._on_late_confirm,
            on_update=self._on_emergency_update,
        )
        self.emulators: dict[str, Any] = {}
        """Controller id -> PtyEmulator for ``port = "emulator"`` (tests reach the firmware here)."""
        self.links: dict[str, CuffLink] = {}
        self._observers: list[Observer] = []
        self._sample_listeners: tuple[SampleListener, ...] = ()
        self._sessions: SessionHook | None = None
        self._commands: deque[tuple[float, str, str]] = deque(maxlen=500)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._check_task: asyncio.Task[None] | None = None
        self._epoch = 0
        """Bumped by every emergency: an inflate in flight across one is undone."""
        self._dirty = True
        self._snap: StationSnapshot | None = None
        self._snap_key: tuple[int, float] = (-1, 0.0)
        self._seq = 0
        self._plans: tuple[PlanSummary, ...] | None = None
        self._record_ids: dict[int, int] = {}
        self._record_emergency_id: int | None = None
        self._tmpdir: str | None = None
        self.started = False
        self.stopped = False
        self.failed = asyncio.Event()
        """Set when the supervisor itself crashed: the station deflated everything and must stop."""

    # ================================================================== lifecycle

    async def start(self) -> None:
        """Open every link (serving emulators on fresh ptys), wait briefly for READY, DEFLATE ALL."""
        if self.started:
            return
        self.started = True
        now = self.clock.monotonic()
        for ctrl in self.controllers.values():
            ctrl.down_since = now
        for cc in self.config.controllers:
            ctrl = self.controllers[cc.id]
            url = cc.port
            try:
                if cc.is_emulator:
                    url = await self._start_emulator(cc)
            except Exception as exc:
                log.exception("station: emulator %s failed to start", cc.id)
                ctrl.error = f"emulator failed: {exc}"
                continue
            link = CuffLink(url, name=cc.id, watchdog_ms=cc.watchdog_ms, stream_hz=cc.stream_hz)
            link.add_listener(self._listener_for(ctrl))
            ctrl.link = link
            self.links[cc.id] = link
            await link.start()
        waits = [link.wait_ready(self.ready_timeout_s) for link in self.links.values()]
        results = await asyncio.gather(*waits, return_exceptions=True)
        for cid, res in zip(self.links, results):
            if isinstance(res, BaseException):
                log.warning("station: controller %s not ready at start: %s", cid, res)
        # Whatever the controllers were doing before we came: vent them.
        ready = [link for link in self.links.values() if link.state.value == "ready"]
        outcomes = await asyncio.gather(*(link.deflate("ALL") for link in ready), return_exceptions=True)
        for link, out in zip(ready, outcomes):
            if isinstance(out, BaseException):
                log.warning("station: start-up DEFLATE ALL on %s failed: %s", link.name, out)
            else:
                self.controllers[link.name].startup_deflated = True
        self._emit(StationEvent("station", self.clock.wall(), "station", "station started"))
        if self.check_interval_s is not None:
            self._check_task = asyncio.create_task(self._check_loop(), name="station:supervisor")

    async def _start_emulator(self, cc: Any) -> str:
        from drivers.emulator import ControllerFirmware, PtyEmulator

        e = cc.emulator
        fw = ControllerFirmware(
            channels=e.channels,
            lops=list(e.lop),
            heart_rate=e.heart_rate,
            pulse_amplitude=e.pulse_mmhg,
            seed=e.seed,
            serial=f"EMU-{cc.id}"[:16].replace(" ", "_").replace("*", "_"),
        )
        if e.exercise:
            for ch in range(1, e.channels + 1):
                fw.exercise(ch)
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="bfr-station-")
        # Served through a symlink, like /dev/serial/by-id/: a test can unplug and replug it.
        emu = PtyEmulator(fw, link_path=os.path.join(self._tmpdir, f"ctl-{len(self.emulators)}"))
        path = await emu.start()
        self.emulators[cc.id] = emu
        return str(path)

    async def stop(self) -> None:
        """Deflate every cuff, then close every link and emulator. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if self._check_task is not None:
            self._check_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._check_task
        self._all_targets_zero()
        try:
            links = {cid: ctrl.link for cid, ctrl in self.controllers.items() if ctrl.link is not None}
            run = self.emergency.fire(links, by="station stop")  # type: ignore[arg-type]
            if run.futures:
                await asyncio.wait(list(run.futures.values()), timeout=max(0.5, self.emergency.confirm_s))
        finally:
            await self.emergency.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for link in self.links.values():
                with contextlib.suppress(Exception):
                    await link.stop(deflate=True)
            for emu in self.emulators.values():
                with contextlib.suppress(Exception):
                    res = emu.stop()
                    if asyncio.iscoroutine(res):
                        await res
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._emit(StationEvent("station", self.clock.wall(), "station", "station stopped"))

    async def _check_loop(self) -> None:
        assert self.check_interval_s is not None
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                self.check_now()
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
            token = _actor.set("station")
            try:
                await self.emergency_deflate()
            finally:
                _actor.reset(token)

    def check_now(self) -> None:
        """Run every time-based rule now (tests with a ManualClock step the clock, then call this)."""
        self.supervisor.check(self.clock.monotonic())
        self._dirty = True

    # ================================================================== link listeners (hot path)

    def _listener_for(self, ctrl: ControllerState) -> Callable[[object], None]:
        clock = self.clock
        sup = self.supervisor
        threshold = self.limits.occlusion_threshold_mmhg
        pairs = tuple((c, c.channel - 1) for c in ctrl.cuffs)

        def on_msg(msg: object) -> None:
            try:
                handle(msg)
            except Exception:
                # A bug in the rules must not leave patients unwatched: deflate everything and stop.
                log.exception("station: handling %r from %s crashed", msg, ctrl.id)
                if not self.failed.is_set():
                    self._spawn(self._fail_safe(f"handling a report from controller {ctrl.id} failed"), "station:fail-safe")

        def handle(msg: object) -> None:
            cls = type(msg)
            if cls is Sample:
                now = clock.monotonic()
                ctrl.last_sample_at = now
                ps = msg.pressures  # type: ignore[attr-defined]
                n = len(ps)
                for cuff, idx in pairs:
                    if idx < n:
                        cuff.add_sample(ps[idx], now, threshold)
                sup.on_sample(ctrl, now)
                self._dirty = True
                listeners = self._sample_listeners
                if listeners:
                    for cuff, idx in pairs:
                        if idx < n:
                            for fn in listeners:
                                fn(cuff.id, now, ps[idx])
            elif cls is Status:
                self._on_status(ctrl, msg)  # type: ignore[arg-type]
            elif cls is Event:
                self._on_event(ctrl, msg)  # type: ignore[arg-type]
            elif cls is LinkStateChange:
                self._on_link_state(ctrl, msg)  # type: ignore[arg-type]

        return on_msg

    def _on_status(self, ctrl: ControllerState, st: Status) -> None:
        cuff = ctrl.by_channel.get(st.channel)
        if cuff is None:
            return
        now = self.clock.monotonic()
        cuff.ctrl_state = st.state
        cuff.ctrl_target = st.target
        cuff.duty = st.duty
        if cuff.pending_deflate:
            if st.target == 0:
                cuff.pending_deflate = False
                self.alarms.clear_condition("UNSANCTIONED_TARGET", cuff=cuff.id)
        elif st.target != cuff.target:
            was = cuff.target
            cuff.new_target(st.target, now)  # the controller's target is what is really happening
            if was > 0 and st.target == 0:
                self.supervisor.on_deflated(cuff)
            elif st.target > cuff.sanctioned_mmhg + 0.05:
                self._unsanctioned_target(ctrl, cuff, st.target)
        self.supervisor.on_status(ctrl, cuff, st, now)
        self._dirty = True

    def _unsanctioned_target(self, ctrl: ControllerState, cuff: CuffState, target: float) -> None:
        """The controller regulates at a target this station never sent (another host, a stale or corrupt SET)."""
        self.alarms.raise_alarm(
            "UNSANCTIONED_TARGET",
            Priority.HIGH,
            f"{cuff.id}: controller {ctrl.id} is inflating to {_f(target)} mmHg, which this station never asked for; deflated.",
            cuff=cuff.id,
        )
        self._deflate_soon(cuff, f"unsanctioned target {_f(target)} mmHg")

    def _on_event(self, ctrl: ControllerState, ev: Event) -> None:
        now = self.clock.monotonic()
        self.supervisor.on_event(ctrl, ev, now)
        cuff = ctrl.by_channel.get(ev.channel) if ev.channel is not None else None
        where = cuff.id if cuff else (f"channel {ev.channel}" if ev.channel is not None else "all channels")
        self._emit(
            StationEvent(
                "controller",
                self.clock.wall(),
                ctrl.id,
                f"{ctrl.id}: event {ev.code} on {where}" + (f" ({ev.text})" if ev.text else ""),
                action=ev.code,
                cuff=cuff.id if cuff else None,
                controller=ctrl.id,
            )
        )
        self._dirty = True

    def _on_link_state(self, ctrl: ControllerState, change: LinkStateChange) -> None:
        now = self.clock.monotonic()
        state = change.state.value
        ctrl.link_state = state
        if state == "ready":
            ctrl.ever_ready = True
            self._spawn(self._after_ready(ctrl), f"station:ready:{ctrl.id}")
        else:
            for cuff in ctrl.cuffs:
                cuff.reset_live()
        self.supervisor.on_link_state(ctrl, state, change.reason, now)
        self._emit(
            StationEvent("controller", self.clock.wall(), ctrl.id, f"{ctrl.id}: link {state} ({change.reason})",
                         action=f"link_{state}", controller=ctrl.id)
        )
        self._dirty = True

    async def _after_ready(self, ctrl: ControllerState) -> None:
        """On (re)connect: fetch every channel's status, and finish deflates asked while it was down."""
        link = ctrl.link
        if link is None:
            return
        if not ctrl.startup_deflated:
            # first contact (also for a controller that was late at start): vent whatever it was doing
            try:
                await link.deflate("ALL")  # type: ignore[attr-defined]
                ctrl.startup_deflated = True
            except LinkError as exc:
                log.warning("station: first DEFLATE ALL on %s failed: %s", ctrl.id, exc)
        for cuff in ctrl.cuffs:
            if cuff.pending_deflate:
                with contextlib.suppress(LinkError):
                    await link.deflate(cuff.channel)  # type: ignore[attr-defined]
        with contextlib.suppress(LinkError):
            await link.status()  # type: ignore[attr-defined]

    # ================================================================== commands

    @contextlib.contextmanager
    def acting_as(self, who: str, role: Role | str | None = None) -> Iterator[None]:
        """Attribute the commands issued inside this block to ``who`` (and its role, for the records)."""
        token = _actor.set(who)
        role_token = _actor_role.set(getattr(role, "value", role) if role is not None else None)
        try:
            yield
        finally:
            _actor_role.reset(role_token)
            _actor.reset(token)

    def _lookup(self, cuff_id: str) -> tuple[CuffState, ControllerState]:
        cuff = self.cuffs.get(cuff_id)
        if cuff is None:
            raise CommandRefused(f"No cuff named {cuff_id!r}.")
        return cuff, self.controllers[cuff.spec.controller]

    def _refuse(self, what: str, why: str) -> CommandRefused:
        self._emit(StationEvent("refused", self.clock.wall(), _actor.get(), f"{what}: {why}"))
        return CommandRefused(why)

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        what = f"inflate {cuff_id} " + (f"{_f(mmhg)} mmHg" if mmhg is not None else f"{pct_lop} % LOP")
        try:
            cuff, ctrl = self._lookup(cuff_id)
            if (mmhg is None) == (pct_lop is None):
                raise CommandRefused(f"{cuff_id}: give a pressure in mmHg or in % LOP (one of them).")
            if pct_lop is not None:
                pct = _number(pct_lop, f"{cuff_id}: % LOP")
                if not cuff.lop:
                    raise CommandRefused(f"{cuff_id}: LOP unknown, so % LOP cannot be used. Measure or enter the LOP first.")
                if not pct > 0:
                    raise CommandRefused(f"{cuff_id}: % LOP must be above 0.")
                value = cuff.lop * pct / 100.0
            else:
                value = _number(mmhg, f"{cuff_id}: the pressure")
            busy = self._manual_refusal(cuff_id)
            if busy:
                raise CommandRefused(busy)
            await self._set_target(cuff, ctrl, round(value, 1))
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        what = f"nudge {cuff_id} {delta_mmhg:+g} mmHg" if isinstance(delta_mmhg, (int, float)) else f"nudge {cuff_id} {delta_mmhg!r}"
        try:
            cuff, ctrl = self._lookup(cuff_id)
            if cuff.target <= 0:
                raise CommandRefused(f"{cuff_id} is not inflated; inflate it first.")
            new = round(cuff.target + _number(delta_mmhg, f"{cuff_id}: the change"), 1)
            if new <= 0:
                raise CommandRefused(f"{cuff_id}: that would bring the target to {_f(new)} mmHg; deflate instead.")
            busy = self._manual_refusal(cuff_id)
            if busy:
                raise CommandRefused(busy)
            await self._set_target(cuff, ctrl, new)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), f"{what} -> {_f(cuff.target)} mmHg")

    async def _set_target(self, cuff: CuffState, ctrl: ControllerState, mmhg: float, *, purpose: str = "manual") -> None:
        if ctrl.id in self.emergency.retrying:
            raise CommandRefused(
                f"{cuff.id}: controller {ctrl.id} has not confirmed the emergency deflate yet; not inflating."
            )
        self.supervisor.check_target(cuff, ctrl, mmhg, purpose=purpose)
        link = ctrl.link
        if link is None:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} is not connected.")
        gen, epoch = cuff.gen, self._epoch
        # Until the OK, a status line may still carry the old target: both are ours.
        cuff.sanctioned_mmhg = max(cuff.sanctioned_mmhg, mmhg)
        try:
            await link.set_target(cuff.channel, mmhg)  # type: ignore[attr-defined]
        except CommandError as exc:
            if exc.code == "LATCHED":
                cuff.latched = True
                cuff.latch_cause = cuff.latch_cause or "fault"
                raise CommandRefused(f"{cuff.id} is latched by a fault on controller {ctrl.id}: acknowledge its alarm first.") from None
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} refused {_f(mmhg)} mmHg ({exc.code}).") from None
        except LinkTimeout:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} did not answer; not inflated.") from None
        except LinkDown:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} is offline; cannot inflate.") from None
        except Rebooted:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} restarted; not inflated.") from None
        except Superseded:
            raise CommandRefused(f"{cuff.id} was deflated before the inflate went out; it stays deflated.") from None
        if cuff.gen != gen or self._epoch != epoch:
            # A deflate or an emergency came in while the SET was on its way: the deflate wins.
            self._deflate_soon(cuff, "a deflate overtook an inflate", record=False)
            raise CommandRefused(f"{cuff.id} was deflated while the inflate was on its way; it stays deflated.")
        cuff.new_target(mmhg, self.clock.monotonic())
        cuff.sanctioned_mmhg = mmhg
        cuff.pending_deflate = False
        self._dirty = True

    async def deflate(self, cuff_id: str) -> None:
        what = f"deflate {cuff_id}"
        try:
            cuff, ctrl = self._lookup(cuff_id)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self._mark_deflated(cuff)
        self.record_command(_actor.get(), what)
        link = ctrl.link
        try:
            if link is None:
                raise LinkDown("not connected")
            await link.deflate(cuff.channel)  # type: ignore[attr-defined]
            cuff.pending_deflate = False
        except LinkError as exc:
            wd = self.config.controller(ctrl.id).watchdog_ms / 1000
            raise self._refuse(
                what,
                f"{cuff_id}: controller {ctrl.id} did not confirm the deflate ({exc}); its watchdog vents the cuff "
                f"within {wd:g} s of losing the station, and the station deflates it again when the link is back.",
            ) from None

    def _mark_deflated(self, cuff: CuffState) -> None:
        cuff.gen += 1
        cuff.target = 0.0
        cuff.pending_deflate = True
        cuff.sanctioned_mmhg = 0.0
        self.supervisor.on_deflated(cuff)
        self._dirty = True

    def _deflate_soon(self, cuff: CuffState, reason: str, *, record: bool = True) -> None:
        """Deflate without awaiting (supervisor rules, races): target 0 now, DEFLATE on the wire next."""
        self._mark_deflated(cuff)
        if record:
            self.record_command("supervisor", f"deflate {cuff.id} ({reason})")
        ctrl = self.controllers[cuff.spec.controller]

        async def go() -> None:
            link = ctrl.link
            if link is None:
                return
            try:
                await link.deflate(cuff.channel)  # type: ignore[attr-defined]
                cuff.pending_deflate = False
            except LinkError as exc:
                log.warning("station: deflate of %s (%s) failed: %s", cuff.id, reason, exc)

        self._spawn(go(), f"station:deflate:{cuff.id}")

    def _all_targets_zero(self) -> None:
        self._epoch += 1
        for cuff in self.cuffs.values():
            cuff.gen += 1
            cuff.target = 0.0
            cuff.sanctioned_mmhg = 0.0
            # Status lines sent before the DEFLATE ALL still carry old targets: ignore them until target 0.
            cuff.pending_deflate = True
            self.supervisor.on_deflated(cuff)
        self._dirty = True

    async def emergency_deflate(self) -> EmergencySnapshot:
        """DEFLATE ALL to every controller at once; never refused."""
        links = {cid: ctrl.link for cid, ctrl in self.controllers.items()}
        run = self.emergency.fire(links, by=_actor.get())  # type: ignore[arg-type]  # the writes, first
        self._all_targets_zero()
        if self._sessions is not None:
            with contextlib.suppress(Exception):
                self._sessions.on_emergency()
        self.record_command(_actor.get(), "EMERGENCY DEFLATE ALL")
        return await self.emergency.confirm(run)

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        who = _actor.get()
        what = "acknowledge " + ("all alarms" if alarm_id is None else f"alarm {alarm_id}")
        try:
            acked = self.alarms.acknowledge(alarm_id, who=who)
        except KeyError:
            raise self._refuse(what, f"No open alarm number {alarm_id}.") from None
        self.record_command(who, what)
        self._dirty = True
        if acked:
            await self._clear_acknowledged_latches()

    async def _clear_acknowledged_latches(self) -> None:
        """CLEAR a controller once every latch alarm on it has been acknowledged (channels stay vented)."""
        for ctrl in self.controllers.values():
            if not any(c.latched for c in ctrl.cuffs):
                continue
            names = {c.id for c in ctrl.cuffs}
            unacked = [
                a
                for a in self.alarms.open_alarms()
                if a.cause in LATCHING_EVENTS and not a.acknowledged and (a.controller == ctrl.id or a.cuff in names)
            ]
            if unacked or ctrl.link is None:
                continue
            try:
                await ctrl.link.clear()  # type: ignore[attr-defined]
            except LinkError as exc:
                log.warning("station: CLEAR on %s failed: %s", ctrl.id, exc)
                continue
            self.supervisor.on_cleared(ctrl)
            self.record_command("station", f"clear latches on {ctrl.id} (alarms acknowledged)")
            self._dirty = True

    async def silence(self, seconds: float = 120.0) -> None:
        try:
            granted = self.alarms.silence(seconds)
        except ValueError as exc:
            raise self._refuse(f"silence {seconds} s", f"{exc}.") from None
        self.record_command(_actor.get(), f"silence alarms for {granted:g} s")
        self._dirty = True

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None:
        what = f"set LOP of {cuff_id} to {lop} mmHg ({position}, {source})"
        try:
            cuff, _ = self._lookup(cuff_id)
            value = _number(lop, f"{cuff_id}: the LOP")
            if not 50.0 <= value <= 350.0:
                raise CommandRefused(f"{cuff_id}: a LOP of {_f(value)} mmHg is not plausible (50..350).")
            if cuff_width_cm is not None and not 2.0 <= _number(cuff_width_cm, f"{cuff_id}: the cuff width") <= 30.0:
                raise CommandRefused(f"{cuff_id}: a cuff width of {cuff_width_cm} cm is not plausible (2..30).")
            allowed = value * cuff.spec.max_pct_lop / 100.0
            if cuff.target > allowed:
                raise CommandRefused(
                    f"{cuff_id}: its target {_f(cuff.target)} mmHg would be above {_f(cuff.spec.max_pct_lop)} % of "
                    f"a LOP of {_f(value)} ({_f(allowed)} mmHg); deflate or lower it first."
                )
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        cuff.lop = round(value, 1)
        cuff.lop_position = position
        cuff.lop_source = source
        if cuff_width_cm is not None:
            cuff.lop_width_cm = float(cuff_width_cm)
        self._dirty = True
        self.record_command(_actor.get(), what)
        self._emit(StationEvent("lop", self.clock.wall(), _actor.get(), what, cuff=cuff_id))

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        what = f"set patient of {cuff_id} to {patient_id!r}"
        try:
            cuff, _ = self._lookup(cuff_id)
            pid = str(patient_id).strip()
            if len(pid) > 64 or not pid.isprintable():
                raise CommandRefused("A patient id is 1 to 64 printable characters.")
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        cuff.patient_id = pid or None
        self._dirty = True
        self.record_command(_actor.get(), what)
        self._emit(StationEvent("patient", self.clock.wall(), _actor.get(), what, cuff=cuff_id))

    # ------------------------------------------------------------------ sessions (plugged in later)

    def attach_sessions(self, hook: SessionHook) -> None:
        """Plug in the sessions/LOP engine; until then those commands are refused."""
        self._sessions = hook

    async def apply_target(self, cuff_id: str, mmhg: float, *, purpose: str, what: str) -> None:
        """The therapy engine's inflate: ``purpose`` ``lop`` or ``full_occlusion`` lifts only the % LOP
        limits (see :meth:`Supervisor.check_target`); the ceiling, the controller maximum, latches,
        links and an unconfirmed emergency still refuse. Not put in the audit trail (the engine
        records what it does); a refusal is told to observers."""
        try:
            cuff, ctrl = self._lookup(cuff_id)
            await self._set_target(cuff, ctrl, round(_number(mmhg, f"{cuff_id}: the pressure"), 1), purpose=purpose)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None

    def mark_changed(self) -> None:
        """Something shown in the snapshot changed outside the station (session timer, LOP progress)."""
        self._dirty = True

    def _manual_refusal(self, cuff_id: str) -> str | None:
        hook = self._sessions
        fn = getattr(hook, "manual_refusal", None) if hook is not None else None
        if fn is None:
            return None
        try:
            return fn(cuff_id)
        except Exception:
            log.exception("station: sessions.manual_refusal(%s) failed", cuff_id)
            return None

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        what = f"measure LOP {cuff_id} ({position})"
        if self._sessions is None:
            raise self._refuse(what, "Automatic LOP measurement is not available yet.")
        try:
            await self._sessions.measure_lop(cuff_id, position=position)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        names = "+".join(cuff_ids) if isinstance(cuff_ids, (list, tuple)) else repr(cuff_ids)
        what = f"start session {plan_id} on {names} for patient {patient_id}"
        if self._sessions is None:
            raise self._refuse(what, "Sessions are not available yet.")
        try:
            await self._sessions.start_session(cuff_ids, plan_id, patient_id)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    async def session_command(self, cuff_id: str, command: str) -> None:
        what = f"session {command} {cuff_id}"
        if self._sessions is None:
            raise self._refuse(what, "Sessions are not available yet.")
        try:
            await self._sessions.session_command(cuff_id, command)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    # ================================================================== observers and records

    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Hear every alarm change, command, refusal, emergency and controller event; returns an unsubscribe."""
        self._observers.append(fn)

        def remove() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return remove

    def add_sample_listener(self, fn: SampleListener) -> Callable[[], None]:
        """fn(cuff_id, t, mmHg) for every sample of every cuff, on the hot path: keep it cheap."""
        self._sample_listeners = self._sample_listeners + (fn,)

        def remove() -> None:
            self._sample_listeners = tuple(f for f in self._sample_listeners if f is not fn)

        return remove

    def record_command(self, who: str, what: str) -> None:
        """Put a command in the audit trail (and tell observers)."""
        at = self.clock.wall()
        self._commands.append((at, who, what))
        self._emit(StationEvent("command", at, who, what))
        if self.records is not None:
            role = "station" if who in ("supervisor", "station") else (_actor_role.get() or Role.OPERATOR.value)
            self._to_records("record_command", who, role, what, at)

    def command_log(self, limit: int = 100) -> list[tuple[float, str, str]]:
        return list(self._commands)[-limit:][::-1]

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        return self.alarms.log(limit)

    def _emit(self, event: StationEvent) -> None:
        for fn in tuple(self._observers):
            try:
                fn(event)
            except Exception:
                log.exception("station: observer %r raised", fn)

    def _to_records(self, method: str, *args: Any, **kw: Any) -> Any:
        """Records must never take the station down: errors are logged and swallowed."""
        try:
            return getattr(self.records, method)(*args, **kw)
        except Exception:
            log.exception("station: records.%s failed", method)
            return None

    def _on_alarm(self, action: str, alarm: AlarmSnapshot) -> None:
        self._dirty = True
        if self.records is not None:
            if action == "raised":
                rid = self._to_records(
                    "record_alarm", alarm.priority.value, alarm.cause, alarm.message,
                    raised_at=alarm.raised_at, cuff=alarm.cuff, controller=alarm.controller,
                )
                if rid is not None:
                    self._record_ids[alarm.id] = rid
            elif action in ("cleared", "acknowledged") and alarm.id in self._record_ids:
                now = self.clock.wall()
                if action == "cleared":
                    self._to_records("update_alarm", self._record_ids[alarm.id], cleared_at=now)
                else:
                    self._to_records("update_alarm", self._record_ids[alarm.id], acknowledged_at=now,
                                     acknowledged_by=_actor.get())
        if action != "silenced":
            who = _actor.get() if action == "acknowledged" else "station"
            self._emit(StationEvent("alarm", self.clock.wall(), who, alarm.message, action=action,
                                    alarm=alarm, cuff=alarm.cuff, controller=alarm.controller))

    def _on_emergency_update(self, snap: EmergencySnapshot) -> None:
        self._dirty = True
        if self.records is not None:
            if snap.started_at != getattr(self, "_record_emergency_at", None):
                self._record_emergency_at = snap.started_at
                self._record_emergency_id = self._to_records(
                    "record_emergency", at=snap.started_at, by=snap.by or "station",
                    confirmed=snap.confirmed, pending=snap.pending, latency_s=snap.latency_s,
                )
            elif self._record_emergency_id is not None:
                self._to_records("update_emergency", self._record_emergency_id, confirmed=snap.confirmed,
                                 pending=snap.pending, latency_s=snap.latency_s)
        text = f"emergency deflate: confirmed {', '.join(snap.confirmed) or 'none'}"
        if snap.pending:
            text += f"; pending {', '.join(snap.pending)}"
        self._emit(StationEvent("emergency", self.clock.wall(), snap.by, text, emergency=snap))

    def _on_unconfirmed(self, cid: str) -> None:
        self.alarms.raise_alarm(
            "DEFLATE_UNCONFIRMED",
            Priority.HIGH,
            f"Controller {cid} did not confirm DEFLATE ALL within {self.emergency.confirm_s:g} s; retrying. "
            f"Check cuffs {self.controllers[cid].cuff_names()} by hand.",
            controller=cid,
        )

    def _on_late_confirm(self, cid: str) -> None:
        self.alarms.clear_condition("DEFLATE_UNCONFIRMED", controller=cid)
        self.record_command("station", f"{cid} confirmed DEFLATE ALL")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A background task that fails is logged, never lost silently."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("station: task %s failed", task.get_name(), exc_info=task.exception())

    # ================================================================== snapshots

    def snapshot(self) -> StationSnapshot:
        """The newest state, rebuilt only when something changed (or timers moved)."""
        now = self.clock.monotonic()
        snap = self._snap
        if (
            snap is not None
            and not self._dirty
            and self._snap_key[0] == self.alarms.version
            and now - self._snap_key[1] < SNAPSHOT_MAX_AGE_S
        ):
            return snap
        self._dirty = False
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
            name=self.config.station.name,
            time=self.clock.wall(),
            cuffs=cuffs,
            controllers=ctrls,
            alarms=alarms,
            emergency=self.emergency.last,
            seq=self._seq,
            role=Role.OPERATOR,
            plans=self._plan_summaries(),
        )
        self._snap = snap
        self._snap_key = (self.alarms.version, now)
        return snap

    def _cuff_snapshot(
        self, c: CuffState, now: float, worst_cuff: dict[str, Priority], worst_ctrl: dict[str, Priority]
    ) -> CuffSnapshot:
        ctrl = self.controllers[c.spec.controller]
        online = ctrl.online
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
        if self._sessions is not None:
            try:
                session, lop_measure = self._sessions.cuff_extras(c.id)
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
        )

    def _controller_snapshot(self, ctrl: ControllerState) -> ControllerSnapshot:
        link = ctrl.link
        info = getattr(link, "info", None)
        stats = getattr(link, "stats", None)
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
            for plan in getattr(self.config, "plans", {}).values():
                try:
                    out.append(PlanSummary(plan.id, plan.name, plan.description, plan.limb, float(plan.pct_lop)))
                except Exception:
                    log.exception("station: plan %r not summarised", plan)
            self._plans = tuple(out)
        return self._plans
