"""``bfr-console setup`` with a screen: a small app of its own (no station runs while setting one up)."""

from __future__ import annotations

from textual.app import App

from console.ui.screens.setup import SetupScreen
from console.ui.theme import resolve_theme


class SetupApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "BFR station setup"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, ports: list[str], *, timeout: float, write_to: str, theme: str = "auto") -> None:
        super().__init__()
        choice = resolve_theme(theme)
        self.theme = choice.textual_theme
        if choice.ansi:
            self.add_class("-ansi")
        self.setup_screen = SetupScreen(ports, timeout=timeout, write_to=write_to)

    def on_mount(self) -> None:
        self.push_screen(self.setup_screen)


def run_setup_app(*, ports: list[str], timeout: float, write_to: str = "station.toml", theme: str = "auto") -> int:
    app = SetupApp(ports, timeout=timeout, write_to=write_to, theme=theme)
    app.run()
    written = app.setup_screen.written
    if written is not None:
        print(f"wrote {written}; start the console with: bin/console --config {written}")
    return 0
