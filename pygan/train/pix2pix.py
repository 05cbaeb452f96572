"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"):
a U-Net generator, a conditional patch critic, and the objective's pieces.

pix2pix is a conditional GAN whose condition is the input image a; G maps a to an output G(a)
(no explicit z: the paper's noise is dropout, left out here) and D judges the pair (a, b):

    G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 · L_L1(G)
    L_cGAN = E[log D(a, b)] + E[log(1 - D(a, G(a)))],   L_L1 = E[||b - G(a)||_1]

with lambda_L1 = 100 in the paper (the L1 term carries the low frequencies, "to prevent blur"
the GAN term the high ones). D is a PatchGAN: a fully convolutional net scoring each
overlapping patch of ``cat(a, b)`` (the paper's 70x70 for 256x256 images; smaller here), its loss
averaged over the patches; the paper halves D's objective ("we divide the objective by 2 while
optimizing D").

The U-Net (Ronneberger et al. 2015) has ``depth`` stride-2 4x4 convolutions down (LeakyReLU 0.2)
and as many stride-2 transposed convolutions up (ReLU), each decoder level concatenating the
encoder's features of the same resolution (the skip connections), tanh at the output.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetGenerator", "PatchCritic", "l1_loss", "generator_loss", "critic_loss", "DEFAULT_LAMBDA_L1"]

DEFAULT_LAMBDA_L1 = 100.0


def _int(value, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}: {name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _norm(kind: str, channels: int) -> nn.Module:
    # Instance norm rather than the paper's batch norm: it keeps every sample independent of the rest
    # of the batch (so a gradient penalty stays per sample and data-parallel runs equal one process).
    # The convolution before it has no bias: the norm subtracts the mean, so a bias would get a
    # gradient of exactly 0 up to rounding, which Adam turns into steps of either sign.
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.Identity()


class UNetGenerator(nn.Module):
    """G(a): [B, in_channels, H, W] -> [B, out_channels, H, W] in (-1, 1), H and W divisible by 2^depth.

    Args:
        in_channels, out_channels: channels of the input and of the output image.
        width: channels after the first convolution (doubling per level, at most 8·width).
        depth: the number of down- (and up-) sampling levels; 5 takes 32x32 to 1x1.
        norm: ``"instance"`` (between convolutions, not on the outermost or the 1x1-or-smaller
            levels) or ``"none"``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 4,
                 norm: str = "instance"):
        super().__init__()
        where = "UNetGenerator"
        in_channels, out_channels = _int(in_channels, "in_channels", where, 1), _int(out_channels, "out_channels", where, 1)
        width, self.depth = _int(width, "width", where, 1), _int(depth, "depth", where, 1)
        if norm not in ("instance", "none"):
            raise ValueError(f"{where}: norm: expected 'instance' or 'none', got {norm!r}")
        widths = [min(width * 2 ** i, 8 * width) for i in range(self.depth)]
        self.down = nn.ModuleList()
        c = in_channels
        for i, w in enumerate(widths):
            # no norm on the first level (as in the paper) nor the innermost (it may be 1x1)
            use = norm if 0 < i < self.depth - 1 else "none"
            self.down.append(nn.Sequential(nn.Conv2d(c, w, 4, 2, 1, bias=use != "instance"), _norm(use, w),
                                           nn.LeakyReLU(0.2)))
            c = w
        self.up = nn.ModuleList()
        for i in reversed(range(self.depth)):
            c_in = widths[i] if i == self.depth - 1 else 2 * widths[i]  # upsampled + skip
            if i == 0:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
            else:
                w = widths[i - 1]
                self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, w, 4, 2, 1, bias=norm != "instance"),
                                             _norm(norm, w), nn.ReLU()))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.dim() != 4 or a.shape[2] % 2 ** self.depth or a.shape[3] % 2 ** self.depth:
            raise ValueError(f"UNetGenerator: a: expected images [B, C, H, W] with H and W divisible by "
                             f"{2 ** self.depth}, got shape {list(a.shape)}")
        skips = []
        h = a
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.up[0](skips.pop())
        for layer in self.up[1:]:
            h = layer(torch.cat([h, skips.pop()], dim=1))
        return h


class PatchCritic(nn.Module):
    """D(a, b) = a map of patch scores [B, 1, h, w] (no sigmoid) of ``cat(a, b)`` along channels.

    ``layers`` stride-2 4x4 convolutions (LeakyReLU 0.2, instance norm after the first), one stride-1
    4x4 convolution, and a stride-1 4x4 convolution to one channel. Each score sees a patch of
    ``(6·2^layers - 2)`` pixels square: 16x16 for layers=1 (14x14 scores for 32x32 inputs), 34x34 for
    layers=2, the paper's 70x70 PatchGAN for layers=3 (the convolutions' receptive field; instance
    norm's statistics still see the whole image).

    Args:
        in_channels: channels of a; out_channels: channels of b.
        width: channels of the first convolution (doubling per layer, at most 8·width).
        layers: stride-2 layers (>= 1).
        norm: ``"instance"`` or ``"none"``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, layers: int = 1,
                 norm: str = "instance"):
        super().__init__()
        where = "PatchCritic"
        c = _int(in_channels, "in_channels", where, 1) + _int(out_channels, "out_channels", where, 1)
        width, layers = _int(width, "width", where, 1), _int(layers, "layers", where, 1)
        if norm not in ("instance", "none"):
            raise ValueError(f"{where}: norm: expected 'instance' or 'none', got {norm!r}")
        mods: list[nn.Module] = []
        for i in range(layers + 1):
            w = min(width * 2 ** i, 8 * width)
            stride = 2 if i < layers else 1
            use = norm if i else "none"
            mods += [nn.Conv2d(c, w, 4, stride, 1, bias=use != "instance"), _norm(use, w), nn.LeakyReLU(0.2)]
            c = w
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dim() != 4 or b.dim() != 4 or a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
            raise ValueError(f"PatchCritic: a and b: expected images [B, C, H, W] of the same B, H, W, "
                             f"got {list(a.shape)} and {list(b.shape)}")
        return self.net(torch.cat([a, b], dim=1))

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """One score per sample [B, 1]: the mean patch score (for W losses and gradient penalties)."""
        return self.forward(a, b).flatten(1).mean(dim=1, keepdim=True)


def _weight(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def l1_loss(fake_b: torch.Tensor, real_b: torch.Tensor, *, lambda_l1: float = DEFAULT_LAMBDA_L1) -> torch.Tensor:
    """``lambda_L1 · E|b - G(a)|``: the mean absolute error over every pixel and channel, times lambda_L1."""
    lambda_l1 = _weight(lambda_l1, "lambda_l1", "l1_loss")
    if fake_b.shape != real_b.shape:
        raise ValueError(f"l1_loss: fake_b and real_b: expected the same shape, got {list(fake_b.shape)} "
                         f"and {list(real_b.shape)}")
    return lambda_l1 * (fake_b - real_b).abs().mean()


def generator_loss(d_fake: torch.Tensor, fake_b: torch.Tensor, real_b: torch.Tensor, *,
                   lambda_l1: float = DEFAULT_LAMBDA_L1) -> torch.Tensor:
    """G's pix2pix loss: the non-saturating ``-E[log sigmoid(D(a, G(a)))]`` over patches plus the L1 term.

    Args:
        d_fake: D's patch logits for (a, G(a)).
        fake_b: G(a); real_b: the target b.
        lambda_l1: the L1 weight (100 in the paper).
    """
    adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return adv + l1_loss(fake_b, real_b, lambda_l1=lambda_l1)


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's pix2pix loss, halved as in the paper:
    ``0.5 · (-E[log sigmoid(D(a, b))] - E[log(1 - sigmoid(D(a, G(a))))])`` over patches."""
    return 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
