"""Issue 18 as a person sees it: the real console in tmux, at 120x40 and on the kiosk's 80x24 TERM=linux.

Panels show exactly their state after moving the selection and after a link loss (no half-old
border, no ``target OP``), the emergency key is named in full with a footer of whole keys, Down
goes to the nearest cuff of a short row, and a session shows the patient's cue (LIFT / LOWER in big
letters beside the pressure, the rest's big countdown and the next set, what a pause means). Reuses the tmux and emulator helpers of
tests/test_e2e_tmux.py.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.ui.render import big_lines
from tests.station_support import LOADED_MACHINE_TIMEOUT_S
from tests.test_e2e_tmux import BIN, REPO, Emulator, Tmux, panel_pressure, pytestmark, wait_until  # noqa: F401
from tests.ui_support import big_cue, big_text_at

EMERGENCY_LINE = "F12 / Ctrl+E: EMERGENCY DEFLATE ALL"


@dataclass(frozen=True)
class Look:
    """A terminal as the clinic has it: its size, TERM and the console's options."""

    size: tuple[int, int]
    term: str
    extra: str
    vertical: str
    """The selected panel's side border; no other border or glyph on screen uses it."""
    corners: str
    """Top-left, top-right, bottom-left, bottom-right of the selected panel."""
    marker: str
    cuffs: int
    """Cuffs in the config: one short row at this width (2 columns at 80, 3 at 120)."""


KIOSK = Look((80, 24), "linux", "--kiosk --theme ansi", "│", "┌┐└┘", ">", 3)
DESK = Look((120, 40), "xterm-256color", "", "║", "╔╗╚╝", "▶", 4)
LOOKS = [pytest.param(KIOSK, id="80x24-linux-kiosk"), pytest.param(DESK, id="120x40")]


@dataclass
class Rig:
    emu: Emulator
    cfg: Path
    tmux: Tmux

    def start(self, look: Look, session: str = "c") -> str:
        cmd = f"cd {REPO} && env -u COLUMNS -u LINES TERM={look.term} {BIN / 'bfr-console'} --config {self.cfg} {look.extra}; sleep 5"
        self.tmux.start(session, cmd, look.size)
        self.tmux.wait(
            session, "every cuff VENTED", lambda lines: sum(ln.count("VENTED") for ln in lines) >= look.cuffs
        )
        return session


def config_text(tmp_path: Path, port: str, cuffs: int) -> str:
    """Loaded-machine link, deflate and watchdog times (as the station tests have them): a late sample
    on a busy machine must not raise an alarm (a flashing border, a paused session) these tests are not about."""
    labels = ["left thigh", "right thigh", "left calf", "right calf"]
    text = f"""
[station]
name = "E2E panels"
data_dir = "{tmp_path / "var"}"
socket = "{tmp_path / "sock" / "bfr.sock"}"

[safety]
link_timeout_s = {LOADED_MACHINE_TIMEOUT_S}
deflate_confirm_s = {LOADED_MACHINE_TIMEOUT_S}

[[controllers]]
id = "rack"
port = "{port}"
channels = 4
watchdog_ms = 3000

[[plans]]
id = "legs-30-15"
name = "Tiny legs 2 x 3"
description = "Two sets of three reps, 2 s a rep, 20 s held rest: the cue, the rest and the next set."
limb = "leg"
pct_lop = 60.0
sets = [3, 3]
cadence_s = 2.0
rest_s = 20.0
rest_mode = "hold"
"""
    for i in range(cuffs):
        text += f"""
[[cuffs]]
id = "L{i + 1}"
controller = "rack"
channel = {i + 1}
limb = "leg"
label = "{labels[i]}"
lop = 180.0
"""
    return text


@pytest.fixture
def rig_for(tmp_path: Path) -> Iterator[object]:
    made: list[Rig] = []

    def make(look: Look) -> Rig:
        emu = Emulator(4, "180,180,180,180", tmp_path / "emulator.stderr")
        cfg = tmp_path / "station.toml"
        cfg.write_text(config_text(tmp_path, emu.port, look.cuffs))
        rig = Rig(emu, cfg, Tmux(tmp_path / "tmux.sock"))
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            try:
                stuck = rig.tmux.kill()
            finally:
                if rig.emu.proc.poll() is None:
                    rig.emu.proc.send_signal(signal.SIGCONT)
                rig.emu.stop()
            assert not stuck, f"console(s) {stuck} did not end on SIGTERM"


# --------------------------------------------------------------------------- reading the screen


def selected_cuff(lines: list[str], look: Look) -> str | None:
    """The cuff whose title carries the selection marker, as a person reads it."""
    for line in lines:
        if m := re.search(rf"{re.escape(look.marker)} (L\d)\b", line):
            return m.group(1)
    return None


def borders_true(lines: list[str], look: Look) -> str | None:
    """None when exactly one panel has the selected border, whole; else what is wrong.

    The selected border's glyphs appear nowhere else: a panel that kept half of its old
    border (issue 18.1) leaves some of them outside the selected box, or misses some in it.
    """
    tl, tr, bl, br = look.corners
    where = {ch: [(r, c) for r, line in enumerate(lines) for c, x in enumerate(line) if x == ch] for ch in look.corners}
    if any(len(v) != 1 for v in where.values()):
        return f"corners of the selected border: {where}"
    (top, left), (top2, right) = where[tl][0], where[tr][0]
    (bottom, left2), (bottom2, right2) = where[bl][0], where[br][0]
    if not (top == top2 and bottom == bottom2 and left == left2 and right == right2 and bottom > top):
        return f"the selected border is not one box: {where}"
    expected = {(r, c) for r in range(top + 1, bottom) for c in (left, right)}
    found = {(r, c) for r, line in enumerate(lines) for c, x in enumerate(line) if x == look.vertical}
    if found != expected:
        return f"side border glyphs outside or missing: extra {sorted(found - expected)}, missing {sorted(expected - found)}"
    if look.marker not in lines[top][left : right + 1]:
        return "the selected box has no selection marker in its title"
    return None


def footer_ok(lines: list[str]) -> str | None:
    """The emergency key named in full above a footer that starts with F1 and cuts no word."""
    if not any(EMERGENCY_LINE in line for line in lines):
        return "no full emergency line"
    footer = lines[-1].rstrip()
    if not footer.startswith("F1 help"):
        return f"footer does not start with F1 help: {footer!r}"
    known = {
        "help",
        "inflate",
        "deflate",
        "session",
        "LOP",
        "Doppler",
        "ack",
        "silence",
        "pause",
        "skip",
        "stop",
        "rep",
    }
    last = footer.split()[-1]
    if last not in known:
        return f"the footer ends in a cut word: {footer!r}"
    return None


def set_panel_ok(lines: list[str]) -> str | None:
    """None when, in a set, L1's panel shows beside the big cue word everything the cue must not
    hide: the state word, the target, the pressure in big digits, and the emergency key in full."""
    title = next((r for r, ln in enumerate(lines) if " L1  left thigh" in ln), None)
    if title is None:
        return "no L1 panel"
    panel = lines[title : title + 9]
    if big_cue(panel) not in ("LIFT", "LOWER"):
        return "no big cue word in L1's panel"
    # The word may be INFLATING for a top-up within the band: either is the state word, shown.
    if not re.search(r"\b(HOLDING|INFLATING)\b", panel[1]) or not re.search(r"target 108 mmHg +60%LOP", panel[1]):
        return f"state word or target missing: {panel[1]!r}"
    pressure = panel_pressure(lines, "L1")
    if pressure is None or abs(pressure - 108) > 15:
        return f"the pressure does not read near 108 mmHg: {pressure}"
    if not any(EMERGENCY_LINE in ln for ln in lines):
        return "no full emergency line"
    return None


def rest_countdown(lines: list[str]) -> str | None:
    """The rest's countdown read off the big digits (``0:14``), beside the word REST."""
    for n in range(20, -1, -1):
        clock = f"0:{n:02d}"
        for r, c, font in big_text_at(lines, clock):
            if lines[r][c + len(big_lines(clock, font)[0]) :].lstrip().startswith("REST"):
                return clock
    return None


def select(rig: Rig, session: str, look: Look, key: str, cuff: str) -> None:
    rig.tmux.keys(session, key)
    rig.tmux.wait(session, f"{cuff} selected after {key}", lambda lines: selected_cuff(lines, look) == cuff)
    rig.tmux.wait(session, f"whole borders after {key}", lambda lines: borders_true(lines, look) is None)


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("look", LOOKS)
def test_selection_moves_leave_whole_borders_a_full_emergency_key_and_nearest_down(look: Look, rig_for) -> None:  # type: ignore[no-untyped-def]
    rig: Rig = rig_for(look)
    s = rig.start(look)
    rig.tmux.wait(s, "L1 selected", lambda lines: selected_cuff(lines, look) == "L1")
    rig.tmux.wait(s, "the emergency key in full over a whole footer", lambda lines: footer_ok(lines) is None)
    last = f"L{look.cuffs}"
    # The keys of the report (2, 4, Up), on this grid: to the second cuff, to the last, up again.
    select(rig, s, look, "2", "L2")
    select(rig, s, look, str(look.cuffs), last)
    select(rig, s, look, "Up", "L1" if look.cuffs == 3 else "L1")
    # Down from a column the short last row lacks: to its nearest cuff, not nowhere.
    select(rig, s, look, "2", "L2")
    select(rig, s, look, "Down", last)
    rig.tmux.wait(s, "the footer whole", lambda lines: footer_ok(lines) is None)


@pytest.mark.parametrize("look", LOOKS)
def test_session_shows_the_cue_the_rest_and_what_a_pause_means(look: Look, rig_for) -> None:  # type: ignore[no-untyped-def]
    rig: Rig = rig_for(look)
    s = rig.start(look)
    tmux = rig.tmux
    tmux.keys(s, "p")
    tmux.wait(s, "the session dialog", lambda lines: any("Session on L1" in ln for ln in lines))
    tmux.wait(s, "the tiny plan first", lambda lines: any("Tiny legs 2 x 3" in ln for ln in lines))
    tmux.keys(s, "P-E2E", "Enter")
    tmux.wait(s, "the dialog closed", lambda lines: not any("Start (Enter)" in ln for ln in lines))
    # The patient's cue: LIFT and LOWER in turn, in big letters read off the screen (ASCII strokes
    # on the kiosk), with the half-periods the plan's cadence gives on the panel's last row.
    # A set lasts 6 s here: one wait for the word and everything it must not hide, on the same screen.
    lines = tmux.wait(
        s,
        "a big LIFT beside the state, target, pressure and emergency key",
        lambda lines: lines if big_cue(lines) == "LIFT" and set_panel_ok(lines) is None else None,
        timeout=30,
    )
    assert any("cadence: lift 1 s, lower 1 s" in ln for ln in lines), "\n".join(lines)  # type: ignore[union-attr]
    tmux.wait(s, "a big LOWER", lambda lines: big_cue(lines) == "LOWER", timeout=10)
    tmux.wait(s, "the footer whole in a session", lambda lines: footer_ok(lines) is None)
    # The rest: the countdown in big digits beside REST, and what comes next.
    tmux.wait(s, "the rest", lambda lines: any(re.search(r"next: set 2/2 in 0:[01]\d", ln) for ln in lines), 30)
    tmux.wait(s, "a big countdown in the rest", lambda lines: rest_countdown(lines) is not None, 10)
    # A pause keeps the cuff up, and says so; v vents it, and that is said too.
    tmux.keys(s, "Space")
    tmux.wait(s, "paused, cuffs up", lambda lines: any("cuffs up, occlusion clock running" in ln for ln in lines))
    assert rig.emu.states(1)[-1:] != ["VENTED"], "a plain pause keeps the cuff up"
    tmux.keys(s, "v")
    tmux.wait(s, "paused vented", lambda lines: any("cuffs vented; resume refills" in ln for ln in lines))
    wait_until("the emulator venting channel 1", lambda: rig.emu.states(1)[-1:] == ["VENTED"], 15)
    assert borders_true(tmux.screen(s), look) is None, borders_true(tmux.screen(s), look)


def test_after_a_link_loss_a_vented_cuff_shows_no_old_target(rig_for) -> None:  # type: ignore[no-untyped-def]
    look = KIOSK
    rig: Rig = rig_for(look)
    s = rig.start(look)
    tmux = rig.tmux
    tmux.keys(s, "i")
    tmux.wait(s, "the inflate dialog", lambda lines: any("Inflate L1 (" in ln for ln in lines))
    tmux.keys(s, "60%", "Enter")
    tmux.wait(s, "the target in % LOP", lambda lines: any("60%LOP" in ln and "target" in ln for ln in lines))
    wait_until("the emulator holding channel 1", lambda: "HOLDING" in rig.emu.states(1), 20)
    rig.emu.proc.send_signal(signal.SIGSTOP)  # the controller goes silent
    tmux.wait(s, "L1 offline", lambda lines: any("OFFLINE" in ln for ln in lines), 30)
    rig.emu.proc.send_signal(signal.SIGCONT)
    tmux.wait(s, "L1 back, not offline", lambda lines: not any("OFFLINE" in ln for ln in lines), 30)

    def first_row(lines: list[str]) -> str:
        title = next(r for r, ln in enumerate(lines) if "L1  left thigh" in ln)
        return lines[title + 1][:40]

    tmux.wait(s, "L1 showing no target", lambda lines: "target --" in first_row(lines), 30)
    row = first_row(tmux.screen(s))
    assert re.search(r"target --\s*[|│]$", row), f"a stale end of an old target on {row!r}"
    # Flashing panels (an alarm not yet acknowledged) borrow a solid border; acknowledged, every
    # panel is back to its own border, whole.
    tmux.keys(s, "A")
    tmux.wait(s, "whole borders once acknowledged", lambda lines: borders_true(lines, look) is None)
