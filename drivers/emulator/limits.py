"""The emulated controller's limits and regulation tuning.

One place for the numbers, so the command checks (:mod:`.commands`), the
channel filters (:mod:`.channel`) and the regulation and safety step
(:mod:`.firmware`) agree; ``firmware`` re-exports them all.
"""

from __future__ import annotations

RATES = (10, 25, 50, 100)
"""Stream rates this controller offers (besides 0, off)."""

BOOT_WATCHDOG_MS = 2000
WATCHDOG_RANGE = (200, 10000)
LEAK_S = 7.0
"""Pump running without pause for longer than this while HOLDING is a leak."""
VENTFAIL_S = 5.0
VENTFAIL_MMHG = 10.0
OVER_MARGIN = 10.0
"""Above max + this, a channel is vented and latched (OVERPRESSURE)."""
VENTED_BELOW = 5.0
"""A venting channel counts as VENTED under this reading."""
ZERO_BELOW = 5.0
SENSOR_RANGE = (-20.0, 500.0)
"""Readings outside this cannot be a cuff pressure: the sensor is broken."""
SENSOR_OUT_S = 0.02
FROZEN_S = 0.5
"""A reading that does not move for this long while the pump runs is frozen."""
FROZEN_EPS = 0.05

FAST_TAU = 0.02
"""Fast reading filter (noise only; the pulse passes): stops the pump, safety checks."""
SLOW_WINDOW_S = 1.2
"""Holding regulation judges the moving mean of the reading over this window.

At least one heartbeat (50 /min) long, so the arterial pulse averages out
instead of triggering corrections the way a short low-pass lets it."""
SETTLE_S = 1.3
"""Wait after a fill, pump or vent burst before judging its effect (longer than the mean's window)."""
DEADBAND = 2.0
"""No correction while the mean reading is within this of target: a sealed cuff holds with pump and valve shut."""
UNSTEADY_MMHG = 3.0
"""Thirds of the mean's window differing by more than this: the limb is contracting or moving.

Small corrections wait until it is steady again (a refill for a big loss does not)."""
UNSTEADY_RETRY_S = 0.1
REFILL_BELOW = 5.0
"""Under target by more than this, the pump runs continuously (no bursts)."""
STOP_EARLY = 1.0
"""A continuous fill stops this far under target (the fast filter lags a little)."""
MAX_PUMP_BURST_S = 0.4
MAX_VENT_BURST_MMHG = 10.0
BIG_DROP = 5.0
