"""What the experiments share: the output directory rules, atomic strict-JSON and PNG writes, figures.

Every experiment writes a fixed set of files into its ``--out`` directory. A directory already holding
any of them is refused unless ``force`` is set, and then exactly those files (nothing else) are
removed before the run starts, so a crash never leaves old and new results mixed. Files are written
to a temporary name in the same directory and renamed over the target (``os.replace``): a reader
never sees half a file. ``report.json`` is strict JSON: NaN and ±inf become ``null``.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch

from pygan._atomic import atomic_write
from pygan._device import parse_device
from pygan.train import plots as train_plots
from pygan.train.plots import available as plots_available
from pygan.train.plots import save_figure

__all__ = ["ExperimentError", "flag", "options_checked", "prepare_out", "write_json", "to_jsonable", "figure", "save_figure",
           "plots_available", "resolve_device"]


class ExperimentError(ValueError):
    """Bad input to an experiment (an unusable --out, a bad option value); the CLI exits with code 2."""


def flag(name: str) -> str:
    """A config field's command-line flag: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@contextlib.contextmanager
def options_checked():
    """Run a config's checks (the shared ones of :mod:`pygan._validate`, named by their flags) and
    turn their ValueError / TypeError into :class:`ExperimentError`, which the CLI reports with exit
    code 2: ``with options_checked(): check.integer(cfg.steps, "--steps", low=1)``."""
    try:
        yield
    except ExperimentError:
        raise
    except (TypeError, ValueError) as exc:
        raise ExperimentError(str(exc)) from None


def prepare_out(out: str | Path, files: tuple[str, ...], force: bool) -> Path:
    """Create ``out`` (if needed) and make sure it holds no previous result.

    Args:
        out: the output directory.
        files: the names the experiment writes there.
        force: remove those files (only those) instead of refusing.

    Returns:
        The directory as a Path.

    Raises:
        ExperimentError: ``out`` is a file, or holds a previous result and ``force`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {str(out)!r} exists and is not a directory")
    existing = [name for name in files if (out / name).exists()]
    if existing and not force:
        raise ExperimentError(f"--out {str(out)!r} already holds a result ({', '.join(existing)}); "
                              "choose another --out, or pass --force to overwrite it "
                              "(it removes only the files this experiment writes)")
    out.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (out / name).unlink()
    return out


def to_jsonable(value):
    """Nested dicts / lists / tuples / numbers / tensors -> plain JSON values, non-finite floats -> None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as strict JSON (no NaN / Infinity tokens), atomically."""
    text = json.dumps(to_jsonable(obj), indent=1, allow_nan=False)
    atomic_write(path, lambda f: f.write(text + "\n"), binary=False)


def figure(width: float, height: float, dpi: int = 90):
    """A matplotlib Figure on the Agg canvas (the trainer's helper, at the experiments' dpi)."""
    return train_plots.figure(width, height, dpi)


def resolve_device(device: str) -> torch.device:
    """``--device`` as the trainer parses it (:func:`pygan._device.parse_device`), raising ExperimentError."""
    return parse_device(device, ExperimentError)
