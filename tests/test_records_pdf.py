"""``report --pdf``: a real session's report and plots, opened and turned into images (pypdfium2)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest

from console.records.plotdata import session_plot
from console.report_runner import run_pdf_report
from tests.test_records_report_session import advance_sync
from tests.therapy_support import Rig, advance, phase, rig, set_lops, start_and_fill, until

__all__ = ["rig"]


async def emergency_in_second_set(rig: Rig) -> int:
    await set_lops(rig, A1=150, A2=130)
    await start_and_fill(rig, ["A1", "A2"], patient="P-0042")
    await until(rig, lambda: (advance_sync(rig), phase(rig, "A1") == "rest")[1], "set 1 done")
    await rig.station.session_command("A1", "skip")
    await until(rig, lambda: phase(rig, "A1") == "set", "set 2 begun")
    await advance(rig, 2.5)
    await rig.station.emergency_deflate()
    await rig.therapy.step_now()
    rig.records.flush()
    return rig.records.sessions()[-1].id


def pages(path: Path) -> tuple[list[str], list[object]]:
    doc = pdfium.PdfDocument(str(path))
    texts = [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    images = [doc[i].render(scale=1).to_pil().convert("RGB") for i in range(len(doc))]
    return texts, images


def has_colour(image: object, rgb: tuple[int, int, int], tol: int = 6) -> bool:
    colours = image.getcolors(maxcolors=1 << 20)  # type: ignore[attr-defined]
    return any(all(abs(c[i] - rgb[i]) <= tol for i in range(3)) for _, c in colours)


async def test_session_pdf_has_the_report_and_each_cuffs_plot(rig: Rig, tmp_path: Path) -> None:
    sid = await emergency_in_second_set(rig)
    plot = session_plot(rig.records, sid)
    assert [s.kind for s in plot.spans][:3] == ["set", "rest", "set"]  # from the phase rows of the audit trail
    assert any(m.kind == "emergency" for m in plot.marks)
    assert [c.cuff_id for c in plot.cuffs] == ["A1", "A2"] and all(len(c.t) > 5 for c in plot.cuffs)

    out = tmp_path / "s.pdf"
    assert run_pdf_report(rig.station.config, session=sid, patient=None, pdf=str(out)) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    texts, images = pages(out)
    assert len(texts) >= 2
    first = texts[0]
    assert f"BFR session report #{sid}" in first and "(emergency)" in first
    assert "LOP 150 mmHg" in first and "LOP 130 mmHg" in first and "target 78 mmHg" in first
    assert "Fidelity, per cuff" in first and "Emergency deflates (1)" in first
    assert "Audit trail of session" in "\n".join(texts)
    plots = texts[-1]
    assert "A1 cuff A1" in plots and "A2 cuff A2" in plots and "mmHg" in plots
    img = images[-1]
    assert img.size[0] > 500  # type: ignore[attr-defined]
    assert has_colour(img, (0xCF, 0xE3, 0xFF)), "sets are shaded"
    assert has_colour(img, (0xEE, 0xEE, 0xEE)), "rests are shaded"
    assert has_colour(img, (0x1F, 0x77, 0xB4), tol=30), "the pressure is drawn"
    assert has_colour(img, (0, 0, 0), tol=10), "the emergency is marked"
    img.save(tmp_path / "plots.png")  # type: ignore[attr-defined]


async def test_course_pdf_and_refusals(rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await emergency_in_second_set(rig)
    cfg = rig.station.config
    out = tmp_path / "course.pdf"
    assert run_pdf_report(cfg, session=None, patient="P-0042", pdf=str(out)) == 0
    texts, _ = pages(out)
    assert "Patient P-0042: 1 sessions" in texts[0] and len(texts) > 1, "the course, then the session's pages"
    for title in ("LOP and prescribed pressure", "Reps completed per set", "Time under occlusion"):
        assert title in texts[0]
    assert run_pdf_report(cfg, session=None, patient="P-9999", pdf=str(out)) != 0
    assert "no patient 'P-9999'" in capsys.readouterr().err
    assert run_pdf_report(cfg, session=1, patient="P-0042", pdf=str(out)) != 0
    assert run_pdf_report(cfg, session=99, patient=None, pdf=str(tmp_path / "x.pdf")) != 0
    assert not (tmp_path / "x.pdf").exists()
