"""The files of a run: the checkpoint (read and written atomically) and ``metrics.jsonl``.

Checkpoints are written with ``pygan._atomic`` (temporary file, fsync, rename): a crash leaves the
previous checkpoint or the new one, never half of one. They are read with ``weights_only=True``, so
loading never runs code from the file. Every checkpoint carries a SHA-256 of its payload (every
tensor's bytes, shape and dtype, the counters and RNG states), checked on load: a flipped bit is refused,
not trained on. :func:`check_state` checks the fields, their types and the shapes against the
models before anything is loaded. A failure to read or write is one line (:class:`CheckpointError`,
:class:`CheckpointWriteError`) naming the file, what is wrong and where the last good checkpoint is.

:class:`RunFiles` is what a :class:`~pygan.train.Trainer` writes into its run directory.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from pygan._atomic import atomic_write

__all__ = ["CHECKPOINT", "METRICS", "RUN_FILES", "FORMAT", "CheckpointError", "CheckpointWriteError", "RunFiles",
           "read_checkpoint", "atomic_save", "checksum", "check_state", "append_record", "truncate_metrics"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# Files a run writes into OUT: --force removes exactly these, nothing else.
RUN_FILES = (CHECKPOINT, METRICS, "config.json", "samples.png", "w1.png", "traversal.png")
FORMAT = 2  # the trainer's checkpoint layout (Trainer.state_dict); 2 adds "checksum", 1 is still read
_NO_FALLBACK = "no earlier checkpoint of this run is kept: restore a copy of it, or start again with --force"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used. The message is one line: the file, what is wrong, what to do."""


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (the previous one is intact; the message says where)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_checkpoint(path: str | Path, fallback: str = _NO_FALLBACK) -> Any:
    """torch.load with ``weights_only=True`` (loading never runs code from the file), on the CPU:
    RNG states must stay CPU ByteTensors; ``load_state_dict`` moves the rest to the models' device.

    Args:
        path: the checkpoint file.
        fallback: what the error message advises (where the last good checkpoint is).

    Returns:
        The object stored there.

    Raises:
        CheckpointError: a missing, empty, truncated, damaged or foreign file, in one line.
    """
    path = Path(path)

    def fail(what: str):
        raise CheckpointError(f"checkpoint {path}: {what}; {fallback}")

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        fail("no such file")
    except OSError as exc:
        fail(f"cannot be read ({exc.strerror or _first_line(exc)})")
    if size == 0:
        fail("the file is empty (0 bytes: its write was cut short)")
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        fail(f"not a checkpoint: the file ({size} bytes) is not a torch.save archive")
    if not zipfile.is_zipfile(path):
        fail(f"the file is truncated ({size} bytes: cut short by a crash or a full disk)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        fail("it holds Python objects that a trainer checkpoint never contains (not loaded, nothing was run)")
    except Exception as exc:  # a damaged archive: a record torch cannot read
        fail(f"the file is damaged ({_first_line(exc)})")


def _no_space(exc: BaseException, directory: Path) -> bool:
    # torch.save reports a failed write as RuntimeError("[enforce fail at inline_container.cc...]")
    # raised while handling the file object's OSError: look along the chain, then at the disk.
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC or "No space left" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(directory).free < (1 << 20)
    except OSError:
        return False


def atomic_save(obj: Any, path: Path, last_good: str = "no checkpoint was written yet") -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename over it (``pygan._atomic``).

    Args:
        obj: what to save.
        path: the checkpoint file (replaced only when the new one is complete).
        last_good: where the last good checkpoint is, for the error message.

    Raises:
        CheckpointWriteError: the write failed (disk full, read-only, ...); ``path`` is unchanged.
    """
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except (OSError, RuntimeError) as exc:
        why = "no space left on the device" if _no_space(exc, path.parent) else "the write failed"
        raise CheckpointWriteError(f"checkpoint {path}: {why} ({_first_line(exc)}); nothing was replaced: "
                                   f"{last_good}") from exc


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    else:  # numbers, strings, None, bools: their repr is exact
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def checksum(state: dict) -> str:
    """SHA-256 (hex) of a checkpoint's payload: every field but ``"checksum"`` and ``"config"``,
    tensors by their dtype, shape and bytes, in an order that does not depend on the dicts'
    insertion order. (The configuration is left out: it names the run, e.g. its directory, and
    ``--resume`` compares it with the command line field by field.)"""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k not in ("checksum", "config")})
    return h.hexdigest()


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


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tensors(name: str, saved, model: torch.nn.Module) -> None:
    _expect(isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values()),
            f"{name}: expected a dict of tensors, got {type(saved).__name__}")
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    _expect(not missing and not extra, f"{name}: the checkpoint's tensors do not match the model's "
            f"(missing {missing[:3]}, unexpected {extra[:3]}): another architecture")
    for key, tensor in expected.items():
        _expect(saved[key].shape == tensor.shape, f"{name}: {key!r} has shape {list(saved[key].shape)} in the "
                f"checkpoint but {list(tensor.shape)} in the model: another architecture")


def _check_optimizer(name: str, saved, optimizer: torch.optim.Optimizer) -> None:
    _expect(isinstance(saved, dict) and isinstance(saved.get("state"), dict)
            and isinstance(saved.get("param_groups"), list), f"{name}: expected an optimizer state_dict")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in saved["param_groups"] for i in (group.get("params", []) if isinstance(group, dict) else [])]
    _expect(len(ids) == len(params), f"{name}: {len(ids)} parameters in the checkpoint, {len(params)} in the "
            "optimizer")
    by_id = dict(zip(ids, params))
    for pid, entry in saved["state"].items():
        _expect(pid in by_id and isinstance(entry, dict), f"{name}: state for an unknown parameter {pid!r}")
        for key, value in entry.items():  # per-parameter buffers (exp_avg, square_avg, ...) match it
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                _expect(value.shape == by_id[pid].shape, f"{name}: {key} of parameter {pid} has shape "
                        f"{list(value.shape)}, the parameter {list(by_id[pid].shape)}")


def check_state(state: Any, generator: torch.nn.Module, critic: torch.nn.Module, ema: torch.nn.Module | None,
                g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer) -> None:
    """Check a trainer checkpoint before anything is loaded from it.

    Checks: the format, the checksum (format 2), every field's presence and type, ``step`` and
    ``critic_steps`` >= 0, and every tensor's shape against the models and optimisers.

    Raises:
        ValueError: one line saying what is wrong.
    """
    _expect(isinstance(state, dict), f"not a pygan trainer checkpoint (it holds a {type(state).__name__})")
    _expect(state.get("format") in (1, FORMAT), f"not a pygan trainer checkpoint (format {state.get('format')!r})")
    if state["format"] >= 2:
        _expect(isinstance(state.get("checksum"), str), "the checkpoint has no checksum")
        _expect(checksum(state) == state["checksum"], "its checksum does not match its contents: the file is "
                "corrupted (a flipped bit, or a copy cut short)")
    for key in ("step", "critic_steps"):
        _expect(_is_count(state.get(key)), f"{key} must be an int >= 0, got {state.get(key)!r}")
    _check_tensors("generator", state.get("generator"), generator)
    _check_tensors("critic", state.get("critic"), critic)
    if ema is not None:
        _expect(state.get("ema") is not None, "the checkpoint has no EMA generator but this trainer uses ema > 0")
        _check_tensors("ema", state["ema"], ema)
    _check_optimizer("g_optimizer", state.get("g_optimizer"), g_optimizer)
    _check_optimizer("d_optimizer", state.get("d_optimizer"), d_optimizer)
    rng = state.get("rng")
    _expect(isinstance(rng, dict) and all(isinstance(rng.get(k), torch.Tensor) and rng[k].dtype == torch.uint8
                                          for k in ("trainer", "torch")),
            "rng: expected the trainer's and torch's generator states (uint8 tensors)")
    _expect(state.get("data") is None or isinstance(state["data"], dict), "data: expected a dict or None")
    _expect(state.get("config") is None or isinstance(state["config"], dict), "config: expected a dict or None")
    running = state.get("running")
    _expect(running is None or (isinstance(running, dict) and all(
        isinstance(running.get(k), (int, float)) and not isinstance(running.get(k), bool)
        for k in ("loss_d", "loss_g", "penalty", "n", "time"))), "running: expected the running sums")


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

    def save_checkpoint(self, state: dict, step: int) -> Path | None:
        """Write ``state`` to ``OUT/checkpoint.pt`` atomically (rank 0; None otherwise).

        Raises:
            CheckpointWriteError: the write failed; the previous checkpoint is intact.
        """
        if not self.writes:
            return None
        path = self.checkpoint
        atomic_save(state, path, self.last_checkpoint_text())
        self.last_good = (step, path)
        return path

    def fallback_text(self) -> str:
        """What a failed load advises: the last good checkpoint, or that there is none to fall back to."""
        return self.last_checkpoint_text() if self.last_good is not None else _NO_FALLBACK

    def read_checkpoint(self, path: str | Path | None = None) -> Any:
        """The contents of a checkpoint (default ``OUT/checkpoint.pt``); CheckpointError if unreadable."""
        return read_checkpoint(Path(path) if path is not None else self.checkpoint, self.fallback_text())

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
