"""``serve`` under systemd: READY once every controller is connected or reported missing, and the
watchdog pinged from the station's own supervisor loop (see :mod:`console.common.sd_notify`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from console.common.sd_notify import Notifier

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 10.0
"""A controller still connecting after this is reported missing (the station keeps trying it)."""


def settled(snapshot: Any) -> tuple[list[str], list[str]] | None:
    """(connected, missing) once no controller is still making its first connection, else None."""
    states = {c.id: c.state for c in snapshot.controllers}
    if any(state == "connecting" for state in states.values()):
        return None
    return [cid for cid, s in states.items() if s == "ready"], [cid for cid, s in states.items() if s != "ready"]


async def announce_ready(station: Any, notifier: Notifier, *, timeout: float = SETTLE_TIMEOUT_S) -> str:
    """Wait until every controller is connected or missing, then send READY=1 with a STATUS naming them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (result := settled(station.snapshot())) is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if result is None:
        states = {c.id: c.state for c in station.snapshot().controllers}
        result = [c for c, s in states.items() if s == "ready"], [c for c, s in states.items() if s != "ready"]
    connected, missing = result
    status = f"controllers connected: {','.join(connected) or 'none'}; missing: {','.join(missing) or 'none'}"
    if missing:
        log.warning("serve: ready with controllers missing: %s", ",".join(missing))
    notifier.ready(status)
    return status


def watch(station: Any, notifier: Notifier) -> None:
    """Ping systemd's watchdog after every supervisor check the station runs."""
    if notifier.enabled:
        station.heartbeats.append(notifier.watchdog)
