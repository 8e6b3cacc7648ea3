"""The session report as a PDF for the patient's chart, and a patient's course on one page of plots.

matplotlib with its Agg backend draws without any desktop stack (no X, no GTK), so it
runs on a Raspberry Pi's text console. Page 1 on is the plain-text report (plan, each
cuff's LOP and target, sets, fidelity with its definition, time under occlusion,
alarms) and the audit trail (who did what); then each cuff's pressure against its
target and the +-10 % band, sets and rests shaded, alarms and emergency deflates marked.
Written to a temporary file beside the target and renamed, mode 0600 like the CSV.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from console.common.patients import Progress, progress
from console.common.plots import SessionPlot
from console.records.plotdata import session_plot
from console.records.report import session_audit, session_report
from console.records.rows import RecordsError
from console.records.store import Records

LINES_PER_PAGE = 66
CUFFS_PER_PAGE = 4
MARK_COLOURS = {"high": "red", "medium": "darkorange", "low": "gold", "emergency": "black"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display, no desktop libraries
    import matplotlib.pyplot as plt

    # The PDF's own 14 fonts (Helvetica, Courier): nothing to embed, text costs a fraction.
    matplotlib.rcParams["pdf.use14corefonts"] = True
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = ["Helvetica"]
    matplotlib.rcParams["font.monospace"] = ["Courier"]
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "using medium for normal": harmless

    return plt


def session_pdf(records: Records, session_id: int, path: Path) -> Path:
    """Write session ``session_id``'s report with its plots to ``path``; returns the path."""
    text = session_report(records, session_id) + "\n" + session_audit(records, session_id)
    plot = session_plot(records, session_id)
    plt = _pyplot()

    def pages(pdf: Any) -> None:
        _text_pages(plt, pdf, text.splitlines())
        for i in range(0, len(plot.cuffs), CUFFS_PER_PAGE):
            _cuff_page(plt, pdf, plot, i)

    return _write(path, pages, title=f"BFR session {session_id}")


def course_pdf(records: Records, patient_id: str, path: Path) -> Path:
    """Write a patient's progress over their sessions (LOP and target, reps per set, occlusion) to ``path``."""
    history = records.patient_history(patient_id)
    if not history.sessions:
        raise RecordsError(f"no sessions of patient {patient_id!r} in {records.path}")
    course = progress(patient_id, history.sessions)
    plt = _pyplot()
    return _write(path, lambda pdf: _course_page(plt, pdf, course), title=f"BFR course {patient_id}")


def _write(path: Path, draw: Callable[[Any], None], *, title: str) -> Path:
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f, PdfPages(f, metadata={"Title": title, "Creator": "bfr-console"}) as pdf:
            draw(pdf)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise RecordsError(f"cannot write the PDF {path}: {exc.strerror or exc}") from exc
    return path


def _text_pages(plt: Any, pdf: Any, lines: list[str]) -> None:
    """The report's text as A4 pages in a fixed-width font (its columns line up as on screen)."""
    for start in range(0, max(len(lines), 1), LINES_PER_PAGE):
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(
            0.06,
            0.96,
            "\n".join(lines[start : start + LINES_PER_PAGE]),
            family="monospace",
            fontsize=7.5,
            va="top",
        )
        pdf.savefig(fig)
        plt.close(fig)


def _cuff_page(plt: Any, pdf: Any, plot: SessionPlot, first: int) -> None:
    cuffs = plot.cuffs[first : first + CUFFS_PER_PAGE]
    fig, axes = plt.subplots(len(cuffs), 1, figsize=(8.27, 11.69), squeeze=False, sharex=True)
    s = plot.session
    fig.suptitle(f"Session #{s.id}, patient {s.patient_id}, {s.plan_name}: pressure per cuff", fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.07, hspace=0.3)  # tight_layout costs 0.5 s a page
    for n, (ax, c) in enumerate(zip(axes[:, 0], cuffs, strict=True)):
        for span in plot.spans:
            colour = "#cfe3ff" if span.kind == "set" else "#eeeeee"
            ax.axvspan(span.start, span.end, color=colour, lw=0)
        lo = [x * (1 - plot.band) for x in c.target]
        hi = [x * (1 + plot.band) for x in c.target]
        ax.fill_between(c.t, lo, hi, color="tab:green", alpha=0.25, lw=0, label=f"target +-{100 * plot.band:.0f} %")
        ax.plot(c.t, c.target, "--", color="tab:green", lw=1, label="target")
        ax.plot(c.t, c.pressure, color="tab:blue", lw=1.2, label="pressure (mean of each second)")
        if plot.marks:  # one collection, not a line each: 16 cuffs x many alarms stay quick
            ax.vlines(
                [m.t for m in plot.marks],
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors=[MARK_COLOURS.get(m.kind, "red") for m in plot.marks],
                linewidths=[2 if m.kind == "emergency" else 1 for m in plot.marks],
            )
        fid = "" if c.fidelity is None else f", fidelity {100 * c.fidelity:.0f} %"
        ax.set_title(f"{c.cuff_id} {c.label}{fid}", fontsize=9, loc="left")
        ax.set_ylabel("mmHg")
        ax.set_xlim(0, max(plot.duration_s, 1.0))
        ax.set_ylim(bottom=0)
        if n == 0:
            ax.legend(fontsize=6, loc="lower right")
    axes[-1, 0].set_xlabel("seconds from the start (blue: sets, grey: rests; lines: alarms, black: emergency)")
    for m in plot.marks:
        axes[0, 0].annotate(m.text, (m.t, 1.0), xycoords=("data", "axes fraction"), fontsize=6, rotation=90, va="top")
    pdf.savefig(fig)
    plt.close(fig)


def _course_page(plt: Any, pdf: Any, course: Progress) -> None:
    days = [datetime.fromtimestamp(t) for t in course.dates]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(8.27, 11.69), sharex=True)
    fig.suptitle(f"Patient {course.patient_id}: {len(days)} sessions", fontsize=11)
    a1.plot(days, [float("nan") if x is None else x for x in course.lop], "o-", label="LOP used")
    a1.plot(days, [float("nan") if x is None else x for x in course.target], "s--", label="prescribed pressure")
    a1.set_ylabel("mmHg")
    a1.legend(fontsize=7)
    a1.set_title("LOP and prescribed pressure", fontsize=9, loc="left")
    longest = max((len(r) for r in course.reps_per_set), default=0)
    for i in range(longest):
        a2.plot(days, [r[i] if i < len(r) else float("nan") for r in course.reps_per_set], "o-", label=f"set {i + 1}")
    a2.set_ylabel("reps")
    a2.legend(fontsize=7)
    a2.set_title("Reps completed per set", fontsize=9, loc="left")
    a3.bar(days, [0.0 if x is None else x for x in course.occlusion_min], width=0.6)
    a3.set_ylabel("min")
    a3.set_title("Time under occlusion", fontsize=9, loc="left")
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    pdf.savefig(fig)
    plt.close(fig)
