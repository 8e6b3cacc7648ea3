"""What a ``bfr-console`` command says: its answer on stdout, a refusal on stderr with exit status 2."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fail(message: str) -> int:
    print(f"bfr-console: {message}", file=sys.stderr)
    return 2
