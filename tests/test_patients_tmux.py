"""The patients screen as a person uses it: the real console at 80x24 on TERM=linux (tmux), on records
made by a real session against the emulator just before."""

from __future__ import annotations

from pathlib import Path

from tests.station_support import cuff
from tests.test_e2e_tmux import Emulator, Tmux, console_cmd, rig
from tests.therapy_support import advance, manual_rig, set_lops, start_and_fill, until

__all__ = ["rig"]


async def make_records(tmp_path: Path) -> None:
    """A session of P-0042 on A1 with a Doppler LOP, in ``tmp_path/var`` (the console's data_dir)."""
    r = await manual_rig(tmp_path)
    try:
        await set_lops(r, A1=150)
        await start_and_fill(r, ["A1"], patient="P-0042")
        await advance(r, 5)
        await r.station.session_command("A1", "stop")
        await until(r, lambda: cuff(r.station, "A1").target == 0, "A1 vented")
        r.records.flush()
    finally:
        await r.close()


async def test_patients_screen_at_80x24_on_the_linux_console(rig: tuple[Emulator, Path, Tmux], tmp_path: Path) -> None:
    _, cfg, tmux = rig
    await make_records(tmp_path)
    tmux.start("pat", console_cmd(cfg, "--kiosk"), (80, 24))
    tmux.wait("pat", "the dashboard", lambda lines: any("E2E bay" in x for x in lines))
    tmux.keys("pat", "P")
    tmux.wait("pat", "the patients screen", lambda lines: any("Patients:" in x for x in lines))
    tmux.keys("pat", "0042")
    screen = tmux.wait(
        "pat",
        "P-0042's history",
        lambda lines: (
            lines if any("LOP history of P-0042 (1)" in x for x in lines) and any("tiny" in x for x in lines) else None
        ),
    )
    assert isinstance(screen, list) and len(screen) == 24 and all(len(x) <= 80 for x in screen)
    assert any("seated" in x and "doppler" in x and "150" in x for x in screen), screen
    assert any("tiny" in x and "stopped" in x for x in screen), screen
    box = [x for x in screen if any(0x2500 <= ord(ch) <= 0x257F for ch in x)]
    assert not box, f"ASCII borders on TERM=linux, not box drawing: {box}"
    # The offer for L1: measured on another cuff site (A1's "cuff A1"), so flagged and asked twice.
    tmux.wait("pat", "the flagged offer", lambda lines: any("CHECK L1: LOP 150 mmHg" in x for x in lines))
    # Down leaves the id field for the list; Tab Tab to the sessions; Enter plots the session.
    tmux.keys("pat", "Down", "Tab", "Tab", "Enter")
    plot = tmux.wait(
        "pat",
        "the session's plot",
        lambda lines: (
            lines if any("pressure per cuff" in x for x in lines) and sum(x.count("*") for x in lines) > 20 else None
        ),
    )
    assert isinstance(plot, list) and any("A1 cuff A1, fidelity" in x for x in plot), plot
    # The band drawn is the cuff's alarm band (the [safety] tolerance); fidelity is the other, +-10 %.
    note = " ".join(x.strip() for x in plot)
    assert "alarm band +-15 mmHg" in note and "fidelity = time within +-10 %" in note, plot
    assert not [x for x in plot if any(0x2800 <= ord(ch) <= 0x28FF for ch in x)], "no braille on TERM=linux"
    tmux.keys("pat", "F10")
    tmux.wait("pat", "back on the patients screen", lambda lines: any("Patients:" in x for x in lines))
    tmux.keys("pat", "p")
    tmux.wait("pat", "the second ask", lambda lines: any("p again uses it" in x for x in lines))
    tmux.keys("pat", "p")
    tmux.wait(
        "pat",
        "the session dialog for P-0042 with its stored LOP",
        lambda lines: (
            any("Session on L1" in x for x in lines)
            and any("P-0042" in x for x in lines)
            and any("LOP 150 mmHg" in x for x in lines)
        ),
    )
    tmux.keys("pat", "F10")
    tmux.wait("pat", "the dashboard again", lambda lines: not any("Session on L1" in x for x in lines))
