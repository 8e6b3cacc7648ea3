"""``bfr-console board``: every station of a site on one screen, read-only.

Fed by :class:`~console.mqtt.board_feed.BoardFeed` (subscribe only); it has no station
handle and no key that reaches a cuff: control stays with each station's own console and
``attach`` (the command for it is shown under each station). The alarm list redraws as
soon as an alarm message arrives; the tiles at TILE_HZ.
"""

from __future__ import annotations

import asyncio
import time

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.common.figures import counted
from console.mqtt.board_feed import BoardFeed
from console.mqtt.board_model import BoardModel
from console.ui.board_text import alarm_lines, header, station_block
from console.ui.on_screen import on_screen
from console.ui.theme import resolve_theme

TILE_HZ = 2.0
ALARM_CHECK_HZ = 20.0
ALARM_LINES = 6


class BoardApp(App[int]):
    CSS = """
    #board-header { height: 1; background: $boost; text-style: bold; }
    #board-broker { height: 1; }
    #board-broker.-down { color: $error; text-style: bold; }
    #board-alarms { height: auto; max-height: 7; border-bottom: solid $panel-lighten-2; }
    App.-ansi #board-alarms { border-bottom: ascii $panel-lighten-2; }
    #board-stations { height: 1fr; }
    #board-keys { height: 1; color: $text-muted; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("ctrl+c", "quit", "quit", show=False)]

    def __init__(self, feed: BoardFeed, *, theme: str = "auto", term: str | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.model: BoardModel = feed.model
        choice = resolve_theme(theme, term)
        self.ansi_mode = choice.ansi
        self.theme = choice.textual_theme
        self.title = f"BFR board {self.model.site}"
        self._shown = (-1, -1)
        self._alarms_shown = -1
        self._feed_task: asyncio.Task[None] | None = None
        self.alarm_frames = 0
        """Times the alarm list was redrawn (the benchmark reads it)."""

    def compose(self) -> ComposeResult:
        yield Static(id="board-header", markup=False)  # site, URL and broker errors: shown as written
        yield Static(id="board-broker", markup=False)
        yield Static(id="board-alarms")
        with VerticalScroll(id="board-stations"):
            yield Static(id="board-tiles")
        yield Static(" q quit   arrows/PgUp/PgDn scroll   read-only: control stays at each station", id="board-keys")

    def on_mount(self) -> None:
        self.set_class(self.ansi_mode, "-ansi")
        self._feed_task = asyncio.create_task(self.feed.run(), name="board:feed")
        self.set_interval(1 / TILE_HZ, self.refresh_tiles)
        self.set_interval(1 / ALARM_CHECK_HZ, self.refresh_alarms)
        self.query_one("#board-stations").focus()
        self.refresh_tiles()

    async def on_unmount(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.gather(self._feed_task, return_exceptions=True)

    def refresh_alarms(self) -> None:
        if not on_screen(self) or self.model.alarm_version == self._alarms_shown:
            return
        self._alarms_shown = self.model.alarm_version
        self.query_one("#board-alarms", Static).update(alarm_lines(self.model, self.size.width, ALARM_LINES))
        self.query_one("#board-header", Static).update(header(self.model))
        self.alarm_frames += 1

    def refresh_tiles(self) -> None:
        if not on_screen(self):
            return  # shutting down: the widgets have gone before this timer stops
        now = time.monotonic()
        self.query_one("#board-header", Static).update(header(self.model))
        broker = self.query_one("#board-broker", Static)
        if self.feed.connected:
            broker.update(f" broker {self.feed.url}: connected, {counted(len(self.model.stations), 'station')} heard")
        else:
            why = self.feed.error or "connecting"
            broker.update(f" broker {self.feed.url}: NOT CONNECTED ({why}); what is shown may be old")
        broker.set_class(not self.feed.connected, "-down")
        width = self.size.width or 80
        blocks = [station_block(v, width, now) for v in self.model.ordered()]
        tiles = self.query_one("#board-tiles", Static)
        if blocks:
            text = blocks[0]
            for b in blocks[1:]:
                text = text + b
            tiles.update(text)
        else:
            tiles.update(f" No station has published under bfr/{self.model.site}/ yet.")
