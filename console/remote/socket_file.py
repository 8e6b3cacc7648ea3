"""The socket's file and directory: made safe before the station listens on them.

The directory is the access check a portable system can rely on (0750, owned by the station's
user or root, never writable by its group or by others, nor movable by them); a socket left by a
dead station is removed, one a live station serves is never stolen.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import os
import pwd
import socket
import stat
import struct
from pathlib import Path
from typing import Any

_PEERCRED = struct.Struct("3i")


def peer_credentials(writer: Any) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket stream (``SO_PEERCRED``).

    For a server, the client's; for a client, the server's as it was when it began listening.
    """
    sock = writer.get_extra_info("socket")
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid, uid, gid


def user_name(uid: int) -> str:
    """``user NAME (uid N)``, or ``uid N`` without an account."""
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


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


def prepare_directory(directory: Path, gid: int | None) -> tuple[str, int]:
    """Make the socket's directory safe to serve from; a warning sentence (or "") and the socket's group.

    A missing directory is created 0750 (group ``gid`` when given). An existing one is never
    re-moded, but refused when anyone but the station's user (or root) could put a fake station
    in it: owned by another user, writable by its group or by every user, or under a directory
    others may rename it in. Group members need only to enter the directory (x) and write the
    socket file (0660) to connect. The socket gets ``gid`` when given, else the directory's group
    (so an administrator who made the directory for the supervisors' group gets that group).
    """
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o750)
        os.chmod(directory, 0o750)
        if gid is not None:
            os.chown(directory, -1, gid)
        return "", directory.stat().st_gid
    if not directory.is_dir():
        raise ServeError(f"{directory} is not a directory; the station's socket needs a directory of its own")
    st = directory.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (os.geteuid(), 0):
        raise ServeError(
            f"{directory} belongs to {user_name(st.st_uid)}, not to the station's user ({user_name(os.geteuid())}) or root: "
            f"its owner could replace the station's socket with a fake station; use a directory of the station's own"
        )
    if mode & 0o002:
        raise ServeError(
            f"{directory} may be written by every user (mode {mode:04o}), who could replace the station's "
            f"socket with a fake station; use a directory of its own (e.g. /run/bfr-console, mode 0750)"
        )
    if mode & 0o020:
        raise ServeError(
            f"{directory} may be written by its group {_group(st.st_gid)} (mode {mode:04o}): any member could "
            f"replace the station's socket with a fake station; take the group's write away (chmod g-w {directory})"
        )
    _check_ancestors(directory)
    if mode & 0o005:
        warning = (
            f"{directory} may be entered by every user (mode {mode:04o}); the socket (0660) and the role check "
            f"still keep them out, but a directory of its own with mode 0750 is safer"
        )
        return warning, st.st_gid if gid is None else gid
    return "", st.st_gid if gid is None else gid


def _check_ancestors(directory: Path) -> None:
    """Refuse a directory that someone else could rename away (a parent they may write, without the sticky bit)."""
    me = os.geteuid()
    for parent in directory.resolve().parents:
        st = parent.stat()
        sticky = st.st_mode & stat.S_ISVTX
        if st.st_uid not in (me, 0) or (st.st_mode & 0o022 and not sticky):
            raise ServeError(
                f"{parent} (above the socket's directory {directory}) may be changed by {user_name(st.st_uid)} or its "
                f"group (mode {stat.S_IMODE(st.st_mode):04o}), who could swap the directory for one with a fake "
                f"station; put the socket under directories only root and the station's user may change"
            )


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


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
