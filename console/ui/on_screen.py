"""Whether a timer's widget is still on screen, so a late tick is dropped, not raised.

Textual stops an app's timers only after it has pruned the screens (``App._shutdown``:
``_close_all`` before ``_close_messages``), and a screen's timers after its children
have gone. A tick in between finds no widgets and ``query_one`` raises ``NoMatches``,
which ends the app with a traceback (seen in CI on the board, 1 run in about 10).
"""

from __future__ import annotations

from textual.dom import DOMNode


def on_screen(node: DOMNode) -> bool:
    """False once the app is shutting down or ``node`` is being removed."""
    app = node.app
    if not app.is_running or not app.screen_stack:
        return False
    # A widget's ``is_attached`` is False once the app exits or the widget left the DOM;
    # ``display`` is False while a node is closing, closed or being pruned (and when hidden).
    return node is app or (node.is_attached and node.display)
