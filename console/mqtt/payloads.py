"""The JSON each topic carries (a public interface, documented in docs/mqtt.md).

Built from the snapshots every console reads (:mod:`console.common.api`), never from the
station's internals. No patient id ever goes out: a cuff is named by its id, limb and
label only. Every payload carries ``v`` (the format version) and ``time`` (epoch seconds).
"""

from __future__ import annotations

import json
from typing import Any, Final

from console.common.api import AlarmSnapshot, CuffSnapshot, EmergencySnapshot, StationSnapshot

VERSION: Final = 1
ONLINE: Final = "online"
OFFLINE: Final = "offline"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def alarm_fields(a: AlarmSnapshot) -> dict[str, Any]:
    return {
        "id": a.id,
        "priority": a.priority.value,
        "cause": a.cause,
        "message": a.message,
        "cuff": a.cuff,
        "controller": a.controller,
        "raised_at": a.raised_at,
        "active": a.active,
        "acknowledged": a.acknowledged,
    }


def status_payload(
    snap: StationSnapshot, *, station: str, state: str, attach: str, dropped: int, lost_alarms: int
) -> dict[str, Any]:
    """Retained: what a board shows for the station, including the alarms still needing attention."""
    return {
        "v": VERSION,
        "station": station,
        "name": snap.name,
        "state": state,
        "time": round(snap.time, 3),
        "attach": attach,
        "cuffs": [c.id for c in snap.cuffs],
        "controllers": [{"id": c.id, "state": c.state} for c in snap.controllers],
        "alarms": [alarm_fields(a) for a in snap.alarms],
        "dropped": dropped,
        "lost_alarms": lost_alarms,
    }


def offline_payload(station: str, name: str, time: float, why: str, attach: str = "") -> dict[str, Any]:
    """The last will (``why`` = ``vanished``) and the clean goodbye (``stopped``): the board still
    shows how to attach, to go and look."""
    return {
        "v": VERSION,
        "station": station,
        "name": name,
        "state": OFFLINE,
        "why": why,
        "time": round(time, 3),
        "attach": attach,
    }


def cuff_payload(c: CuffSnapshot, *, station: str, time: float) -> dict[str, Any]:
    """One cuff's state at 1-2 Hz: no patient id, no trace."""
    s = c.session
    return {
        "v": VERSION,
        "station": station,
        "cuff": c.id,
        "limb": c.limb,
        "label": c.label,
        "state": c.state,
        "online": c.online,
        "pressure": _round(c.pressure),
        "target": _round(c.target),
        "pct_lop": _round(c.pressure_pct_lop, 0),
        "target_pct_lop": _round(c.target_pct_lop, 0),
        "phase": s.phase if s is not None else None,
        "set": [s.set_index, s.set_count] if s is not None else None,
        "occlusion_s": round(c.occlusion_s, 1),
        "occlusion_limit_s": c.occlusion_limit_s,
        "alarm": c.alarm.value if c.alarm is not None else None,
        "time": round(time, 3),
    }


def alarm_payload(action: str, a: AlarmSnapshot, *, station: str, seq: int, time: float) -> dict[str, Any]:
    """An alarm changed (``raised``, ``escalated``, ``acknowledged``, ``cleared``...); QoS 1.

    ``seq`` grows by one per alarms message of this station run: a subscriber drops a
    message it already has (QoS 1 may deliver twice after a reconnect).
    """
    return {"v": VERSION, "station": station, "event": action, "seq": seq, "time": round(time, 3), **alarm_fields(a)}


def emergency_payload(e: EmergencySnapshot, *, station: str, seq: int, time: float) -> dict[str, Any]:
    """An emergency deflate (and each update as controllers confirm); QoS 1."""
    return {
        "v": VERSION,
        "station": station,
        "event": "emergency_deflate",
        "seq": seq,
        "time": round(time, 3),
        "started_at": e.started_at,
        "by": e.by,
        "confirmed": list(e.confirmed),
        "pending": list(e.pending),
        "latency_s": e.latency_s,
    }
