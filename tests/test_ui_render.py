"""Pure rendering helpers: fixed widths, dashes for unknown pressure, gauge band, sparkline, alarm timing."""

from __future__ import annotations

from console.common.api import AlarmSnapshot, Priority
from console.ui import render
from console.ui.alerting import BellScheduler, audible, flash_on
from console.ui.theme import ASCII, UNICODE, resolve_theme


def test_pressure_is_whole_mmhg_three_wide_and_dashes_when_unknown() -> None:
    assert render.fmt_pressure(182.44) == "182"
    assert render.fmt_pressure(182.6) == "183"
    assert render.fmt_pressure(5.0) == "  5"
    assert render.fmt_pressure(-0.4) == "  0"
    assert render.fmt_pressure(None) == "---"
    assert render.fmt_pressure(float("nan")) == "---"
    assert render.fmt_pressure(5000.0) == "999" and render.fmt_pressure(-500.0) == "-99"


def test_big_digits_have_fixed_width_per_string_length() -> None:
    for font in ("block", "seg7"):
        a, b = render.big_lines("182", font), render.big_lines("  0", font)
        assert len({len(r) for r in a + b}) == 1
        assert render.big_lines("---", font) != render.big_lines("  0", font)
    assert render.big_lines("8", "seg7") == (" _ ", "|_|", "|_|")


def test_gauge_marks_band_and_target_and_fills_to_pressure() -> None:
    g = render.gauge(180.0, 184.0, 15.0, 40, ASCII).plain
    assert len(g) == 40
    assert g.count("|") == 2 and g.count("!") == 1
    assert g.index("|") < g.index("!") < g.rindex("|")
    assert g.startswith("#" * 10)
    empty = render.gauge(0.0, 0.0, 15.0, 20, ASCII).plain
    assert set(empty) == {"."}
    assert set(render.gauge(None, 184.0, 15.0, 20, ASCII).plain) == {"-"}


def test_sparkline_scales_and_keeps_width() -> None:
    s = render.sparkline([0.0] * 50 + [100.0] * 50, 10, UNICODE, 100.0)
    assert len(s) == 10 and s[0] == "▁" and s[-1] == "█"
    assert render.sparkline([], 8, ASCII, 100.0) == " " * 8


def test_theme_auto_follows_term() -> None:
    assert resolve_theme("auto", "linux").textual_theme == "ansi-dark"
    assert resolve_theme("auto", "linux").glyphs is ASCII
    assert resolve_theme("auto", "xterm-256color").glyphs is UNICODE
    assert resolve_theme("ansi", "xterm").ansi


def test_flash_rates_and_acknowledge_stops_flashing() -> None:
    assert flash_on(Priority.HIGH, 0.1) and not flash_on(Priority.HIGH, 0.3) and flash_on(Priority.HIGH, 0.6)
    assert flash_on(Priority.MEDIUM, 0.5) and not flash_on(Priority.MEDIUM, 1.0)
    assert not flash_on(Priority.LOW, 0.1) and not flash_on(Priority.LOW, 0.3)
    assert not flash_on(Priority.HIGH, 0.1, acknowledged=True)
    assert not flash_on(None, 0.1)


def _alarm(**kw: object) -> AlarmSnapshot:
    values: dict[str, object] = dict(
        id=1,
        priority=Priority.HIGH,
        cause="LEAK",
        message="m",
        cuff="A1",
        controller=None,
        raised_at=0.0,
        active=True,
        acknowledged=False,
    )
    values.update(kw)
    return AlarmSnapshot(**values)  # type: ignore[arg-type]


def test_bell_bursts_and_silence() -> None:
    bells = BellScheduler()
    rung = [t for t in [i * 0.05 for i in range(200)] if bells.due(Priority.HIGH, t)]
    assert len(rung) == 9  # three bursts of three in 10 s
    assert bells.due(None, 10.0) == 0
    assert audible(_alarm(), 5.0)
    assert not audible(_alarm(acknowledged=True), 5.0)
    assert not audible(_alarm(silenced_until=10.0), 5.0)
    assert audible(_alarm(silenced_until=10.0), 10.5)
    assert not audible(_alarm(priority=Priority.LOW), 5.0)
