"""The records' files on disk: private to the station's user from the moment they exist.

Patient data is readable only by the station: the data directory is made 0700, the database
file 0600 before SQLite first opens it (SQLite gives its ``-wal`` and ``-shm`` files the mode of
the database file), each with the mode given at creation, never fixed afterwards. Files an
older version left readable by others are narrowed to 0600 when the station opens them.

The lock that keeps a second station off the same records is a file only the station's user can
open (``flock`` works on a file opened read-only, so anyone who can open a lock file can hold
it). A lock held by a process of another user (through a lock file an older version left open
to others) cannot be a station writing these records: that file is replaced, not obeyed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

from console.records.rows import RecordsError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside the database; they hold rows too."""


def private_dir(directory: Path) -> None:
    """Create the data directory 0700 (an existing one keeps its mode: an admin chose it)."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise RecordsError(f"cannot create the records directory {directory}: {exc.strerror or exc}") from exc


def private_database(path: Path) -> None:
    """Create the database file 0600 if it is missing; narrow it and its companions if they are wider."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RecordsError(f"cannot create the records {path}: {exc.strerror or exc}") from exc
    else:
        os.close(fd)
    for each in (path, *(path.with_name(path.name + s) for s in SQLITE_COMPANIONS)):
        narrow(each)


def narrow(path: Path) -> None:
    """Take group and other permissions off a file of ours an older version left readable."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise RecordsError(f"{path} is a symbolic link; the records must be plain files of the station's own")
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700, follow_symlinks=False)
        log.warning("records: %s was readable by others (mode %04o); now 0600", path, stat.S_IMODE(st.st_mode))


def lock(path: Path) -> int:
    """Hold an exclusive lock beside the database: one writing process per file; the open fd."""
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    fd = _open_lock(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        holder = lock_holder(fd)
        os.close(fd)
    if holder is None or holder[1] in (os.geteuid(), 0):
        who = "" if holder is None else f" (pid {holder[0]})"
        raise RecordsError(f"records {path} are already open for writing by another process{who}")
    log.warning(
        "records: %s was held by pid %d of uid %d, which cannot be a station writing these records; replaced",
        lock_path,
        *holder,
    )
    _replace(lock_path)
    fd = _open_lock(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise RecordsError(f"records {path} are already open for writing by another process") from exc
    return fd


def _open_lock(lock_path: Path) -> int:
    """Open (creating 0600) the lock file; one not ours or a link is replaced, a wide one narrowed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in (1, 2):
        try:
            fd = os.open(lock_path, flags, PRIVATE_FILE)
        except OSError as exc:
            if attempt == 1 and os.path.islink(lock_path):
                _replace(lock_path)
                continue
            raise RecordsError(f"cannot create the lock {lock_path}: {exc.strerror or exc}") from exc
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() and attempt == 1:
            os.close(fd)
            _replace(lock_path)
            continue
        if st.st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
        return fd
    raise RecordsError(f"cannot make a lock of the station's own at {lock_path}")


def _replace(lock_path: Path) -> None:
    try:
        lock_path.unlink(missing_ok=True)
    except OSError as exc:
        raise RecordsError(
            f"cannot replace the lock {lock_path}, which others can open: {exc.strerror or exc}"
        ) from exc


def lock_holder(fd: int) -> tuple[int, int] | None:
    """``(pid, uid)`` of the process holding a flock on ``fd``'s file, from ``/proc/locks``; None if unknown."""
    st = os.fstat(fd)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                # "1: FLOCK  ADVISORY  WRITE 8792 fe:00:2146672 0 EOF" (a blocked waiter is "-> FLOCK ...")
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == device:
                    pid = int(parts[4])
                    return pid, os.stat(f"/proc/{pid}").st_uid
    return None
