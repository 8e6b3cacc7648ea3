"""What the station tells its observers, and the audit trail of who did what.

Kept apart from the engine so the one place that turns alarms, emergencies and
commands into observer events and records rows is easy to read. Records never
take the station down: their failures are logged and swallowed here.
:class:`AuditTrail` is a mixin of :class:`~console.station.station.Station`.
"""

from __future__ import annotations

import contextvars
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.common.api import AlarmSnapshot, EmergencySnapshot, Priority, Role
from console.common.clock import Clock
from console.station.alarms import AlarmManager
from console.station.emergency import EmergencyDeflater
from console.station.supervisor import ControllerState

log = logging.getLogger("console.station.station")

# Who issues the commands in this task (set by Station.acting_as), for the audit trail.
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


class AuditTrail:
    """Observers, sample listeners, the command log and the records (a mixin of Station)."""

    clock: Clock
    records: Any
    alarms: AlarmManager
    emergency: EmergencyDeflater
    controllers: dict[str, ControllerState]
    _observers: list[Observer]
    _sample_listeners: tuple[SampleListener, ...]
    _commands: deque[tuple[float, str, str]]
    _record_ids: dict[int, int]
    _record_emergency_id: int | None
    _dirty: bool

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
                    "record_alarm",
                    alarm.priority.value,
                    alarm.cause,
                    alarm.message,
                    raised_at=alarm.raised_at,
                    cuff=alarm.cuff,
                    controller=alarm.controller,
                )
                if rid is not None:
                    self._record_ids[alarm.id] = rid
            elif action in ("cleared", "acknowledged") and alarm.id in self._record_ids:
                now = self.clock.wall()
                if action == "cleared":
                    self._to_records("update_alarm", self._record_ids[alarm.id], cleared_at=now)
                else:
                    self._to_records(
                        "update_alarm", self._record_ids[alarm.id], acknowledged_at=now, acknowledged_by=_actor.get()
                    )
        if action != "silenced":
            who = _actor.get() if action == "acknowledged" else "station"
            self._emit(
                StationEvent(
                    "alarm",
                    self.clock.wall(),
                    who,
                    alarm.message,
                    action=action,
                    alarm=alarm,
                    cuff=alarm.cuff,
                    controller=alarm.controller,
                )
            )

    def _on_emergency_update(self, snap: EmergencySnapshot) -> None:
        self._dirty = True
        if self.records is not None:
            if snap.started_at != getattr(self, "_record_emergency_at", None):
                self._record_emergency_at = snap.started_at
                self._record_emergency_id = self._to_records(
                    "record_emergency",
                    at=snap.started_at,
                    by=snap.by or "station",
                    confirmed=snap.confirmed,
                    pending=snap.pending,
                    latency_s=snap.latency_s,
                )
            elif self._record_emergency_id is not None:
                self._to_records(
                    "update_emergency",
                    self._record_emergency_id,
                    confirmed=snap.confirmed,
                    pending=snap.pending,
                    latency_s=snap.latency_s,
                )
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
