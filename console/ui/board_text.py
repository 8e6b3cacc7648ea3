"""The board's text: a compact tile per cuff, a block per station, one list of alarms.

Pure functions of the :class:`~console.mqtt.board_model.BoardModel`, so what the board
says is tested without a screen. Only the 16 ANSI colours and ASCII: it reads the same
on the Linux text console (``TERM=linux``) as in a terminal emulator.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from console.common.figures import counted
from console.mqtt.board_model import RANK, BoardModel, StationView

TILE_W = 26
"""One cuff's tile, in columns (three fit in 80)."""
STALE_S = 10.0
"""An online station silent this long is shown SILENT: its status cannot be trusted."""
STYLE = {"high": "bold red", "medium": "bold yellow", "low": "cyan"}
STATE = {
    "VENTED": "vented",
    "INFLATING": "INFL",
    "HOLDING": "HOLD",
    "VENTING": "VENT",
    "FAULT": "FAULT",
    "OFFLINE": "OFFLN",
    "CONNECTING": "CONN",
}


def _mmss(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def _num(value: Any) -> str:
    return "--" if value is None else f"{float(value):.0f}"


def tile(cuff: dict[str, Any], *, live: bool) -> Text:
    """``A1 HOLD 182/184 80% set 03:12`` in TILE_W columns; dim when the station is not live."""
    state = STATE.get(str(cuff.get("state")), str(cuff.get("state", "?"))[:5]) if live else "?"
    parts = [f"{str(cuff.get('cuff', '?'))[:4]:<3} {state:<5}"]
    pct = ""
    if live and cuff.get("online"):
        target = float(cuff.get("target") or 0)
        parts.append(_num(cuff.get("pressure")) + (f"/{target:.0f}" if target > 0 else ""))
        if cuff.get("pct_lop") is not None and target > 0:
            pct = f"{float(cuff['pct_lop']):.0f}%"
        if float(cuff.get("occlusion_s") or 0) > 0:
            parts.append(_mmss(float(cuff["occlusion_s"])))
    if pct and len(" ".join(parts)) + len(pct) + 1 <= TILE_W - 3:
        parts.insert(2, pct)  # % LOP only where it fits beside the time under occlusion
    body = " ".join(parts)[: TILE_W - 3]
    alarm = cuff.get("alarm")
    mark = f"!{str(alarm)[0].upper()}" if alarm and live else ""
    text = Text(f"{body:<{TILE_W - 3}}", style="" if live else "dim")
    text.append(f"{mark:<2} ", style=STYLE.get(str(alarm), "") if live else "dim")
    return text


def station_state(view: StationView, now: float) -> tuple[str, str]:
    """(word, style) for a station: ONLINE, OFFLINE (why), SILENT (no message lately) or WAITING."""
    if view.state == "offline":
        return f"OFFLINE ({view.why or 'gone'})", "bold red"
    if view.state == "online" and now - view.seen_at > STALE_S:
        return f"SILENT {now - view.seen_at:.0f} s", "bold yellow"
    if view.state == "online":
        return "ONLINE", "green"
    return "WAITING for status", "dim"


def station_block(view: StationView, width: int, now: float) -> Text:
    word, style = station_state(view, now)
    out = Text()
    out.append(f" {view.title} ", style="bold")
    out.append(f"[{view.station}] ", style="dim")
    out.append(word, style=style)
    if view.alarms:
        worst = max(view.alarms.values(), key=lambda a: RANK.get(str(a.get("priority")), 0))
        out.append(
            f"  {counted(len(view.alarms), 'alarm')}",
            style=STYLE.get(str(worst.get("priority")), ""),
        )
    if view.lost_alarms:
        out.append(f"  {view.lost_alarms} alarm messages lost", style="yellow")
    out.append("\n")
    if view.attach:
        out.append(f"   attach: {view.attach}\n", style="dim")  # wrapped, never cut: it is typed as shown
    live = view.state == "online" and now - view.seen_at <= STALE_S
    per_row = max(1, (width - 2) // TILE_W)
    cuffs = view.ordered_cuffs()
    for i in range(0, len(cuffs), per_row):
        out.append("  ")
        for c in cuffs[i : i + per_row]:
            out.append_text(tile(c, live=live))
        out.append("\n")
    return out


def alarm_lines(model: BoardModel, width: int, limit: int) -> Text:
    """The alarms of every station, highest first; ``+N more`` when they do not fit."""
    alarms = model.alarm_list()
    out = Text()
    if not alarms:
        out.append(" No alarms on any station", style="dim")
        return out
    shown = alarms if len(alarms) <= limit else alarms[: limit - 1]
    for b in shown:
        a = b.alarm
        state = ("ACK" if a.get("acknowledged") else "NEW") + ("" if a.get("active") else ", cleared")
        view = model.stations.get(b.station)
        if view is not None and view.state == "offline":
            state += ", station offline"  # its last word: nobody there can clear it
        line = f" {str(a.get('priority', '?')).upper():<6} {b.station:<10} [{state}] {a.get('message', '')}"
        out.append(line[: max(20, width - 1)] + "\n", style=STYLE.get(str(a.get("priority")), ""))
    if len(shown) < len(alarms):
        out.append(f" +{len(alarms) - len(shown)} more alarms\n", style="bold")
    out.rstrip()
    return out


def header(model: BoardModel, now_wall: float | None = None) -> str:
    views = model.ordered()
    offline = sum(1 for v in views if v.state == "offline")
    alarms = model.alarm_list()
    high = sum(1 for b in alarms if b.alarm.get("priority") == "high")
    clock = time.strftime("%H:%M:%S", time.localtime(now_wall if now_wall is not None else time.time()))
    said = f" BFR board  site {model.site}  {counted(len(views), 'station')}"
    if offline:
        said += f", {offline} offline"
    said += f"  {counted(len(alarms), 'alarm')}" + (f" ({high} high)" if high else "")
    return f"{said}  {clock}"
