"""Class-conditional generators and critics for points and images (conditional GAN, projection critic).

A conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets") feeds the
condition y -- here a class index in ``[0, num_classes)`` -- to both networks:

    min_G max_D  E_{(x,y)~data}[log D(x | y)] + E_{z, y}[log(1 - D(G(z | y) | y))]

(or any other GAN loss with D(·) replaced by D(·, y)). Two ways of giving y to the critic:

* **concatenation** (Mirza & Osindero): a learned embedding e(y) in R^E is concatenated to the
  input -- to the vector x for points, as E constant feature maps for images -- and the body sees
  both: ``D(x, y) = psi(phi([x, e(y)]))``.
* **projection** (Miyato & Koyama 2018, "cGANs with Projection Discriminator", eq. 3): the body
  sees x only and y enters through an inner product with the features,
  ``D(x, y) = psi(phi(x)) + <e(y), phi(x)>`` with e(y) in R^F (F = the feature size).

The generator always takes ``G(z, y) = net([z, e(y)])``. :meth:`ConditionalCritic.features` returns
the body's features phi (for feature matching or an InfoGAN Q head, see :mod:`pygan.train.infogan`).

A gradient penalty for a conditional critic is taken with respect to x only, at the sample's own y:
``pygan.gradient_penalty(lambda x: D(x, y), real, fake, weight=10.0)``.

No BatchNorm anywhere (as in :mod:`pygan.train.models`): it would couple the samples of a batch.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

__all__ = ["check_labels", "ConditionalGenerator", "ConditionalCritic", "conditional_mlp_generator",
           "conditional_mlp_critic", "conditional_dcgan_generator", "conditional_dcgan_critic"]


def _positive_int(value, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}: {name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_labels(y, num_classes: int | None = None, n: int | None = None, *, name: str = "y",
                 where: str = "labels") -> torch.Tensor:
    """Check class labels and return them as an int64 tensor [N].

    Args:
        y: a 1-D tensor or NumPy array (or list) of integers (an integer dtype: floats such as 1.0
            and bools are refused, since a float label usually means the wrong array was passed).
        num_classes: if given, every label must lie in ``[0, num_classes)``; else only ``>= 0``.
        n: if given, the required number of labels (the batch or data-set size).
        name, where: the argument and the caller, for the messages.

    Returns:
        The labels as int64 on y's device (a tensor y keeps its device).

    Raises:
        TypeError: not integers. ValueError: wrong shape or length, or out of range.
    """
    if not isinstance(y, torch.Tensor):
        arr = np.asarray(y)
        if arr.size == 0 and arr.dtype.kind == "f":  # np.asarray([]) is float64: an empty list is fine
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{where}: {name}: expected integer class labels, got dtype {arr.dtype}")
        y = torch.from_numpy(arr.astype(np.int64))
    if y.dtype == torch.bool or y.dtype.is_floating_point or y.dtype.is_complex:
        raise TypeError(f"{where}: {name}: expected integer class labels, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{where}: {name}: expected a 1-D array of labels [N], got shape {list(y.shape)}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{where}: {name}: expected {n} labels (one per sample), got {y.shape[0]}")
    y = y.to(torch.int64)
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            rng = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            bad = lo if lo < 0 else hi
            raise ValueError(f"{where}: {name}: expected labels in {rng}, got {bad}")
    return y


def _with_label(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """[x, e] along the features: e [B, E] is appended to vectors [B, D], or as E constant maps to images."""
    if x.dim() == 2:
        return torch.cat([x, e.to(x.dtype)], dim=1)
    if x.dim() == 4:
        maps = e.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return torch.cat([x, maps], dim=1)
    raise ValueError(f"x: expected [B, D] vectors or [B, C, H, W] images, got shape {list(x.shape)}")


class ConditionalGenerator(nn.Module):
    """``G(z, y) = net([z, e(y)])``, e a learned embedding of the class index (Mirza & Osindero 2014).

    Args:
        net: maps [B, latent_dim + embed_dim] to samples.
        num_classes: the number of classes K (labels in [0, K)).
        embed_dim: E, the size of e(y).
        validate: check every y (dtype, length, range) in forward; the range check reads the labels
            on the host, so a CUDA-graph or ``torch.compile`` loop with checked data may turn it off.
    """

    def __init__(self, net: nn.Module, num_classes: int, embed_dim: int, *, validate: bool = True):
        super().__init__()
        self.validate = bool(validate)
        self.num_classes = _positive_int(num_classes, "num_classes", "ConditionalGenerator")
        self.embed = nn.Embedding(self.num_classes, _positive_int(embed_dim, "embed_dim", "ConditionalGenerator"))
        self.net = net

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.validate:
            y = check_labels(y, self.num_classes, z.shape[0], where="ConditionalGenerator")
        return self.net(torch.cat([z, self.embed(y).to(z.dtype)], dim=1))


class ConditionalCritic(nn.Module):
    """A critic ``D(x, y)``: one score per sample [B, 1], no sigmoid.

    * ``projection=False`` (concatenation): ``D(x, y) = psi(phi([x, e(y)]))``, e(y) in R^embed_dim
      appended to vectors or as constant maps to images; ``body`` takes the widened input.
    * ``projection=True`` (Miyato & Koyama 2018, eq. 3): ``D(x, y) = psi(phi(x)) + <e(y), phi(x)>``
      with e(y) in R^feature_dim; ``body`` takes x alone.

    psi is a Linear(feature_dim, 1).

    Args:
        body: phi, mapping the (widened) input to features [B, feature_dim].
        feature_dim: F, the size of phi's output.
        num_classes: K.
        embed_dim: E for concatenation (ignored, i.e. F, with projection).
        projection: use the projection form.
        validate: as in :class:`ConditionalGenerator`.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, embed_dim: int = 8, *,
                 projection: bool = False, validate: bool = True):
        super().__init__()
        self.validate = bool(validate)
        where = "ConditionalCritic"
        self.num_classes = _positive_int(num_classes, "num_classes", where)
        self.feature_dim = _positive_int(feature_dim, "feature_dim", where)
        self.projection = bool(projection)
        dim = self.feature_dim if self.projection else _positive_int(embed_dim, "embed_dim", where)
        self.embed = nn.Embedding(self.num_classes, dim)
        self.body = body
        self.head = nn.Linear(self.feature_dim, 1)

    def _labels(self, x, y):
        return check_labels(y, self.num_classes, x.shape[0], where="ConditionalCritic") if self.validate else y

    def features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """phi: the body's features [B, feature_dim] (of x alone with projection, of [x, e(y)] else)."""
        y = self._labels(x, y)
        return self.body(x) if self.projection else self.body(_with_label(x, self.embed(y)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = self._labels(x, y)
        if self.projection:
            phi = self.body(x)
            return self.head(phi) + (self.embed(y).to(phi.dtype) * phi).sum(dim=1, keepdim=True)
        return self.head(self.body(_with_label(x, self.embed(y))))


def _mlp_body(d_in: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*mods)


def conditional_mlp_generator(latent_dim: int, num_classes: int, dim: int, hidden: int = 512, layers: int = 3,
                              embed_dim: int = 8) -> ConditionalGenerator:
    """(z [B, latent_dim], y [B]) -> x [B, dim]: the toy MLP of :func:`pygan.train.models.mlp_generator`
    on ``[z, e(y)]``."""
    where = "conditional_mlp_generator"
    latent_dim, dim = _positive_int(latent_dim, "latent_dim", where), _positive_int(dim, "dim", where)
    hidden, layers = _positive_int(hidden, "hidden", where), _positive_int(layers, "layers", where, 0)
    embed_dim = _positive_int(embed_dim, "embed_dim", where)
    body = _mlp_body(latent_dim + embed_dim, hidden, layers)
    net = nn.Sequential(*body, nn.Linear(hidden if layers else latent_dim + embed_dim, dim))
    return ConditionalGenerator(net, num_classes, embed_dim)


def conditional_mlp_critic(dim: int, num_classes: int, hidden: int = 512, layers: int = 3, embed_dim: int = 8, *,
                           projection: bool = False) -> ConditionalCritic:
    """(x [B, dim], y [B]) -> [B, 1]: ``layers`` Linear+ReLU layers of width ``hidden`` as phi, then psi
    (and the projection term with ``projection=True``)."""
    where = "conditional_mlp_critic"
    dim, hidden = _positive_int(dim, "dim", where), _positive_int(hidden, "hidden", where)
    layers, embed_dim = _positive_int(layers, "layers", where), _positive_int(embed_dim, "embed_dim", where)
    body = _mlp_body(dim if projection else dim + embed_dim, hidden, layers)
    return ConditionalCritic(body, hidden, num_classes, embed_dim, projection=projection)


def conditional_dcgan_generator(latent_dim: int, num_classes: int, channels: int, side: int, width: int = 64,
                                embed_dim: int = 8) -> ConditionalGenerator:
    """(z, y) -> images [B, channels, side, side] in (-1, 1): :func:`pygan.train.models.dcgan_generator`
    on ``[z, e(y)]``; side divisible by 4."""
    from pygan.train.models import dcgan_generator
    where = "conditional_dcgan_generator"
    side = _positive_int(side, "side", where, 4)
    if side % 4:
        raise ValueError(f"{where}: side: expected a multiple of 4, got {side}")
    embed_dim = _positive_int(embed_dim, "embed_dim", where)
    net = dcgan_generator(_positive_int(latent_dim, "latent_dim", where) + embed_dim,
                          _positive_int(channels, "channels", where), side, _positive_int(width, "width", where))
    return ConditionalGenerator(net, num_classes, embed_dim)


def conditional_dcgan_critic(channels: int, side: int, num_classes: int, width: int = 64, embed_dim: int = 8, *,
                             projection: bool = False) -> ConditionalCritic:
    """(images, y) -> [B, 1]: two stride-2 4x4 convolutions (LeakyReLU 0.2) and a flatten as phi
    (features of size 2·width·(side/4)^2), then psi; concatenation adds e(y) as embed_dim input maps."""
    where = "conditional_dcgan_critic"
    side = _positive_int(side, "side", where, 4)
    if side % 4:
        raise ValueError(f"{where}: side: expected a multiple of 4, got {side}")
    channels, width = _positive_int(channels, "channels", where), _positive_int(width, "width", where)
    embed_dim = _positive_int(embed_dim, "embed_dim", where)
    c_in = channels if projection else channels + embed_dim
    body = nn.Sequential(nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
    return ConditionalCritic(body, 2 * width * (side // 4) ** 2, num_classes, embed_dim, projection=projection)
