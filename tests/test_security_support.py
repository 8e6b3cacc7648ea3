"""Helpers for the security tests: code run as another user in a forked child, and a shared directory.

The tests run as root (here and in CI), so a forked child may drop to ``nobody`` (65534) with
``setgroups``/``setgid``/``setuid`` and then meet the same kernel checks a real observer meets:
file modes, the socket directory, SO_PEERCRED. The child runs only stdlib calls (no logging, no
asyncio) and reports a JSON value back through a pipe. Without root these tests skip, loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

NOBODY = 65534
NOGROUP = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="SKIPPED LOUDLY: these tests act as a second user (nobody) through setuid in a forked child, "
    "which needs root; run them as root (CI does) or they prove nothing about another user's reach",
)


def _drop(uid: int, gid: int, groups: list[int]) -> None:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)


def as_user(uid: int, gid: int, fn: Callable[..., Any], *args: Any, groups: tuple[int, ...] = ()) -> Any:
    """``fn(*args)`` in a forked child running as ``uid``/``gid``; its JSON-able result, or raises with its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            _drop(uid, gid, list(groups))
            out = json.dumps({"ok": fn(*args)})
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            out = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            code = 1
        try:
            os.write(w, out.encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(65536):
            chunks.append(chunk)
    os.waitpid(pid, 0)
    got = json.loads(b"".join(chunks) or b'{"error": "the child said nothing"}')
    if "error" in got:
        raise AssertionError(f"as uid {uid}: {got['error']}")
    return got["ok"]


@contextmanager
def holding(uid: int, gid: int, grab: Callable[[], str], groups: tuple[int, ...] = ()) -> Iterator[str]:
    """Run ``grab()`` as ``uid`` in a child that then stays alive (holding what it grabbed) until the block ends.

    Yields what ``grab`` returned (e.g. ``"held"`` or the error that stopped it).
    """
    status_r, status_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(status_r)
            os.close(release_w)
            _drop(uid, gid, list(groups))
            try:
                said = grab()
            except OSError as exc:
                said = f"{type(exc).__name__}: {exc.strerror}"
            os.write(status_w, said.encode() + b"\n")
            os.read(release_r, 1)  # until the parent closes its end
        finally:
            os._exit(0)
    os.close(status_w)
    os.close(release_r)
    try:
        with os.fdopen(status_r, "rb") as f:
            said = f.readline().decode().strip()
        yield said
    finally:
        os.close(release_w)
        os.waitpid(pid, 0)


@contextmanager
def shared_directory() -> Iterator[Path]:
    """A directory other users may enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="bfr-security-"))
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
