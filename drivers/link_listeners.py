"""Who hears what a link reports: every sample, status, event and state change, in order.

Apart from the session in :mod:`drivers.link` so the one rule of the fan-out is
stated once: a listener that raises never stops the others nor the link; it is
counted in the link's stats and logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from drivers.link_errors import LinkStats

log = logging.getLogger(__name__)

Listener = Callable[[object], None]


class Listeners:
    """The listeners of one link, called synchronously from its reader (the hot path)."""

    def __init__(self, name: str, stats: LinkStats) -> None:
        self.name = name
        self.stats = stats
        self._listeners: list[Listener] = []
        self._emit_to: tuple[Listener, ...] = ()
        self._failed: set[int] = set()

    def add(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn`` with everything emitted from now on; returns an unsubscribe."""
        self._listeners.append(fn)
        self._emit_to = tuple(self._listeners)

        def remove() -> None:
            if fn in self._listeners:
                self._listeners.remove(fn)
                self._emit_to = tuple(self._listeners)

        return remove

    def emit(self, msg: object) -> None:
        for fn in self._emit_to:
            try:
                fn(msg)
            except Exception:
                self.stats.errors += 1
                if id(fn) not in self._failed:
                    self._failed.add(id(fn))
                    log.exception("%s: listener %r raised (logged once per listener)", self.name, fn)
