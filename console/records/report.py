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
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from console.common.facts import FIDELITY_BAND, escape_controls
from console.records.rows import (
    AlarmRecord,
    CommandRecord,
    RecordsError,
    SampleRecord,
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
        ("sets_done", "" if s.sets_done is None else str(s.sets_done)),
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
    """Share of seconds (with a target) whose mean was within +-10 % of target, or the station's own share."""


def cuff_stats(samples: list[SampleRecord]) -> list[CuffStats]:
    by_cuff: dict[str, list[SampleRecord]] = {}
    for x in samples:
        by_cuff.setdefault(x.cuff_id, []).append(x)
    out = []
    for cuff, rows in sorted(by_cuff.items()):
        held = [x for x in rows if x.target > 0]
        band: float | None = None
        if held:
            band = sum(
                x.in_band if x.in_band is not None else float(abs(x.pmean - x.target) <= FIDELITY_BAND * x.target)
                for x in held
            ) / len(held)
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
    stats = cuff_stats(records.samples(session_id))

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
    lop = "n/a" if s.lop_mmhg is None else f"{s.lop_mmhg:g} mmHg"
    lines.append(row("LOP", f"{lop}, {s.position or 'position not recorded'}"))
    target = "n/a" if s.target_mmhg is None else f"{s.target_mmhg:g} mmHg"
    if s.target_pct_lop is not None:
        target += f" ({s.target_pct_lop:g} % LOP)"
    lines.append(row("Target", target))
    lines.append(row("Sets done", "n/a" if s.sets_done is None else str(s.sets_done)))
    if s.reps_per_set:
        reps = ", ".join(str(r) for r in s.reps_per_set) + f" (total {sum(s.reps_per_set)})"
    else:
        reps = "n/a"
    lines.append(row("Reps per set", reps))
    estimated = " (estimated after a crash)" if s.end_reason == "crash" else ""
    lines.append(row("Under occlusion", duration(s.occlusion_s) + estimated))
    fidelity = "n/a" if s.fidelity is None else f"{100 * s.fidelity:.1f} % of time within +-10 % of target"
    lines.append(row("Fidelity", fidelity + (estimated if s.fidelity is not None else "")))

    lines += ["", "Pressure per cuff (per-second samples)"]
    if not stats:
        lines.append("  no samples recorded")
    for c in stats:
        band = "n/a" if c.in_band is None else f"{100 * c.in_band:.0f} %"
        lines.append(
            f"  {c.cuff:<6} {duration(c.seconds):>8}  mean {c.mean:6.1f}  min {c.low:6.1f}  max {c.high:6.1f} mmHg"
            f"  in band {band}"
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
