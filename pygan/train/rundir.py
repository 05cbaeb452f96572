"""The run directory: one trainer at a time, and no temporary files left behind by dead writers.

The lock is ``fcntl.flock`` on ``OUT/.lock``, held for the run's life. A flock belongs to the open
file, so the operating system releases it when the process dies, however it dies (kill -9, a crash,
a power cut): a stale lock never blocks the next run. The holder's PID is written into the file so
that a refusal can name the process. On release the file is removed while still locked; a process
that opened it just before re-checks, after locking, that it locked the file the path names.

``pygan._atomic`` writes through ``.NAME.tmp-PID.SUFFIX`` files; a writer killed mid-write leaves one
behind. :func:`remove_stale_temporaries` removes those of dead processes (``--force`` all of them).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LOCK_FILE", "RunDirectoryBusy", "RunLock", "remove_stale_temporaries"]

LOCK_FILE = ".lock"
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\.[^.]+)?$")


class RunDirectoryBusy(ValueError):
    """Another live process holds the run directory's lock (the message names its PID)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


class RunLock:
    """An exclusive lock on a run directory, from :meth:`acquire` to :meth:`release` (or death).

    Args:
        directory: the run directory (created by :meth:`acquire` when missing).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (a no-op when this object holds it already).

        Raises:
            RunDirectoryBusy: another process holds it (its PID is in the message and ``.pid``).
            OSError: the directory or the lock file cannot be created (a read-only --out).
        """
        if self._fd is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                pid = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                who = f"PID {pid}" if pid is not None else "a process whose PID is not recorded yet"
                raise RunDirectoryBusy(f"{self.directory} is in use by a running trainer ({who}); wait "
                                       "for it to finish or stop it, or choose another --out", pid) from None
            try:  # the previous holder may have removed the file between our open and our lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up and remove the lock file (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # still locked: a waiter then sees another inode and retries
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the OS releases the lock anyway
            pass


def remove_stale_temporaries(directory: str | Path, names: Iterable[str], everything: bool = False) -> list[Path]:
    """Remove the ``.NAME.tmp-PID.SUFFIX`` files that writers of ``names`` left behind when they died.

    Args:
        directory: the run directory.
        names: the files whose temporaries are looked for (e.g. ``checkpoint.pt``).
        everything: remove them whatever their PID (``--force``); otherwise only those whose
            process is dead (or is this one: the caller holds the lock and is not writing now).

    Returns:
        The files removed.
    """
    directory = Path(directory)
    wanted = set(names)
    removed = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        m = _TEMPORARY.match(path.name)
        if m is None or f"{m['stem']}{m['suffix'] or ''}" not in wanted:
            continue
        pid = int(m["pid"])
        if everything or pid == os.getpid() or not _pid_alive(pid):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed
