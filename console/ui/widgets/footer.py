"""The key footer, fitted to the screen: whole keys only, F1 first, the rest in F1's help.

Textual's Footer cuts its last key at the screen edge (``s silence F12 EMERGE`` at
80 columns). This one lays out the same keys but stops before a key that would
not fit whole, and puts ``F1 help`` first so the way to every other key is
always there. The emergency key is not in it: the emergency bar above it names
that key in full on every screen (``F12 / Ctrl+E: EMERGENCY DEFLATE ALL``).
"""

from __future__ import annotations

from itertools import groupby

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup

FIRST_ACTIONS = ("app.help", "help")
"""Shown before every other key (the way to the keys that do not fit)."""

Entry = tuple[Binding, bool, str]


def entry_width(key: str, description: str) -> int:
    """Cells a compact footer key takes: ``key description`` and one space after."""
    return len(key) + (1 + len(description) if description else 0) + 1


def group_width(keys: list[str], description: str) -> int:
    """Cells a compact key group takes: each key and a space, then the group's label and a space."""
    return sum(len(k) + 1 for k in keys) + len(description) + 1


class KeyFooter(Footer):
    """A compact footer that shows only the keys that fit whole (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self.shown_actions: list[str] = []
        """The actions on show, in order (what a test reads back)."""

    def on_resize(self) -> None:
        self.call_after_refresh(self.recompose)

    def units(self) -> list[tuple[Binding.Group | None, list[Entry]]]:
        """The footer's keys in order, F1 first: one entry per action, grouped keys together."""
        by_action: dict[str, list[Entry]] = {}
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.show:
                by_action.setdefault(binding.action, []).append((binding, enabled, tooltip))
        ordered = sorted(by_action.values(), key=lambda m: m[0][0].action not in FIRST_ACTIONS)
        out: list[tuple[Binding.Group | None, list[Entry]]] = []
        for group, members in groupby(ordered, lambda m: m[0][0].group):
            firsts = [m[0] for m in members]
            if group is not None and len(firsts) > 1:
                out.append((group, firsts))
            else:
                out.extend((None, [e]) for e in firsts)
        return out

    def fitted(self, width: int) -> list[tuple[Binding.Group | None, list[Entry], list[str]]]:
        """The units that fit whole in ``width`` cells, in order, with their key names."""
        used = 0
        out: list[tuple[Binding.Group | None, list[Entry], list[str]]] = []
        for group, entries in self.units():
            keys = [self.app.get_key_display(b) for b, _, _ in entries]
            if group is not None:
                need = group_width(keys, group.description)
            else:
                need = entry_width(keys[0], entries[0][0].description)
            if used + need > width:
                break  # this key and the ones after it are in F1's help
            used += need
            out.append((group, entries, keys))
        return out

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        fitted = self.fitted(self.size.width or self.app.size.width)
        self.shown_actions = [b.action for _, entries, _ in fitted for b, _, _ in entries]
        self.styles.grid_size_columns = sum(2 if group is not None else 1 for group, _, _ in fitted)
        for group, entries, keys in fitted:
            if group is not None:
                with KeyGroup(classes="-compact" if group.compact else ""):
                    for (binding, enabled, tooltip), key in zip(entries, keys, strict=True):
                        yield FooterKey(
                            binding.key,
                            key,
                            "",
                            binding.action,
                            disabled=not enabled,
                            tooltip=tooltip or binding.description,
                            classes="-grouped",
                        ).data_bind(compact=Footer.compact)
                yield FooterLabel(group.description)
            else:
                binding, enabled, tooltip = entries[0]
                yield FooterKey(
                    binding.key, keys[0], binding.description, binding.action, disabled=not enabled, tooltip=tooltip
                ).data_bind(compact=Footer.compact)
