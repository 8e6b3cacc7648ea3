"""What a board knows of every station of its site, built only from what the stations publish.

Pure: :meth:`BoardModel.apply` takes one received message; the board's screen reads the
result. A message that is not ours or not JSON is counted and ignored (any client with read
access could be misconfigured; none can make the board crash). The retained status carries
each station's alarms still needing attention, so a board that starts late has them all;
the ``alarms`` topic updates them at once in between.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from console.mqtt.topics import parse_topic

RANK = {"high": 3, "medium": 2, "low": 1}


@dataclass
class StationView:
    station: str
    name: str = ""
    state: str = "unknown"
    """``online`` | ``offline`` (its last will, or stopped) | ``unknown`` (no status yet)."""
    why: str = ""
    attach: str = ""
    cuff_order: list[str] = field(default_factory=list)
    cuffs: dict[str, dict[str, Any]] = field(default_factory=dict)
    alarms: dict[int, dict[str, Any]] = field(default_factory=dict)
    emergency: dict[str, Any] | None = None
    dropped: int = 0
    lost_alarms: int = 0
    seen_at: float = 0.0
    """Board clock (monotonic) of the last message from this station."""

    @property
    def title(self) -> str:
        return self.name or self.station

    def ordered_cuffs(self) -> list[dict[str, Any]]:
        known = [self.cuffs[c] for c in self.cuff_order if c in self.cuffs]
        return known + [v for k, v in self.cuffs.items() if k not in self.cuff_order]


@dataclass(frozen=True, slots=True)
class BoardAlarm:
    station: str
    alarm: dict[str, Any]


class BoardModel:
    def __init__(self, site: str) -> None:
        self.site = site
        self.stations: dict[str, StationView] = {}
        self.ignored = 0
        """Messages that were not ours, or not readable."""
        self.version = 0
        """Grows with every change; the screen redraws only when it moved."""
        self.alarm_version = 0
        """Grows when a station's status or alarms changed: the alarm list redraws at once."""

    def apply(self, topic: str, payload: bytes, now: float) -> bool:
        """Take one message; False (and counted) when it is not one of ours or cannot be read."""
        where = parse_topic(self.site, topic)
        try:
            data = json.loads(payload) if where is not None and payload else None
        except ValueError:
            data = None
        if where is None or not isinstance(data, dict):
            self.ignored += 1
            return False
        view = self.stations.get(where.station)
        if view is None:
            view = self.stations[where.station] = StationView(where.station)
        view.seen_at = now
        try:
            if where.kind == "status":
                self._status(view, data)
                self.alarm_version += 1
            elif where.kind == "cuffs":
                view.cuffs[where.item] = data
            else:
                self._alarm(view, data)
                self.alarm_version += 1
        except (KeyError, TypeError, ValueError):
            self.ignored += 1
            return False
        self.version += 1
        return True

    def _status(self, view: StationView, data: dict[str, Any]) -> None:
        view.state = str(data["state"])
        view.name = str(data.get("name") or view.name)
        view.why = str(data.get("why", ""))
        view.attach = str(data.get("attach") or view.attach)
        if view.state == "online":
            view.cuff_order = [str(c) for c in data.get("cuffs", [])]
            view.alarms = {int(a["id"]): a for a in data.get("alarms", [])}
            view.dropped = int(data.get("dropped", 0))
            view.lost_alarms = int(data.get("lost_alarms", 0))

    def _alarm(self, view: StationView, data: dict[str, Any]) -> None:
        event = data["event"]
        if event == "emergency_deflate":
            view.emergency = data
            return
        aid = int(data["id"])
        if event == "retired" or (not data.get("active") and data.get("acknowledged")):
            view.alarms.pop(aid, None)
        else:
            view.alarms[aid] = data

    def alarm_list(self) -> list[BoardAlarm]:
        """Every station's alarms still needing attention: highest first, then active, newest."""
        out = [BoardAlarm(s.station, a) for s in self.stations.values() for a in s.alarms.values()]
        out.sort(
            key=lambda b: (
                -RANK.get(str(b.alarm.get("priority")), 0),
                not b.alarm.get("active"),
                -float(b.alarm.get("raised_at") or 0),
            )
        )
        return out

    def ordered(self) -> list[StationView]:
        return [self.stations[k] for k in sorted(self.stations)]
