"""A reader for one TOML table: types, ranges and unknown keys checked, every problem collected.

Shared by the plan reader (:mod:`~console.therapy.plans`) and the config loader
(:mod:`console.config`). Each problem is one line starting with its key path, and
reading carries on after one, so a technician fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
"""An id: 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit."""
REQUIRED: Final[Any] = object()
"""Marker default: the key must be present."""


def plain(x: float) -> str:
    """A number as a config file shows it (``%g``)."""
    return f"{x:g}"


def describe(value: Any) -> str:
    """Describe a TOML value for an error message: its kind and (short) content."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{text}")'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({value})"


def _range_text(lo: float | None, hi: float | None, lo_open: bool, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        if lo_open:
            return f"above {plain(lo)} and at most {plain(hi)}{u}"
        return f"from {plain(lo)} to {plain(hi)}{u}"
    if lo is not None:
        return f"{'above' if lo_open else 'at least'} {plain(lo)}{u}"
    if hi is not None:
        return f"at most {plain(hi)}{u}"
    return ""


def _choices(options: Iterable[str]) -> str:
    quoted = [f'"{o}"' for o in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class TableReader:
    """Reads one TOML table, checking types and ranges and collecting problems.

    Shared with :mod:`console.config`. Each getter returns the value, the
    default when the key is absent, or None after recording a problem (the
    caller carries on so every problem gets reported, then raises).
    """

    def __init__(self, data: Mapping[str, Any], where: str, allowed: Iterable[str], problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.allowed = tuple(allowed)
        self.problems = problems
        for key in data:
            if key not in self.allowed:
                self.problem(key, self._unknown(key))

    def _unknown(self, key: str) -> str:
        close = difflib.get_close_matches(key, self.allowed, n=1, cutoff=0.6)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        return f"unknown key; {hint}valid keys here: {', '.join(self.allowed)}"

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: Any, expectation: str) -> tuple[bool, Any]:
        """(present, value); records a problem when a required key is missing."""
        if key in self.data:
            return True, self.data[key]
        if default is REQUIRED:
            self.problem(key, f"missing (expected {expectation})")
        return False, None if default is REQUIRED else default

    def text(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        choices: tuple[str, ...] | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        allow_empty: bool = False,
        multiline: bool = False,
    ) -> Any:
        """A string; refused with a sentence when it is not one, not a choice, empty or holds a control
        character (only ``multiline`` text may hold newlines): config text reaches screens as written."""
        expectation = _choices(choices) if choices else "a string"
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if not isinstance(value, str):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if choices and value not in choices:
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if not value.strip() and not allow_empty:
            self.problem(key, "expected a non-empty string, found an empty one")
            return None
        bad = control_character(value, allow_newline=multiline)
        if bad is not None:
            self.problem(
                key, f"contains a control character (U+{ord(bad):04X}); text here is plain, without escape codes"
            )
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(key, f"expected {pattern_text}, found {describe(value)}")
            return None
        return value

    def ident(self, key: str, default: Any = REQUIRED) -> Any:
        return self.text(
            key,
            default,
            pattern=IDENT,
            pattern_text="an id of 1-40 letters, digits, '.', '_' or '-' starting with a letter or digit",
        )

    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        unit: str = "",
    ) -> Any:
        rng = _range_text(lo, hi, lo_open, unit)
        expectation = f"a number {rng}".strip()
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        value = float(value)
        if (
            value != value
            or (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and value > hi)
        ):
            self.problem(key, f"expected {expectation}, found {plain(value)}")
            return None
        return value

    def seconds(self, key: str, default: Any = REQUIRED, *, hi: float | None = None, lo: float = 0.0) -> Any:
        """A duration: strictly above ``lo`` (0 unless told), at most ``hi``."""
        return self.number(key, default, lo=lo, hi=hi, lo_open=True, unit="s")

    def integer(self, key: str, default: Any = REQUIRED, *, lo: int | None = None, hi: int | None = None) -> Any:
        rng = _range_text(lo, hi, False, "")
        expectation = f"an integer {rng}".strip()
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected {expectation}, found {describe(value)}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.problem(key, f"expected {expectation}, found {value}")
            return None
        return value

    def flag(self, key: str, default: Any = REQUIRED) -> Any:
        present, value = self._raw(key, default, "true or false")
        if not present:
            return value
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, found {describe(value)}")
            return None
        return value

    def numbers(
        self, key: str, default: Any = REQUIRED, *, lo: float, hi: float, integers: bool = False, unit: str = ""
    ) -> Any:
        """A non-empty array of numbers (or integers) within [lo, hi], as a tuple."""
        kind = "integers" if integers else "numbers"
        expectation = f"a non-empty array of {kind} {_range_text(lo, hi, False, unit)}"
        present, value = self._raw(key, default, expectation)
        if not present:
            return value
        if not isinstance(value, list) or not value:
            found = "an empty array" if value == [] else describe(value)
            self.problem(key, f"expected {expectation}, found {found}")
            return None
        element = f"{'an integer' if integers else 'a number'} {_range_text(lo, hi, False, unit)}"
        out: list[float] = []
        ok = True
        for i, item in enumerate(value):
            bad_type = isinstance(item, bool) or not isinstance(item, int if integers else int | float)
            if bad_type:
                self.problems.append(f"{self.path(key)}[{i}]: expected {element}, found {describe(item)}")
                ok = False
            elif not lo <= item <= hi:
                self.problems.append(f"{self.path(key)}[{i}]: expected {element}, found {plain(item)}")
                ok = False
            else:
                out.append(item if integers else float(item))
        return tuple(out) if ok else None


def control_character(text: str, *, allow_newline: bool = False) -> str | None:
    """The first control character in ``text`` (C0, DEL, C1, line/paragraph separators), or None."""
    for ch in text:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029):
            if allow_newline and ch == "\n":
                continue
            return ch
    return None
