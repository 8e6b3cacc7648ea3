"""Flash phase and bell bursts for alarms, as pure functions of time.

The app feeds in its own clock (injected in tests), so a test steps the phase
instead of sleeping. Rates follow IEC 60601-1-8 in spirit: high ~2 Hz,
medium ~0.6 Hz, low steady.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from console.common.api import AlarmSnapshot, Priority, StationSnapshot

FLASH_PERIOD_S = {Priority.HIGH: 0.5, Priority.MEDIUM: 1 / 0.6}
"""Full on/off cycle per priority; LOW does not flash."""

BELL_BURSTS = {Priority.HIGH: ((0.0, 0.25, 0.5), 4.0), Priority.MEDIUM: ((0.0, 0.4), 10.0)}
"""Per priority: offsets of the bells within a burst, and the burst period."""


def flash_on(priority: Priority | None, t: float, *, acknowledged: bool = False) -> bool:
    """Whether the flash highlight is lit at time ``t``.

    Only unacknowledged high and medium alarms flash; a low or acknowledged one
    keeps its steady alarm colour (from its class), so this returns False.
    """
    if priority is None or acknowledged:
        return False
    period = FLASH_PERIOD_S.get(priority)
    if period is None:
        return False
    return (t % period) < period / 2


def needs_attention(alarm: AlarmSnapshot) -> bool:
    return not alarm.acknowledged


def audible(alarm: AlarmSnapshot, now_wall: float) -> bool:
    """Unacknowledged high or medium alarm that is not silenced right now."""
    if alarm.acknowledged or alarm.priority not in BELL_BURSTS:
        return False
    return alarm.silenced_until is None or alarm.silenced_until <= now_wall


def loudest_audible(snap: StationSnapshot) -> Priority | None:
    best: Priority | None = None
    for a in snap.alarms:
        if audible(a, snap.time) and (best is None or a.priority == Priority.HIGH):
            best = a.priority
    return best


@dataclass
class BellScheduler:
    """Turns "an audible alarm is present" into bursts of bells.

    ``due(priority, now)`` returns how many bells to ring now; the burst
    restarts whenever the priority changes or the alarm goes quiet.
    """

    _priority: Priority | None = None
    _start: float = 0.0
    _rung: int = field(default=0)
    """Bells rung so far in the current cycle."""

    def due(self, priority: Priority | None, now: float) -> int:
        if priority is None:
            self._priority = None
            return 0
        if priority != self._priority:
            self._priority, self._start, self._rung = priority, now, 0
        offsets, period = BELL_BURSTS[priority]
        elapsed = now - self._start
        if elapsed >= period:
            cycles = int(elapsed // period)
            self._start += cycles * period
            self._rung = 0
            elapsed = now - self._start
        want = sum(1 for o in offsets if o <= elapsed)
        n = max(0, want - self._rung)
        self._rung = want
        return min(n, 1)  # never a pile-up of bells after a stall
