"""A one-row choice among a few words, for dialogs driven by the keyboard alone.

``Position: < seated >``: Left/Right (or Space) step through the options. One
row fits an 80x24 dialog, needs no pop-up (a Select's overlay takes Escape to
close, which is unreliable over SSH) and draws in plain ASCII on the Linux
console.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from console.ui.plain import plain


class Choice(Widget, can_focus=True):
    """Cycles through ``options`` (value, shown text); ``value`` is the chosen one."""

    DEFAULT_CSS = """
    Choice { height: 1; width: 100%; }
    Choice:focus { text-style: bold reverse; }
    """

    BINDINGS = [
        Binding("right,space", "step(1)", "next option", show=False),
        Binding("left", "step(-1)", "previous option", show=False),
    ]

    class Changed(Message):
        def __init__(self, choice: Choice) -> None:
            super().__init__()
            self.choice = choice

        @property
        def control(self) -> Choice:
            return self.choice

    def __init__(
        self, label: str, options: Sequence[tuple[str, str]], value: str | None = None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        if not options:
            raise ValueError("a Choice needs at least one option")
        self.label = label
        self.options = list(options)
        values = [v for v, _ in self.options]
        self.index = values.index(value) if value in values else 0

    @property
    def value(self) -> str:
        return self.options[self.index][0]

    @property
    def shown(self) -> str:
        return self.options[self.index][1]

    def render(self) -> Text:
        hint = "  (Left/Right)" if self.has_focus and len(self.options) > 1 else ""
        return plain(f"{self.label}: < {self.shown} >{hint}")  # the options may be cuff labels

    def action_step(self, step: int) -> None:
        self.index = (self.index + step) % len(self.options)
        self.refresh()
        self.post_message(self.Changed(self))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
