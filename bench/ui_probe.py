"""The shipped ``bfr-console``, plus a frame log for bench_ui's sample-to-screen delay.

Run exactly as ``bfr-console`` (same arguments), with ``BFR_FRAME_LOG=PATH``.
It installs one hook on :class:`BfrApp` before ``console.cli.main`` runs: after
every pull-loop tick that took a new snapshot, once Textual has composed the
screen and handed the update to its output (``call_after_refresh``), it
appends a line: the wall time then, ``L`` and how long the newest reading of
any controller waited in its port before the station read it, and each cuff's
newest sample's arrival at the station (``snapshot.time - sample_age_s``).

The wait in the port is the station's own :class:`SampleClock` estimate: a
reading's arrival less the controller's time stamp on the host clock, offset
by the least-delayed reading (drivers/read_pacing.py holds a streaming port up
to 25 ms; before it, the wait was a pty's microseconds). Nothing else changes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("BFR_BENCH_CODE") or str(Path(__file__).resolve().parent.parent))

from console.cli import main  # noqa: E402
from console.common.api import StationSnapshot  # noqa: E402
from console.station.sample_clock import SampleClock  # noqa: E402
from console.ui.app import BfrApp  # noqa: E402

_init = BfrApp.__init__
_time_of = SampleClock.time_of
_waits: dict[int, float] = {}
"""id of each controller's SampleClock -> how long its newest reading waited in the port (s)."""


def _timed(self: SampleClock, uptime_ms: int, arrival: float) -> float:
    taken = _time_of(self, uptime_ms, arrival)
    _waits[id(self)] = arrival - taken
    return taken


SampleClock.time_of = _timed  # type: ignore[method-assign]


def _logged_init(self: BfrApp, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    out = open(os.environ["BFR_FRAME_LOG"], "a", buffering=1)  # noqa: SIM115 (open for the app's life)

    def on_frame(snap: StationSnapshot) -> None:
        arrivals = [snap.time - c.sample_age_s for c in snap.cuffs if c.sample_age_s is not None]
        if arrivals:
            wait = max(_waits.values(), default=0.0)
            line = f"L{wait:.6f} {' '.join(f'{t:.6f}' for t in arrivals)}"
            self.call_after_refresh(lambda: out.write(f"{time.time():.6f} {line}\n"))

    self.on_frame = on_frame


BfrApp.__init__ = _logged_init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
