"""The losses the trainer knows, their defaults, and the critic / generator objectives.

Conventions (docs/train.md). The critic returns raw scores (no sigmoid). For the JS family the
score is a logit and ``D(x) = sigmoid(score)``; BCE terms are written with softplus, which is
log-sum-exp stable: ``-log D = softplus(-s)`` and ``-log(1 - D) = softplus(s)``.

==================  =========================================================  =====================
loss                critic loss L_D                                             generator loss L_G
==================  =========================================================  =====================
gan                 softplus(-D(x)) + softplus(D(G(z)))                        -softplus(D(G(z)))  (minimax: log(1 - D))
nsgan               same                                                        softplus(-D(G(z)))  (-log D, non-saturating)
wgan                D(G(z)) - D(x), weights clipped to [-c, c] (ClippedRMSprop) -D(G(z))
wgan-gp             D(G(z)) - D(x) + λ E(||∇D(x̂)|| - 1)²                       -D(G(z))
wgan-gp-one-sided   D(G(z)) - D(x) + λ E max(0, ||∇D(x̂)|| - 1)²                -D(G(z))
nsgan-r1            nsgan's + γ/2 E||∇D(x)||² on real data                      softplus(-D(G(z)))
wgan-fd             D(G(z)) - D(x) + λ E(|D(x1) - D(x2)| / ||x1 - x2|| - 1)²    -D(G(z))
==================  =========================================================  =====================

(means over the batch everywhere). ``-L_D`` without the penalty is the critic's own estimate that
the trainer logs: of W1 (times the critic's Lipschitz constant) for the W family, of
2·JS(p_r, p_g) - 2 log 2 for the JS family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "LossSpec", "spec", "critic_objective", "generator_objective"]


@dataclass(frozen=True)
class LossSpec:
    """A loss and the defaults the trainer uses with it (each can be overridden).

    Attributes:
        name: the loss name.
        family: "w" (Wasserstein critic) or "js" (sigmoid discriminator).
        penalty: None, "gp", "gp-one-sided", "r1" or "fd".
        optimizer: "adam" or "clipped-rmsprop" (the critic's; WGAN's generator uses plain RMSprop).
        lr: learning rate of both networks.
        betas: Adam's betas.
        n_critic: critic updates per generator update.
    """

    name: str
    family: str
    penalty: str | None
    optimizer: str
    lr: float
    betas: tuple[float, float]
    n_critic: int


_SPECS = {s.name: s for s in (
    LossSpec("gan", "js", None, "adam", 2e-4, (0.5, 0.999), 1),
    LossSpec("nsgan", "js", None, "adam", 2e-4, (0.5, 0.999), 1),
    LossSpec("wgan", "w", None, "clipped-rmsprop", 5e-5, (0.9, 0.999), 5),
    LossSpec("wgan-gp", "w", "gp", "adam", 1e-4, (0.5, 0.9), 5),
    LossSpec("wgan-gp-one-sided", "w", "gp-one-sided", "adam", 1e-4, (0.5, 0.9), 5),
    LossSpec("nsgan-r1", "js", "r1", "adam", 2e-4, (0.5, 0.999), 1),
    LossSpec("wgan-fd", "w", "fd", "adam", 1e-4, (0.5, 0.9), 5),
)}

LOSSES = tuple(_SPECS)


def spec(name: str) -> LossSpec:
    """The :class:`LossSpec` of a loss name; ValueError listing the valid names otherwise."""
    if name not in _SPECS:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return _SPECS[name]


def critic_objective(family: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """L_D without a penalty, from the scores [B] of real and fake samples."""
    if family == "w":
        return d_fake.mean() - d_real.mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def generator_objective(name: str, d_fake: torch.Tensor) -> torch.Tensor:
    """L_G from the critic's scores [B] of generated samples."""
    if name == "gan":
        return -F.softplus(d_fake).mean()  # minimise log(1 - D(G(z))) = -softplus(s)
    if spec(name).family == "js":
        return F.softplus(-d_fake).mean()  # minimise -log D(G(z))
    return -d_fake.mean()
