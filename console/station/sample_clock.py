"""When each sample was taken, on the station's clock, from the controller's own stamp (``S T ...``).

A sample's arrival time carries every stall of the station's loop: a frame being drawn, a busy
machine, a burst read after a pause. Most rules want exactly that (a link is judged by what
arrives). A LOP measurement does not: it looks for a pulse of about 1 mmHg at the heart rate, and
20 ms of arrival jitter on 10 ms samples blurs it until the measurement, correctly, refuses.

Assumes of the controller only protocol.md's ``T``: milliseconds of uptime, a u32 that wraps, and
back to near 0 when it restarts; and that its crystal keeps time within 0.1 % of the station's.
The least-delayed sample sets the offset (so a mapped time is never later than its arrival); the
offset may creep up by that 0.1 %, and a mapping more than ``MAX_LAG_S`` behind the arrival (a
clock that jumped, a controller that restarted without going back) starts again from the arrival.
"""

from __future__ import annotations

WRAP_MS = 2**32
DRIFT = 1e-3
"""Seconds per second the offset may grow by (a controller clock up to 0.1 % slow)."""
MAX_LAG_S = 2.0


class SampleClock:
    """One per controller: ``time_of(uptime_ms, arrival)`` -> station-clock time the sample was taken."""

    __slots__ = ("_offset", "_last_up", "_wraps", "_last_arrival")

    def __init__(self) -> None:
        self._offset: float | None = None
        self._last_up: int | None = None
        self._wraps = 0
        self._last_arrival = 0.0

    def time_of(self, uptime_ms: int, arrival: float) -> float:
        last = self._last_up
        if last is not None and uptime_ms < last:
            if last - uptime_ms > WRAP_MS // 2:
                self._wraps += 1  # the u32 wrapped (every 49.7 days)
            else:
                self._wraps = 0  # it restarted: its uptime means nothing relative to before
                self._offset = None
        self._last_up = uptime_ms
        taken = (uptime_ms + self._wraps * WRAP_MS) / 1000.0
        here = arrival - taken
        off = self._offset
        if off is None or here < off:
            off = here
        else:
            off = min(off + DRIFT * max(0.0, arrival - self._last_arrival), here)
            if here - off > MAX_LAG_S:
                off = here
        self._offset = off
        self._last_arrival = arrival
        return off + taken
