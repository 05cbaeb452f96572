"""The image sets of ``python -m pygan train --data shapes|digits`` as the trainer's sampler.

Its own module, so that :mod:`pygan.train.images` (the image sets themselves) imports nothing of the
trainer's data module (which reads paired files, which draw :func:`~pygan.train.images.shapes`).
"""

from __future__ import annotations

import torch

from pygan import _validate as _v
from pygan.train.data import TensorSampler
from pygan.train.images import IMAGE_DATASETS, digits, shapes

__all__ = ["make_image_sampler"]


def make_image_sampler(name: str, batch_size: int, seed: int, device, eval_samples: int, rank: int = 0,
                       world_size: int = 1, side: int = 32):
    """``pygan train --data shapes|digits``: the training sampler and the held-out images.

    "shapes": 10000 training images drawn from ``seed + 1_000_033`` and ``eval_samples`` held-out
    ones from ``seed + 1_000_003`` (fresh images, as for the toy point sets). "digits": a seeded
    random ``min(eval_samples, 1797 // 5)`` of the 1797 images are held out and never trained on (as
    for a user's file). Grey (1 channel) images of side ``side``; the labels are not used.

    Returns:
        (sampler, held_out) as :func:`pygan.train.data.make_sampler` returns them.
    """
    _v.choice(name, "--data", IMAGE_DATASETS)
    if name == "shapes":
        train, _ = shapes(10000, side=side, seed=seed + 1_000_033)
        held, _ = shapes(eval_samples, side=side, seed=seed + 1_000_003)
    else:
        try:
            x, _ = digits(side=side)
        except ImportError:  # the same one-line error as the conditional runs' digits (data.digits8)
            raise ValueError("--data digits needs scikit-learn, an optional dependency (the digits ship with "
                             "it, no download): pip install scikit-learn") from None
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + 1_000_003))
        n_held = max(1, min(eval_samples, x.shape[0] // 5))
        held, train = x[perm[:n_held]], x[perm[n_held:]]
    return TensorSampler(train, batch_size, seed + 1_000_033, device, rank, world_size), held.to(device)
