"""The alarm commands (acknowledge, silence) and what follows them: a latched controller cleared.

Also the emergency deflater's two alarm callbacks, so every alarm the station raises about a
deflate and every latch it clears reads the same way in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from console.common.api import CommandRefused, Priority
from console.station.alarms import AlarmManager
from console.station.controller_state import ControllerState
from console.station.events import actor_var
from console.station.snapshots import SnapshotBuilder
from console.station.supervisor import LATCHING_EVENTS, Supervisor
from drivers.link_errors import LinkError

log = logging.getLogger(__name__)


class AlarmDesk:
    """Acknowledge and silence for the consoles; CLEAR of latches once their alarms are acknowledged.

    Args:
        alarms, supervisor, controllers: the station's.
        confirm_s: the emergency's confirmation window, named in its alarm.
        view: marked dirty by every change.
        refuse, record_command: the station's refusal and audit trail.
    """

    def __init__(
        self,
        *,
        alarms: AlarmManager,
        supervisor: Supervisor,
        controllers: dict[str, ControllerState],
        confirm_s: float,
        view: SnapshotBuilder,
        refuse: Callable[[str, str], CommandRefused],
        record_command: Callable[[str, str], None],
    ) -> None:
        self.alarms = alarms
        self.supervisor = supervisor
        self.controllers = controllers
        self.confirm_s = confirm_s
        self._view = view
        self._refuse = refuse
        self._record_command = record_command

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        who = actor_var.get()
        what = "acknowledge " + ("all alarms" if alarm_id is None else f"alarm {alarm_id}")
        try:
            self.alarms.acknowledge(alarm_id, who=who)
        except KeyError:
            raise self._refuse(what, f"No open alarm number {alarm_id}.") from None
        self._record_command(who, what)
        self._view.dirty = True
        # Also when nothing new was acknowledged: a CLEAR that failed (the link was down) is tried
        # again, else the cuff stays latched with nothing left to acknowledge.
        await self.clear_acknowledged_latches()

    async def clear_acknowledged_latches(self) -> None:
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
                await ctrl.link.clear()
            except LinkError as exc:
                log.warning("station: CLEAR on %s failed: %s", ctrl.id, exc)
                continue
            self.supervisor.on_cleared(ctrl)
            self._record_command("station", f"clear latches on {ctrl.id} (alarms acknowledged)")
            self._view.dirty = True

    async def silence(self, seconds: float = 120.0) -> None:
        try:
            granted = self.alarms.silence(seconds)
        except ValueError as exc:
            raise self._refuse(f"silence {seconds} s", f"{exc}.") from None
        self._record_command(actor_var.get(), f"silence alarms for {granted:g} s")
        self._view.dirty = True

    def on_unconfirmed(self, cid: str) -> None:
        """The emergency deflater's: a controller missed the confirmation window (it keeps retrying)."""
        self.alarms.raise_alarm(
            "DEFLATE_UNCONFIRMED",
            Priority.HIGH,
            f"Controller {cid} did not confirm DEFLATE ALL within {self.confirm_s:g} s; retrying. "
            f"Check cuffs {self.controllers[cid].cuff_names()} by hand.",
            controller=cid,
        )

    def on_late_confirm(self, cid: str) -> None:
        """The emergency deflater's: a retried controller confirmed at last."""
        self.alarms.clear_condition("DEFLATE_UNCONFIRMED", controller=cid)
        self._record_command("station", f"{cid} confirmed DEFLATE ALL")
