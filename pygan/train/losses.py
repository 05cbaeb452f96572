"""The losses the trainer knows, their defaults, and the critic / generator objectives.

Conventions (Goodfellow et al. 2014, Arjovsky et al. 2017, Gulrajani et al. 2017). The critic
returns raw scores (no sigmoid). For the JS family the score is a logit and ``D(x) = sigmoid(score)``;
BCE terms are written with softplus, which is log-sum-exp stable: ``-log D = softplus(-s)`` and ``-log(1 - D) = softplus(s)``.

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

from pygan.penalties import critic_scores, fd_penalty, gradient_penalty, r1_penalty

__all__ = ["LOSSES", "LossSpec", "spec", "critic_objective", "generator_objective", "critic_loss",
           "NEEDS_ALPHA"]


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


# The penalties evaluated between real and fake samples, at α drawn per sample by the caller.
NEEDS_ALPHA = ("gp", "gp-one-sided", "fd")


def critic_loss(family: str, critic, real: torch.Tensor, fake: torch.Tensor, penalty: str | None = None, *,
                weight: float = 0.0, alpha: torch.Tensor | None = None,
                objective=None) -> tuple[torch.Tensor, torch.Tensor]:
    """L_D plus a penalty, through the public penalty functions (``pygan.gradient_penalty``, ...).

    Args:
        family: "w" or "js" (:func:`critic_objective`).
        critic: maps [B, ...] to one score per sample.
        real, fake: the batches (fake without a graph to the generator).
        penalty: None (no penalty this update), or a :class:`LossSpec` penalty name.
        weight: λ (γ for "r1"), already scaled for lazy regularisation.
        alpha: the per-sample interpolation weights [B] for the penalties in :data:`NEEDS_ALPHA`,
            drawn from ``torch.rand`` by the caller (so their range check, a host sync, is skipped).
        objective: None (the family's L_D, :func:`critic_objective`), or a callable
            ``(d_real, d_fake) -> L_D`` used instead (one-sided label smoothing's, for instance), with
            the same penalties computed in the same order.

    Returns:
        (L_D + penalty, penalty), 0-d tensors; the penalty is a zero tensor when there is none.
    """
    term = torch.zeros((), device=real.device)
    if penalty == "r1":  # at the real batch, reusing its forward for the loss (one forward, not two)
        term, d_real = r1_penalty(critic, real, gamma=weight, return_scores=True)
    else:
        d_real = critic_scores(critic, real, "the trainer")
    d_fake = critic_scores(critic, fake, "the trainer")
    if penalty == "fd":
        term = fd_penalty(critic, real, fake, weight=weight, alpha=alpha, check_alpha=False)
    elif penalty in ("gp", "gp-one-sided"):
        term = gradient_penalty(critic, real, fake, weight=weight, one_sided=penalty == "gp-one-sided",
                                alpha=alpha, check_alpha=False)
    loss = critic_objective(family, d_real, d_fake) if objective is None else objective(d_real, d_fake)
    return loss + term, term

