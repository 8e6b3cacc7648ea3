"""Session reports as a PDF for the patient's chart: one session, or a patient's sessions over a range.

matplotlib with its Agg backend draws without any desktop stack (no X, no GTK), so it
runs on a Raspberry Pi's text console; it is imported only when a PDF is made. A session
is its plain-text report (plan, each cuff's LOP and target, sets, fidelity with its
definition, time under occlusion, alarms) and audit trail (who did what), then each
cuff's pressure against its target and the cuff's alarm band (the ``[safety]``
tolerance the station alarmed on), sets and rests shaded, alarms and emergency
deflates marked. A patient's report is their course on one page of plots, then each
session of the range so. Written to a temporary file beside the target and renamed,
mode 0600 like the CSV: a refusal or a failure leaves no file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from console.common.patients import Progress, SessionEntry, progress
from console.common.plots import SessionPlot, alarm_band, alarm_band_text, fidelity_text
from console.records.plotdata import session_plot
from console.records.report import session_audit, session_report
from console.records.rows import RecordsError
from console.records.store import Records

LINES_PER_PAGE = 66
CUFFS_PER_PAGE = 4
MARK_COLOURS = {"high": "red", "medium": "darkorange", "low": "gold", "emergency": "black"}
PLOT_POINTS = 600
"""At most this many points a line (min and max of each bucket): about one per printed dot column of a
plot 7 in wide at 100 dpi, so a long session draws as fast as a short one and shows every spike."""
BANDS_NOTE = (
    "Green band: the cuff's alarm band, target +/- the [safety] tolerance: the station alarms when the pressure"
    " stays outside it.\nFidelity (in each title) is another figure: the share of held time within +/-10 % of"
    " target, as Swain 2025 compared devices."
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display, no desktop libraries
    import matplotlib.pyplot as plt

    # The PDF's own 14 fonts (Helvetica, Courier): nothing to embed, text costs a fraction.
    matplotlib.rcParams["pdf.use14corefonts"] = True
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = ["Helvetica"]
    matplotlib.rcParams["font.monospace"] = ["Courier"]
    matplotlib.rcParams["path.simplify"] = True
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "using medium for normal": harmless

    return plt


@dataclass(frozen=True, slots=True)
class _SessionPages:
    """Everything one session's pages show, read before any file is made."""

    text: list[str]
    plot: SessionPlot


def _read_session(records: Records, session_id: int) -> _SessionPages:
    text = session_report(records, session_id) + "\n" + session_audit(records, session_id)
    return _SessionPages(text.splitlines(), session_plot(records, session_id))


def _draw_sessions(plt: Any, pdf: Any, sessions: list[_SessionPages]) -> None:
    figures = _CuffFigures(plt)
    try:
        for pages in sessions:
            _text_pages(plt, pdf, pages.text)
            for i in range(0, len(pages.plot.cuffs), CUFFS_PER_PAGE):
                _cuff_page(figures, pdf, pages.plot, i)
    finally:
        figures.close()


def session_pdf(records: Records, session_id: int, path: Path) -> Path:
    """Write session ``session_id``'s report with its plots to ``path``; returns the path."""
    pages = _read_session(records, session_id)
    plt = _pyplot()
    return _write(path, lambda pdf: _draw_sessions(plt, pdf, [pages]), title=f"BFR session {session_id}")


def patient_pdf(
    records: Records, patient_id: str, path: Path, *, since: float | None = None, until: float | None = None
) -> Path:
    """Write a patient's course and each of their sessions started in [since, until) to ``path``.

    Raises :class:`RecordsError` (and writes nothing) for an unknown patient or a range without sessions.
    """
    if records.patient(patient_id) is None:
        raise RecordsError(f"no patient {patient_id!r} in {records.path}")
    everything = records.patient_history(patient_id).sessions
    chosen = sorted(
        (s for s in everything if (since is None or s.started_at >= since) and (until is None or s.started_at < until)),
        key=lambda s: (s.started_at, s.id),
    )
    if not chosen:
        raise RecordsError(f"no sessions of patient {patient_id!r} {_range_text(since, until)}{_known(everything)}")
    course = progress(patient_id, chosen)
    sessions = [_read_session(records, s.id) for s in chosen]
    plt = _pyplot()
    heading = f"{_range_text(since, until)}" if since is not None or until is not None else ""

    def draw(pdf: Any) -> None:
        _course_page(plt, pdf, course, heading)
        _draw_sessions(plt, pdf, sessions)

    return _write(path, draw, title=f"BFR sessions of {patient_id}")


def _day(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d")


def _range_text(since: float | None, until: float | None) -> str:
    """``from 2026-11-02 to 2026-11-30`` (``until`` is the midnight after the last day)."""
    parts = []
    if since is not None:
        parts.append(f"from {_day(since)}")
    if until is not None:
        parts.append(f"to {_day(until - 1.0)}")
    return " ".join(parts) or "in the records"


def _known(sessions: tuple[SessionEntry, ...]) -> str:
    """What the patient does have, so a wrong range is easy to fix."""
    if not sessions:
        return " (they have none yet)"
    days = sorted(s.started_at for s in sessions)
    return f" (their {len(days)} sessions run from {_day(days[0])} to {_day(days[-1])})"


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
        raise RecordsError(f"cannot write the PDF {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink(missing_ok=True)  # not renamed: an error on the way
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


def decimate(
    t: tuple[float, ...], *series: list[float] | tuple[float, ...], points: int = PLOT_POINTS
) -> list[list[float]]:
    """``t`` and each series cut to about ``points`` points: per bucket of neighbours, the minimum and the
    maximum of the first series in time order (the other series at the same places). A spike survives, a
    flat hold costs two points a bucket."""
    n = len(t)
    if n <= points:
        return [list(t), *(list(s) for s in series)]
    first = series[0]
    buckets = max(1, points // 2)
    keep: list[int] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        i_min = min(range(lo, hi), key=first.__getitem__)
        i_max = max(range(lo, hi), key=first.__getitem__)
        keep.extend(sorted({i_min, i_max}))
    return [[t[i] for i in keep], *([s[i] for i in keep] for s in series)]


class _CuffFigures:
    """The pages of cuff plots, one matplotlib figure per number of plots a page, drawn again page after
    page: a new figure builds its axes and every tick anew, which cost most of a 16-cuff report's time."""

    def __init__(self, plt: Any) -> None:
        self.plt = plt
        self._figures: dict[int, tuple[Any, Any]] = {}

    def page(self, rows: int) -> tuple[Any, Any]:
        """A figure with ``rows`` empty plots (emptied of the last page's lines, bands and marks)."""
        if rows not in self._figures:
            fig, axes = self.plt.subplots(rows, 1, figsize=(8.27, 11.69), squeeze=False, sharex=True)
            fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.1, hspace=0.3)  # tight_layout: 0.5 s a page
            fig.text(0.1, 0.015, BANDS_NOTE, fontsize=7, va="bottom")
            for ax in axes[:, 0]:
                ax.set_ylabel("mmHg")
                ax.yaxis.set_major_locator(self._locator())
            axes[-1, 0].set_xlabel("seconds from the start (blue: sets, grey: rests; lines: alarms, black: emergency)")
            self._figures[rows] = (fig, axes)
        fig, axes = self._figures[rows]
        for ax in axes[:, 0]:
            for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.texts):
                artist.remove()
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        return fig, axes

    @staticmethod
    def _locator() -> Any:
        from matplotlib.ticker import MaxNLocator

        return MaxNLocator(nbins=5)

    def close(self) -> None:
        for fig, _ in self._figures.values():
            self.plt.close(fig)
        self._figures.clear()


def _cuff_page(figures: _CuffFigures, pdf: Any, plot: SessionPlot, first: int) -> None:
    cuffs = plot.cuffs[first : first + CUFFS_PER_PAGE]
    fig, axes = figures.page(len(cuffs))
    s = plot.session
    fig.suptitle(f"Session #{s.id}, patient {s.patient_id}, {s.plan_name}: pressure per cuff", fontsize=10)
    for n, (ax, c) in enumerate(zip(axes[:, 0], cuffs, strict=True)):
        for span in plot.spans:
            colour = "#cfe3ff" if span.kind == "set" else "#eeeeee"
            ax.axvspan(span.start, span.end, color=colour, lw=0)
        band = alarm_band(c)
        t, pressure, target = decimate(c.t, c.pressure, c.target)
        top = max([*pressure, *target, 10.0])
        if band is not None:
            bt, lo, hi = decimate(c.t, band[0], band[1])
            ax.fill_between(bt, lo, hi, color="tab:green", alpha=0.25, lw=0, label=alarm_band_text(c, "+/-"))
            top = max([top, *(x for x in hi if x == x)])  # x == x: not NaN (a vented rest)
        ax.plot(t, target, "--", color="tab:green", lw=1, label="target")
        ax.plot(t, pressure, color="tab:blue", lw=1.2, label="pressure (mean of each second)")
        if plot.marks:  # one collection, not a line each: 16 cuffs x many alarms stay quick
            ax.vlines(
                [m.t for m in plot.marks],
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors=[MARK_COLOURS.get(m.kind, "red") for m in plot.marks],
                linewidths=[2 if m.kind == "emergency" else 1 for m in plot.marks],
            )
        fid = fidelity_text(c, plot.fidelity_band, "+/-")
        title = f"{c.cuff_id} {c.label}" + (f", {fid}" if fid else "")
        if band is None:
            title += f"; {alarm_band_text(c)}"
        ax.set_title(title, fontsize=9, loc="left", y=1.0)  # a fixed place: finding one measures every tick
        ax.set_xlim(0, max(plot.duration_s, 1.0))
        ax.set_ylim(0, top * 1.08)
        if n == 0:
            ax.legend(fontsize=6, loc="lower right")
    for m in plot.marks:
        axes[0, 0].annotate(m.text, (m.t, 1.0), xycoords=("data", "axes fraction"), fontsize=6, rotation=90, va="top")
    pdf.savefig(fig)


def _course_page(plt: Any, pdf: Any, course: Progress, heading: str = "") -> None:
    days = [datetime.fromtimestamp(t) for t in course.dates]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(8.27, 11.69), sharex=True)
    title = f"Patient {course.patient_id}: {len(days)} sessions" + (f", {heading}" if heading else "")
    fig.suptitle(title, fontsize=11)
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
