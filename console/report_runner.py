"""``bfr-console report``: the records read back as text, CSV, audit trail or PDF (read-only; no station)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from console.cli_output import fail, say


def run_report(
    config: Any, *, session: int | None, csv: str | None, audit: bool = False, day: date | None = None
) -> int:
    """``bfr-console report``: list the sessions, or print / export one, or the audit trail of one or of a day."""
    from console.records.report import day_audit, export_session_csv, session_audit, session_list, session_report
    from console.records.rows import RecordsError
    from console.records.store import Records

    data_dir = Path(config.station.data_dir)
    if not (data_dir / "records.sqlite3").exists():
        return fail(f"no records yet in {data_dir}")
    try:
        records = Records.open(data_dir, readonly=True)
    except RecordsError as exc:
        return fail(str(exc))
    try:
        if audit:
            try:
                say(session_audit(records, session) if session is not None else day_audit(records, day or date.today()))
            except RecordsError as exc:
                return fail(str(exc))
            return 0
        if session is None:
            if csv:
                return fail("--csv exports one session: add --session N (see the list: bfr-console report)")
            say(session_list(records.sessions()).rstrip("\n"))
            return 0
        try:
            if csv:
                path = export_session_csv(records, session, Path(csv))
                say(f"wrote {path}")
            else:
                say(session_report(records, session))
        except RecordsError as exc:
            return fail(str(exc))
        return 0
    finally:
        records.close()


def run_pdf_report(
    config: Any,
    *,
    session: int | None,
    patient: str | None,
    pdf: str | None,
    first_day: date | None = None,
    last_day: date | None = None,
) -> int:
    """``bfr-console report --session N --pdf FILE`` or ``--patient ID [--from DAY] [--to DAY] --pdf FILE``.

    A refusal (bad arguments, an empty range, an unknown patient) exits non-zero and writes nothing.
    """
    from datetime import datetime, time, timedelta

    from console.records.pdf import patient_pdf, session_pdf
    from console.records.rows import RecordsError
    from console.records.store import Records

    if not pdf or (session is None) == (patient is None):
        return fail(
            "--pdf FILE with exactly one of --session N (a session) or --patient ID (their course and sessions,"
            " --from / --to YYYY-MM-DD to choose the days)"
        )
    if (first_day or last_day) and patient is None:
        return fail("--from / --to choose a patient's sessions: add --patient ID")
    if first_day and last_day and first_day > last_day:
        return fail(f"empty range: --from {first_day} is after --to {last_day}")
    # Local days, as the clinic's calendar has them: from the first day's midnight to the one after the last.
    since = datetime.combine(first_day, time()).timestamp() if first_day else None
    until = datetime.combine(last_day + timedelta(days=1), time()).timestamp() if last_day else None
    data_dir = Path(config.station.data_dir)
    if not (data_dir / "records.sqlite3").exists():
        return fail(f"no records yet in {data_dir}")
    try:
        with Records.open(data_dir, readonly=True) as records:
            path = (
                session_pdf(records, session, Path(pdf))
                if session is not None
                else patient_pdf(records, str(patient), Path(pdf), since=since, until=until)
            )
    except RecordsError as exc:
        return fail(str(exc))
    say(f"wrote {path}")
    return 0
