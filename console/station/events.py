"""What the station tells its observers, and the audit trail of who did what.

Kept apart from the engine so the one place that turns alarms, emergencies and
commands into observer events and records rows is easy to read. Records never
take the station down: their failures are logged and swallowed here. The station
owns one :class:`AuditTrail` and hands it the clock, the records and a change flag.

The audit trail names who acted and in which role (``actor_var``/``actor_role_var``, set by
``Station.acting_as``): accepted commands and refused ones alike (a ``refused`` event is
written as a row too, marked ``(refused)``). Control characters in a row are written out
(``\x1b``) before it is kept, so a name typed at one console never acts on another's screen.
"""

from __future__ import annotations

import contextvars
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from console.common.api import AlarmSnapshot, EmergencySnapshot, Role
from console.common.clock import Clock
from console.common.facts import escape_controls
from console.station.records_watch import HasHealth

log = logging.getLogger(__name__)

T = TypeVar("T")

actor_var: contextvars.ContextVar[str] = contextvars.ContextVar("station_actor", default="local")
"""Who issues the commands in this task (set by ``Station.acting_as``), for the audit trail."""
actor_role_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("station_actor_role", default=None)
"""Their role (``operator``/``observer``), when a remote server says so."""


class RecordsSink(HasHealth, Protocol):
    """What the station writes to its records (:class:`console.records.store.Records` has these)."""

    def record_command(self, who: str, role: str, what: str, at: float) -> object: ...

    def record_alarm(
        self,
        priority: str,
        cause: str,
        message: str,
        *,
        raised_at: float,
        cuff: str | None = None,
        controller: str | None = None,
    ) -> int: ...

    def update_alarm(
        self,
        alarm_id: int,
        *,
        cleared_at: float | None = None,
        acknowledged_at: float | None = None,
        acknowledged_by: str | None = None,
    ) -> object: ...

    def record_emergency(
        self,
        *,
        at: float,
        by: str,
        confirmed: Sequence[str],
        pending: Sequence[str],
        latency_s: float | None = None,
    ) -> int: ...

    def update_emergency(
        self,
        emergency_id: int,
        *,
        confirmed: Sequence[str],
        pending: Sequence[str],
        latency_s: float | None = None,
    ) -> object: ...


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
SampleListener = Callable[[str, float, float, float], None]
"""fn(cuff_id, arrival, pressure, taken): every sample of every cuff. ``arrival`` is the station clock
when it was read; ``taken`` the same clock's time the controller took it (console.station.sample_clock):
what a pulse is timed by, free of the station loop's stalls."""


class AuditTrail:
    """Observers, sample listeners, the command log and the records.

    Args:
        clock: for the wall-clock times of events and rows.
        records: where rows go (None: nowhere); its failures are logged, never raised.
        changed: called when something shown in the snapshot changed (an alarm, an emergency).
    """

    def __init__(self, clock: Clock, records: RecordsSink | None, changed: Callable[[], None]) -> None:
        self.clock = clock
        self.records = records
        self._changed = changed
        self._observers: list[Observer] = []
        self.sample_listeners: tuple[SampleListener, ...] = ()
        """Read on the hot path by the link reports: a tuple, replaced (not mutated) on change."""
        self._commands: deque[tuple[float, str, str]] = deque(maxlen=500)
        self._record_ids: dict[int, int] = {}
        self._record_emergency_at: float | None = None
        self._record_emergency_id: int | None = None
        self.refused_rows = 0
        """Writes the records refused (raised): lost rows, which the records watch reports."""

    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Hear every alarm change, command, refusal, emergency and controller event; returns an unsubscribe."""
        self._observers.append(fn)

        def remove() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return remove

    def add_sample_listener(self, fn: SampleListener) -> Callable[[], None]:
        """fn(cuff_id, t, mmHg) for every sample of every cuff, on the hot path: keep it cheap."""
        self.sample_listeners = self.sample_listeners + (fn,)

        def remove() -> None:
            self.sample_listeners = tuple(f for f in self.sample_listeners if f is not fn)

        return remove

    def record_command(self, who: str, what: str) -> None:
        """Put a command in the audit trail (and tell observers)."""
        at = self.clock.wall()
        who, what = escape_controls(who), escape_controls(what)
        self._commands.append((at, who, what))
        self.emit(StationEvent("command", at, who, what))
        self._row(who, what, at)

    def _row(self, who: str, what: str, at: float) -> None:
        """The records' row for a command, with the actor's role (``station`` for the station's own)."""
        rec = self.records
        if rec is not None:
            role = "station" if who in ("supervisor", "station") else (actor_role_var.get() or Role.OPERATOR.value)
            self._to_records(rec.record_command, who, role, what, at)

    def command_log(self, limit: int = 100) -> list[tuple[float, str, str]]:
        return list(self._commands)[-limit:][::-1]

    def emit(self, event: StationEvent) -> None:
        """Tell every observer; one that raises is logged and the rest still hear it.

        A ``refused`` event (a command the station would not do) is also a row of the audit trail.
        """
        if event.kind == "refused":
            who, what = escape_controls(event.who), escape_controls(event.text)
            self._commands.append((event.time, who, f"{what} (refused)"))
            self._row(who, f"{what} (refused)", event.time)
        for fn in tuple(self._observers):
            try:
                fn(event)
            except Exception:
                log.exception("station: observer %r raised", fn)

    def _to_records(self, method: Callable[..., T], *args: Any, **kw: Any) -> T | None:
        """Records must never take the station down: errors are logged and swallowed."""
        try:
            return method(*args, **kw)
        except Exception:
            self.refused_rows += 1
            log.exception("station: records.%s failed", getattr(method, "__name__", method))
            return None

    def on_alarm(self, action: str, alarm: AlarmSnapshot) -> None:
        """The alarm manager's listener: a row per alarm, updated as it clears or is acknowledged."""
        self._changed()
        rec = self.records
        if rec is not None:
            if action == "raised":
                rid = self._to_records(
                    rec.record_alarm,
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
                    self._to_records(rec.update_alarm, self._record_ids[alarm.id], cleared_at=now)
                else:
                    self._to_records(
                        rec.update_alarm,
                        self._record_ids[alarm.id],
                        acknowledged_at=now,
                        acknowledged_by=actor_var.get(),
                    )
        if action != "silenced":
            who = actor_var.get() if action == "acknowledged" else "station"
            self.emit(
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

    def on_emergency_update(self, snap: EmergencySnapshot) -> None:
        """The emergency deflater's listener: one row per emergency, updated as controllers confirm."""
        self._changed()
        rec = self.records
        if rec is not None:
            if snap.started_at != self._record_emergency_at:
                self._record_emergency_at = snap.started_at
                self._record_emergency_id = self._to_records(
                    rec.record_emergency,
                    at=snap.started_at,
                    by=snap.by or "station",
                    confirmed=snap.confirmed,
                    pending=snap.pending,
                    latency_s=snap.latency_s,
                )
            elif self._record_emergency_id is not None:
                self._to_records(
                    rec.update_emergency,
                    self._record_emergency_id,
                    confirmed=snap.confirmed,
                    pending=snap.pending,
                    latency_s=snap.latency_s,
                )
        text = f"emergency deflate: confirmed {', '.join(snap.confirmed) or 'none'}"
        if snap.pending:
            text += f"; pending {', '.join(snap.pending)}"
        self.emit(StationEvent("emergency", self.clock.wall(), snap.by, text, emergency=snap))
