"""Watching one READY port: keepalive pings when the host is idle, and a silent controller.

Apart from the session in :mod:`drivers.link` because it is one job with its own
clock: a task per open port, started when the link becomes READY, ended with the port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from drivers.codec import Ok
from drivers.link_connection import Connection
from drivers.link_errors import LinkDown, LinkStats
from drivers.link_requests import RequestBook, swallow_outcome

log = logging.getLogger(__name__)

SAMPLE_SILENCE_S = 1.0
"""No sample for this long while streaming means the controller is gone."""


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


async def watch(
    link: Watched, conn: Connection, requests: RequestBook[Connection], lose: Callable[[Connection, str], None]
) -> None:
    """Ping when idle for a third of the watchdog; ``lose`` the port when samples stop."""
    loop = asyncio.get_running_loop()
    ping_every = link.watchdog_ms / 3000
    ping: asyncio.Future[Ok] | None = None
    conn.sample_ref = loop.time()
    try:
        while not conn.lost:
            now = loop.time()
            wake = now + ping_every
            if link.keepalive_enabled:
                due = requests.last_sent + ping_every
                if now >= due and (ping is None or ping.done()):
                    ping = requests.submit("PING", (), urgent=False, require_ready=False)
                    ping.add_done_callback(swallow_outcome)
                    due = now + ping_every
                wake = min(wake, due)
            if link.stream_rate > 0:
                ref = max(conn.sample_ref, link.last_sample_at or 0.0)
                if now - ref > SAMPLE_SILENCE_S:
                    lose(conn, f"controller silent: no sample for {SAMPLE_SILENCE_S:g} s")
                    return
                wake = min(wake, ref + SAMPLE_SILENCE_S + 0.001)
            await asyncio.sleep(max(0.001, wake - loop.time()))
    except asyncio.CancelledError:
        raise
    except LinkDown:
        return
    except Exception as exc:
        log.exception("%s: monitor crashed", link.name)
        link.stats.errors += 1
        lose(conn, f"monitor crashed: {exc!r}")
