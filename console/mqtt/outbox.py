"""What waits for the broker, within a bound, and what was lost.

Alarm messages wait in order (at most ``bound``; beyond it the oldest is dropped and
counted): each leaves only once the broker confirmed it. Status and cuff states keep
only their newest message per topic: an update replaced before it went out is counted
as dropped, so the memory used stays the same however long the broker is away.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.alarms: deque[tuple[str, bytes]] = deque()
        self.latest: dict[str, tuple[bytes, bool]] = {}
        """topic -> (payload, retain), newest only, oldest topic first."""
        self.lost_alarms = 0
        """Alarm messages dropped because ``bound`` of them were waiting."""
        self.dropped = 0
        """State updates replaced before they went out."""
        self.sent = 0
        self.wake = asyncio.Event()

    def put_alarm(self, topic: str, payload: bytes) -> None:
        if len(self.alarms) >= self.bound:
            self.alarms.popleft()
            self.lost_alarms += 1
        self.alarms.append((topic, payload))
        self.wake.set()

    def put_latest(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self.latest.pop(topic, None) is not None:
            self.dropped += 1
        self.latest[topic] = (payload, retain)
        self.wake.set()

    def next_latest(self) -> tuple[str, bytes, bool] | None:
        """The oldest waiting state update (taken out), or None."""
        if not self.latest:
            return None
        topic = next(iter(self.latest))
        payload, retain = self.latest.pop(topic)
        return topic, payload, retain

    def empty(self) -> bool:
        return not self.alarms and not self.latest
