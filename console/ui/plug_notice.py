"""Plug and play in the running console: a notice (not an alarm) for a controller no config names,
and the key that opens the setup screen on it (``S``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App

from console.setup.scan import PortReport
from console.ui.plain import notify_plain

KEY = "S"


class NewControllers:
    """The controllers the port watch found since the console started, and the way to add them."""

    def __init__(self) -> None:
        self.found: dict[str, PortReport] = {}
        self.config_path: Path | None = None
        """The running config: the setup screen keeps its controllers and cuffs and writes a new file."""

    def announce(self, app: App[Any], report: PortReport) -> None:
        self.found[report.port] = report
        what = report.describe()
        notify_plain(app, f"New controller: {what}. Press {KEY} to add it (setup).", timeout=60)

    def open_setup(self, app: App[Any]) -> None:
        if not self.found:
            notify_plain(app, "No new controller was seen on a port the config does not name.")
            return
        base = self.config_path
        write_to = str(base.with_name(base.stem + ".new.toml")) if base is not None else "station.toml"
        from console.ui.screens.setup import SetupScreen  # its tables load when S is first pressed, not at start

        app.push_screen(SetupScreen(list(self.found), timeout=1.0, write_to=write_to, extend=base))
