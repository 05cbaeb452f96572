"""``python -m pygan train``: the command line only (one flag per :class:`TrainConfig` field).

The configuration and its validation are in :mod:`pygan.train.config`, how a run is assembled in
:mod:`pygan.train.assemble`, the loop in :mod:`pygan.train.trainer`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from pygan.train import distributed as dist_utils
from pygan.train.assemble import build
from pygan.train.config import FIELD_HELP, TrainConfig
from pygan.train.cpu import warn_if_busy
from pygan.train.trainer import TrainingDiverged

__all__ = ["parser", "main"]


def parser() -> argparse.ArgumentParser:
    """The ``python -m pygan train`` argument parser, one flag per :class:`TrainConfig` field."""
    p = argparse.ArgumentParser(
        prog="python -m pygan train",
        description="Train a GAN / WGAN / WGAN-GP on a toy distribution or your own data, with the exact "
                    "W1 (pygan.ot.emd2_points) logged to OUT/metrics.jsonl, pictures, checkpoints and "
                    "--resume. Data parallel: torchrun --nproc_per_node=N -m pygan train ... "
                    "Details: docs/train.md.")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            if default:
                p.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                               help="turn off: " + FIELD_HELP[f.name])
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=FIELD_HELP[f.name])
            continue
        kind = {"int | None": int, "float | None": float}.get(str(f.type), None)
        if kind is None:
            kind = type(default)
        # None or "": the help text says what the absence means
        shown = "" if default is None or default == "" else f" (default: {default})"
        p.add_argument(flag, dest=f.name, type=kind, default=default, help=FIELD_HELP[f.name] + shown)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan train``.

    Returns:
        The exit code: 0 done, 1 diverged, 2 bad input (with a one-line message), 130 interrupted.
    """
    args = parser().parse_args(argv)
    cfg = TrainConfig(**vars(args))
    try:
        trainer = build(cfg)
    except (ValueError, TypeError) as exc:
        print(f"pygan train: error: {exc}", file=sys.stderr)
        return 2
    if trainer.rank == 0 and trainer.device.type == "cpu":
        warn_if_busy(cfg.threads)  # measured while this process sleeps: what is busy is someone else
    try:
        status = trainer.fit(trainer.config["steps"])
    except (TrainingDiverged, OSError) as exc:  # OSError: a checkpoint that could not be written
        print(f"pygan train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the last checkpoint is kept)
        print(f"pygan train: stopped at step {trainer.step} without saving; "
              f"{trainer.last_checkpoint_text()}", file=sys.stderr)
        return 130
    finally:
        dist_utils.shutdown()
    if trainer.rank == 0 and trainer.history:
        last = trainer.history[-1]
        if last.get("w1") is not None:
            at = "" if last["step"] == trainer.step else f" (last evaluated at step {last['step']})"
            space = " on flattened pixels" if last.get("w1_space") == "flattened pixels" else ""
            print(f"pygan train: {status} at step {trainer.step}{at}: exact W1{space} {last['w1']:.4f} "
                  f"({last['w1_samples']} vs {last['w1_samples']} samples), critic estimate "
                  f"{last['critic_estimate']:.4f}; results in {cfg.out}/", file=sys.stderr)
    return 130 if status == "interrupted" else 0
