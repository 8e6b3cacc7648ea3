"""Plug and play: notice a controller that appears on a port no config names, while the console runs.

Every few seconds the serial port names are listed (no port is opened for that);
a port that is new, and not one of the config's, is asked HELLO once (the scan's
question, nothing else) and, if a controller answers, reported. It is asked again
only after it went away and came back. A port the config names is never touched
here: the station owns it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

from console.setup.scan import PortReport, ask_hello, find_ports

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 2.0


def device(port: str) -> str:
    return port if "://" in port else os.path.realpath(port)


class PortWatch:
    """Lists ports every ``interval`` and reports each new controller once to ``on_found``."""

    def __init__(
        self,
        known: Iterable[str],
        on_found: Callable[[PortReport], None],
        *,
        interval: float = WATCH_INTERVAL_S,
        list_ports: Callable[[], list[str]] = find_ports,
        ask: Callable[[str], Awaitable[PortReport]] = ask_hello,
    ) -> None:
        self.known = {device(p) for p in known}
        self.on_found, self.interval = on_found, interval
        self.list_ports, self.ask = list_ports, ask
        self.seen: set[str] = set()
        """Devices asked already and still present."""
        self.found: dict[str, PortReport] = {}
        """Controllers found, by the port name they were found under (what setup is given)."""

    async def check(self) -> None:
        """One look: ask every new port; forget ports that went away (so a replug is asked again)."""
        present = {device(p): p for p in self.list_ports()}
        for gone in self.seen - present.keys():
            self.seen.discard(gone)
            self.found = {p: r for p, r in self.found.items() if device(p) != gone}
        for dev, port in present.items():
            if dev in self.known or dev in self.seen:
                continue
            self.seen.add(dev)
            report = await self.ask(port)
            if report.usable:
                self.found[port] = report
                self.on_found(report)
            else:
                log.info("port watch: %s", report.describe())

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a watch that fails must never touch the station
                log.exception("port watch: a check failed")
            await asyncio.sleep(self.interval)
