"""What the controllers report, applied to the station's live state: the hot path.

Every line a link hears (samples, status lines, events, link state changes)
lands in the closure :meth:`LinkReports._listener_for` builds per controller.
Samples are handled right there, with the clock, supervisor, threshold and
channel map bound in advance: O(channels) work per sample and no snapshot
building. A crash in here deflates everything (the rules cannot be trusted). The station
owns one :class:`LinkReports` and hands it the live state and the actions it may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from console.common.api import Priority
from console.common.clock import Clock
from console.common.figures import figure
from console.station.alarms import AlarmManager
from console.station.controller_state import ControllerState
from console.station.cuff import CuffState
from console.station.events import AuditTrail, StationEvent
from console.station.sample_clock import SampleClock
from console.station.snapshots import SnapshotBuilder
from console.station.supervisor import Supervisor
from drivers.codec import Event, Sample, Status
from drivers.link_errors import LinkError, LinkStateChange

log = logging.getLogger(__name__)


class LinkReports:
    """Controller reports -> cuff state, supervisor rules and observer events.

    Args:
        clock: stamps every sample on arrival.
        supervisor: runs the rules on every sample, status line, event and link change.
        alarms: for the unsanctioned-target alarm.
        audit: its sample listeners hear every sample; its observers every event.
        view: marked dirty by every report.
        spawn: ``spawn(coro, name)`` runs a background task the station keeps and logs.
        fail_safe: ``fail_safe(why)`` deflates everything when a report cannot be handled.
        failed: set once the station has failed safe.
        deflate_soon: ``deflate_soon(cuff, reason)`` vents a cuff without awaiting.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        supervisor: Supervisor,
        alarms: AlarmManager,
        audit: AuditTrail,
        view: SnapshotBuilder,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        fail_safe: Callable[[str], Coroutine[Any, Any, None]],
        failed: asyncio.Event,
        deflate_soon: Callable[[CuffState, str], None],
    ) -> None:
        self.clock = clock
        self.supervisor = supervisor
        self.alarms = alarms
        self.audit = audit
        self.view = view
        self._spawn = spawn
        self._fail_safe = fail_safe
        self.failed = failed
        self._deflate_soon = deflate_soon

    def listener_for(self, ctrl: ControllerState, occlusion_threshold_mmhg: float) -> Callable[[object], None]:
        """The link listener of one controller: every message it hears, applied at once."""
        clock = self.clock
        sup = self.supervisor
        view = self.view
        audit = self.audit
        threshold = occlusion_threshold_mmhg
        pairs = tuple((c, c.channel - 1) for c in ctrl.cuffs)
        stamps = SampleClock()

        def on_msg(msg: object) -> None:
            try:
                handle(msg)
            except Exception:
                # A bug in the rules must not leave patients unwatched: deflate everything and stop.
                log.exception("station: handling %r from %s crashed", msg, ctrl.id)
                if not self.failed.is_set():
                    self._spawn(
                        self._fail_safe(f"handling a report from controller {ctrl.id} failed"), "station:fail-safe"
                    )

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
                view.dirty = True
                listeners = audit.sample_listeners
                if listeners:
                    taken = stamps.time_of(msg.uptime_ms, now)  # type: ignore[attr-defined]
                    for cuff, idx in pairs:
                        if idx < n:
                            for fn in listeners:
                                fn(cuff.id, now, ps[idx], taken)
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
        self.view.dirty = True

    def _unsanctioned_target(self, ctrl: ControllerState, cuff: CuffState, target: float) -> None:
        """The controller regulates at a target this station never sent (another host, a stale or corrupt SET)."""
        self.alarms.raise_alarm(
            "UNSANCTIONED_TARGET",
            Priority.HIGH,
            f"{cuff.id}: controller {ctrl.id} is inflating to {figure(target)} mmHg, which this station never asked for; deflated.",
            cuff=cuff.id,
        )
        self._deflate_soon(cuff, f"unsanctioned target {figure(target)} mmHg")

    def _on_event(self, ctrl: ControllerState, ev: Event) -> None:
        now = self.clock.monotonic()
        self.supervisor.on_event(ctrl, ev, now)
        cuff = ctrl.by_channel.get(ev.channel) if ev.channel is not None else None
        where = cuff.id if cuff else (f"channel {ev.channel}" if ev.channel is not None else "all channels")
        self.audit.emit(
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
        self.view.dirty = True

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
        self.audit.emit(
            StationEvent(
                "controller",
                self.clock.wall(),
                ctrl.id,
                f"{ctrl.id}: link {state} ({change.reason})",
                action=f"link_{state}",
                controller=ctrl.id,
            )
        )
        self.view.dirty = True

    async def _after_ready(self, ctrl: ControllerState) -> None:
        """On (re)connect: fetch every channel's status, and finish deflates asked while it was down."""
        link = ctrl.link
        if link is None:
            return
        if not ctrl.startup_deflated:
            # first contact (also for a controller that was late at start): vent whatever it was doing
            try:
                await link.deflate("ALL")
                ctrl.startup_deflated = True
            except LinkError as exc:
                log.warning("station: first DEFLATE ALL on %s failed: %s", ctrl.id, exc)
        for cuff in ctrl.cuffs:
            if cuff.pending_deflate:
                with contextlib.suppress(LinkError):
                    await link.deflate(cuff.channel)
        with contextlib.suppress(LinkError):
            await link.status()
