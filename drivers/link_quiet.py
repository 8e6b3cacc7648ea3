"""The blind-controller rule (issue 11, item 1): when its samples stop, a controller is left to its watchdog.

A controller that answers commands but sends no usable sample (none, damaged ones, or the
wrong channel count) leaves the station blind: nobody sees its cuffs' pressure. The link used
to drop such a port after a second and set it up again, about once a second, and the HELLO,
WATCHDOG, STREAM and PING of every round fed the controller's watchdog: a cuff could stay up
for ever with nobody seeing it. Now the link falls quiet, so that the controller's own safety
vents it. ``W`` below is the link's ``watchdog_ms``; a usable sample is a valid ``S`` line with
the controller's channel count, from a controller whose HELLO named the expected serial.

1. **Blind.** No usable sample for ``min(1 s, W)`` while the stream is on (a caller may ask for
   less, e.g. the station's own link timeout, never for more than ``W``): the link reports
   LOST and ``starving``; the port stays open. It writes nothing that only feeds the watchdog:
   no PING, no queued or resent command; every command fails fast with LinkDown. A DEFLATE
   still goes out (it only ever vents): the first of the episode at once, any later one only
   after ``1.5 W`` of quiet, or a controller that refuses or ignores it would be fed by the
   caller's retries.
2. **Quiet before a probe.** A (re)connect starts only once the port has been quiet (no line
   written by the link) for ``1.5 W`` since the last write that no usable sample followed. A
   write that a usable sample followed needs no quiet: a healthy link that loses its port
   reconnects at its usual backoff.
3. **Probe.** HELLO, WATCHDOG, STREAM, then the first usable sample within ``min(1 s, W)``;
   READY only then. Without it the link is blind again (1) and quiet again (2).
4. **Seeing again.** A usable sample ends the episode at once: READY on the open port, PINGs
   and commands as before.
5. **Refused port.** A HELLO retry of a port that answered as another controller waits for
   ``1.5 x max(W, 2000 ms)`` of quiet, doubled after each refused HELLO, up to 15 s: this link
   never set that controller's watchdog, so it can only lean on the protocol's bounds.

What this assumes of the controller (``shared/protocol.md`` 4.1, 4.2, 4.4 and section 2):

- Every valid frame feeds its watchdog and nothing else does; a gap longer than the timeout,
  with any target above 0, vents and latches every channel (4.1). So silence is a vent, even
  of a channel whose DEFLATE the controller refuses.
- The timeout is ``W`` once ``WATCHDOG W`` was answered (every probe sends it right after the
  HELLO), 2000 ms after a power-up (4.4), never over 10000 ms (section 2). The last two bound
  the watchdog of a refused port's controller.
- A latched channel refuses SET until CLEAR (4.2) and a vented one stays at target 0: the
  HELLO, WATCHDOG and STREAM of the probe after the quiet cannot put a cuff up again. The
  link itself never sends SET or CLEAR.

Why ``1.5 W``: a gap over ``W`` trips the watchdog; the half on top is margin for two clocks and
the scheduling on both sides. With samples gone at time ``t``, the link's last write (but one
DEFLATE) is at most the blind time later, so the controller vents by ``t + min(1 s, W) + W``,
within ``2 W`` (or the caller's blind time plus ``W``).
"""

from __future__ import annotations

import math

SILENCE_S = 1.0
"""No usable sample for this long (or for the watchdog time, if shorter) while streaming: blind."""

QUIET_FACTOR = 1.5
"""Quiet before a probe, and between DEFLATEs while blind, in watchdog times."""

BOOT_WATCHDOG_MS = 2000
"""A controller's watchdog after power-up (protocol 4.4)."""

MAX_WATCHDOG_MS = 10000
"""The longest watchdog a controller accepts (protocol section 2, WATCHDOG)."""


class QuietRule:
    """When a link may write, given the controller's samples: the state of one link's blind episodes."""

    def __init__(self, watchdog_ms: int, blind_after_s: float | None = None) -> None:
        """``blind_after_s``: blind after this long without a usable sample (default ``SILENCE_S``);
        never later than the watchdog time."""
        if blind_after_s is not None and not blind_after_s > 0:
            raise ValueError(f"blind_after_s must be above 0, got {blind_after_s}")
        self.watchdog_s = watchdog_ms / 1000.0
        self.silence_s = min(SILENCE_S if blind_after_s is None else blind_after_s, self.watchdog_s)
        """No usable sample for this long while streaming: blind."""
        self.quiet_s = QUIET_FACTOR * self.watchdog_s
        self.blind = False
        """No usable sample for ``silence_s``: nothing is written but DEFLATE and probes."""
        self.probing = False
        """A probe (setup after the quiet) is running: its lines may go out."""
        self.refused = 0
        """HELLOs answered with another serial since the link was last READY."""
        self._deflated_at: float | None = None

    def go_blind(self) -> bool:
        """Samples stopped, or a probe saw none: hold back. True if this begins an episode."""
        began = not self.blind
        self.blind = True
        self.probing = False
        return began

    def start_probe(self) -> None:
        """The quiet was kept and a (re)connect begins: its setup lines may go out."""
        if self.blind:
            self.probing = True

    def sampled(self) -> bool:
        """A usable sample arrived: the episode is over. True if the link was blind."""
        was = self.blind
        self.blind = self.probing = False
        self._deflated_at = None
        return was

    def permit(self, tail: str, now: float, last_write: float) -> str | None:
        """None if ``VERB ARG...`` may be written now, else why not. Counts a DEFLATE it lets out."""
        if not self.blind or self.probing:
            return None
        if tail.startswith("DEFLATE "):
            if self._deflated_at is None or now - last_write >= self.quiet_s:
                self._deflated_at = now
                return None
            return (
                f"controller blind (no usable sample): a DEFLATE went out {now - self._deflated_at:.1f} s ago; "
                f"the next one after {self.quiet_s:g} s of quiet, so that its own watchdog vents it"
            )
        return "controller blind (no usable sample): nothing but DEFLATE is sent, so that its own watchdog vents it"

    def probe_at(self, last_write: float | None, last_sample: float | None) -> float:
        """The loop time from which a (re)connect may write its HELLO (``-inf``: at once)."""
        if last_write is None:
            return -math.inf
        if self.refused:
            return last_write + self.refused_quiet_s()
        if last_sample is not None and last_sample >= last_write:
            return -math.inf
        return last_write + self.quiet_s

    def refused_quiet_s(self) -> float:
        """Quiet after the latest refused HELLO: the other controller's watchdog is not ours to know."""
        base = QUIET_FACTOR * max(self.watchdog_s, BOOT_WATCHDOG_MS / 1000.0)
        return min(QUIET_FACTOR * MAX_WATCHDOG_MS / 1000.0, base * (1 << min(max(self.refused - 1, 0), 16)))
