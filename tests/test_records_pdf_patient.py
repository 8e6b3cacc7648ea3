"""``report --patient ID --from DAY --to DAY --pdf FILE``: a patient's course and every session of the
range in one PDF, made from real sessions on the emulator (manual clock, days apart on the wall clock),
opened and its pages turned into images (pypdfium2) as the per-session PDF test does. The plots' band is
the cuff's alarm band (the ``[safety]`` tolerance), fidelity the +-10 % figure, each named as such."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from console.cli import main as cli_main
from console.common.plots import alarm_band
from console.records.plotdata import session_plot
from console.report_runner import run_pdf_report
from tests.test_records_pdf import has_colour, pages
from tests.therapy_support import (
    TERMINAL,
    Rig,
    advance,
    cuff,
    phase,
    rig,
    set_lops,
    start_and_fill,
    until,
    vented_at_emulator,
)

__all__ = ["rig"]

DAY_S = 86400.0


async def one_session(rig: Rig) -> int:
    """A short session on A1 for P-0042: filled, one beat of its first set, stopped."""
    await start_and_fill(rig, ["A1"], patient="P-0042")
    await advance(rig, 2.5)
    await rig.station.session_command("A1", "stop")
    await until(rig, lambda: phase(rig, "A1") in TERMINAL or phase(rig, "A1") is None, "the session ended")
    await vented_at_emulator(rig, "A", 1)
    assert rig.clock is not None
    clock = rig.clock

    def vented() -> bool:
        clock.advance(0.25)  # fresh samples on the station's clock
        a1 = cuff(rig.station, "A1")
        return a1.state == "VENTED" and a1.pressure is not None and a1.pressure < 10

    await until(rig, vented, "A1 vented on the station")
    rig.records.flush()
    return rig.records.sessions()[-1].id


async def three_sessions_days_apart(rig: Rig) -> tuple[list[int], list[date]]:
    """Sessions on day 0, day 2 and day 5 of the wall clock (the timers' clock does not jump)."""
    assert rig.clock is not None
    await set_lops(rig, A1=150)
    ids = []
    for gap in (0, 2, 3):
        rig.clock.jump_wall(gap * DAY_S)
        ids.append(await one_session(rig))
    days = [date.fromtimestamp(rig.records.session(i).started_at) for i in ids]  # type: ignore[union-attr]
    assert len(set(days)) == 3
    return ids, days


async def test_a_patients_range_is_its_course_then_each_sessions_own_pages(rig: Rig, tmp_path: Path) -> None:
    ids, days = await three_sessions_days_apart(rig)
    cfg = rig.station.config
    singles = {}
    for sid in ids:
        out = tmp_path / f"s{sid}.pdf"
        assert run_pdf_report(cfg, session=sid, patient=None, pdf=str(out)) == 0
        singles[sid] = pages(out)[0]

    out = tmp_path / "range.pdf"
    code = run_pdf_report(cfg, session=None, patient="P-0042", pdf=str(out), first_day=days[1], last_day=days[2])
    assert code == 0 and out.stat().st_mode & 0o777 == 0o600
    texts, images = pages(out)
    # The course first (the range's two sessions), then sessions 2 and 3, each exactly as its own PDF.
    assert f"Patient P-0042: 2 sessions, from {days[1]} to {days[2]}" in texts[0]
    for title in ("LOP and prescribed pressure", "Reps completed per set", "Time under occlusion"):
        assert title in texts[0]
    assert len(texts) == 1 + len(singles[ids[1]]) + len(singles[ids[2]])
    assert texts[1:] == singles[ids[1]] + singles[ids[2]]
    assert not any(f"BFR session report #{ids[0]}" in t for t in texts)
    assert images[0].getbbox() is not None  # type: ignore[attr-defined]

    # Without a range: all three.
    whole = tmp_path / "whole.pdf"
    assert run_pdf_report(cfg, session=None, patient="P-0042", pdf=str(whole)) == 0
    texts, _ = pages(whole)
    assert "Patient P-0042: 3 sessions" in texts[0]
    assert all(any(f"BFR session report #{sid}" in t for t in texts) for sid in ids)


async def test_the_plot_band_is_the_alarm_tolerance_and_fidelity_the_swain_figure(rig: Rig, tmp_path: Path) -> None:
    ids, _ = await three_sessions_days_apart(rig)
    tolerance = rig.station.config.safety.tolerance_mmhg
    plot = session_plot(rig.records, ids[0])
    (c,) = plot.cuffs
    assert c.tolerance == tolerance and rig.records.session_cuffs(ids[0])[0].tolerance_mmhg == tolerance
    band = alarm_band(c)
    assert band is not None
    held = [(t, lo, hi) for t, lo, hi in zip(c.target, *band, strict=True) if t > 0]
    assert held and all(lo == t - tolerance and hi == t + tolerance for t, lo, hi in held)
    assert abs(held[0][0] * 0.1 - tolerance) > 1, "the test tells the two bands apart"
    out = tmp_path / "s.pdf"
    assert run_pdf_report(rig.station.config, session=ids[0], patient=None, pdf=str(out)) == 0
    texts, images = pages(out)
    plots = texts[-1]
    assert f"alarm band: target +/-{tolerance:g} mmHg" in plots, plots
    assert "fidelity" in plots and "(time within +/-10 % of target)" in plots
    assert "the share of held time within +/-10 % of target" in plots.replace("\r\n", " ").replace("\n", " ")
    assert f"alarm band target +-{tolerance:g} mmHg" in texts[0], "the report's text says it per cuff too"
    # The band drawn: tab:green at a quarter over the sets' blue shade.
    assert has_colour(images[-1], (166, 210, 202), tol=8), "the alarm band is drawn over the set"


async def test_refusals_exit_non_zero_and_write_nothing(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, days = await three_sessions_days_apart(rig)
    cfg = rig.station.config
    out = tmp_path / "r.pdf"
    after = days[2] + timedelta(days=1)
    cases = [
        (dict(patient="P-9999"), "no patient 'P-9999'"),
        (dict(patient="P-0042", first_day=after, last_day=after + timedelta(days=9)), "no sessions of patient"),
        (dict(patient="P-0042", first_day=days[2], last_day=days[0]), "empty range: --from"),
        (dict(patient=None, first_day=days[0]), "add --patient ID"),
    ]
    for kw, said in cases:
        session = ids[0] if kw.get("patient") is None else None
        assert run_pdf_report(cfg, session=session, pdf=str(out), **kw) != 0, kw  # type: ignore[arg-type]
        err = capsys.readouterr().err
        assert said in err, (kw, err)
        assert not out.exists() and not list(tmp_path.glob(".r.pdf.*")), kw
    # What the range missed is said, so it is easy to fix.
    assert run_pdf_report(cfg, session=None, patient="P-0042", pdf=str(out), first_day=after) != 0
    assert f"their 3 sessions run from {days[0]} to {days[2]}" in capsys.readouterr().err
    # A day that is not one: the command line refuses it before reading anything.
    with pytest.raises(SystemExit) as info:
        cli_main(
            ["report", "--config", str(cfg.path), "--patient", "P-0042", "--from", "2026-13-01", "--pdf", str(out)]
        )
    assert info.value.code != 0 and "not a day: '2026-13-01'" in capsys.readouterr().err
    assert not out.exists()


def test_decimation_keeps_every_spike_and_a_bounded_number_of_points() -> None:
    from console.records.pdf import PLOT_POINTS, decimate

    n = 3600  # an hour of per-second rows
    t = tuple(float(i) for i in range(n))
    pressure = [150.0 + (i % 7) * 0.1 for i in range(n)]
    pressure[1234], pressure[2345] = 290.0, 3.0  # a spike and a drop, one second each
    target = [150.0] * n
    dt, dp, dtarget = decimate(t, pressure, target)
    assert len(dt) <= PLOT_POINTS and len(dt) == len(dp) == len(dtarget)
    assert 290.0 in dp and 3.0 in dp and dt == sorted(dt)
    assert dt[dp.index(290.0)] == 1234.0, "each kept point keeps its own time"
    short = decimate(t[:100], pressure[:100])
    assert short == [list(t[:100]), pressure[:100]], "a short session is drawn whole"
