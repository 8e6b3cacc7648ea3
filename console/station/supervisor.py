"""The safety supervisor: the station's rules, checked on every sample.

It refuses unsafe targets before they reach a controller, and watches what the
controllers report: pressure off target, leaks, lost links, faults, reboots
and the occlusion time limit. It raises and clears alarm *conditions*; the
alarm manager turns them into latched alarms. The only thing it does to a
patient on its own is deflate a cuff at the occlusion time limit.

Time is the station clock's ``monotonic()``: samples are stamped with it on
arrival, so a test with a :class:`~console.common.clock.ManualClock` steps the
clock, lets a sample arrive and calls :meth:`Supervisor.check`.
"""

from __future__ import annotations

from collections.abc import Callable

from console.common.api import Priority
from console.common.figures import figure
from console.station.alarms import AlarmManager
from console.station.controller_state import ControllerState
from console.station.cuff import CuffState
from console.station.limits import Limits
from drivers.codec import Event, Status

LATCHING_EVENTS = ("WDT", "OVERPRESSURE", "SENSOR", "VENTFAIL", "LATCHED")
"""Controller events that latch channels (protocol section 3): high alarms until CLEAR. ``LATCHED``
is the station's own: a channel found latched whose event it never heard (it started after it)."""

LATCH_EVENT_GRACE_S = 1.0
"""A FAULT status may come just before its event (the emulator and the foreign controller both send the
state line first); only a latch with no latching alarm this long after it was seen gets ``LATCHED``."""


DeflateCuff = Callable[[CuffState, str], None]
"""Station callback: deflate this cuff now (never awaits), with a reason for the record."""

VentController = Callable[[ControllerState, str], bool]
"""Station callback: DEFLATE ALL to this controller now, written the way the emergency writes it
(never awaits); True if the line went out on an open port."""


class Supervisor:
    """Applies the safety rules to the station's live state."""

    def __init__(
        self,
        limits: Limits,
        alarms: AlarmManager,
        controllers: dict[str, ControllerState],
        deflate_cuff: DeflateCuff,
        vent_controller: VentController | None = None,
    ) -> None:
        self.limits = limits
        self.alarms = alarms
        self.controllers = controllers
        self._deflate_cuff = deflate_cuff
        self._vent_controller = vent_controller
        self.measuring: set[str] = set()
        """Cuffs under an automatic LOP measurement: their stepping targets are not judged by the
        off-target rule (leaks, links, events and the occlusion timer still are)."""

    # ------------------------------------------------------------------ commands

    def on_deflated(self, cuff: CuffState) -> None:
        """The station set the cuff's target to 0: target-bound conditions are gone."""
        cuff.off_since = None
        cuff.leak_since = None
        if cuff.off_raised:
            cuff.off_raised = False
            self.alarms.clear_condition("OFF_TARGET", cuff=cuff.id)
        if cuff.short_raised:
            cuff.short_raised = False
            self.alarms.clear_condition("NOT_REACHED", cuff=cuff.id)
        self.alarms.clear_condition("LEAK", cuff=cuff.id)

    # ------------------------------------------------------------------ reports

    def on_sample(self, ctrl: ControllerState, now: float) -> None:
        """After a sample updated this controller's cuffs: O(cuffs) checks."""
        if ctrl.lost_alarm and ctrl.online:
            ctrl.lost_alarm = False
            self.alarms.clear_condition("LINK_LOST", controller=ctrl.id)
        for cuff in ctrl.cuffs:
            self._check_cuff(cuff, now)

    def on_status(self, ctrl: ControllerState, cuff: CuffState, status: Status, now: float) -> None:
        # A pump running without pause is a leak whatever state the controller reports: HOLDING, or
        # INFLATING again after the cuff had reached its target (refilling against a leak). The first
        # fill runs flat out by design (up to 8 s to 300 mmHg): NOT_REACHED judges that one.
        refilling = status.state == "INFLATING" and cuff.reached
        if status.target > 0 and (status.state == "HOLDING" or refilling) and status.duty >= self.limits.leak_duty_pct:
            if cuff.leak_since is None:
                cuff.leak_since = now
        else:
            cuff.leak_since = None
        if status.state == "FAULT" and not cuff.latched:
            self.found_latched(cuff, now)
        self._check_leak(cuff, now)

    def found_latched(self, cuff: CuffState, now: float) -> None:
        """A latch seen in a status or a refused SET: :meth:`check` makes sure it has an alarm."""
        if cuff.latched:
            return
        cuff.latched = True
        cuff.latch_cause = cuff.latch_cause or "LATCHED"
        cuff.latch_found_at = now

    def _check_latch_known(self, ctrl: ControllerState, cuff: CuffState, now: float) -> None:
        """A latch whose event never came (the station started, or reconnected, after it) gets an alarm.

        Without one there would be nothing to acknowledge, and acknowledging is what sends CLEAR: the
        cuff would stay unusable until someone power-cycled its controller. One alarm per controller,
        naming its latched cuffs, because CLEAR clears the whole controller: acknowledging it from any of
        those cuffs (``a``) is enough.
        """
        found = cuff.latch_found_at
        if found is None or now - found < LATCH_EVENT_GRACE_S:
            return
        cuff.latch_found_at = None
        if not cuff.latched or any(
            a.cause in LATCHING_EVENTS and (a.cuff == cuff.id or a.controller == ctrl.id)
            for a in self.alarms.open_alarms()
        ):
            return
        names = ", ".join(c.id for c in ctrl.cuffs if c.latched)
        self.alarms.raise_alarm(
            "LATCHED",
            Priority.MEDIUM,
            f"Controller {ctrl.id} reports {names} in FAULT: vented and latched by a fault raised before the "
            "station heard of it. Acknowledge to clear.",
            controller=ctrl.id,
        )

    def on_event(self, ctrl: ControllerState, event: Event, now: float) -> None:
        code = event.code
        cuff = ctrl.by_channel.get(event.channel) if event.channel is not None else None
        detail = f" ({event.text})" if event.text else ""
        if code == "LEAK":
            where = cuff.id if cuff else f"{ctrl.id} channel {event.channel}"
            self.alarms.raise_alarm(
                "LEAK",
                Priority.MEDIUM,
                f"{where}: leak - the pump ran without pause for over 7 s while holding"
                + (f" at {figure(cuff.target)} mmHg" if cuff else "")
                + ".",
                cuff=cuff.id if cuff else None,
                controller=None if cuff else ctrl.id,
            )
        elif code == "BOOT":
            inflated = [
                c for c in ctrl.cuffs if c.target > 0 or (c.pressure or 0) >= self.limits.occlusion_threshold_mmhg
            ]
            for c in ctrl.cuffs:
                c.target = 0.0
                c.latched = False
                c.latch_cause = ""
                c.occ_limit_hit = False
                self.on_deflated(c)
            for cause in LATCHING_EVENTS:
                self.alarms.clear_condition(cause, controller=ctrl.id)
                for c in ctrl.cuffs:
                    self.alarms.clear_condition(cause, cuff=c.id)
            if inflated:
                names = ", ".join(f"{c.id} at {figure(c.pressure or 0)} mmHg" for c in inflated)
                self.alarms.raise_alarm(
                    "BOOT",
                    Priority.HIGH,
                    f"Controller {ctrl.id} restarted while {names} inflated; every channel vented{detail}.",
                    controller=ctrl.id,
                )
                self.alarms.clear_condition("BOOT", controller=ctrl.id)
        elif code == "WDT":
            for c in ctrl.cuffs:
                c.latched = True
                c.latch_cause = "WDT"
                c.target = 0.0
                self.on_deflated(c)
            self.alarms.raise_alarm(
                "WDT",
                Priority.HIGH,
                f"Controller {ctrl.id} heard nothing from the station for its watchdog time: "
                f"every channel vented and latched ({ctrl.cuff_names()}).",
                controller=ctrl.id,
            )
        elif code in ("OVERPRESSURE", "SENSOR", "VENTFAIL"):
            what = {
                "OVERPRESSURE": "pressure above the controller's maximum; channel vented and latched",
                "SENSOR": "pressure sensor fault (impossible or frozen reading); channel vented and latched",
                "VENTFAIL": "pressure stayed above 10 mmHg for 5 s after venting; check the valve and tubing",
            }[code]
            if cuff is not None:
                cuff.latched = True
                cuff.latch_cause = code
                cuff.target = 0.0
                self.on_deflated(cuff)
                p = f" (last reading {figure(cuff.pressure)} mmHg)" if cuff.pressure is not None else ""
                self.alarms.raise_alarm(code, Priority.HIGH, f"{cuff.id}: {what}{p}{detail}.", cuff=cuff.id)
            else:
                self.alarms.raise_alarm(
                    code,
                    Priority.HIGH,
                    f"Controller {ctrl.id} channel {event.channel}: {what}{detail}.",
                    controller=ctrl.id,
                )

    def on_cleared(self, ctrl: ControllerState) -> None:
        """The controller accepted CLEAR: its latches are gone."""
        for c in ctrl.cuffs:
            c.latched = False
            c.latch_cause = ""
        for cause in LATCHING_EVENTS:
            self.alarms.clear_condition(cause, controller=ctrl.id)
            for c in ctrl.cuffs:
                self.alarms.clear_condition(cause, cuff=c.id)

    def on_link_state(self, ctrl: ControllerState, state: str, reason: str, now: float) -> None:
        if state == "ready":
            ctrl.down_since = None
            ctrl.error = ""
            for cuff in ctrl.missing():
                self.alarms.raise_alarm(
                    "NO_SUCH_CHANNEL",
                    Priority.HIGH,
                    f"{cuff.id}: the config puts it on channel {cuff.channel} of controller {ctrl.id}, which has "
                    f"{ctrl.channel_count()} channels; it cannot be used. Fix the config (cuffs' channel, or the "
                    f"controller's port).",
                    cuff=cuff.id,
                )
            ctrl.ready_at = now  # the link-silence alarm counts from here, the blind vent from the last sample
            if ctrl.wrong_raised:
                ctrl.wrong_raised = False
                self.alarms.clear_condition("WRONG_CONTROLLER", controller=ctrl.id)
            return
        if ctrl.down_since is None:
            ctrl.down_since = now
        if state == "lost":
            ctrl.error = reason
            self._raise_lost(ctrl, f"link lost ({reason})")
        elif state == "refused":
            ctrl.error = reason
            ctrl.wrong_raised = True
            self.alarms.raise_alarm(
                "WRONG_CONTROLLER",
                Priority.HIGH,
                f"Controller {ctrl.id}: {reason}. Nothing is sent through that port; cuffs {ctrl.cuff_names()} "
                f"are offline. A replug can swap two controllers' ports: check which controller is plugged in where.",
                controller=ctrl.id,
            )

    # ------------------------------------------------------------------ periodic

    def check(self, now: float) -> None:
        """Every time-based rule, for every controller and cuff."""
        lim = self.limits
        for ctrl in self.controllers.values():
            last = ctrl.last_sample_at
            # Blind vent: judged from the last SAMPLE, never from a (re)connect: a link that flaps
            # (ready, no samples, lost, ready...) must not keep postponing it.
            seen = last if last is not None else (ctrl.ready_at if ctrl.ready_at is not None else ctrl.down_since)
            if seen is not None and now - seen > lim.link_timeout_s and any(c.target > 0 for c in ctrl.cuffs):
                self._vent_blind(ctrl, now - seen)
            if ctrl.online:
                ref = max((t for t in (last, ctrl.ready_at) if t is not None), default=ctrl.down_since)
                if ref is not None and now - ref > lim.link_timeout_s:
                    self._raise_lost(ctrl, f"no samples for {now - ref:.1f} s")
            else:
                since = ctrl.down_since if ctrl.down_since is not None else now
                if ctrl.link_state == "lost" or now - since > lim.link_timeout_s:
                    why = ctrl.error or f"not connected after {now - since:.1f} s"
                    self._raise_lost(ctrl, why if ctrl.ever_ready is False else f"link lost ({why})")
            for cuff in ctrl.cuffs:
                self._check_cuff(cuff, now)
                self._check_leak(cuff, now)
                self._check_latch_known(ctrl, cuff, now)

    # ------------------------------------------------------------------ rules

    def _raise_lost(self, ctrl: ControllerState, why: str) -> None:
        if ctrl.lost_alarm and self.alarms.is_open("LINK_LOST", controller=ctrl.id):
            alarm = self.alarms.get_open("LINK_LOST", controller=ctrl.id)
            if alarm is not None and alarm.active:
                return
        ctrl.lost_alarm = True
        inflated = [c.id for c in ctrl.cuffs if c.target > 0]
        tail = (
            f"; {', '.join(inflated)} inflated: the station vents them once their samples have been missing for "
            f"{figure(self.limits.link_timeout_s)} s"
            if inflated
            else ""
        )
        self.alarms.raise_alarm(
            "LINK_LOST",
            Priority.HIGH,
            f"Controller {ctrl.id}: {why}; cuffs {ctrl.cuff_names()} offline{tail}.",
            controller=ctrl.id,
        )

    def _vent_blind(self, ctrl: ControllerState, silent_s: float) -> None:
        """No samples from a controller with a cuff up: DEFLATE ALL now, and say what was done.

        Assumes of the controller only what protocol section 4 promises: DEFLATE is always accepted,
        and its watchdog vents every channel once nothing valid has come from the host for its
        timeout. The link stops feeding that watchdog while no samples arrive (drivers.link), so
        either the DEFLATE ALL or the watchdog vents the cuffs within ``watchdog_s``."""
        up = [c.id for c in ctrl.cuffs if c.target > 0]
        sent = self._vent_controller(ctrl, f"no samples for {silent_s:.1f} s") if self._vent_controller else False
        for cuff in ctrl.cuffs:
            if cuff.target > 0:
                self._deflate_cuff(cuff, f"no samples from controller {ctrl.id}")
        how = "DEFLATE ALL was sent to it" if sent else "its port is closed, so DEFLATE ALL could not be sent"
        ctrl.lost_alarm = True
        self.alarms.raise_alarm(
            "LINK_LOST",
            Priority.HIGH,
            f"Controller {ctrl.id}: no samples for {silent_s:.1f} s while {', '.join(up)} "
            f"{'was' if len(up) == 1 else 'were'} inflated; {how}, and the station stops talking to it, so its "
            f"watchdog vents every channel within {figure(ctrl.watchdog_s)} s if the deflate did not arrive. "
            f"Check the cuffs {ctrl.cuff_names()}.",
            controller=ctrl.id,
        )

    def _check_cuff(self, cuff: CuffState, now: float) -> None:
        """Off target and occlusion time, for a cuff whose controller is online."""
        lim = self.limits
        p = cuff.pressure
        if p is None:
            return
        target = cuff.target
        if target > 0 and cuff.id in self.measuring:
            # LOP staircase: the measurement judges its own plateaus; only the occlusion timer here.
            cuff.off_since = None
            return self._check_occlusion(cuff, now)
        # --- off target: over in any inflated state, under only while HOLDING
        if target > 0:
            dev = p - target
            tol = cuff.spec.tolerance
            self._check_reached(cuff, dev, tol, now)
            if not cuff.armed:
                # still on its way to a new target (filling, or venting down to a lower one)
                if -tol <= dev <= tol or now - cuff.target_set_at > lim.settle_s:
                    cuff.armed = True
                else:
                    return self._check_occlusion(cuff, now)
            off = dev > tol or (dev < -tol and cuff.ctrl_state == "HOLDING")
            if off:
                if cuff.off_since is None:
                    cuff.off_since = now
                elif now - cuff.off_since > lim.grace_s:
                    prio = Priority.HIGH if dev > 0 else Priority.MEDIUM
                    word = "over" if dev > 0 else "under"
                    self.alarms.raise_alarm(
                        "OFF_TARGET",
                        prio,
                        f"{cuff.id}: pressure {figure(p)} mmHg is {figure(abs(dev))} mmHg {word} target {figure(target)} "
                        f"(tolerance {figure(tol)}) for over {figure(lim.grace_s)} s.",
                        cuff=cuff.id,
                    )
                    cuff.off_raised = True
            else:
                cuff.off_since = None
                if cuff.off_raised:
                    cuff.off_raised = False
                    self.alarms.clear_condition("OFF_TARGET", cuff=cuff.id)
        else:
            if cuff.off_raised or cuff.off_since is not None:
                self.on_deflated(cuff)
            self._check_residual(cuff, p, now)
        self._check_occlusion(cuff, now)

    def _check_reached(self, cuff: CuffState, dev: float, tol: float, now: float) -> None:
        """NOT_REACHED: pressure still under the target's band ``settle_s`` after it was set, whatever
        the controller reports (a leak larger than the pump keeps it INFLATING, never HOLDING)."""
        if cuff.reached:
            return
        if dev >= -tol:
            cuff.reached = True
            if cuff.short_raised:
                cuff.short_raised = False
                self.alarms.clear_condition("NOT_REACHED", cuff=cuff.id)
        elif not cuff.short_raised and now - cuff.target_set_at > self.limits.settle_s:
            cuff.short_raised = True
            self.alarms.raise_alarm(
                "NOT_REACHED",
                Priority.MEDIUM,
                f"{cuff.id}: still {figure(-dev)} mmHg under its target {figure(cuff.target)} mmHg "
                f"{now - cuff.target_set_at:.0f} s after it was set (the pump should need under "
                f"{figure(self.limits.settle_s)} s): a leak, a loose cuff or tubing? Check the cuff.",
                cuff=cuff.id,
            )

    def _check_residual(self, cuff: CuffState, p: float, now: float) -> None:
        """RESIDUAL_PRESSURE: a cuff the station set to 0 still over the occlusion threshold after the
        vent time, whatever the controller says its target is; its deflate is sent again."""
        lim = self.limits
        if cuff.deflated_at is None:
            cuff.deflated_at = now
        if p < lim.occlusion_threshold_mmhg:
            if cuff.residual_raised:
                cuff.residual_raised = False
                cuff.residual_deflate_at = None
                self.alarms.clear_condition("RESIDUAL_PRESSURE", cuff=cuff.id)
            return
        if now - cuff.deflated_at < lim.vent_s:
            return
        if not cuff.residual_raised:
            cuff.residual_raised = True
            self.alarms.raise_alarm(
                "RESIDUAL_PRESSURE",
                Priority.HIGH,
                f"{cuff.id}: still {figure(p)} mmHg {now - cuff.deflated_at:.0f} s after it was deflated "
                f"(controller target {figure(cuff.ctrl_target)}); deflating it again. Open the cuff by hand "
                f"if it stays up.",
                cuff=cuff.id,
            )
        if cuff.residual_deflate_at is None or now - cuff.residual_deflate_at >= lim.limit_deflate_retry_s:
            cuff.residual_deflate_at = now
            self._deflate_cuff(cuff, f"residual pressure {figure(p)} mmHg")

    def _check_occlusion(self, cuff: CuffState, now: float) -> None:
        lim = self.limits
        since = cuff.occlusion_since
        if since is None:
            if cuff.occ_warned or cuff.occ_limit_hit:
                cuff.occ_warned = False
                cuff.occ_limit_hit = False
                cuff.limit_deflate_at = None
                self.alarms.clear_condition("OCCLUSION_WARN", cuff=cuff.id)
                self.alarms.clear_condition("OCCLUSION_LIMIT", cuff=cuff.id)
            return
        occ = now - since
        spec = cuff.spec
        if occ >= spec.occlusion_limit_s:
            if not cuff.occ_limit_hit:
                cuff.occ_limit_hit = True
                self.alarms.raise_alarm(
                    "OCCLUSION_LIMIT",
                    Priority.HIGH,
                    f"{cuff.id}: occluded for {occ / 60:.1f} min, the limit is {spec.occlusion_limit_s / 60:.1f} min; "
                    f"deflating it now.",
                    cuff=cuff.id,
                )
            if cuff.limit_deflate_at is None or now - cuff.limit_deflate_at >= lim.limit_deflate_retry_s:
                cuff.limit_deflate_at = now
                self._deflate_cuff(cuff, "occlusion time limit")
        elif occ >= spec.occlusion_warn_s and not cuff.occ_warned:
            cuff.occ_warned = True
            self.alarms.raise_alarm(
                "OCCLUSION_WARN",
                Priority.MEDIUM,
                f"{cuff.id}: occluded for {occ / 60:.1f} min; it will be deflated at "
                f"{spec.occlusion_limit_s / 60:.1f} min.",
                cuff=cuff.id,
            )

    def _check_leak(self, cuff: CuffState, now: float) -> None:
        since = cuff.leak_since
        if since is not None and cuff.target > 0 and now - since > self.limits.leak_pump_s:
            self.alarms.raise_alarm(
                "LEAK",
                Priority.MEDIUM,
                f"{cuff.id}: leak - the pump has run at {cuff.duty} % for {now - since:.0f} s to hold "
                f"{figure(cuff.target)} mmHg (now {figure(cuff.pressure) if cuff.pressure is not None else '--'}). "
                f"Check the cuff and its tubing.",
                cuff=cuff.id,
            )
