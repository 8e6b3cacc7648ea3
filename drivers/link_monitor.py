"""Watching one open, set-up port: keepalive pings, samples that stop, and the quiet that follows.

Apart from the session in :mod:`drivers.link` because it is one job with its own
clock: a task per open port, started when its setup is done, ended with the port.
While the controller's samples flow it pings when the host is idle; when they stop
it declares the controller blind and then only waits, writing nothing, until the
blind-controller rule (:mod:`drivers.link_quiet`) allows the next probe.

What it assumes: a keepalive is needed only when the host is idle. When the
command queue is full (:class:`~drivers.link_errors.QueueFull`) the ping is
skipped: the waiting commands feed the controller's watchdog as they go out, and
a controller that stops answering them is caught by their answer timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from drivers.codec import Ok
from drivers.link_connection import Connection
from drivers.link_errors import LinkDown, LinkStats, QueueFull
from drivers.link_quiet import QuietRule
from drivers.link_requests import RequestBook, swallow_outcome

log = logging.getLogger(__name__)


class Watched(Protocol):
    """What the monitor reads of its link, live (switching keepalive off applies at once)."""

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> LinkStats: ...

    @property
    def watchdog_ms(self) -> int: ...

    @property
    def keepalive_enabled(self) -> bool: ...

    @property
    def stream_rate(self) -> int: ...

    @property
    def last_sample_at(self) -> float | None: ...


Lose = Callable[[Connection, str], None]


async def watch(
    link: Watched,
    conn: Connection,
    requests: RequestBook[Connection],
    quiet: QuietRule,
    lose: Lose,
    blind: Lose,
) -> None:
    """Ping when idle for a third of the watchdog; call ``blind`` when samples stop; ``lose`` the
    port when the quiet is kept (the link then probes again)."""
    loop = asyncio.get_running_loop()
    ping_every = link.watchdog_ms / 3000
    ping: asyncio.Future[Ok] | None = None
    try:
        while not conn.lost:
            now = loop.time()
            wake = now + ping_every
            if quiet.blind:
                probe_at = quiet.probe_at(requests.last_sent or None, link.last_sample_at)
                if now >= probe_at:
                    lose(conn, f"probing again after {quiet.quiet_s:g} s of quiet")
                    return
                wake = min(wake, probe_at)
            else:
                # Samples first: a PING due in the turn that finds them stopped would only feed the
                # controller's watchdog, which is what must vent it now.
                if link.stream_rate > 0:
                    ref = max(conn.sample_ref, link.last_sample_at or 0.0)
                    if now - ref > quiet.silence_s:
                        blind(conn, f"controller blind: no sample for {quiet.silence_s:g} s (or none usable)")
                        continue
                    wake = min(wake, ref + quiet.silence_s + 0.001)
                if link.keepalive_enabled:
                    due = requests.last_sent + ping_every
                    if now >= due and (ping is None or ping.done()):
                        try:
                            ping = requests.submit("PING", (), urgent=False, require_ready=False)
                        except QueueFull:  # commands wait to go out: the host is not idle, and they feed the watchdog
                            ping = None
                        else:
                            ping.add_done_callback(swallow_outcome)
                        due = now + ping_every
                    wake = min(wake, due)
            await asyncio.sleep(max(0.001, wake - loop.time()))
    except asyncio.CancelledError:
        raise
    except LinkDown:
        return
    except Exception as exc:
        log.exception("%s: monitor crashed", link.name)
        link.stats.errors += 1
        lose(conn, f"monitor crashed: {exc!r}")
