"""The files of a run: the checkpoint (read and written atomically) and ``metrics.jsonl``.

Checkpoints are written with ``pygan._atomic`` (temporary file, fsync, rename): a crash leaves the
previous checkpoint or the new one, never half of one. They are read with ``weights_only=True``, so
loading never runs code from the file. :class:`RunFiles` is what a :class:`~pygan.train.Trainer`
writes into its run directory, and remembers the last good checkpoint for error messages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from pygan._atomic import atomic_write

__all__ = ["CHECKPOINT", "METRICS", "FORMAT", "RunFiles", "read_checkpoint", "atomic_save", "append_record",
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
        path: the metrics file (it must exist).
        step: the checkpoint's step.

    Returns:
        The records kept, in order.
    """
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


class RunFiles:
    """What a trainer keeps in its run directory: the checkpoint and the metrics.

    Only rank 0 writes; without a directory nothing is kept on disk.

    Args:
        out: the run directory, or None.
        rank: this process's rank (0 writes).
    """

    def __init__(self, out: str | Path | None, rank: int = 0):
        self.out = Path(out) if out is not None else None
        self.writes = self.out is not None and rank == 0
        self.last_good: tuple[int, Path] | None = None  # (step, path) of the last good checkpoint

    @property
    def checkpoint(self) -> Path | None:
        """``OUT/checkpoint.pt`` (None without a run directory)."""
        return self.out / CHECKPOINT if self.out is not None else None

    def last_checkpoint_text(self) -> str:
        """Where the last good checkpoint is, as a sentence for error messages."""
        if self.last_good is None:
            return "no checkpoint was written yet"
        step, path = self.last_good
        return f"the last good checkpoint is {path} (step {step}); resume from it with --resume"

    def prepare(self) -> None:
        """Create the run directory (rank 0)."""
        if self.writes:
            self.out.mkdir(parents=True, exist_ok=True)

    def save_checkpoint(self, state: dict, step: int) -> Path | None:
        """Write ``state`` to ``OUT/checkpoint.pt`` atomically (rank 0; None otherwise)."""
        if not self.writes:
            return None
        path = self.checkpoint
        atomic_save(state, path)
        self.last_good = (step, path)
        return path

    def read_checkpoint(self, path: str | Path | None = None) -> Any:
        """The contents of a checkpoint (default ``OUT/checkpoint.pt``)."""
        return read_checkpoint(Path(path) if path is not None else self.checkpoint)

    def loaded(self, step: int, path: str | Path | None = None) -> list[dict] | None:
        """Record that the run resumed from ``path`` at ``step``; drop the metrics written after it.

        Returns:
            The metrics records kept (None when there is no metrics file to keep them from).
        """
        self.last_good = (step, Path(path) if path is not None else self.checkpoint)
        metrics = self.out / METRICS if self.out is not None else None
        if self.writes and metrics.exists():
            return truncate_metrics(metrics, step)
        return None

    def log(self, record: dict) -> None:
        """Append a record to ``OUT/metrics.jsonl`` (rank 0)."""
        if self.writes:
            append_record(self.out / METRICS, record)
