"""End to end, as a new user: ``bfr-console setup`` in a real terminal (tmux, TERM=linux, 80x24)
finds an emulated controller in another process, the cuff is named and test-inflated with the
keyboard, the config is written, and the console then starts on that file."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_e2e_tmux import BIN, REPO, Emulator, Tmux, pytestmark, wait_until

__all__ = ["pytestmark"]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[Emulator, Tmux]]:
    emu = Emulator(2, "180,200", tmp_path / "emulator.stderr")
    tmux = Tmux(tmp_path / "tmux.sock")
    try:
        yield emu, tmux
    finally:
        try:
            stuck = tmux.kill()
        finally:
            emu.stop()
    assert not stuck, f"process(es) {stuck} did not end on SIGTERM"


def shows(text: str) -> object:
    return lambda lines: any(text in line for line in lines)


def test_setup_screen_writes_a_config_the_console_starts_with(bench: tuple[Emulator, Tmux], tmp_path: Path) -> None:
    emu, tmux = bench
    cfg = tmp_path / "station.toml"
    gone = "/dev/ttyUSB-absent"  # short: the whole reason fits on one line at 80 columns
    cmd = f"{BIN / 'bfr-console'} setup --ports {emu.port} {gone} --out {cfg}"
    tmux.start("setup", f"cd {REPO} && env TERM=linux {cmd}; sleep 30")
    tmux.wait("setup", "the scan's result", shows("1 controller(s) answered, 1 port(s) did not"))
    tmux.wait("setup", "why the missing port did not answer", shows("no such port"))
    tmux.wait("setup", "the controller's identity", shows(f"serial {emu.serial}"))

    tmux.keys("setup", "Enter")
    tmux.wait("setup", "the cuff dialog, on the name", shows("> name (one word)"))
    tmux.keys("setup", "C-u")
    tmux.keys("setup", "LT")
    tmux.wait("setup", "the new name typed", lambda ls: any("name (one word)" in x and " LT " in x for x in ls))
    tmux.keys("setup", "Tab")
    tmux.wait("setup", "the cursor on the limb", shows("> limb"))
    tmux.keys("setup", "Tab")
    tmux.wait("setup", "the cursor on the label", shows("> where"))
    tmux.keys("setup", "C-u")
    tmux.keys("setup", "left thigh")
    tmux.wait("setup", "the label typed", lambda ls: any(x.count("left thigh") == 2 for x in ls))
    tmux.keys("setup", "Enter")
    tmux.wait("setup", "the renamed cuff in the list", lambda ls: any(x.startswith(" LT ") for x in ls))

    tmux.keys("setup", "t")
    wait_until(
        "the emulator holding channel 1 at the test pressure, then venting it",
        lambda: "HOLDING" in emu.states(1) and emu.states(1)[-1:] in (["VENTING"], ["VENTED"]),
        timeout=20.0,
        screen=lambda: tmux.screen("setup") + emu.lines[-10:],
    )
    tmux.wait("setup", "the test's result", shows("then deflated"))
    assert emu.states(2) == []  # only the chosen channel moved
    assert any("target=30" in line for line in emu.lines if line.startswith("STATE 1 HOLDING"))

    tmux.keys("setup", "w")
    tmux.wait("setup", "the file dialog", shows("Write the config to"))
    tmux.keys("setup", "Enter")
    tmux.wait("setup", "the file written", shows("Wrote"))
    tmux.keys("setup", "q")
    written = tomllib.loads(cfg.read_text())
    assert written["controllers"] == [{"id": "A", "port": emu.port, "serial": emu.serial, "channels": 2}]
    assert [c["id"] for c in written["cuffs"]] == ["LT", "A2"]

    tmux.start("console", f"cd {REPO} && env TERM=linux {BIN / 'bfr-console'} --config {cfg}; sleep 5")
    tmux.wait("console", "both cuffs vented on the console", lambda ls: sum(x.count("VENTED") for x in ls) >= 2)
    tmux.wait("console", "the named cuff's panel", shows("LT"))
