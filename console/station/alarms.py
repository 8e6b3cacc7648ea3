"""The alarm manager: raise, latch, acknowledge, silence, log.

Alarms follow IEC 60601-1-8 in spirit. An alarm is keyed by its condition
(cause, cuff, controller): the supervisor may report the same condition on
every sample, and the manager turns that into one alarm, updated in place,
never a flood. An alarm stays on the list until its condition has cleared
*and* someone acknowledged it; only then is it retired, and the same
condition coming back raises a new one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from console.common.api import PRIORITY_RANK, AlarmSnapshot, Priority
from console.common.clock import Clock

log = logging.getLogger(__name__)

AlarmKey = tuple[str, "str | None", "str | None"]
"""(cause, cuff, controller): what makes two reports the same condition."""

AlarmListener = Callable[[str, AlarmSnapshot], None]
"""Called with an action (``raised`` ``escalated`` ``reoccurred`` ``cleared``
``acknowledged`` ``retired`` ``silenced``) and the alarm as it is now."""

SILENCE_MAX_S = 120.0
"""IEC 60601-1-8 in spirit: no silence lasts longer, whatever a caller configures."""

LOG_SIZE = 2000
"""Alarms kept for :meth:`AlarmManager.log` (the records keep them all)."""


@dataclass(slots=True)
class Alarm:
    """One alarm's live state; only the manager mutates it."""

    id: int
    priority: Priority
    cause: str
    message: str
    cuff: str | None
    controller: str | None
    raised_at: float
    """Wall-clock time it was raised."""
    raised_mono: float
    active: bool = True
    acknowledged: bool = False
    acknowledged_by: str = ""
    silenced_until_mono: float | None = None
    retired: bool = False

    @property
    def key(self) -> AlarmKey:
        return (self.cause, self.cuff, self.controller)

    @property
    def needs_attention(self) -> bool:
        return not self.retired

    def snapshot(self, clock: Clock) -> AlarmSnapshot:
        silenced: float | None = None
        if self.silenced_until_mono is not None:
            now = clock.monotonic()
            if self.silenced_until_mono > now:
                silenced = clock.wall() + (self.silenced_until_mono - now)
        return AlarmSnapshot(
            id=self.id,
            priority=self.priority,
            cause=self.cause,
            message=self.message,
            cuff=self.cuff,
            controller=self.controller,
            raised_at=self.raised_at,
            active=self.active,
            acknowledged=self.acknowledged,
            silenced_until=silenced,
        )


class AlarmManager:
    """Owns every alarm of the station.

    Args:
        clock: the station's clock.
        silence_max_s: the longest a silence may last (IEC: 120 s).
        listener: told about every change, for observers and records.
    """

    def __init__(self, clock: Clock, *, silence_max_s: float = 120.0, listener: AlarmListener | None = None) -> None:
        self._clock = clock
        self.silence_max_s = min(float(silence_max_s), SILENCE_MAX_S) if silence_max_s > 0 else SILENCE_MAX_S
        self._listener = listener
        self._next_id = 1
        self._open: dict[AlarmKey, Alarm] = {}
        """Alarms not retired yet, by condition."""
        self._by_id: dict[int, Alarm] = {}
        self._log: deque[Alarm] = deque(maxlen=LOG_SIZE)
        self.version = 0
        """Bumped on every visible change, so callers can cache."""
        self._current_cache: tuple[int, float, tuple[AlarmSnapshot, ...]] | None = None

    # ------------------------------------------------------------------ conditions

    def raise_alarm(
        self,
        cause: str,
        priority: Priority,
        message: str,
        *,
        cuff: str | None = None,
        controller: str | None = None,
    ) -> Alarm:
        """Report that a condition is present. Idempotent while the alarm is open.

        A repeat report of an open alarm only updates it: it becomes active
        again if it had cleared, and a higher priority escalates it (and asks
        for a new acknowledgement). The message is refreshed without notice.
        """
        key = (cause, cuff, controller)
        alarm = self._open.get(key)
        if alarm is not None:
            action = ""
            if PRIORITY_RANK[priority] > PRIORITY_RANK[alarm.priority]:
                alarm.priority = priority
                alarm.acknowledged = False
                alarm.silenced_until_mono = None
                action = "escalated"
            if not alarm.active:
                alarm.active = True
                action = action or "reoccurred"
            if alarm.message != message:
                alarm.message = message
                self._changed()
            if action:
                self._changed()
                self._notify(action, alarm)
            return alarm
        alarm = Alarm(
            id=self._next_id,
            priority=priority,
            cause=cause,
            message=message,
            cuff=cuff,
            controller=controller,
            raised_at=self._clock.wall(),
            raised_mono=self._clock.monotonic(),
        )
        self._next_id += 1
        self._open[key] = alarm
        self._by_id[alarm.id] = alarm
        self._log.append(alarm)
        if len(self._by_id) > LOG_SIZE * 2:
            self._by_id = {a.id: a for a in self._log} | {a.id: a for a in self._open.values()}
        self._changed()
        self._notify("raised", alarm)
        return alarm

    def clear_condition(self, cause: str, *, cuff: str | None = None, controller: str | None = None) -> Alarm | None:
        """Report that a condition is gone; retires the alarm if it was acknowledged."""
        alarm = self._open.get((cause, cuff, controller))
        if alarm is None or not alarm.active:
            return None
        alarm.active = False
        self._changed()
        self._notify("cleared", alarm)
        if alarm.acknowledged:
            self._retire(alarm)
        return alarm

    def is_open(self, cause: str, *, cuff: str | None = None, controller: str | None = None) -> bool:
        return (cause, cuff, controller) in self._open

    def get_open(self, cause: str, *, cuff: str | None = None, controller: str | None = None) -> Alarm | None:
        return self._open.get((cause, cuff, controller))

    # ------------------------------------------------------------------ people

    def acknowledge(self, alarm_id: int | None = None, *, who: str = "") -> list[Alarm]:
        """Acknowledge one open alarm, or every open one with None.

        Raises:
            KeyError: no open alarm has that id.
        """
        if alarm_id is None:
            targets = [a for a in self._open.values() if not a.acknowledged]
        else:
            alarm = self._by_id.get(alarm_id)
            if alarm is None or alarm.retired:
                raise KeyError(alarm_id)
            targets = [alarm] if not alarm.acknowledged else []
        for alarm in targets:
            alarm.acknowledged = True
            alarm.acknowledged_by = who
            self._changed()
            self._notify("acknowledged", alarm)
            if not alarm.active:
                self._retire(alarm)
        return targets

    def silence(self, seconds: float) -> float:
        """Silence the audible part of every open alarm; returns the seconds granted.

        Never longer than ``silence_max_s``. Alarms raised afterwards are not
        silenced, and an escalation ends the silence of that alarm.

        Raises:
            ValueError: seconds is not positive.
        """
        if not seconds > 0:
            raise ValueError("a silence must last more than 0 s")
        granted = min(float(seconds), self.silence_max_s)
        until = self._clock.monotonic() + granted
        for alarm in self._open.values():
            alarm.silenced_until_mono = until
            self._notify("silenced", alarm)
        self._changed()
        return granted

    # ------------------------------------------------------------------ views

    def current(self) -> tuple[AlarmSnapshot, ...]:
        """Alarms needing attention, highest priority first, newest first within one."""
        now = self._clock.monotonic()
        cached = self._current_cache
        # Silences expire with time, so a cached view is good for one clock reading only when any is silenced.
        if cached is not None and cached[0] == self.version and (cached[1] == now or not self._any_silenced()):
            return cached[2]
        ordered = sorted(self._open.values(), key=lambda a: (-PRIORITY_RANK[a.priority], -a.raised_mono, -a.id))
        result = tuple(a.snapshot(self._clock) for a in ordered)
        self._current_cache = (self.version, now, result)
        return result

    def open_alarms(self) -> list[Alarm]:
        return list(self._open.values())

    def log(self, limit: int = 200) -> list[AlarmSnapshot]:
        """Every alarm raised (up to :data:`LOG_SIZE`), newest first, as it is now."""
        out: list[AlarmSnapshot] = []
        for alarm in reversed(self._log):
            if len(out) >= limit:
                break
            out.append(alarm.snapshot(self._clock))
        return out

    def audible(self) -> Priority | None:
        """The priority the bell should sound: unacknowledged, unsilenced alarms only."""
        now = self._clock.monotonic()
        best: Priority | None = None
        for alarm in self._open.values():
            if alarm.acknowledged:
                continue
            if alarm.silenced_until_mono is not None and alarm.silenced_until_mono > now:
                continue
            if best is None or PRIORITY_RANK[alarm.priority] > PRIORITY_RANK[best]:
                best = alarm.priority
        return best

    # ------------------------------------------------------------------ internals

    def _any_silenced(self) -> bool:
        return any(a.silenced_until_mono is not None for a in self._open.values())

    def _retire(self, alarm: Alarm) -> None:
        alarm.retired = True
        self._open.pop(alarm.key, None)
        self._changed()
        self._notify("retired", alarm)

    def _changed(self) -> None:
        self.version += 1

    def _notify(self, action: str, alarm: Alarm) -> None:
        """Tell the listener; its failure is logged and never cuts the alarm bookkeeping short."""
        if self._listener is not None:
            try:
                self._listener(action, alarm.snapshot(self._clock))
            except Exception:
                log.exception("alarm listener failed on %s of alarm %d (%s)", action, alarm.id, alarm.cause)
