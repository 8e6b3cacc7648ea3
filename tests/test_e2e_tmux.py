"""End to end, as a person would use it: the real ``bfr-console`` in a real terminal (tmux),
on the Pi's text console settings (``TERM=linux``, 80x24), talking over a real pseudo-terminal to
``python -m drivers.emulator`` in another process. The test reads the pressure off the screen,
presses keys, and believes only what the emulator reports about its valves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.ui.render import FONTS, big_lines, fmt_pressure

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


# --------------------------------------------------------------------------- helpers


class Emulator:
    """``python -m drivers.emulator`` as a child process, its report lines collected as they come."""

    def __init__(self, channels: int, lops: str, stderr: Path) -> None:
        # stderr goes to a file: a pipe nobody reads would block the emulator once it filled.
        self._stderr = stderr.open("w")
        self.serial = f"T{os.getpid()}-{id(self) % 10**6}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "drivers.emulator", "--channels", str(channels), "--lop", lops, "--seed", "7"),
                # Its own name and serial: a /dev/pts number freed when it stops is soon another test's
                # emulator, with the default serial too, and a console would reconnect to that one.
                *("--link", str(stderr.with_suffix(".port")), "--serial", self.serial),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        assert first.startswith("PORT "), f"emulator said {first!r}"
        self.port = first.split(" ", 1)[1]
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def states(self, channel: int) -> list[str]:
        """Every state the emulator reported for a channel, in order."""
        out = []
        for line in list(self.lines):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "STATE" and parts[1] == str(channel):
                out.append(parts[2])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()


class Tmux:
    """A private tmux server (its own socket, in the test's tmp dir: nothing shared, nothing left
    in /tmp/tmux-UID), one session per window we need."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=False).stdout

    def start(self, session: str, command: str, size: tuple[int, int] = (80, 24)) -> None:
        subprocess.run(
            [
                "tmux",
                "-S",
                self.socket,
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                command,
            ],
            check=True,
        )

    def keys(self, session: str, *keys: str) -> None:
        self._run("send-keys", "-t", session, *keys)

    def screen(self, session: str) -> list[str]:
        return self._run("capture-pane", "-p", "-t", session).splitlines()

    def alive(self, session: str) -> bool:
        return (
            subprocess.run(["tmux", "-S", self.socket, "has-session", "-t", session], capture_output=True).returncode
            == 0
        )

    def wait(self, session: str, what: str, check: Callable[[list[str]], object], timeout: float = 20.0) -> object:
        """Wait until ``check(screen)`` holds; on timeout the failure shows the screen."""
        return wait_until(what, lambda: check(self.screen(session)), timeout, screen=lambda: self.screen(session))

    def consoles(self) -> list[int]:
        """The processes running in the panes (the console under each pane's shell)."""
        shells = {int(p) for p in self._run("list-panes", "-a", "-F", "#{pane_pid}").split()}
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # "pid (comm) state ppid ...": the comm may hold spaces, so split after its ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) in shells:
                    kids.append(int(stat.parent.name))
        return kids

    def kill(self) -> list[int]:
        """Stop the consoles as systemd would (SIGTERM, terminal still there), then the server.
        Returns the consoles that did not end on SIGTERM (they are killed, never leaked)."""
        pids = self.consoles()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        stuck = [pid for pid in pids if not _ended(pid, 20.0)]
        self._run("kill-server")
        for pid in stuck:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return stuck


def _ended(pid: int, timeout: float) -> bool:
    """Whether a process (not our child: it runs under tmux) is gone within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def wait_until(
    what: str, check: Callable[[], object], timeout: float = 20.0, screen: Callable[[], list[str]] | None = None
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    shown = "\n".join(screen()) if screen is not None else ""
    raise AssertionError(f"timed out waiting for: {what}\n{shown}")


def _candidates() -> list[tuple[float, str]]:
    return [(float(v), fmt_pressure(v)) for v in range(-5, 320)]


_CANDIDATES = _candidates()


def read_pressures(lines: list[str]) -> list[tuple[int, int, float]]:
    """Every big-digit pressure on the screen as (row, column, mmHg), decoded from its glyphs."""
    found: list[tuple[int, int, float]] = []
    for font in FONTS:
        for value, text in _CANDIDATES:
            top, mid, bot = big_lines(text.strip(), font)
            for r in range(len(lines) - 2):
                start = 0
                while (c := lines[r].find(top, start)) >= 0:
                    start = c + 1
                    if lines[r + 1][c : c + len(mid)] == mid and lines[r + 2][c : c + len(bot)] == bot:
                        found.append((r, c, value))
    # A glyph run can also match a shorter number inside it: keep the widest match at each place.
    best: dict[tuple[int, int], float] = {}
    for r, c, v in found:
        key = (r, c)
        if key not in best or len(fmt_pressure(v).strip()) > len(fmt_pressure(best[key]).strip()):
            best[key] = v
    return sorted((r, c, v) for (r, c), v in best.items())


def panel_pressure(lines: list[str], cuff: str) -> float | None:
    """The pressure shown in the panel whose title names ``cuff`` (the nearest big number below and right of it)."""
    title = next(((r, line.find(f" {cuff} ")) for r, line in enumerate(lines) if f" {cuff} " in line), None)
    if title is None:
        return None
    tr, tc = title
    width = 40
    for r, c, v in read_pressures(lines):
        if tr < r <= tr + 5 and tc - 6 <= c <= tc + width:
            return v
    return None


def two_leg_bay(tmp_path: Path, name: str) -> tuple[Emulator, Path, Tmux]:
    """An emulator with two leg channels (LOPs 180 and 200), a station config for it named ``name``,
    and a private tmux server: the rig of the tmux tests that need one controller."""
    emu = Emulator(2, "180,200", tmp_path / "emulator.stderr")
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f"""
[station]
name = "{name}"
data_dir = "{tmp_path / "var"}"
socket = "{tmp_path / "sock" / "bfr.sock"}"

# Loaded-machine link, deflate and watchdog times (as the station tests have them): one stall of a
# busy CI machine must not vent a cuff or raise an alarm these tests are not about.
[safety]
link_timeout_s = 5.0
deflate_confirm_s = 5.0

[[controllers]]
id = "rack"
port = "{emu.port}"
channels = 2
watchdog_ms = 3000

[[cuffs]]
id = "L1"
controller = "rack"
channel = 1
limb = "leg"
label = "left thigh"
lop = 180.0

[[cuffs]]
id = "L2"
controller = "rack"
channel = 2
limb = "leg"
label = "right thigh"
lop = 200.0
"""
    )
    return emu, cfg, Tmux(tmp_path / "tmux.sock")


@contextlib.contextmanager
def running_bay(tmp_path: Path, name: str) -> Iterator[tuple[Emulator, Path, Tmux]]:
    """:func:`two_leg_bay`, torn down after: every console in its tmux must end on SIGTERM."""
    emu, cfg, tmux = two_leg_bay(tmp_path, name)
    try:
        yield emu, cfg, tmux
    finally:
        try:
            stuck = tmux.kill()
        finally:
            emu.stop()
    assert not stuck, f"console(s) {stuck} did not end on SIGTERM"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Emulator, Path, Tmux]]:
    with running_bay(tmp_path, "E2E bay") as bay:
        yield bay


def console_cmd(cfg: Path, *extra: str) -> str:
    return f"cd {REPO} && env -u COLUMNS -u LINES TERM=linux {BIN / 'bfr-console'} --config {cfg} {' '.join(extra)}; sleep 5"


def dialog_open(lines: list[str]) -> bool:
    return any("Inflate (Enter)" in line for line in lines)


def inflate(tmux: Tmux, session: str, cuff_key: str, cuff_id: str, target: str) -> None:
    """As a person does it: select, open the dialog, type, Enter, and see the dialog close
    and the panel take the target before the next key (keys typed while the dialog is still
    up would land in its field)."""
    tmux.wait(session, "no dialog open", lambda lines: not dialog_open(lines))
    tmux.keys(session, cuff_key, "i")  # one key after the other: the selection is handled first
    tmux.wait(
        session,
        f"the inflate dialog for {cuff_id}",
        lambda lines: any(f"Inflate {cuff_id} (" in line for line in lines),
    )
    tmux.keys(session, target, "Enter")
    tmux.wait(session, "the inflate dialog to close", lambda lines: not dialog_open(lines))
    tmux.wait(
        session,
        f"{cuff_id}'s panel showing target {target}",
        lambda lines: any(f"target {target} mmHg" in line for line in lines),
    )


# --------------------------------------------------------------------------- the tests


def test_console_reads_pressure_on_screen_and_f12_vents_every_channel(rig: tuple[Emulator, Path, Tmux]) -> None:
    emu, cfg, tmux = rig
    tmux.start("kiosk", console_cmd(cfg, "--kiosk"))
    tmux.wait("kiosk", "both cuffs VENTED on screen", lambda lines: sum(line.count("VENTED") for line in lines) >= 2)
    # Vented: the screen shows a number near zero, read off the big digits.
    # (wrapped in a list: 0.0 is a reading, not a "not yet")
    shown = tmux.wait(
        "kiosk",
        "a pressure on L1's panel",
        lambda lines: [p] if (p := panel_pressure(lines, "L1")) is not None else None,
    )
    assert abs(shown[0]) < 5  # type: ignore[index]

    inflate(tmux, "kiosk", "1", "L1", "120")
    inflate(tmux, "kiosk", "2", "L2", "100")
    wait_until(
        "the emulator holding both channels",
        lambda: "HOLDING" in emu.states(1) and "HOLDING" in emu.states(2),
        screen=lambda: tmux.screen("kiosk") + emu.lines[-20:],
    )

    def reads_target() -> bool:
        p1, p2 = panel_pressure(tmux.screen("kiosk"), "L1"), panel_pressure(tmux.screen("kiosk"), "L2")
        return p1 is not None and p2 is not None and abs(p1 - 120) < 6 and abs(p2 - 100) < 6

    wait_until("the screen to read 120 and 100 mmHg", reads_target, screen=lambda: tmux.screen("kiosk"))
    # Within 6 mmHg of the target a cuff may still be INFLATING its last mmHg: wait for the word.
    tmux.wait("kiosk", "both cuffs HOLDING on screen", lambda lines: sum(line.count("HOLDING") for line in lines) >= 2)

    tmux.keys("kiosk", "F12")
    wait_until(
        "the emulator reporting every channel vented",
        lambda: emu.states(1)[-1:] == ["VENTED"] and emu.states(2)[-1:] == ["VENTED"],
        15,
    )
    tmux.wait(
        "kiosk",
        "the confirmation on screen",
        lambda lines: any("confirmed" in line and "rack" in line for line in lines),
    )

    # Kiosk: a stray q does not quit without a confirmation; "n" keeps the console running.
    tmux.keys("kiosk", "q")
    tmux.wait("kiosk", "the quit confirmation", lambda lines: any("Quit the console" in line for line in lines))
    tmux.keys("kiosk", "n")
    tmux.wait(
        "kiosk", "the quit confirmation to close", lambda lines: not any("Quit the console" in line for line in lines)
    )
    # Still running: it still answers a key (a quitting console would not open a dialog).
    tmux.keys("kiosk", "1", "i")
    tmux.wait("kiosk", "the inflate dialog after staying", lambda lines: any("Inflate L1 (" in line for line in lines))
    tmux.keys("kiosk", "Escape")
    tmux.wait("kiosk", "the dialog to close", lambda lines: not dialog_open(lines))


def test_emergency_key_in_an_attached_console_vents_the_station(rig: tuple[Emulator, Path, Tmux]) -> None:
    emu, cfg, tmux = rig
    tmux.start("station", console_cmd(cfg))
    tmux.wait("station", "the station console up", lambda lines: sum(line.count("VENTED") for line in lines) >= 2)
    tmux.start("remote", console_cmd(cfg, "attach"))
    tmux.wait("remote", "the attached console up", lambda lines: sum(line.count("VENTED") for line in lines) >= 2)

    inflate(tmux, "station", "1", "L1", "110")
    wait_until("the emulator holding channel 1", lambda: "HOLDING" in emu.states(1), screen=lambda: emu.lines[-20:])
    tmux.wait("remote", "the attached console showing HOLDING", lambda lines: any("HOLDING" in line for line in lines))

    tmux.keys("remote", "F12")
    wait_until(
        "the emulator reporting channel 1 vented",
        lambda: emu.states(1)[-1:] == ["VENTED"],
        15,
        screen=lambda: emu.lines[-20:],
    )
    tmux.wait(
        "station", "the station console showing the emergency", lambda lines: any("confirmed" in line for line in lines)
    )


def test_terminal_gone_deflates_and_the_console_ends(rig: tuple[Emulator, Path, Tmux]) -> None:
    """The SSH session or the terminal vanishes (SIGHUP, dead tty) with a cuff inflated: the cuff is
    deflated by the console (not left to the controller's watchdog), and the process does not hang."""
    emu, cfg, tmux = rig
    tmux.start("gone", console_cmd(cfg))
    tmux.wait("gone", "the console up", lambda lines: sum(line.count("VENTED") for line in lines) >= 2)
    inflate(tmux, "gone", "1", "L1", "120")
    wait_until("the emulator holding channel 1", lambda: "HOLDING" in emu.states(1))
    pids = tmux.consoles()
    assert pids
    tmux._run("kill-server")  # the terminal and everything in it go away at once
    wait_until("the emulator reporting channel 1 vented", lambda: emu.states(1)[-1:] == ["VENTED"], 15)
    assert not any(line.startswith("EVENT") and " WDT " in f"{line} " for line in emu.lines), "vented by the watchdog"
    for pid in pids:
        assert _ended(pid, 30.0), f"console {pid} still running after its terminal went away"
