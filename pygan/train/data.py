"""Training data: the toy distributions of the WGAN-GP toy code, and the user's own files.

Every source is a :class:`Sampler`: an infinite iterator of real batches that owns its
``torch.Generator`` (seeded, saved in checkpoints), so a run and its resumption draw the same
batches. Under data parallelism every rank draws the same *global* batch and keeps its own slice
(``rank * batch : (rank + 1) * batch``): N processes with batch B see exactly what one process with
batch N·B sees, which is what makes the data-parallel run equal to the single-process one.

Toy data (the constants of the WGAN-GP authors' ``gan_toy.py``), generated from the
seed, nothing downloaded:

* ``8gaussians``: centres at radius 2 on the 8 compass directions, σ = 0.02, all divided by 1.414;
* ``25gaussians``: centres on the grid {-4, -2, 0, 2, 4}², σ = 0.05, all divided by 2.828;
* ``swissroll``: the (x, z) coordinates of scikit-learn's ``make_swiss_roll(noise=0.25)``,
  divided by 7.5 (the same formula, written here in torch so scikit-learn is not needed).

Files (``.npy`` loaded with ``allow_pickle=False``, ``.pt`` with ``weights_only=True``: loading never
runs code from the file): ``N x d`` points (any finite floats), or ``N x C x H x W`` images with
C in {1, 3}, square, side divisible by 4 and >= 8, with values in [-1, 1] (used as they are) or in
[0, 255] (uint8, or floats above 1: mapped to [-1, 1] by x / 127.5 - 1).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["TOY_DATASETS", "TOY_CLASSES", "toy_centres", "prepare_samples", "digits8", "Sampler", "ToySampler",
           "TensorSampler", "load_data_file", "toy_sample", "make_sampler"]

TOY_DATASETS = ("8gaussians", "25gaussians", "swissroll")
# The number of classes of each toy set (toy_sample(..., return_labels=True)).
TOY_CLASSES = {"8gaussians": 8, "25gaussians": 25, "swissroll": 3}


def toy_sample(name: str, n: int, *args, generator: torch.Generator | None = None,
               return_labels: bool = False):
    """Draw n points [n, 2] (float32, on the generator's device) from a toy distribution.

    Args:
        name: one of :data:`TOY_DATASETS`.
        n: number of points.
        generator: the torch.Generator to draw from, keyword-only (by position: deprecated, a
            DeprecationWarning, for one release).
        return_labels: also return each point's class (:data:`TOY_CLASSES`): the index of its
            Gaussian for 8gaussians / 25gaussians, and for swissroll the half-turn of the roll the
            point was drawn on (0, 1 or 2: its angle t in [1.5π, 4.5π) cut into three ranges of π).
            The points drawn are the same with or without labels.

    Returns:
        A float32 tensor of shape [n, 2]; with ``return_labels``, the pair (points, int64 labels [n]).
    """
    if args:
        from pygan import _validate

        generator = _validate.deprecated_positional(args, {"generator": None}, "toy_sample",
                                                    {"generator": generator})["generator"]
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"toy_sample: generator: expected a torch.Generator (keyword-only), "
                        f"got {type(generator).__name__}")
    pts, labels = _toy(name, n, generator)
    return (pts, labels) if return_labels else pts


def _toy(name: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    dev = generator.device
    if name == "8gaussians":
        s = 1 / math.sqrt(2)
        centres = torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)],
                               dtype=torch.float32, device=dev) * 2
        idx = torch.randint(8, (n,), generator=generator, device=dev)
        pts = torch.randn(n, 2, generator=generator, device=dev) * 0.02 + centres[idx]
        return pts / 1.414, idx
    if name == "25gaussians":
        grid = torch.arange(-2, 3, dtype=torch.float32, device=dev) * 2
        centres = torch.cartesian_prod(grid, grid)
        idx = torch.randint(25, (n,), generator=generator, device=dev)
        pts = torch.randn(n, 2, generator=generator, device=dev) * 0.05 + centres[idx]
        return pts / 2.828, idx
    if name == "swissroll":
        # sklearn.datasets.make_swiss_roll: t = 1.5π(1 + 2u), (x, y, z) = (t cos t, 21 v, t sin t) + 0.25·noise
        u = torch.rand(n, generator=generator, device=dev)
        t = 1.5 * math.pi * (1 + 2 * u)
        noise = torch.randn(n, 2, generator=generator, device=dev) * 0.25
        pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) + noise
        # t spans 3π: three half-turns, t in [1.5π + kπ, 2.5π + kπ) is class k (u in [k/3, (k+1)/3)).
        return pts / 7.5, (u * 3).long().clamp_(0, 2)
    raise ValueError(f"unknown toy dataset {name!r}; expected one of {', '.join(TOY_DATASETS)}")


def toy_centres(name: str) -> torch.Tensor | None:
    """The class centres [K, 2] of a toy set in its output coordinates (None for swissroll)."""
    if name == "8gaussians":
        s = 1 / math.sqrt(2)
        return torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]) * 2 / 1.414
    if name == "25gaussians":
        grid = torch.arange(-2, 3, dtype=torch.float32) * 2
        return torch.cartesian_prod(grid, grid) / 2.828
    return None


def _check_npy_magic(path: Path) -> None:
    # np.load takes a file without numpy's header for a pickle, and then advises allow_pickle=True.
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise ValueError(f"data: could not read {str(path)!r}: {exc.strerror or exc}") from exc
    if head.startswith(b"\x93NUMPY"):
        return
    try:
        text = all(c.isprintable() or c in "\r\n\t" for c in head.decode("utf-8"))
    except UnicodeDecodeError:
        text = False
    what = "empty" if not head else "a text file" if text else "not in numpy's .npy format"
    raise ValueError(f"data: {str(path)!r} is {what} (a .npy file starts with numpy's header); save an "
                     "array with numpy.save(path, array), e.g. numpy.save(path, numpy.loadtxt(text_file))")


def load_data_file(path: str | Path) -> torch.Tensor:
    """Load and validate a user's data file into a float32 tensor in the training range.

    Args:
        path: a ``.npy`` or ``.pt`` file holding one array/tensor: N x d points or N x C x H x W images.

    Returns:
        float32 [N, d] points as stored, or [N, C, H, W] images mapped to [-1, 1].

    Raises:
        ValueError / TypeError: a missing file, another extension, a pickled object, a wrong shape or
            dtype, non-finite values, or image values outside [-1, 1] and [0, 255].
    """
    path = Path(path)
    if path.suffix not in (".npy", ".pt"):
        raise ValueError(f"data: {str(path)!r} is neither a dataset name ({', '.join(TOY_DATASETS)}) "
                         "nor a .npy / .pt file")
    if not path.is_file():
        raise ValueError(f"data: file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        _check_npy_magic(path)
    try:
        if path.suffix == ".npy":
            loaded = np.load(path, allow_pickle=False)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's weights_only refusal: its advice to drop it is not ours
        raise ValueError(f"data: {str(path)!r} holds pickled Python objects, which pygan never loads "
                         "(weights_only=True); save a plain tensor with torch.save(tensor, path)") from exc
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's advice names an option this loader never offers
            raise ValueError(f"data: {str(path)!r} holds Python objects (an object array), which pygan never "
                             "loads; save a numeric array with numpy.save(path, array)") from exc
        raise ValueError(f"data: could not load {str(path)!r} safely: {exc}") from exc
    except Exception as exc:  # unreadable or truncated: say which
        raise ValueError(f"data: could not load {str(path)!r} safely: {exc}") from exc
    if path.suffix == ".npy":
        if not isinstance(loaded, np.ndarray) or loaded.dtype.kind not in "fiub":
            what = loaded.dtype if isinstance(loaded, np.ndarray) else type(loaded).__name__
            raise TypeError(f"data: {path.name} holds {what}; expected a numeric array")
        x = torch.from_numpy(np.ascontiguousarray(loaded))
    else:
        if not isinstance(loaded, torch.Tensor):
            raise TypeError(f"data: {path.name} holds a {type(loaded).__name__}; expected a single tensor "
                            "(N x d points or N x C x H x W images)")
        x = loaded
    return prepare_samples(x, path.name)


def prepare_samples(x: torch.Tensor, name: str) -> torch.Tensor:
    """Validate loaded samples and map images to [-1, 1] (the checks of :func:`load_data_file`).

    Args:
        x: N x d points or N x C x H x W images, any real dtype.
        name: the file's name, for the messages.

    Returns:
        float32, contiguous: points as given, images mapped to [-1, 1].
    """
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"data: {name} has dtype {x.dtype}; expected real numbers")
    if x.dim() not in (2, 4):
        raise ValueError(f"data: {name} has shape {list(x.shape)}; expected N x d points or "
                         "N x C x H x W images")
    if x.shape[0] < 10 or x[0].numel() == 0:
        raise ValueError(f"data: {name} has shape {list(x.shape)}; expected at least 10 non-empty samples")
    is_uint8 = x.dtype == torch.uint8
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"data: {name} contains NaN or infinite values")
    if x.dim() == 4:
        _, c, h, w = x.shape
        if c not in (1, 3) or h != w or h % 4 or h < 8:
            raise ValueError(f"data: images of shape {list(x.shape)[1:]}; expected C x H x W with C in "
                             "{1, 3}, H == W, and the side divisible by 4 and >= 8")
        lo, hi = float(x.min()), float(x.max())
        if is_uint8 or (hi > 1 and lo >= 0 and hi <= 255):
            x = x / 127.5 - 1
        elif lo < -1 or hi > 1:
            raise ValueError(f"data: image values span [{lo:g}, {hi:g}]; expected [-1, 1] or [0, 255]")
    return x.contiguous()


def digits8() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits at their own 8x8 (``--data digits``): (images [1797, 1, 8, 8] in
    [-1, 1] (v / 8 - 1), labels [1797] int64 in 0..9).

    Raises:
        ValueError: naming ``--data digits`` when scikit-learn (an optional dependency) is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("--data digits needs scikit-learn, an optional dependency (the digits ship with it, "
                         "no download): pip install scikit-learn") from None
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    return x.contiguous(), torch.as_tensor(bunch.target, dtype=torch.int64)


class Sampler:
    """An infinite iterator of real batches, with the rank slicing and state of this module's docstring.

    Subclasses implement :meth:`draw` (the global batch). ``sample_shape`` is one sample's shape and
    ``kind`` is "points" or "images".
    """

    kind = "points"

    def __init__(self, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 rank: int = 0, world_size: int = 1):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def draw(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        full = self.draw(self.batch_size * self.world_size)
        return full[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class ToySampler(Sampler):
    """Batches from a toy distribution (:func:`toy_sample`)."""

    def __init__(self, name: str, batch_size: int, seed: int, device="cpu", rank: int = 0, world_size: int = 1):
        if name not in TOY_DATASETS:
            raise ValueError(f"unknown toy dataset {name!r}; expected one of {', '.join(TOY_DATASETS)}")
        super().__init__(batch_size, seed, device, rank, world_size)
        self.name = name
        self.sample_shape = (2,)

    def draw(self, n: int) -> torch.Tensor:
        return toy_sample(self.name, n, generator=self.generator)


class TensorSampler(Sampler):
    """Batches drawn uniformly with replacement from a tensor of samples (kept on ``device``)."""

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int, device="cpu", rank: int = 0,
                 world_size: int = 1):
        super().__init__(batch_size, seed, device, rank, world_size)
        self.data = data.to(self.device)
        self.sample_shape = tuple(data.shape[1:])
        self.kind = "images" if data.dim() == 4 else "points"

    def draw(self, n: int) -> torch.Tensor:
        idx = torch.randint(self.data.shape[0], (n,), generator=self.generator, device=self.device)
        return self.data[idx]


def make_sampler(data: str, batch_size: int, seed: int, device, eval_samples: int, rank: int = 0,
                 world_size: int = 1) -> tuple[Sampler, torch.Tensor]:
    """The training sampler and the held-out real samples for evaluation.

    The sampler's stream is seeded with seed + 1_000_033 and the held-out set's with seed + 1_000_003,
    so neither shares numbers with the trainer's own generator (seeded with ``seed``): the real data
    and the noise z must be independent. For a toy dataset the held-out set is ``eval_samples`` fresh
    points; for a file, a seeded random ``min(eval_samples, N // 5)`` rows are held out and never
    trained on.

    Returns:
        (sampler, held_out) with held_out on ``device``.
    """
    if data in TOY_DATASETS:
        held = toy_sample(data, eval_samples, generator=torch.Generator().manual_seed(seed + 1_000_003))
        return ToySampler(data, batch_size, seed + 1_000_033, device, rank, world_size), held.to(device)
    if data == "digits":  # labelled data, here without its labels
        x, _ = digits8()
    elif data.endswith(".npz"):
        from pygan.train.paired import load_labelled_file

        try:
            x = prepare_samples(load_labelled_file(data)[0], Path(data).name)
        except ValueError as exc:
            raise ValueError(f"--data: {exc}") from None
    else:
        x = load_data_file(data)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + 1_000_003))
    n_held = max(1, min(eval_samples, x.shape[0] // 5))
    held, train = x[perm[:n_held]], x[perm[n_held:]]
    return TensorSampler(train, batch_size, seed + 1_000_033, device, rank, world_size), held.to(device)
