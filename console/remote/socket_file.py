"""The socket's file and directory: made safe before the station listens on them.

The directory is the access check a portable system can rely on (0750, never writable by
others); a socket left by a dead station is removed, one a live station serves is never stolen.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import os
import stat
from pathlib import Path


class ServeError(RuntimeError):
    """The server cannot open its socket; the message says why and what to do."""


def group_id(group: str | int) -> int:
    """The numeric id of the socket's group (a name or a number), or a ServeError naming it."""
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ServeError(f"group {group!r} does not exist; create it (groupadd {group}) or fix the config") from None


def prepare_directory(directory: Path, gid: int | None) -> str:
    """Create the socket's directory 0750; refuse one others may write to; warn about one they may enter.

    Group members need only to enter the directory (x) and write the socket
    file (0660) to connect; none of them needs to write the directory, which
    would let them unlink the socket and put a fake station in its place.
    Returns a warning sentence, or "".
    """
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o750)
        os.chmod(directory, 0o750)
        if gid is not None:
            os.chown(directory, -1, gid)
        return ""
    if not directory.is_dir():
        raise ServeError(f"{directory} is not a directory; the station's socket needs a directory of its own")
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o002:
        raise ServeError(
            f"{directory} may be written by every user (mode {mode:04o}), who could replace the station's "
            f"socket with a fake station; use a directory of its own (e.g. /run/bfr-console, mode 0750)"
        )
    if mode & 0o005:
        return (
            f"{directory} may be entered by every user (mode {mode:04o}); the socket (0660) and the role check "
            f"still keep them out, but a directory of its own with mode 0750 is safer"
        )
    return ""


async def clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead station; refuse to steal one a live station serves."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ServeError(f"{path} exists and is not a socket; remove it or choose another socket path")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=1.0)
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            path.unlink(missing_ok=True)
            return
        raise ServeError(f"cannot check {path}: {exc}") from exc
    except TimeoutError:
        raise ServeError(f"{path} is in use by a station that does not answer") from None
    writer.close()
    raise ServeError(f"another station is already serving at {path}")
