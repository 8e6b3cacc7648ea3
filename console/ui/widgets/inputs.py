"""Text fields whose Enter submits exactly what was typed before it.

Textual inserts a printable key in the focused Input at once, but runs the Input's
Enter binding only after the key has bubbled through the message queues. A fast
typist's "15", Enter, "5" then submits "155". For a pressure target that is a
hazard, so these fields handle Enter in their own key handler, in key order.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """An Input that submits on Enter before any key typed after it is inserted."""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            await self.action_submit()
            return
        await super()._on_key(event)
