"""Make the README's screens from the running console, so they stay true.

Starts the real ``bfr-console`` on the shipped config's emulated controllers (in a
private tmux server, with its own records and socket in a temporary folder), drives it
with keys as a therapist would, and saves what the terminal shows (``tmux capture-pane
-p``) as plain text:

- ``main.txt``: the main screen at 120x40, one arm cuff held at 50 % LOP;
- ``session-set.txt``: a two-leg session in its first set (the patient's cue in big letters);
- ``kiosk.txt``: the kiosk, attached to the same station, at 80x24 ``TERM=linux``;
- ``session-rest.txt``: the same session in its rest (countdown and the next set).

The kiosk screen is also copied into the README, under its marker comment.

Run it from the repository: ``.venv/bin/python docs/screens/make_screens.py``. The steps
are the same each run; the readings, the clock and the trace are live, so they differ a little.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONSOLE = Path(sys.executable).parent / "bfr-console"
LOPS = {"A1": 205.0, "A2": 212.0, "B1": 138.0, "B2": 145.0}
"""Known LOPs (the emulated limbs' own), so a session can start at once."""


def make_config(folder: Path) -> Path:
    """The shipped config with its records and socket in ``folder`` and a LOP on every cuff."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^data_dir = "[^"]*"', f'data_dir = "{folder / "var"}"', text)
    text = re.sub(r'(?m)^socket = "[^"]*"', f'socket = "{folder / "sock" / "bfr.sock"}"', text)
    for cuff, lop in LOPS.items():
        text = text.replace(f'id = "{cuff}"\n', f'id = "{cuff}"\nlop = {lop}\n', 1)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Screens:
    """A private tmux server; each console in a session of its own size and TERM."""

    def __init__(self, folder: Path) -> None:
        self.socket = str(folder / "tmux.sock")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=False).stdout

    def start(self, name: str, args: str, size: tuple[int, int], term: str) -> None:
        # COLUMNS / LINES from the caller's shell would override the window's size.
        cmd = f"cd {REPO} && env -u COLUMNS -u LINES TERM={term} {CONSOLE} {args}; sleep 5"
        self.tmux("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), cmd)

    def keys(self, name: str, *keys: str) -> None:
        for key in keys:  # one at a time: a key may open a dialog the next one types into
            self.tmux("send-keys", "-t", name, key)
            time.sleep(0.3)

    def screen(self, name: str) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", name).splitlines()

    def wait(self, name: str, what: str, check: Callable[[list[str]], object], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.screen(name)):
                return
            time.sleep(0.2)
        raise SystemExit(f"make_screens: timed out waiting for {what}:\n" + "\n".join(self.screen(name)))

    def save(self, name: str, file: str) -> None:
        self.wait(name, "the footer drawn", lambda lines: bool(lines) and lines[-1].startswith("F1 help"))
        lines = [line.rstrip() for line in self.screen(name)]
        (HERE / file).write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
        print(f"wrote {HERE / file}")


def embed_in_readme(file: str) -> None:
    """Copy a screen into the README's text block that follows its marker comment."""
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    marker = f"<!-- docs/screens/{file} "
    start = text.find(marker)
    if start < 0:
        return
    open_at = text.index("```\n", start) + 4
    close_at = text.index("```\n", open_at)
    screen = (HERE / file).read_text(encoding="utf-8")
    readme.write_text(text[:open_at] + screen + text[close_at:], encoding="utf-8")
    print(f"copied {file} into {readme}")


def has(text: str) -> Callable[[list[str]], bool]:
    return lambda lines: any(text in line for line in lines)


def has_big(*words: str) -> Callable[[list[str]], bool]:
    """One of ``words`` in the big letters of the patient's cue (either font), as the screen shows it."""
    from console.ui.render import FONTS, big_lines

    def check(lines: list[str]) -> bool:
        for word in words:
            for font in FONTS:
                top, mid, bot = big_lines(word, font)
                for r in range(len(lines) - 2):
                    c = lines[r].find(top)
                    if c >= 0 and lines[r + 1][c:].startswith(mid) and lines[r + 2][c:].startswith(bot):
                        return True
        return False

    return check


def main() -> int:
    if shutil.which("tmux") is None:
        print("make_screens: tmux is needed", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bfr-screens-"))
    cfg = make_config(folder)
    s = Screens(folder)
    try:
        s.start("desk", f"--config {cfg}", (120, 40), "xterm-256color")
        s.wait("desk", "every cuff VENTED", lambda lines: sum(line.count("VENTED") for line in lines) >= 4)
        s.keys("desk", "3", "i")
        s.wait("desk", "the inflate dialog", has("Inflate B1 ("))
        s.keys("desk", "50%", "Enter")
        s.wait("desk", "B1 holding", has("HOLDING"))
        time.sleep(4)  # a few seconds of trace
        s.save("desk", "main.txt")

        s.keys("desk", "1", "p")
        s.wait("desk", "the session dialog", has("Session on A1"))
        s.keys("desk", "P-0042", "Enter")
        s.wait("desk", "the first set under way", lambda lines: any(re.search(r"rep +[2-9]/", ln) for ln in lines))
        s.wait("desk", "a lift", has_big("LIFT"))
        s.save("desk", "session-set.txt")

        s.start("kiosk", f"attach --config {cfg} --kiosk --theme ansi", (80, 24), "linux")
        s.wait("kiosk", "the kiosk attached, cue on screen", has_big("LIFT", "LOWER"))
        s.save("kiosk", "kiosk.txt")
        embed_in_readme("kiosk.txt")

        s.keys("desk", "n")  # skip the rest of the set
        s.wait("desk", "the rest", has("next: set 2/4 in"))
        s.save("desk", "session-rest.txt")
        s.keys("desk", "F12")
        s.wait("desk", "the emergency deflate confirmed", has("confirmed"))
    finally:
        s.tmux("kill-server")  # the consoles end on SIGHUP and deflate every cuff
        time.sleep(1)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
