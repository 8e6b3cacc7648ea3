"""Alarms in a clinician's words: what happened and what to do, short enough for the banner.

The station's own message (figures, ports, protocol words) stays the technical
cause, one key away in the alarm list (``Enter``). Each sentence here names the
cuffs concerned, so an alarm about a controller says which cuffs it means.
Pure functions of the alarm and the snapshot's cuffs, tested without a screen.
"""

from __future__ import annotations

from collections.abc import Iterable

from console.common.api import AlarmSnapshot, CuffSnapshot, Priority

ELLIPSIS = "..."

_SAY: dict[str, str] = {
    "LINK_LOST": "{who}: lost contact; cuffs vent. Check patient and cable.",
    "WRONG_CONTROLLER": "{who}: wrong controller on the cable; not used. Check cabling.",
    "NO_SUCH_CHANNEL": "{who}: no such channel on its controller. Call a technician.",
    "BOOT": "{who}: controller restarted, cuffs vented. Check the patient.",
    "WDT": "{who}: controller lost the console; vented. Check, ack (a).",
    "OVERPRESSURE": "{who}: pressure too high, cuff vented. Check it, then ack (a).",
    "SENSOR": "{who}: pressure sensor fault, vented. Call a technician.",
    "LATCHED": "{who}: found latched by the controller, vented. Ack (a).",
    "VENTFAIL": "{who}: cuff did not empty. Remove the cuff by hand now.",
    "NOT_REACHED": "{who}: target not reached. Check cuff and tubing for a leak.",
    "LEAK": "{who}: leak, the pump keeps running. Check cuff and tubing.",
    "RESIDUAL_PRESSURE": "{who}: still inflated after deflating. Open the cuff by hand.",
    "DEFLATE_UNCONFIRMED": "{who}: deflate not confirmed. Check; open the cuff by hand.",
    "OCCLUSION_WARN": "{who}: long under pressure; deflates at the time limit.",
    "OCCLUSION_LIMIT": "{who}: time limit reached, deflated. Let the limb recover.",
    "UNSANCTIONED_TARGET": "{who}: set by another program; deflated. Call a technician.",
    "RECORDS": "Records not saved (disk?): sessions refused. Call a tech.",
    "SUPERVISOR": "Station fault: all cuffs deflated. Check patients; restart.",
    "STATION_LOST": "Station unreachable: pressures unknown. Watch the patients.",
}
_OFF_TARGET = {
    Priority.HIGH: "{who}: pressure too high. Check the hose; deflate if unsure.",
    Priority.MEDIUM: "{who}: pressure too low. Check hose, fit; deflate if unsure.",
}


def alarm_cuffs(alarm: AlarmSnapshot, cuffs: Iterable[CuffSnapshot]) -> list[str]:
    """The cuffs an alarm is about: its own cuff, or every cuff of its controller."""
    if alarm.cuff is not None:
        return [alarm.cuff]
    if alarm.controller is None:
        return []
    return [c.id for c in cuffs if c.controller == alarm.controller]


def who(alarm: AlarmSnapshot, cuffs: Iterable[CuffSnapshot]) -> str:
    """``A1``, ``Cuffs A1, A2`` or ``Controller rack`` (a controller with no cuff configured)."""
    ids = alarm_cuffs(alarm, cuffs)
    if len(ids) == 1:
        return ids[0]
    if ids:
        return "Cuffs " + ", ".join(ids)
    return f"Controller {alarm.controller}" if alarm.controller else "Station"


def clinical(alarm: AlarmSnapshot, cuffs: Iterable[CuffSnapshot] = ()) -> str:
    """What happened and what to do; the station's own sentence for a cause not known here."""
    template = _OFF_TARGET.get(alarm.priority) if alarm.cause == "OFF_TARGET" else _SAY.get(alarm.cause)
    if template is None:
        return alarm.message
    return template.format(who=who(alarm, cuffs))


def for_cuff(alarm: AlarmSnapshot) -> str:
    """The sentence without naming the cuff, for the cuff's own panel: ``leak, the pump keeps running...``."""
    template = _OFF_TARGET.get(alarm.priority) if alarm.cause == "OFF_TARGET" else _SAY.get(alarm.cause)
    if template is None:
        return alarm.message
    return template.removeprefix("{who}: ").format(who="")


def technical(alarm: AlarmSnapshot) -> str:
    """The cause code and the station's full message, for a technician."""
    return f"{alarm.cause}: {alarm.message}"


def fit(text: str, width: int) -> str:
    """``text`` in ``width`` columns; when it must be shortened, cut at a word and say so with ``...``."""
    if len(text) <= width:
        return text
    room = max(0, width - len(ELLIPSIS))
    cut = text[:room]
    space = cut.rfind(" ")
    if space > room // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + ELLIPSIS
