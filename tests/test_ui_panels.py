"""Panels that show exactly their state: no stale borders or words, the patient's cue, grid moves.

Driven through Textual's run_test on the in-memory station; the same screens are read in a real
terminal by tests/test_e2e_panels.py.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from textual.widget import Widget

import console.ui.widgets as widgets_pkg

WIDGETS = Path(widgets_pkg.__file__).parent


def _assigned_names(cls: type) -> set[str]:
    """``self.X = ...`` / ``self.X: T = ...`` names assigned anywhere in the class's own source."""
    tree = ast.parse(inspect.getsource(cls).lstrip())
    names: set[str] = set()
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                names.add(t.attr)
    return names


def _textual_base(cls: type) -> type:
    return next(b for b in cls.__mro__ if b.__module__.startswith("textual."))


def test_no_widget_of_ours_overwrites_textual_state() -> None:
    """The stale half-border (issue 18.1): CuffPanel kept its strips' size in ``self._size``, which is
    Textual's own outer size. A full refresh then repainted only a content-sized corner of the panel
    and the right and bottom border kept the old style until a resize. No widget may reuse a name its
    Textual base keeps state in (a property with a setter is the base's API and allowed)."""
    import importlib
    import pkgutil

    bare = vars(Widget())
    found: list[str] = []
    checked = 0
    for info in pkgutil.iter_modules([str(WIDGETS)]):
        module = importlib.import_module(f"console.ui.widgets.{info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and issubclass(cls, Widget) and cls.__module__ == module.__name__):
                continue
            checked += 1
            base = _textual_base(cls)
            for name in _assigned_names(cls):
                attr = inspect.getattr_static(base, name, None)
                api = isinstance(attr, property) and attr.fset is not None or hasattr(attr, "__set__")
                if (name in bare or attr is not None) and not api:
                    found.append(f"{cls.__name__}.{name} (Textual's {base.__name__} keeps {name})")
    assert checked >= 3
    assert not found, found
