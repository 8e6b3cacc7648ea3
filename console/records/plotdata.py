"""What a picture of a session needs, read once from the records: the same for the screen and the PDF.

Each cuff's per-second mean pressure and target, the alarm band the station held it to
(its recorded ``[safety]`` tolerance), its fidelity (time within +-10 % of target), the phases (sets and rests, from the station's ``session #N phase``
rows in the audit trail), and the alarms and emergency deflates, all in seconds
from the session's start.
"""

from __future__ import annotations

import re
from typing import Protocol

from console.common.plots import CuffSeries, Mark, SessionPlot, Span
from console.records.rows import (
    AlarmRecord,
    CommandRecord,
    EmergencyRecord,
    RecordsError,
    SampleRecord,
    SessionCuffRecord,
    SessionRecord,
)

PHASE_ROW = re.compile(r"session #(\d+) phase (\w+) (\d+)$")


class PlotReads(Protocol):
    """The reads a plot needs (:class:`~console.records.reads.RecordReads` has them)."""

    def session(self, session_id: int) -> SessionRecord | None: ...

    def samples(self, session_id: int, cuff: str | None = None) -> list[SampleRecord]: ...

    def session_cuffs(self, session_id: int) -> list[SessionCuffRecord]: ...

    def commands(self, since: float | None = None, until: float | None = None) -> list[CommandRecord]: ...

    def alarms(self, since: float | None = None, until: float | None = None) -> list[AlarmRecord]: ...

    def emergencies(self, since: float | None = None, until: float | None = None) -> list[EmergencyRecord]: ...


def session_plot(records: PlotReads, session_id: int) -> SessionPlot:
    """Everything the session's plots show; raises :class:`RecordsError` for an unknown session."""
    s = records.session(session_id)
    if s is None:
        raise RecordsError(f"no session {session_id} in the records")
    t0 = s.started_at
    end = s.ended_at
    samples = records.samples(session_id)
    last = max((x.t_end if x.t_end is not None else x.t + 1.0 for x in samples), default=t0)
    duration = max((end if end is not None else last) - t0, 0.0)
    cuffs_info = {c.cuff_id: c for c in records.session_cuffs(session_id)}
    series = []
    for cid in s.cuffs:
        rows = [x for x in samples if x.cuff_id == cid]
        info = cuffs_info.get(cid)
        series.append(
            CuffSeries(
                cuff_id=cid,
                label=info.label if isinstance(info, SessionCuffRecord) else cid,
                t=tuple(x.t + 0.5 - t0 for x in rows),
                pressure=tuple(x.pmean for x in rows),
                target=tuple(x.target for x in rows),
                fidelity=info.fidelity if info is not None else None,
                tolerance=info.tolerance_mmhg if info is not None else None,
            )
        )
    commands = records.commands(since=t0, until=end)
    spans = _spans(commands, session_id, t0, duration)
    alarms = [a for a in records.alarms(since=t0, until=end) if a.cuff_id is None or a.cuff_id in s.cuffs]
    marks = [Mark(a.raised_at - t0, a.priority, f"{a.cause} {a.cuff_id or ''}".strip()) for a in alarms]
    marks += [Mark(e.at - t0, "emergency", f"EMERGENCY by {e.by}") for e in records.emergencies(since=t0, until=end)]
    return SessionPlot(s, tuple(series), spans, tuple(sorted(marks, key=lambda m: m.t)), duration)


def _spans(commands: list[CommandRecord], session_id: int, t0: float, duration: float) -> tuple[Span, ...]:
    """Sets and rests from the phase rows: each lasts until the next phase row (or the end)."""
    phases = []
    for c in commands:
        m = PHASE_ROW.match(c.what)
        if m and int(m.group(1)) == session_id:
            phases.append((c.at - t0, m.group(2), int(m.group(3))))
    out = []
    for i, (t, kind, number) in enumerate(phases):
        stop = phases[i + 1][0] if i + 1 < len(phases) else duration
        if kind in ("set", "rest") and stop > t:
            out.append(Span(t, stop, kind, number))
    return tuple(out)
