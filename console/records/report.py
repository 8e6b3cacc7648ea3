"""A session out of the records: a CSV for analysis, a plain-text report for the chart, the audit trail.

Times print as local time with the UTC offset, so a report read elsewhere is
still unambiguous. Every function only reads the records.

Text that came from a person or a controller (patient ids, positions, plan names,
alarm messages, who did what) is escaped on its way out: control characters are
written out (``\x1b``) in the report, so a terminal shows them and never obeys them,
and a CSV cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``,
tab, carriage return at its start) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from console.common.facts import FIDELITY_BAND, escape_controls
from console.records.rows import (
    AlarmRecord,
    CommandRecord,
    RecordsError,
    SampleRecord,
    SessionCuffRecord,
    SessionRecord,
)
from console.records.store import Records

CSV_COLUMNS = ("time", "t", "cuff", "pmin_mmhg", "pmean_mmhg", "pmax_mmhg", "target_mmhg", "in_band")
"""The sample table's header row; the rows above it are ``#key,value`` header rows."""


def local_time(t: float) -> str:
    """Epoch seconds as ``2027-01-15 10:00:00 +0100``."""
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def clock_time(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().strftime("%H:%M:%S")


def duration(seconds: float | None) -> str:
    """``mm:ss`` (``h:mm:ss`` from one hour)."""
    if seconds is None:
        return "n/a"
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _session(records: Records, session_id: int) -> SessionRecord:
    session = records.session(session_id)
    if session is None:
        raise RecordsError(f"no session {session_id} in {records.path}")
    return session


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula (or becomes one) in a spreadsheet (OWASP: CSV injection)."""


def csv_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: ``'`` before a formula's first character (numbers stay);
    control characters written out, as in the report (a CSV is often read with ``cat``)."""
    if value.startswith(FORMULA_STARTS):
        try:
            float(value)
        except ValueError:
            return "'" + escape_controls(value)
    return escape_controls(value)


def shown(value: object) -> str:
    """Text for the plain-text report: control characters written out, never sent to the terminal."""
    return escape_controls(str(value))


def _header_rows(s: SessionRecord) -> list[tuple[str, str]]:
    return [
        ("session", str(s.id)),
        ("patient", s.patient_id),
        ("plan", f"{s.plan_name} ({s.plan_id})"),
        ("cuffs", " ".join(s.cuffs)),
        ("started", local_time(s.started_at)),
        ("ended", "" if s.ended_at is None else local_time(s.ended_at)),
        ("end_reason", s.end_reason or "running"),
        ("lop_mmhg", _num(s.lop_mmhg)),
        ("position", s.position or ""),
        ("target_mmhg", _num(s.target_mmhg)),
        ("target_pct_lop", _num(s.target_pct_lop)),
        ("sets_planned", "" if s.sets_planned is None else str(s.sets_planned)),
        ("sets_done", "" if s.sets_done is None else str(s.sets_done)),
        ("sets_stopped", "" if s.sets_stopped is None else str(s.sets_stopped)),
        ("reps_per_set", " ".join(str(r) for r in s.reps_per_set)),
        ("occlusion_s", _num(s.occlusion_s)),
        ("fidelity", _num(s.fidelity, "{:.4f}")),
    ]


def _num(v: float | None, fmt: str = "{:g}") -> str:
    return "" if v is None else fmt.format(v)


def export_session_csv(records: Records, session_id: int, path: Path) -> Path:
    """Write ``#key,value`` header rows, a blank row, then one row per second per cuff.

    Written to a temporary file beside the target and renamed, so a failed export never leaves
    half a file under the real name. The temporary file gets an unpredictable name and is created
    exclusively, mode 0600 (``mkstemp``): a link planted under a guessable name cannot redirect
    patient data, and nobody else can read it while it is written. The export stays 0600.
    """
    session = _session(records, session_id)
    samples = records.samples(session_id)
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            for key, value in _header_rows(session):
                out.writerow((f"#{key}", csv_cell(value)))
            for c in session_cuffs(records, session, cuff_stats(samples)):
                out.writerow((f"#cuff_{c.cuff_id}_lop_mmhg", _num(c.lop_mmhg)))
                out.writerow((f"#cuff_{c.cuff_id}_target_mmhg", _num(c.target_mmhg)))
                out.writerow((f"#cuff_{c.cuff_id}_fidelity", _num(c.fidelity, "{:.4f}")))
            out.writerow(())
            out.writerow(CSV_COLUMNS)
            for x in samples:
                out.writerow(
                    (
                        local_time(x.t),
                        f"{x.t:.3f}",
                        csv_cell(x.cuff_id),
                        f"{x.pmin:.1f}",
                        f"{x.pmean:.1f}",
                        f"{x.pmax:.1f}",
                        f"{x.target:.1f}",
                        "" if x.in_band is None else f"{x.in_band:.3f}",
                    )
                )
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise RecordsError(f"cannot write the session CSV {path}: {exc.strerror or exc}") from exc
    return path


@dataclass(frozen=True, slots=True)
class CuffStats:
    """One cuff's per-second samples summed up for the report."""

    cuff: str
    seconds: int
    mean: float
    low: float
    high: float
    in_band: float | None
    """Estimated fidelity from the samples (weighted by time held), for records without the station's figure."""


def cuff_stats(samples: list[SampleRecord]) -> list[CuffStats]:
    by_cuff: dict[str, list[SampleRecord]] = {}
    for x in samples:
        by_cuff.setdefault(x.cuff_id, []).append(x)
    out = []
    for cuff, rows in sorted(by_cuff.items()):
        held = [x for x in rows if x.target > 0]
        band: float | None = None
        weight = sum(_held(x) for x in held)
        if weight > 0:
            band = sum(_held(x) * _in_band(x) for x in held) / weight
        out.append(
            CuffStats(
                cuff=cuff,
                seconds=len(rows),
                mean=sum(x.pmean for x in rows) / len(rows),
                low=min(x.pmin for x in rows),
                high=max(x.pmax for x in rows),
                in_band=band,
            )
        )
    return out


FIDELITY_MEANING = (
    "Fidelity, per cuff: the share of the time the cuff was held at its target (sets and held rests)",
    "that its pressure was within +-10 % of that target.",
)


def session_cuffs(records: Records, s: SessionRecord, stats: list[CuffStats]) -> list[SessionCuffRecord]:
    """Each cuff with its own LOP, target and fidelity; for records from before schema 2 (or a crash),
    what the session row and the samples say."""
    rows = {c.cuff_id: c for c in records.session_cuffs(s.id)}
    by_stats = {st.cuff: st for st in stats}
    out = []
    for i, cid in enumerate(s.cuffs):
        c = rows.get(cid)
        st = by_stats.get(cid)
        if c is None:
            c = SessionCuffRecord(
                cuff_id=cid,
                label=cid,
                limb="",
                target_mmhg=(s.target_mmhg if s.target_mmhg is not None else math.nan) if i == 0 else math.nan,
                lop_mmhg=s.lop_mmhg if i == 0 else None,
                position=s.position if i == 0 else None,
            )
        if c.fidelity is None and st is not None and st.in_band is not None:
            c = replace(c, fidelity=st.in_band)
        out.append(c)
    return out


def sets_text(s: SessionRecord) -> str:
    """``3 of 4 completed, 1 stopped before its end`` (a set stopped after one rep is not a set done)."""
    if s.sets_done is None:
        return "n/a (the session did not end)"
    done = s.sets_completed
    planned = "" if s.sets_planned is None else f" of {s.sets_planned}"
    text = f"{done}{planned} completed"
    if s.sets_stopped:
        last = s.reps_per_set[-1] if s.reps_per_set else 0
        text += f", {s.sets_stopped} stopped before its end (after {last} rep{'s' if last != 1 else ''})"
    return text


def _width(w: float | None) -> str:
    return "" if w is None else f"cuff {w:g} cm"


def _held(x: SampleRecord) -> float:
    return 1.0 if x.held_s is None else x.held_s


def _in_band(x: SampleRecord) -> float:
    return x.in_band if x.in_band is not None else float(abs(x.pmean - x.target) <= FIDELITY_BAND * x.target)


def _alarm_line(a: AlarmRecord) -> str:
    where = a.cuff_id or a.controller_id or "station"
    line = f"  {clock_time(a.raised_at)}  {a.priority.upper():<6} {a.cause:<16} {where:<8} {a.message}"
    notes = []
    if a.cleared_at is not None:
        notes.append(f"cleared {clock_time(a.cleared_at)}")
    if a.acknowledged_at is not None:
        by = f" by {a.acknowledged_by}" if a.acknowledged_by else ""
        notes.append(f"acknowledged {clock_time(a.acknowledged_at)}{by}")
    if notes:
        line += f" ({', '.join(notes)})"
    return line


def session_report(records: Records, session_id: int) -> str:
    """A readable plain-text report of one session, for the patient's chart."""
    s = _session(records, session_id)
    end = s.ended_at
    window_end = end if end is not None else float("inf")
    alarms = [a for a in records.alarms(since=s.started_at, until=end) if a.cuff_id is None or a.cuff_id in s.cuffs]
    emergencies = records.emergencies(since=s.started_at, until=None if end is None else window_end)
    samples = records.samples(session_id)
    stats = cuff_stats(samples)
    cuffs = session_cuffs(records, s, stats)

    def row(key: str, value: str) -> str:
        return f"{key:<17}{value}"

    lines = [f"BFR session report #{s.id}", "=" * 40]
    lines.append(row("Patient", s.patient_id))
    lines.append(row("Date", local_time(s.started_at)))
    if end is None:
        lines.append(row("Ended", "still running"))
    else:
        lines.append(row("Ended", f"{local_time(end)} ({s.end_reason}), duration {duration(s.duration_s)}"))
    lines.append(row("Plan", f"{s.plan_name} ({s.plan_id})"))
    lines.append(row("Cuffs", ", ".join(s.cuffs)))
    pct = "" if s.target_pct_lop is None else f" ({s.target_pct_lop:g} % LOP)"
    for c in cuffs:
        lop = "LOP n/a" if c.lop_mmhg is None else f"LOP {c.lop_mmhg:g} mmHg"
        where = ", ".join(x for x in (c.position or "position not recorded", _width(c.cuff_width_cm)) if x)
        target = f"{c.target_mmhg:g} mmHg{pct}" if math.isfinite(c.target_mmhg) else "not recorded"
        lines.append(row(f"Cuff {c.cuff_id}", f"{c.label}: {lop} ({where}), target {target}"))
    lines.append(row("Sets", sets_text(s)))
    if s.reps_per_set:
        reps = ", ".join(str(r) for r in s.reps_per_set) + f" (total {sum(s.reps_per_set)})"
    else:
        reps = "n/a"
    lines.append(row("Reps per set", reps))
    estimated = " (estimated from the samples after a crash)" if s.end_reason == "crash" else ""
    lines.append(row("Under occlusion", duration(s.occlusion_s) + estimated))
    lines += ["", *FIDELITY_MEANING]
    for c in cuffs:
        fid = "n/a" if c.fidelity is None else f"{100 * c.fidelity:.1f} %"
        occ = "" if c.occlusion_s is None else f", under occlusion {duration(c.occlusion_s)}"
        # The band the station alarmed on: another figure than fidelity's +-10 %, and the plots' band.
        band = "" if c.tolerance_mmhg is None else f", alarm band target +-{c.tolerance_mmhg:g} mmHg"
        lines.append(f"  {c.cuff_id:<6} fidelity {fid}{occ}{estimated if c.fidelity is not None else ''}{band}")

    lines += ["", "Pressure per cuff (per-second samples)"]
    if not stats:
        lines.append("  no samples recorded")
    for st in stats:
        lines.append(
            f"  {st.cuff:<6} {duration(st.seconds):>8}  mean {st.mean:6.1f}  min {st.low:6.1f}  max {st.high:6.1f} mmHg"
        )

    lines += ["", f"Alarms ({len(alarms)})"]
    lines += [_alarm_line(a) for a in alarms] or ["  none"]
    if emergencies:
        lines += ["", f"Emergency deflates ({len(emergencies)})"]
        for e in emergencies:
            latency = "" if e.latency_s is None else f", all confirmed in {1000 * e.latency_s:.0f} ms"
            confirmed = f", confirmed: {', '.join(e.confirmed)}" if e.confirmed else ""
            pending = f", NOT confirmed: {', '.join(e.pending)}" if e.pending else ""
            lines.append(f"  {clock_time(e.at)}  by {e.by}{confirmed}{pending}{latency}")
    return "".join(shown(line) + "\n" for line in lines)


SESSION_LIST_HEAD = f"{'#':<6} {'started':<16}  {'patient':<12} {'plan':<32} {'ended':<10} {'sets':>5} {'fidelity':>8}"


def session_list(sessions: list[SessionRecord]) -> str:
    """The sessions, one a line, under column headings (``report`` with no session)."""
    if not sessions:
        return "no sessions recorded yet\n"
    lines = [SESSION_LIST_HEAD]
    for s in sessions:
        started = datetime.fromtimestamp(s.started_at).strftime("%Y-%m-%d %H:%M")
        sets = "" if s.sets_done is None else f"{s.sets_completed}/{s.sets_planned or s.sets_done}"
        fid = "" if s.fidelity is None else f"{100 * s.fidelity:.0f} %"
        lines.append(
            f"{s.id:<6} {started:<16}  {s.patient_id:<12} {s.plan_name:<32} {s.end_reason or 'running':<10}"
            f" {sets:>5} {fid:>8}"
        )
    lines.append("sets: completed / planned; fidelity: share of held time within +-10 % of target, all cuffs")
    return "".join(shown(line) + "\n" for line in lines)


def audit_lines(commands: list[CommandRecord]) -> list[str]:
    """One line per row of the audit trail: time, who, role, what (escaped)."""
    if not commands:
        return ["  nothing recorded"]
    return [shown(f"  {local_time(c.at)}  {c.who:<22} {c.role:<9} {c.what}") for c in commands]


def session_audit(records: Records, session_id: int) -> str:
    """The audit trail while a session ran (start to end, or to now): every command at the station."""
    s = _session(records, session_id)
    rows = records.commands(since=s.started_at, until=s.ended_at)
    head = f"Audit trail of session #{s.id} (patient {s.patient_id}, {local_time(s.started_at)} to "
    head += "now)" if s.ended_at is None else f"{local_time(s.ended_at)})"
    return "\n".join([shown(head), *audit_lines(rows)]) + "\n"


def day_audit(records: Records, day: date) -> str:
    """The audit trail of one local calendar day."""
    after = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day).timestamp()  # local midnight (a DST day is 23 or 25 h)
    end = datetime(after.year, after.month, after.day).timestamp()
    rows = records.commands(since=start, until=end - 1e-6)
    return "\n".join([f"Audit trail of {day.isoformat()} ({len(rows)} rows)", *audit_lines(rows)]) + "\n"
