"""Issue 18 items 4-7 as a person sees them: the real ``bfr-console`` in tmux, at 120x40 and on the
kiosk's 80x24 ``TERM=linux``, against ``python -m drivers.emulator`` in another process.

Read off the screen: a refusal that stays in the dialog, an alarm in a clinician's words with
its technical cause one key away, ``a`` on an offline cuff acknowledging its controller's alarm,
the quit prompt that says the cuffs vent (and asks about a cuff whose controller is out of sight),
the line left on the terminal, the attached console's header and its prompt, and the hint to
attach when a station already serves the config.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_e2e_tmux import BIN, REPO, Emulator, Tmux, inflate, pytestmark, running_bay, wait_until

__all__ = ["pytestmark"]  # skipped, like the other tmux tests, where tmux is not installed


SIZES = [
    pytest.param((120, 40), (), id="120x40"),
    pytest.param((80, 24), ("--kiosk", "--theme", "ansi"), id="80x24-kiosk"),
]


@pytest.fixture
def bay(tmp_path: Path) -> Iterator[tuple[Emulator, Path, Tmux]]:
    with running_bay(tmp_path, "Words bay") as rig:
        yield rig


def cmd(cfg: Path, *extra: str) -> str:
    """The console in TERM=linux; the pane stays a minute after it ends, so its last line can be read."""
    # COLUMNS/LINES from the test's environment would override the pane's size (shutil.get_terminal_size).
    return (
        f"cd {REPO} && env -u COLUMNS -u LINES TERM=linux {BIN / 'bfr-console'} --config {cfg} {' '.join(extra)};"
        " sleep 60"
    )


def text(lines: list[str]) -> str:
    return "\n".join(lines)


def joined(lines: list[str]) -> str:
    """The screen as one line of words (a sentence wrapped over rows reads as it would to a person)."""
    return " ".join(" ".join(line.replace("│", " ").replace("|", " ").split()) for line in lines)


@pytest.mark.parametrize(("size", "extra"), SIZES)
def test_refusal_alarm_words_ack_by_cuff_and_the_quit_that_says_the_cuffs_vent(
    bay: tuple[Emulator, Path, Tmux], size: tuple[int, int], extra: tuple[str, ...]
) -> None:
    emu, cfg, tmux = bay
    width = size[0]
    tmux.start("c", cmd(cfg, *extra), size)
    tmux.wait("c", "both cuffs VENTED", lambda lines: text(lines).count("VENTED") >= 2)

    # Item 5: the station refuses 170 mmHg (over 90 % of L1's LOP 180): the dialog stays, with the value.
    tmux.keys("c", "1", "i")
    tmux.wait("c", "the inflate dialog", lambda lines: "Inflate L1 (" in text(lines))
    tmux.keys("c", "170", "Enter")
    tmux.wait("c", "the refusal in the dialog", lambda lines: "at most 90 % LOP" in joined(lines))
    screen = text(tmux.screen("c"))
    assert "Inflate (Enter)" in screen and "170" in screen, "the dialog and the typed value stay"
    tmux.keys("c", "C-u")
    tmux.wait("c", "the field emptied", lambda lines: "180  or  80%" in text(lines))
    tmux.keys("c", "Enter")  # an empty field: the dialog says what to type, and stays
    tmux.wait("c", "the hint", lambda lines: "Type a number" in text(lines))
    tmux.keys("c", "F10")
    inflate(tmux, "c", "1", "L1", "100")
    wait_until("the emulator holding channel 1", lambda: "HOLDING" in emu.states(1), screen=lambda: emu.lines[-20:])

    # Item 4: the controller vanishes. The banner says what happened and what to do, never cut mid-word.
    emu.stop()
    tmux.wait("c", "the alarm banner", lambda lines: "lost contact; cuffs vent." in text(lines))
    lines = tmux.screen("c")
    banner = next(line for line in lines if "lost contact" in line)
    assert "HIGH [NEW] Cuffs L1, L2: lost contact; cuffs vent." in banner
    assert "readiness" not in text(lines) and "port vanished" not in text(lines), "no engineer's text on the dashboard"
    assert len(banner.rstrip()) <= width and banner.rstrip().endswith(("cable.", "..."))

    # Item 6: `a` on the offline cuff acknowledges its controller's alarm.
    tmux.keys("c", "a")
    tmux.wait("c", "the alarm acknowledged", lambda lines: "HIGH [ACK] Cuffs L1, L2" in text(lines))
    assert "Nothing to acknowledge" not in text(tmux.screen("c")) and "No alarm on" not in text(tmux.screen("c"))

    # Item 4: the list wraps the sentence, and Enter shows the technical cause.
    tmux.keys("c", "l")
    tmux.wait("c", "the alarm list", lambda lines: "what happened, what to do" in text(lines))
    # Wrapped in its column at 80, on one row at 120: every word is there, none cut.
    tmux.wait("c", "the sentence's start", lambda lines: "lost contact; cuffs vent. Check" in text(lines))
    tmux.wait("c", "the sentence's end", lambda lines: "patient and cable." in text(lines))
    tmux.keys("c", "Enter")
    tmux.wait("c", "the technical cause", lambda lines: "Technical cause: LINK_LOST: Controller rack" in joined(lines))
    tmux.keys("c", "l")
    tmux.wait("c", "the dashboard", lambda lines: "what happened" not in text(lines))

    # Item 7: quitting asks, because L1 was up when its controller went out of sight; it says the cuffs vent.
    tmux.keys("c", "q")
    tmux.wait("c", "the quit prompt", lambda lines: "Quit the console? Every cuff vents." in joined(lines))
    prompt = joined(tmux.screen("c"))
    assert "Cuff L1: controller offline, pressure unknown" in prompt and "Check L1 by" in prompt
    tmux.keys("c", "y")
    tmux.wait("c", "the last line", lambda lines: "BFR console closed;" in text(lines))
    assert "L1 out of contact" in joined(tmux.screen("c"))


@pytest.mark.parametrize(("size", "extra"), SIZES)
def test_attached_console_says_remote_and_leaves_the_cuffs_and_a_second_station_is_told_to_attach(
    bay: tuple[Emulator, Path, Tmux], size: tuple[int, int], extra: tuple[str, ...]
) -> None:
    emu, cfg, tmux = bay
    tmux.start("station", cmd(cfg), (120, 40))
    tmux.wait("station", "the station up", lambda lines: text(lines).count("VENTED") >= 2)

    # A second `bfr-console` on the same config: it starts nothing and gives the command that attaches.
    tmux.start("second", cmd(cfg), size)
    tmux.wait("second", "the hint", lambda lines: "already running" in joined(lines))
    unwrapped = tmux._run("capture-pane", "-p", "-J", "-t", "second")  # -J: the terminal's wrapped rows joined
    assert f"bin/console attach --config {cfg.resolve()}" in unwrapped

    inflate(tmux, "station", "1", "L1", "100")
    wait_until("the emulator holding channel 1", lambda: "HOLDING" in emu.states(1), screen=lambda: emu.lines[-20:])

    tmux.start("remote", cmd(cfg, "attach", *extra), size)
    tmux.wait("remote", "the attached console", lambda lines: "HOLDING" in text(lines))
    tmux.wait("remote", "the header", lambda lines: "Station: Words bay (remote, operator)" in lines[0])

    tmux.keys("remote", "q")
    if extra:  # the kiosk asks, and says the cuffs stay as they are
        tmux.wait("remote", "the close prompt", lambda lines: "Close this remote console?" in joined(lines))
        prompt = joined(tmux.screen("remote"))
        assert "every cuff stays as it is (cuff L1 inflated)" in prompt and "vents" not in prompt
        tmux.keys("remote", "y")
    tmux.wait("remote", "the last line", lambda lines: "BFR remote console closed" in text(lines))
    assert "carries on (1 inflated cuff left as it is)" in joined(tmux.screen("remote"))
    assert emu.states(1)[-1] == "HOLDING", "closing the attached console left the cuff as it was"
    assert "HOLDING" in text(tmux.screen("station"))
