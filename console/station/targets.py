"""Cuff targets between the station and its controllers: who asked for what, and what wins.

Every inflate goes through :meth:`Targets.set` (the supervisor's limits, then SET on the wire);
every deflate marks the cuff at once (target 0, a new generation) so an inflate still on its
way loses to it, and an emergency bumps the epoch so every inflate in flight is undone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from console.common.api import CommandRefused, Priority
from console.common.clock import Clock
from console.common.figures import figure
from console.station.alarms import AlarmManager
from console.station.controller_state import ControllerState
from console.station.cuff import CuffState
from console.station.emergency import EmergencyDeflater
from console.station.limits import check_target, latched_refusal
from console.station.snapshots import SnapshotBuilder
from console.station.supervisor import Supervisor
from drivers.link_errors import CommandError, LinkDown, LinkError, LinkTimeout, Rebooted, Superseded

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 0.25
"""Between attempts at a deflate the controller did not confirm (the protocol's resend time)."""


class Targets:
    """Sets and clears cuff targets on the controllers, keeping deflates ahead of inflates.

    Args:
        clock: stamps a new target (the occlusion clock and the off-target rule read it).
        supervisor: checks every target against the limits; told of every deflate.
        emergency: a controller still retrying an emergency deflate is not inflated.
        cuffs: the station's cuffs (for :meth:`all_zero`).
        controllers: the station's controllers (a cuff's link).
        view: marked dirty by every change.
        record_command: ``record_command(who, what)`` for the audit trail.
        spawn: ``spawn(coro, name)`` runs a deflate in the background.
        alarms: for DEFLATE_UNCONFIRMED on a cuff whose deflate is overdue.
        confirm_s: the safety config's ``deflate_confirm_s``.
        link_timeout_s: samples older than this mean the blind-link rule is in charge, not the retries.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        supervisor: Supervisor,
        emergency: EmergencyDeflater,
        cuffs: dict[str, CuffState],
        controllers: dict[str, ControllerState],
        view: SnapshotBuilder,
        record_command: Callable[[str, str], None],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        alarms: AlarmManager,
        confirm_s: float,
        link_timeout_s: float,
    ) -> None:
        self.clock = clock
        self.supervisor = supervisor
        self.emergency = emergency
        self.cuffs = cuffs
        self.controllers = controllers
        self._view = view
        self._record_command = record_command
        self._spawn = spawn
        self._alarms = alarms
        self.confirm_s = confirm_s
        """A deflate not confirmed this long after it was asked for raises DEFLATE_UNCONFIRMED."""
        self.link_timeout_s = link_timeout_s
        self.epoch = 0
        """Bumped by every emergency: an inflate in flight across one is undone."""
        self._nudging: dict[str, asyncio.Lock] = {}

    async def nudge(self, cuff: CuffState, ctrl: ControllerState, delta: float, busy: str | None) -> None:
        """Move the target by ``delta``. Nudges of one cuff run one after another, each from the target
        the last one set: two quick presses of - go down twice (``busy``: why manual control is refused)."""
        async with self._nudging.setdefault(cuff.id, asyncio.Lock()):
            if cuff.target <= 0:
                raise CommandRefused(f"{cuff.id} is not inflated; inflate it first.")
            new = round(cuff.target + delta, 1)
            if new <= 0:
                raise CommandRefused(f"{cuff.id}: that would bring the target to {figure(new)} mmHg; deflate instead.")
            if busy:
                raise CommandRefused(busy)
            await self.set(cuff, ctrl, new)

    async def set(self, cuff: CuffState, ctrl: ControllerState, mmhg: float, *, purpose: str = "manual") -> None:
        if ctrl.id in self.emergency.retrying:
            raise CommandRefused(
                f"{cuff.id}: controller {ctrl.id} has not confirmed the emergency deflate yet; not inflating."
            )
        check_target(self.supervisor.limits, cuff, ctrl, mmhg, purpose=purpose)
        link = ctrl.link
        if link is None:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} is not connected.")
        gen, epoch = cuff.gen, self.epoch
        # Until the OK, a status line may still carry the old target: both are ours.
        cuff.sanctioned_mmhg = max(cuff.sanctioned_mmhg, mmhg)
        try:
            await link.set_target(cuff.channel, mmhg)
        except CommandError as exc:
            if exc.code == "LATCHED":
                self.supervisor.found_latched(cuff, self.clock.monotonic())
                raise CommandRefused(latched_refusal(cuff.id, cuff.latch_cause)) from None
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} refused {figure(mmhg)} mmHg ({exc.code}).") from None
        except LinkTimeout:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} did not answer; not inflated.") from None
        except LinkDown:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} is offline; cannot inflate.") from None
        except Rebooted:
            raise CommandRefused(f"{cuff.id}: controller {ctrl.id} restarted; not inflated.") from None
        except Superseded:
            raise CommandRefused(f"{cuff.id} was deflated before the inflate went out; it stays deflated.") from None
        if cuff.gen != gen or self.epoch != epoch:
            # A deflate or an emergency came in while the SET was on its way: the deflate wins.
            self.deflate_soon(cuff, "a deflate overtook an inflate", record=False)
            raise CommandRefused(f"{cuff.id} was deflated while the inflate was on its way; it stays deflated.")
        cuff.new_target(mmhg, self.clock.monotonic())
        cuff.sanctioned_mmhg = mmhg
        cuff.pending_deflate = False
        self._view.dirty = True

    def mark_deflated(self, cuff: CuffState) -> None:
        cuff.gen += 1
        cuff.target = 0.0
        cuff.pending_deflate = True
        cuff.sanctioned_mmhg = 0.0
        self.supervisor.on_deflated(cuff)
        self._view.dirty = True

    def deflate_soon(self, cuff: CuffState, reason: str, *, record: bool = True) -> None:
        """Deflate without awaiting (supervisor rules, races): target 0 now, DEFLATE on the wire next."""
        self.mark_deflated(cuff)
        if record:
            self._record_command("supervisor", f"deflate {cuff.id} ({reason})")
        self._spawn(self.confirm_deflate(cuff, reason, asked_at=self.clock.monotonic()), f"station:deflate:{cuff.id}")

    async def confirm_deflate(
        self, cuff: CuffState, reason: str, first: LinkError | None = None, asked_at: float | None = None
    ) -> None:
        """Send DEFLATE until the controller confirms it, with a high alarm once it is overdue.

        Stops when the link goes down (the deflate is sent again when it is back) or when the cuff's
        samples stop (the blind-link rule vents the controller and stops feeding its watchdog), or when
        a newer target supersedes this deflate. ``first``: the failure of an attempt already made;
        ``asked_at``: when the deflate was asked for (station clock; the overdue time counts from it).
        """
        ctrl = self.controllers[cuff.spec.controller]
        gen = cuff.gen
        started = self.clock.monotonic() if asked_at is None else asked_at
        last = first
        while cuff.gen == gen and cuff.pending_deflate:
            link = ctrl.link
            if link is None or not ctrl.online or self._samples_stale(ctrl):
                return
            if last is None:
                try:
                    await link.deflate(cuff.channel)
                except LinkDown:
                    return
                except LinkError as exc:
                    last = exc
                else:
                    if cuff.gen == gen:
                        cuff.pending_deflate = False
                        self._clear_unconfirmed(cuff)
                    return
            overdue = self.clock.monotonic() - started
            if overdue >= self.confirm_s and not cuff.deflate_alarmed:
                cuff.deflate_alarmed = True
                self._alarms.raise_alarm(
                    "DEFLATE_UNCONFIRMED",
                    Priority.HIGH,
                    f"{cuff.id}: controller {ctrl.id} has not confirmed its deflate for {overdue:.1f} s ({last}); "
                    f"the station keeps sending it. Check the cuff; open it by hand if it stays up.",
                    cuff=cuff.id,
                )
            log.warning("station: deflate of %s (%s) not confirmed: %s; retrying", cuff.id, reason, last)
            last = None
            await asyncio.sleep(RETRY_PAUSE_S)

    def _samples_stale(self, ctrl: ControllerState) -> bool:
        last = ctrl.last_sample_at
        return last is not None and self.clock.monotonic() - last > self.link_timeout_s

    def _clear_unconfirmed(self, cuff: CuffState) -> None:
        if cuff.deflate_alarmed:
            cuff.deflate_alarmed = False
            self._alarms.clear_condition("DEFLATE_UNCONFIRMED", cuff=cuff.id)

    def vent_controller(self, ctrl: ControllerState, why: str) -> bool:
        """DEFLATE ALL to one controller now, the way the emergency writes it (the blind-link rule)."""
        link = ctrl.link
        if link is None:
            return False
        try:
            fut = link.deflate_all_now()
        except LinkError:
            return False
        fut.add_done_callback(_quiet)
        self._record_command("supervisor", f"DEFLATE ALL {ctrl.id} ({why})")
        return True

    def all_zero(self) -> None:
        self.epoch += 1
        for cuff in self.cuffs.values():
            cuff.gen += 1
            cuff.target = 0.0
            cuff.sanctioned_mmhg = 0.0
            # Status lines sent before the DEFLATE ALL still carry old targets: ignore them until target 0.
            cuff.pending_deflate = True
            self.supervisor.on_deflated(cuff)
        self._view.dirty = True


def _quiet(fut: asyncio.Future[Any]) -> None:
    """Collect a fire-and-forget DEFLATE ALL's outcome (its failure is what the alarm already says)."""
    if not fut.cancelled():
        fut.exception()
