"""systemd's notify protocol (sd_notify(3)), the documented few lines: datagrams to $NOTIFY_SOCKET.

``READY=1`` once the station has every controller connected or reported missing;
``WATCHDOG=1`` from the station's own supervisor loop, so a stalled loop stops the
pings and systemd restarts the service (``WatchdogSec=``), while the controllers'
own watchdogs vent the cuffs. Without ``$NOTIFY_SOCKET`` (not under systemd) every
call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to systemd, if it is listening; pings the watchdog at half its period at most."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path  # "@": the abstract namespace
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        """The service's watchdog period, or None when systemd expects no pings from this process."""
        self.clock = clock
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, message: str) -> bool:
        """One datagram; False (and a log line) if it could not be sent. Never raises."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError as exc:
            log.warning("sd_notify %r to %r failed: %s", message, self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog, at most every half period (the station's loop calls this far more often)."""
        if self.watchdog_s is None or not self.address:
            return
        now = self.clock()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_s / 2:
            return
        self._last_ping = now
        self.send("WATCHDOG=1")
