"""DCGAN generator and discriminator (Radford, Metz, Chintala 2015, *Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks*, arXiv:1511.06434), for square
images of side 32 or 64 with 1 or 3 channels.

The paper's architecture guidelines, all followed here:

* no pooling: D downsamples with stride-2 convolutions, G upsamples with fractionally-strided
  (stride-2 transposed) convolutions;
* batch norm in G and in D, except on G's output layer and D's input layer;
* no fully connected hidden layers: G maps z to a 4x4 map with one transposed convolution (the
  paper's "project and reshape"), D's last feature map is flattened into one output unit;
* ReLU in G with a tanh output; LeakyReLU(0.2) in D;
* weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0 (:func:`init_dcgan_weights`).

Normalisation options. Batch norm couples the samples of a batch: D's score of one sample then
depends on the others. That is what the JS losses (gan, nsgan) were designed with, but a penalised
critic (gradient penalty, R1, ...) penalises per-sample gradients, which batch norm makes
meaningless, and a Wasserstein critic should score each sample on its own. So D takes
``norm="batch" | "layer" | "none"``: use "layer" (layer norm over each sample's C x H x W with a
per-channel scale and shift, as the WGAN-GP authors did) or "none" for a penalised critic. G takes
``norm="batch" | "virtual" | "none"``; "virtual" is :class:`pygan.nn.VirtualBatchNorm`, for which G
must be run through :class:`pygan.nn.ReferenceBatch` with a fixed reference noise batch.

Layout for side 64 and width w (side 32 drops the 8w stage):
G: z -> ConvT(nz, 8w, 4, 1, 0) 4x4 -> ConvT 8w->4w 8x8 -> 4w->2w 16x16 -> 2w->w 32x32 -> w->C 64x64, tanh.
D: x -> Conv(C, w, 4, 2, 1) 32x32 -> w->2w 16x16 -> 2w->4w 8x8 -> 4w->8w 4x4 -> flatten -> Linear -> 1.
"""

from __future__ import annotations

import torch
from torch import nn

from pygan import _validate as _v
from pygan.nn import MinibatchDiscrimination, VirtualBatchNorm

__all__ = ["SIDES", "DCGANGenerator", "DCGANDiscriminator", "init_dcgan_weights"]

SIDES = (32, 64)
_D_NORMS = ("batch", "layer", "none")
_G_NORMS = ("batch", "virtual", "none")


def _check_int(name: str, value, minimum: int) -> int:
    return _v.integer(value, name, low=minimum)


def _check_geometry(channels, side) -> tuple[int, int]:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
    if isinstance(side, bool) or side not in SIDES:
        raise ValueError(f"side: expected one of {', '.join(map(str, SIDES))} (DCGAN image sides), got {side!r}")
    return int(channels), int(side)


def _widths(side: int, width: int) -> list[int]:
    """Channel counts of the 4x4 ... side/2 feature maps, deepest first: [8w, 4w, 2w, w] for 64."""
    stages = {32: 3, 64: 4}[side]
    return [width * 2 ** (stages - 1 - i) for i in range(stages)]


def init_dcgan_weights(module: nn.Module) -> nn.Module:
    """The DCGAN initialisation, in place: convolution / linear weights N(0, 0.02), normalisation
    scales (batch, layer/group, virtual batch norm) N(1, 0.02), biases 0. Other parameters (e.g. a
    MinibatchDiscrimination tensor) keep their own initialisation. Uses torch's global generator.

    Returns:
        module (for chaining).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, VirtualBatchNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class DCGANGenerator(nn.Module):
    """z [B, latent_dim] (or [B, latent_dim, 1, 1]) -> images [B, channels, side, side] in (-1, 1).

    Args:
        latent_dim: the size of z (the paper: 100).
        channels: 1 or 3.
        side: 32 or 64.
        width: w, the channels of the last hidden map (the paper: 128 at 64x64; PyTorch's example 64).
        norm: "batch" (the paper), "virtual" (:class:`pygan.nn.VirtualBatchNorm`: run the generator
            through :class:`pygan.nn.ReferenceBatch`) or "none".
    """

    def __init__(self, latent_dim: int = 100, channels: int = 3, side: int = 64, width: int = 64,
                 norm: str = "batch"):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim, 1)
        self.channels, self.side = _check_geometry(channels, side)
        self.width = _check_int("width", width, 1)
        self.norm = _v.choice(norm, "norm", _G_NORMS)
        widths = _widths(self.side, self.width)
        layers: list[nn.Module] = []
        c_in = self.latent_dim
        for i, c_out in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)  # 1x1 -> 4x4, then doubling
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "virtual":
                layers.append(VirtualBatchNorm(c_out))
            layers.append(nn.ReLU())
            c_in = c_out
        layers += [nn.ConvTranspose2d(c_in, self.channels, 4, 2, 1), nn.Tanh()]  # no norm at the output
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Args: z [B, latent_dim] or [B, latent_dim, 1, 1]. Returns: [B, channels, side, side]."""
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"z: expected a floating-point tensor, got "
                            f"{z.dtype if isinstance(z, torch.Tensor) else type(z).__name__}")
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (self.latent_dim, 1, 1)):
            raise ValueError(f"z: expected shape [B, {self.latent_dim}] or [B, {self.latent_dim}, 1, 1], "
                             f"got {list(z.shape)}")
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """images [B, channels, side, side] -> logits / critic scores [B, 1] (no sigmoid).

    :meth:`features` exposes the intermediate feature maps (for feature matching); the default is
    the penultimate layer, the last convolution's output that the final linear unit reads.

    Args:
        channels: 1 or 3.
        side: 32 or 64.
        width: w, the channels of the first convolution.
        norm: "batch" (the paper; for the JS losses), "layer" or "none" (for a penalised or
            Wasserstein critic: batch norm couples the samples of a batch; see the module docstring).
        minibatch_kernels: 0 (off) or B > 0: a :class:`pygan.nn.MinibatchDiscrimination` layer with B
            kernels between the flattened last feature map and the output unit.
        minibatch_kernel_dim: C, the dimension of each minibatch-discrimination kernel.
    """

    def __init__(self, channels: int = 3, side: int = 64, width: int = 64, norm: str = "batch",
                 minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5):
        super().__init__()
        self.channels, self.side = _check_geometry(channels, side)
        self.width = _check_int("width", width, 1)
        self.norm = _v.choice(norm, "norm", _D_NORMS)
        minibatch_kernels = _check_int("minibatch_kernels", minibatch_kernels, 0)
        widths = _widths(self.side, self.width)[::-1]  # [w, 2w, 4w(, 8w)]
        blocks: list[nn.Module] = []
        c_in = self.channels
        for i, c_out in enumerate(widths):
            normed = i > 0 and norm != "none"  # never on the input layer
            mods: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not normed)]
            if normed:
                mods.append(nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(1, c_out))
            mods.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*mods))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.feature_sizes = [c * (self.side >> (i + 1)) ** 2 for i, c in enumerate(widths)]
        n_features = self.feature_sizes[-1]
        self.minibatch = (MinibatchDiscrimination(n_features, minibatch_kernels, minibatch_kernel_dim)
                          if minibatch_kernels else None)
        self.head = nn.Linear(n_features + minibatch_kernels, 1)  # = a 4x4 valid convolution to 1 map
        init_dcgan_weights(self)

    @property
    def depth(self) -> int:
        """The number of convolution blocks (3 for side 32, 4 for side 64): the valid feature layers."""
        return len(self.blocks)

    def _check_input(self, x) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point tensor, got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.side, self.side):
            raise ValueError(f"x: expected images [B, {self.channels}, {self.side}, {self.side}], got {list(x.shape)}")

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The output of convolution block ``layer`` (1 ... depth; None: depth, the penultimate layer), flattened.

        Args:
            x: images [B, channels, side, side].
            layer: which block's output (after its normalisation and LeakyReLU).

        Returns:
            [B, feature_sizes[layer - 1]].
        """
        self._check_input(x)
        if layer is None:
            layer = self.depth
        layer = _v.integer(layer, "layer", "DCGANDiscriminator.features", low=1, high=self.depth)
        for block in self.blocks[:layer]:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x images [B, channels, side, side]. Returns: [B, 1] raw scores."""
        h = self.features(x)
        if self.minibatch is not None:
            h = self.minibatch(h)
        return self.head(h)
