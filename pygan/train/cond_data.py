"""Data for conditional runs: labelled and paired samplers, and where labels and pairs come from.

* Labels: the toy sets' (:data:`pygan.train.data.TOY_CLASSES`: the Gaussian's index, swissroll's
  half-turn), ``digits`` (scikit-learn's bundled 1797 8x8 handwritten digits, 0-9), an ``.npz``
  with ``x`` and ``y``, or any data file with ``--labels FILE.npy`` (N integer labels).
* Pairs (pix2pix): ``outlines`` (:func:`pygan.train.paired.outlines`, generated here) or an
  ``.npz`` with ``a`` (inputs) and ``b`` (targets).

The samplers follow :class:`pygan.train.data.Sampler`: the *global* batch is drawn from the
sampler's own seeded generator and each rank keeps its slice, for both parts of a batch.
Held-out samples are split off as for plain data files (a seeded ``min(eval_samples, N // 5)``
rows, never trained on).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from pygan.train.data import TOY_CLASSES, TOY_DATASETS, Sampler, digits8, load_data_file, prepare_samples, toy_sample

__all__ = ["LABELLED_DATASETS", "PAIRED_DATA", "LabelledToySampler", "PairSampler", "load_labels",
           "labelled_data", "paired_data", "split_held_out"]

LABELLED_DATASETS = ("digits",)  # named image sets with labels (beside the toy sets)
PAIRED_DATA = ("outlines",)       # named paired sets (pix2pix)
_OUTLINES_N = 6000                # pairs generated for `outlines` (held-out ones included)


class LabelledToySampler(Sampler):
    """Batches (points [B, 2], labels [B]) of a toy set: the same points as :class:`~pygan.train.data.ToySampler`."""

    def __init__(self, name: str, batch_size: int, seed: int, device="cpu", rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, seed, device, rank, world_size)
        self.name, self.sample_shape, self.num_classes = name, (2,), TOY_CLASSES[name]

    def draw(self, n: int):
        return toy_sample(self.name, n, generator=self.generator, return_labels=True)

    def __next__(self):
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return tuple(t[rows] for t in self.draw(self.batch_size * self.world_size))


class PairSampler(Sampler):
    """Batches (first[idx], second[idx]) drawn uniformly with replacement: (x, y) or (a, b) pairs."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor, batch_size: int, seed: int, device="cpu",
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, seed, device, rank, world_size)
        self.first, self.second = first.to(self.device), second.to(self.device)
        self.sample_shape = tuple(first.shape[1:])
        self.kind = "images" if first.dim() == 4 else "points"

    def draw(self, n: int):
        idx = torch.randint(self.first.shape[0], (n,), generator=self.generator, device=self.device)
        return self.first[idx], self.second[idx]

    def __next__(self):
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return tuple(t[rows] for t in self.draw(self.batch_size * self.world_size))


def load_labels(path: str, n: int) -> torch.Tensor:
    """``--labels FILE.npy``: N integer labels (one per sample of --data), read with allow_pickle=False."""
    from pygan.train.conditional import check_labels

    p = Path(path)
    if p.suffix != ".npy":
        raise ValueError(f"--labels {path!r}: expected a .npy file of N integer labels")
    if not p.is_file():
        raise ValueError(f"--labels {path!r}: no such file")
    try:
        y = np.load(p, allow_pickle=False)
    except Exception as exc:  # a pickle, a truncated or foreign file: say which file
        raise ValueError(f"--labels {path!r}: cannot be read as a .npy array ({str(exc).splitlines()[0]})") from None
    if not isinstance(y, np.ndarray):
        raise ValueError(f"--labels {path!r}: expected one array of N integer labels")
    try:
        return check_labels(y, None, n, where=f"--labels {path!r}", name="labels")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _check_classes(y: torch.Tensor, where: str) -> int:
    k = int(y.max()) + 1
    missing = sorted(set(range(k)) - set(torch.unique(y).tolist()))
    if missing:
        raise ValueError(f"{where}: labels must cover 0..{k - 1} (classes 0..max), but class {missing[0]} has no "
                         "sample")
    return k


def split_held_out(n: int, eval_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out rows, training rows) of N samples: a seeded min(eval_samples, N // 5) held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1_000_003))
    n_held = max(1, min(eval_samples, n // 5))
    return perm[:n_held], perm[n_held:]


def labelled_data(data: str, labels: str, seed: int, eval_samples: int):
    """The labelled samples of a conditional run.

    Args:
        data: a toy set, ``digits``, an ``.npz`` with ``x`` and ``y``, or a ``.npy`` / ``.pt`` file
            (then ``labels`` is required).
        labels: the ``--labels`` file ("" for none).
        seed, eval_samples: the run's (held-out split and toy draws).

    Returns:
        ``(train, held, held_labels, num_classes)`` where ``train`` is ``("toy", name)`` for toy
        sets and ``(x, y)`` tensors otherwise.

    Raises:
        ValueError: data without labels, labels of the wrong length, non-integer or negative,
            a class without samples; naming the option or file.
    """
    if data in TOY_DATASETS:
        if labels:
            raise ValueError(f"--labels: --data {data} has its own labels (the toy set's classes); leave --labels out")
        held, held_y = toy_sample(data, eval_samples, generator=torch.Generator().manual_seed(seed + 1_000_003),
                                  return_labels=True)
        return ("toy", data), held, held_y, TOY_CLASSES[data]
    if data in PAIRED_DATA:
        raise ValueError(f"--data {data} is a paired set (for --pix2pix), not labelled data")
    if data == "digits":
        if labels:
            raise ValueError("--labels: --data digits has its own labels (0-9); leave --labels out")
        x, y = digits8()
    elif data.endswith(".npz"):
        if labels:
            raise ValueError(f"--labels: --data {data} is an .npz: put the labels in it as array 'y'")
        from pygan.train.paired import load_labelled_file

        try:
            x, y = load_labelled_file(data)
        except ValueError as exc:
            raise ValueError(f"--data: {exc}") from None
        x = prepare_samples(x, Path(data).name)
    else:
        if not labels:
            raise ValueError(f"--conditional: --data {data} has no labels; pass --labels FILE.npy (N integer labels) "
                             "or an .npz with arrays x and y")
        x = load_data_file(data)
        y = load_labels(labels, x.shape[0])
    k = _check_classes(y, f"--labels {labels!r}" if labels else f"--data {data!r}")
    held_rows, train_rows = split_held_out(x.shape[0], eval_samples, seed)
    return (x[train_rows], y[train_rows]), x[held_rows], y[held_rows], k


@functools.lru_cache(maxsize=2)
def _outlines(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # A few seconds to draw; a process that builds several runs (tests, a resumed run) draws it once.
    # Callers index it (a copy), so the cached tensors are never changed.
    from pygan.train.paired import outlines

    a, b, _ = outlines(_OUTLINES_N, side=32, seed=seed)
    return a, b


def paired_data(data: str, seed: int, eval_samples: int, multiple: int):
    """The (a, b) pairs of a pix2pix run: ``outlines`` or an ``.npz`` with ``a`` and ``b``.

    Args:
        multiple: the image side must be divisible by it (the U-Net's 2^depth).

    Returns:
        ``(a_train, b_train, a_held, b_held)``.
    """
    if data in PAIRED_DATA:
        a, b = _outlines(seed + 1_000_019)
    elif data.endswith(".npz"):
        from pygan.train.paired import load_paired_file

        try:
            a, b = load_paired_file(data)
        except ValueError as exc:
            raise ValueError(f"--pix2pix: --data {exc}") from None
        name = Path(data).name
        for key, t in (("a", a), ("b", b)):
            if t.shape[1] not in (1, 3):
                raise ValueError(f"--pix2pix: --data {data!r}: array {key!r} has {t.shape[1]} channels; "
                                 "expected 1 or 3")
        a, b = prepare_samples(a, name), prepare_samples(b, name)
    else:
        raise ValueError(f"--pix2pix: --data {data!r} is not paired data; expected {', '.join(PAIRED_DATA)} or an "
                         ".npz with arrays a (inputs) and b (targets), N x C x H x W")
    side = a.shape[2]
    if side % multiple or a.shape[3] % multiple:
        raise ValueError(f"--pix2pix: --data {data!r}: images of {a.shape[2]}x{a.shape[3]}; the U-Net needs sides "
                         f"divisible by {multiple}")
    held_rows, train_rows = split_held_out(a.shape[0], eval_samples, seed)
    return a[train_rows], b[train_rows], a[held_rows], b[held_rows]
