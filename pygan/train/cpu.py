"""CPU threads for ``python -m pygan train``: how many, and a warning when others keep the CPUs busy.

The toy models are small (an MLP of 3 x 512 on batch 256): on a shared machine a second thread
waits for a core more than it computes. Measured on a shared 2-core machine (docs/train.md): 0.68 s
per step on 1 thread against 4.1 s on 2, so ``--threads`` defaults to 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

__all__ = ["busy_fraction", "set_threads", "warn_if_busy"]


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def busy_fraction(interval: float = 0.2) -> float | None:
    """The fraction of all CPUs that other processes kept busy over ``interval`` seconds while this
    one slept (0 idle, 1 all busy); None where /proc/stat is missing (not Linux)."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(interval)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def set_threads(threads: int) -> None:
    """torch's intra-op threads for this process (``--threads``)."""
    torch.set_num_threads(threads)


def warn_if_busy(threads: int, busy: float | None = None) -> bool:
    """Print a warning when other processes keep more than a quarter of the CPUs busy.

    Args:
        threads: the threads training will use (named in the advice).
        busy: the measured busy fraction (None: measure it now, 0.2 s).

    Returns:
        Whether a warning was printed.
    """
    busy = busy_fraction() if busy is None else busy
    if busy is None or busy <= 0.25:
        return False
    cpus = os.cpu_count() or 1
    advice = " (try --threads 1)" if threads > 1 else ""
    print(f"pygan train: warning: other processes keep {busy:.0%} of the {cpus} CPUs busy; training on "
          f"{threads} thread{'s' if threads > 1 else ''} will be slower than usual{advice}", file=sys.stderr)
    return True
