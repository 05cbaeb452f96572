"""InfoGAN (Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by Information
Maximizing Generative Adversarial Nets"): latent codes, a Q head on the critic's body, the
information loss.

The generator's input is split into incompressible noise z' and a code c = (c_cat, c_cont):
a categorical code c_cat ~ Uniform{0, ..., K-1} (fed one-hot) and C continuous codes
c_cont ~ U(-1, 1)^C, as in the paper's experiments. InfoGAN adds to the GAN game the variational
lower bound of the mutual information I(c; G(z', c)) (eq. 5):

    L_I(G, Q) = E_{c ~ p(c), x ~ G(z', c)}[log Q(c | x)] + H(c)  <=  I(c; G(z', c))
    min_{G, Q} max_D  V_GAN(D, G) - lambda_info · L_I(G, Q)

Q is not a second network: it is a small head on the critic's body (the paper: "Q and D share all
convolutional layers ... one final fully connected layer to output parameters for Q(c|x)"), so
:class:`InfoGANCritic` computes the body once and gives both the score and Q's outputs.

Q(c | x) is a softmax over K classes for c_cat (the loss term is the cross-entropy) and a factored
Gaussian N(mu(x), sigma(x)^2) for c_cont (the term is the Gaussian negative log-likelihood); with
``fixed_std=True`` sigma = 1 (the fixed-variance option, ``fix_std``, of the authors' code; the
paper says treating c_cont as a factored Gaussian is sufficient), and the term is ``0.5·||c - mu||^2 + (C/2)·log(2π)``. H(c) is a constant and left out, so
:func:`information_loss` returns ``lambda_info · (CE + NLL)`` = ``-lambda_info · (L_I - H(c))``,
to be *added* to both the generator's and the critic's (Q's) losses.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LatentCodes", "InfoGANCodes", "QOutput", "QHead", "InfoGANCritic", "categorical_loss",
           "gaussian_nll", "information_loss"]

_LOG_2PI = math.log(2 * math.pi)


def _size(value, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}: {name}: expected an int >= {minimum}, got {value}")
    return int(value)


@dataclass
class LatentCodes:
    """One batch of codes: ``categorical`` int64 [B] (or None), ``continuous`` [B, C] (or None)."""
    categorical: torch.Tensor | None
    continuous: torch.Tensor | None


class InfoGANCodes:
    """The layout of an InfoGAN latent: ``[z' (noise_dim), one_hot(c_cat) (K), c_cont (C)]``.

    Args:
        noise_dim: the size of z' (>= 0; 0 leaves only codes).
        categorical: K, the number of values of the categorical code (>= 2), or None for none.
        continuous: C, the number of continuous codes (>= 1), or None for none.
        At least one code is required.

    Attributes:
        noise_dim, categorical (K or 0), continuous (C or 0), latent_dim (noise_dim + K + C).
    """

    def __init__(self, noise_dim: int, categorical: int | None = None, continuous: int | None = None):
        where = "InfoGANCodes"
        self.noise_dim = _size(noise_dim, "noise_dim", where, 0)
        self.categorical = 0 if categorical is None else _size(categorical, "categorical", where, 2)
        self.continuous = 0 if continuous is None else _size(continuous, "continuous", where, 1)
        if not self.categorical and not self.continuous:
            raise ValueError(f"{where}: categorical and continuous: expected at least one code, got neither")
        self.latent_dim = self.noise_dim + self.categorical + self.continuous

    def __repr__(self) -> str:
        return (f"InfoGANCodes(noise_dim={self.noise_dim}, categorical={self.categorical or None}, "
                f"continuous={self.continuous or None})")

    def sample(self, n: int, *, generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, LatentCodes]:
        """Draw n latents: z' ~ N(0, I), c_cat ~ Uniform{0..K-1}, c_cont ~ U(-1, 1)^C, in that order
        from ``generator`` (so a seeded generator gives the same batch everywhere).

        Returns:
            (latent [n, latent_dim], the codes).
        """
        n = _size(n, "n", "InfoGANCodes.sample", 0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"InfoGANCodes.sample: generator: expected a torch.Generator or None, "
                            f"got {type(generator).__name__}")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(n, self.noise_dim, generator=generator, device=device, dtype=dtype)
        cat = torch.randint(self.categorical, (n,), generator=generator, device=device) if self.categorical else None
        cont = (torch.rand(n, self.continuous, generator=generator, device=device, dtype=dtype) * 2 - 1
                if self.continuous else None)
        codes = LatentCodes(cat, cont)
        return self.join(noise, codes), codes

    def join(self, noise: torch.Tensor, codes: LatentCodes) -> torch.Tensor:
        """``[z', one_hot(c_cat), c_cont]`` from given parts (for latent traversals: fix z', vary c)."""
        if noise.dim() != 2 or noise.shape[1] != self.noise_dim:
            raise ValueError(f"InfoGANCodes.join: noise: expected shape [B, {self.noise_dim}], got {list(noise.shape)}")
        parts = [noise]
        if self.categorical:
            if codes.categorical is None:
                raise ValueError("InfoGANCodes.join: codes.categorical: expected [B] integers, got None")
            from pygan.train.conditional import check_labels
            cat = check_labels(codes.categorical, self.categorical, noise.shape[0], name="codes.categorical",
                               where="InfoGANCodes.join")
            parts.append(F.one_hot(cat, self.categorical).to(noise.dtype))
        if self.continuous:
            cont = codes.continuous
            if cont is None or cont.shape != (noise.shape[0], self.continuous):
                got = None if cont is None else list(cont.shape)
                raise ValueError(f"InfoGANCodes.join: codes.continuous: expected shape "
                                 f"[{noise.shape[0]}, {self.continuous}], got {got}")
            parts.append(cont.to(noise.dtype))
        return torch.cat(parts, dim=1)

    def split(self, latent: torch.Tensor) -> tuple[torch.Tensor, LatentCodes]:
        """The inverse of :meth:`join`: (z', codes) with c_cat the argmax of its one-hot block."""
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"InfoGANCodes.split: latent: expected shape [B, {self.latent_dim}], got {list(latent.shape)}")
        noise, onehot, cont = torch.split(latent, [self.noise_dim, self.categorical, self.continuous], dim=1)
        return noise, LatentCodes(onehot.argmax(dim=1) if self.categorical else None,
                                  cont if self.continuous else None)


@dataclass
class QOutput:
    """Q(c | x)'s parameters: ``logits`` [B, K] (or None), ``mean`` [B, C] and ``log_std`` [B, C]
    (None when there is no continuous code; log_std also None with a fixed sigma = 1)."""
    logits: torch.Tensor | None
    mean: torch.Tensor | None
    log_std: torch.Tensor | None


class QHead(nn.Module):
    """One Linear from the critic's features to Q's parameters (K logits, C means, C log-stds unless
    ``fixed_std``).

    Args:
        feature_dim: the size of the critic body's features.
        codes: the :class:`InfoGANCodes` layout.
        fixed_std: sigma = 1 for the continuous codes (the fixed-variance option).
    """

    def __init__(self, feature_dim: int, codes: InfoGANCodes, *, fixed_std: bool = True):
        super().__init__()
        self.codes = codes
        self.fixed_std = bool(fixed_std)
        k, c = codes.categorical, codes.continuous
        self.linear = nn.Linear(_size(feature_dim, "feature_dim", "QHead", 1), k + c * (1 if self.fixed_std else 2))

    def forward(self, features: torch.Tensor) -> QOutput:
        k, c = self.codes.categorical, self.codes.continuous
        out = self.linear(features)
        logits, mean, log_std = torch.split(out, [k, c, 0 if self.fixed_std else c], dim=1)
        return QOutput(logits if k else None, mean if c else None,
                       log_std if c and not self.fixed_std else None)


class InfoGANCritic(nn.Module):
    """A critic ``D(x) = psi(phi(x))`` with a Q head on the same body phi (no second network).

    Args:
        body: phi, x -> features [B, feature_dim].
        feature_dim: F.
        codes: the latent layout (which codes Q predicts).
        fixed_std: as in :class:`QHead`.
    """

    def __init__(self, body: nn.Module, feature_dim: int, codes: InfoGANCodes, *, fixed_std: bool = True):
        super().__init__()
        self.body = body
        self.head = nn.Linear(_size(feature_dim, "feature_dim", "InfoGANCritic", 1), 1)
        self.q = QHead(feature_dim, codes, fixed_std=fixed_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The score [B, 1] only (so it plugs into the losses and penalties as a plain critic)."""
        return self.head(self.body(x))

    def score_and_q(self, x: torch.Tensor) -> tuple[torch.Tensor, QOutput]:
        """(score [B, 1], Q's outputs) from one pass through the body."""
        phi = self.body(x)
        return self.head(phi), self.q(phi)


def categorical_loss(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``-E[log Q(c_cat | x)]``: the cross-entropy of the logits [B, K] against the codes [B], batch mean."""
    return F.cross_entropy(logits, codes)


def gaussian_nll(mean: torch.Tensor, codes: torch.Tensor, log_std: torch.Tensor | None = None) -> torch.Tensor:
    """``-E[log N(c; mean, sigma^2)]`` summed over the C codes, batch mean:
    ``sum_j [log sigma_j + (c_j - mu_j)^2 / (2 sigma_j^2) + log(2π)/2]``; log_std None means sigma = 1."""
    if mean.shape != codes.shape:
        raise ValueError(f"gaussian_nll: codes: expected shape {list(mean.shape)} (the mean's), got {list(codes.shape)}")
    if log_std is None:
        per = 0.5 * (codes - mean) ** 2 + 0.5 * _LOG_2PI
    else:
        per = log_std + 0.5 * ((codes - mean) * torch.exp(-log_std)) ** 2 + 0.5 * _LOG_2PI
    return per.sum(dim=1).mean()


def information_loss(q: QOutput, codes: LatentCodes, *, lambda_info: float = 1.0) -> torch.Tensor:
    """``lambda_info · (CE(c_cat) + NLL(c_cont))``: minus the lower bound L_I up to the constant H(c).

    Add it to the generator's loss and to the critic's loss (it trains Q and, through the shared body,
    the critic's features). The paper uses lambda_info = 1 for discrete codes.

    Args:
        q: Q's outputs for x = G(z', c).
        codes: the c those samples were generated with.
        lambda_info: the weight (a finite number >= 0).

    Returns:
        A 0-d tensor.
    """
    if isinstance(lambda_info, bool) or not isinstance(lambda_info, numbers.Real) or not math.isfinite(lambda_info) \
            or lambda_info < 0:
        raise ValueError(f"information_loss: lambda_info: expected a finite number >= 0, got {lambda_info!r}")
    terms = []
    if q.logits is not None:
        if codes.categorical is None:
            raise ValueError("information_loss: codes.categorical: Q predicts a categorical code, got None")
        terms.append(categorical_loss(q.logits, codes.categorical))
    if q.mean is not None:
        if codes.continuous is None:
            raise ValueError("information_loss: codes.continuous: Q predicts continuous codes, got None")
        terms.append(gaussian_nll(q.mean, codes.continuous, q.log_std))
    if not terms:
        raise ValueError("information_loss: q: expected logits or means, got neither")
    return lambda_info * sum(terms)
