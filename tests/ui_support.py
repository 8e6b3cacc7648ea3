"""The UI tests' station and Pilot helpers.

:class:`FakeStation` is the demo's scripted station (``console.ui.demo_station``)
that also records every command and can refuse or hold them, so a test can see
what the screen asked for and prove the emergency key is never held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual.app import App
from textual.pilot import Pilot

from console.common.api import CommandRefused, EmergencySnapshot, Role
from console.ui.demo_station import DemoStation


@dataclass
class Call:
    name: str
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = field(default_factory=dict)


class FakeStation(DemoStation):
    """A :class:`DemoStation` whose commands a test can read back (``calls``), refuse or hold."""

    def __init__(self, n_cuffs: int = 4, *, name: str = "Bay A", role: Role = Role.OPERATOR) -> None:
        super().__init__(n_cuffs, name=name, role=role)
        self.calls: list[Call] = []
        self.refuse: dict[str, str] = {}
        """Command name -> sentence: that command raises CommandRefused."""
        self.hold_commands: asyncio.Event | None = None
        """When set to an unset Event, ordinary commands wait on it (to prove emergency does not)."""

    async def emergency_deflate(self) -> EmergencySnapshot:
        self.calls.append(Call("emergency_deflate"))
        return await super().emergency_deflate()

    async def before_command(self, name: str, *args: object, **kwargs: object) -> None:
        self.calls.append(Call(name, args, kwargs))
        await super().before_command(name, *args, **kwargs)
        if name in self.refuse:
            raise CommandRefused(self.refuse[name])
        if self.hold_commands is not None:
            await self.hold_commands.wait()


# -- helpers for run_test ------------------------------------------------------------


async def press(pilot: Pilot[Any], *keys: str) -> None:
    """Like ``pilot.press`` but without its CPU-idle wait (up to 2 s per key while emulators stream).

    The key goes through the driver exactly as ``pilot.press`` sends it; we then wait
    until the app and the screen have processed their queues, twice (a key may push a screen).
    """
    import unicodedata

    from textual import events
    from textual.keys import (
        REPLACED_KEYS,
        _character_to_key,
        _get_unicode_name_from_key,
    )

    app = pilot.app
    driver = app._driver
    assert driver is not None, "press() needs a running app"
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        original = REPLACED_KEYS.get(key, key)
        try:
            char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        driver.send_message(event)
        for _ in range(3):
            await pilot._wait_for_screen()
            await asyncio.sleep(0)
    await pilot.pause(0.05)  # let screens switch and a frame render


def screen_lines(app: App[Any]) -> list[str]:
    """The plain text of every row the terminal would show right now."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def screen_text(app: App[Any]) -> str:
    return "\n".join(screen_lines(app))


def notices(app: App[Any]) -> list[str]:
    """Messages of the notifications the app raised (run_test(notifications=True))."""
    return [n.message for n in app._notifications]


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Pause the pilot until ``condition()`` is true; generous deadline, no fixed sleeps."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def big_text_at(lines: list[str] | str, text: str) -> list[tuple[int, int, str]]:
    """Where ``text`` stands in big letters or digits (either font), read off the screen's rows as
    (row, column, font): its three glyph rows one above the other, as a person on the mat sees it."""
    from console.ui.render import FONTS, big_lines

    rows = lines.splitlines() if isinstance(lines, str) else lines
    found = []
    for font in FONTS:
        top, mid, bot = big_lines(text, font)
        for r in range(len(rows) - 2):
            start = 0
            while (c := rows[r].find(top, start)) >= 0:
                start = c + 1
                if rows[r + 1][c : c + len(mid)] == mid and rows[r + 2][c : c + len(bot)] == bot:
                    found.append((r, c, font))
    return found


def big_cue(lines: list[str] | str) -> str | None:
    """The patient's cue word shown in big letters (LIFT or LOWER), None when neither is."""
    words = [w for w in ("LOWER", "LIFT") if big_text_at(lines, w)]
    return words[0] if len(words) == 1 else ("/".join(words) if words else None)
