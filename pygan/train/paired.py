"""Paired and labelled data for conditional models: a procedural paired toy set, and `.npz` loaders.

* :func:`outlines`: pairs (a, b) where b is an image of :func:`pygan.train.images.shapes` (a filled
  disc, square or triangle) and a is its outline -- a pix2pix task ("fill the shape") that needs no
  download. The outline is the shape's coverage minus its 3x3 morphological erosion
  (``cov - (-maxpool3x3(-cov))``), so it is about one pixel wide and keeps the anti-aliasing; the
  colour of b stays in a (the outline is drawn in it).
* :func:`load_paired_file`: a user's ``.npz`` with arrays ``a`` (inputs) and ``b`` (targets), both
  N x C x H x W with the same N, H, W.
* :func:`load_labelled_file`: a user's ``.npz`` with ``x`` (samples, N x ...) and ``y`` (N integer
  class labels in [0, K)).

Files are read with ``np.load(allow_pickle=False)``: a data file never runs code.
"""

from __future__ import annotations

import numbers
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pygan.train.conditional import check_labels
from pygan.train.images import shapes

__all__ = ["PAIRED_DATASETS", "outlines", "paired_dataset", "load_paired_file", "load_labelled_file"]

PAIRED_DATASETS = ("outlines",)


def outlines(n: int, side: int = 32, channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n pairs (outline, filled shape), deterministic in ``seed`` (drawn on the CPU).

    Args:
        n: the number of pairs (>= 0).
        side: 32 or 64. channels: 1 or 3.
        seed: the seed of :func:`pygan.train.images.shapes`.

    Returns:
        (a [n, C, side, side], b [n, C, side, side], labels [n]): float32 images in [-1, 1] (a is the
        outline on black, b the filled shape on black) and the shape classes as int64.
    """
    b, labels = shapes(n, side=side, channels=channels, seed=seed)
    coverage = (b + 1.0) / 2.0  # colour · coverage in [0, 1], 0 on the background
    eroded = -F.max_pool2d(-coverage, kernel_size=3, stride=1, padding=1)
    a = -1.0 + 2.0 * (coverage - eroded).clamp_(0.0, 1.0)
    return a, b, labels


def paired_dataset(name: str, n: int = 10000, *, side: int = 32, channels: int = 1,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) of the named procedural paired set (one of :data:`PAIRED_DATASETS`)."""
    if name not in PAIRED_DATASETS:
        raise ValueError(f"paired_dataset: name: expected one of {', '.join(PAIRED_DATASETS)}, got {name!r}")
    a, b, _ = outlines(n, side=side, channels=channels, seed=seed)
    return a, b


def _open_npz(path, where: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path: expected a path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{where}: {path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{where}: {path}: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: {path}: expected an .npz archive with arrays {', '.join(keys)}, "
                         f"got a single array")
    with data:
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise ValueError(f"{where}: {path}: expected arrays {', '.join(keys)}, missing {', '.join(missing)} "
                             f"(found: {', '.join(data.files) or 'none'})")
        try:
            return {k: data[k] for k in keys}
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            # e.g. an object array, which np.load refuses to unpickle: name the file
            raise ValueError(f"{where}: {path}: cannot read ({exc})") from None


def _images(arr: np.ndarray, key: str, path, where: str) -> torch.Tensor:
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ValueError(f"{where}: {path}: array {key!r}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise ValueError(f"{where}: {path}: array {key!r}: expected images N x C x H x W, got shape {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: {path}: array {key!r}: expected at least one image, got 0")
    out = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not torch.isfinite(out).all():
        raise ValueError(f"{where}: {path}: array {key!r}: contains NaN or infinity")
    return out


def load_paired_file(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read pix2pix pairs from ``path`` (.npz with ``a`` = inputs and ``b`` = targets).

    Returns:
        (a, b) as float32 tensors [N, C_a, H, W] and [N, C_b, H, W] (channels may differ).

    Raises:
        ValueError naming the file: missing arrays, not 4-D, empty, non-numeric, NaN/inf, or
        mismatched N, H or W.
    """
    where = "load_paired_file"
    data = _open_npz(path, where, ("a", "b"))
    a, b = _images(data["a"], "a", path, where), _images(data["b"], "b", path, where)
    if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        raise ValueError(f"{where}: {path}: arrays 'a' and 'b': expected pairs with the same N, H and W, "
                         f"got shapes {list(a.shape)} and {list(b.shape)}")
    return a, b


def load_labelled_file(path, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read labelled samples from ``path`` (.npz with ``x`` = samples N x ... and ``y`` = N labels).

    Args:
        path: the file.
        num_classes: if given, labels must lie in [0, num_classes); else in [0, max + 1).

    Returns:
        (x float32 [N, ...], y int64 [N]).

    Raises:
        ValueError naming the file: missing arrays, non-numeric or non-finite x, labels that are not
        integers, of the wrong length, or out of range.
    """
    where = "load_labelled_file"
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
                                    or num_classes < 1):
        raise ValueError(f"{where}: num_classes: expected an int >= 1, got {num_classes!r}")
    data = _open_npz(path, where, ("x", "y"))
    x, y = data["x"], data["y"]
    if x.dtype.kind not in "fiu" or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{where}: {path}: array 'x': expected N >= 1 real samples, got dtype {x.dtype} "
                         f"and shape {list(x.shape)}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not torch.isfinite(xt).all():
        raise ValueError(f"{where}: {path}: array 'x': contains NaN or infinity")
    try:
        yt = check_labels(y, num_classes, xt.shape[0], name="array 'y'", where=f"{where}: {path}")
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return xt, yt
