"""The files of a run: the checkpoint (read and written atomically) and ``metrics.jsonl``.

Checkpoints are written with ``pygan._atomic`` (temporary file, fsync, rename): a crash leaves the
previous checkpoint or the new one, never half of one. They are read with ``weights_only=True``, so
loading never runs code from the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from pygan._atomic import atomic_write

__all__ = ["CHECKPOINT", "METRICS", "FORMAT", "read_checkpoint", "atomic_save", "append_record",
           "truncate_metrics"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
FORMAT = 1  # the trainer's checkpoint layout (Trainer.state_dict)


def read_checkpoint(path: str | Path) -> Any:
    """torch.load with ``weights_only=True`` (loading never runs code from the file), on the CPU:
    RNG states must stay CPU ByteTensors; ``load_state_dict`` moves the rest to the models' device.

    Args:
        path: the checkpoint file.

    Returns:
        The object stored there.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename over it (``pygan._atomic``)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line to a metrics file (non-finite floats become null: strict JSON readers
    reject NaN / Infinity)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(path, "a") as f:
        f.write(json.dumps(clean) + "\n")
        f.flush()


def truncate_metrics(path: Path, step: int) -> list[dict]:
    """Keep the records of a metrics file up to ``step`` (atomically) and return them.

    Lines written after the checkpoint a run resumes from (a crash between an evaluation and the
    next checkpoint) would otherwise be written twice; a line cut by a crash is dropped too.

    Args:
        path: the metrics file (nothing happens when it does not exist).
        step: the checkpoint's step.

    Returns:
        The records kept, in order.
    """
    if not path.exists():
        return []
    kept, records = [], []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if rec.get("step", 0) <= step:
            kept.append(line)
            records.append(rec)
    atomic_write(path, lambda f: f.write("".join(k + "\n" for k in kept)), binary=False)
    return records
