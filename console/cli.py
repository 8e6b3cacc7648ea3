"""The ``bfr-console`` entry point (placeholder until the station lands)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    print("bfr-console: not built yet")
    return 0
