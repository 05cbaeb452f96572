"""Atomic file writes: the one place pygan writes a file that a crash must never leave half-written.

The content goes to a temporary file beside the target (same directory, so the rename cannot cross
file systems), is flushed and fsynced, and is renamed over the target with ``os.replace`` (atomic on
POSIX): a reader sees the old file or the new one, never a mixture. The temporary file is removed if
writing fails. Used for the trainer's checkpoints and metrics, and for every picture and report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = True) -> None:
    """Write ``path`` atomically: ``write(f)`` fills an open temporary file, which then replaces ``path``.

    Args:
        path: the target file.
        write: writes the content into the file object it is given.
        binary: open the temporary file in binary ("wb") or text ("w") mode.
    """
    path = Path(path)
    # The suffix is kept last (".name.tmp-PID.png"): writers such as savefig pick the format from it.
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
