"""Loss terms of Salimans et al. 2016: :func:`feature_matching_loss` (section 3.1) and
:func:`label_smoothing_loss` (one-sided label smoothing, section 3.4)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pygan import _validate as _v
from pygan.nn import _dist

__all__ = ["feature_matching_loss", "label_smoothing_loss"]


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor, *,
                          global_batch: bool = True) -> torch.Tensor:
    r"""Feature matching (Salimans et al. 2016, section 3.1): :math:`\lVert E f(x) - E f(G(z)) \rVert_2^2`.

    The expectations are means over the batch (dimension 0); the norm is the squared L2 norm over all
    remaining dimensions (summed, not averaged: the authors' code averages over the features, which
    only divides by their number). f is an intermediate layer of the discriminator, e.g.
    :meth:`pygan.train.dcgan.DCGANDiscriminator.features`. The generator minimises this instead of
    its usual loss. Nothing is detached: compute ``real_features`` under ``torch.no_grad()`` (or
    detach them) when only the generator should receive gradients.

    Under data parallelism with ``global_batch=True`` (the default) both means run over the global
    batch (every process's rows, any local sizes) and every process returns the same value; with
    gradients averaged across processes, the update equals one process's.

    Args:
        real_features: [n, ...] features of real samples (n >= 1).
        fake_features: [m, ...] features of generated samples (m >= 1), same trailing shape.
        global_batch: under torch.distributed with more than one process, average over all processes.

    Returns:
        A 0-d tensor.
    """
    _v.tensor(real_features, "real_features", "feature_matching_loss", min_dim=1)
    _v.tensor(fake_features, "fake_features", "feature_matching_loss", min_dim=1)
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(f"real_features and fake_features: expected the same per-sample shape, got "
                         f"{list(real_features.shape)} and {list(fake_features.shape)}")
    if real_features.dtype != fake_features.dtype:
        raise TypeError(f"real_features and fake_features: expected the same dtype, got "
                        f"{real_features.dtype} and {fake_features.dtype}")
    means = []
    for name, f in (("real_features", real_features), ("fake_features", fake_features)):
        f = f.flatten(1) if f.dim() > 1 else f.unsqueeze(1)
        total, count = f.sum(0), f.shape[0]
        if global_batch and _dist.world_size() > 1:
            total = _dist.AllReduceSum.apply(total)
            count_t = torch.tensor([count], dtype=torch.long, device=f.device)
            dist.all_reduce(count_t)
            count = int(count_t)
        if count == 0:
            raise ValueError(f"{name}: expected at least one sample, got shape {list(f.shape)}")
        means.append(total / count)
    return (means[0] - means[1]).square().sum()


def label_smoothing_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 0.9) -> torch.Tensor:
    r"""The discriminator's BCE loss with one-sided label smoothing (Salimans et al. 2016, section 3.4).

    Real samples get the target s = ``real_target`` instead of 1; generated samples keep 0 (smoothing
    them too would reward D for ranking generated samples as partly real where the data is absent,
    the paper's reason for one-sided smoothing). With logits :math:`\ell` and ``D = sigmoid(ℓ)``:

    .. math::
        L_D = \operatorname{mean}_i\left[s\,\operatorname{softplus}(-\ell_i^{real})
              + (1-s)\,\operatorname{softplus}(\ell_i^{real})\right]
              + \operatorname{mean}_j \operatorname{softplus}(\ell_j^{fake}),

    i.e. :math:`-[s\log D + (1-s)\log(1-D)]` on real and :math:`-\log(1-D)` on generated samples,
    written with softplus so it is stable for large logits. s = 1 is the plain GAN discriminator loss.
    The generator's loss is unchanged.

    Args:
        d_real: [n] or [n, 1] logits of real samples (n >= 1).
        d_fake: [m] or [m, 1] logits of generated samples (m >= 1).
        real_target: s in (0, 1].

    Returns:
        A 0-d tensor.
    """
    s = _v.number(real_target, "real_target", "label_smoothing_loss", low=0.0, high=1.0, low_open=True)
    scores = []
    for name, d in (("d_real", d_real), ("d_fake", d_fake)):
        _v.tensor(d, name, "label_smoothing_loss", min_dim=1)
        if d.dim() > 2 or (d.dim() == 2 and d.shape[1] != 1):
            raise ValueError(f"{name}: expected one logit per sample, [n] or [n, 1], got shape {list(d.shape)}")
        if d.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one sample, got shape {list(d.shape)}")
        scores.append(d.reshape(-1))
    real, fake = scores
    real_term = s * F.softplus(-real) + (1.0 - s) * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()

