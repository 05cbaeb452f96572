"""Default models: MLPs for points (the WGAN-GP toy code's), small DCGAN-style conv nets for images.

Neither critic has BatchNorm (it couples the samples of a batch, so a per-sample gradient penalty
would no longer be per sample; WGAN-GP §4). The generators have none either, so a sample depends
only on its own noise: that keeps data-parallel runs identical to single-process ones.
"""

from __future__ import annotations

from torch import nn

__all__ = ["mlp_generator", "mlp_critic", "dcgan_generator", "dcgan_critic"]


def _mlp(d_in: int, d_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


def mlp_generator(latent_dim: int, dim: int, hidden: int = 512, layers: int = 3) -> nn.Module:
    """z [B, latent_dim] -> x [B, dim]: ``layers`` hidden Linear+ReLU layers of width ``hidden``."""
    return _mlp(latent_dim, dim, hidden, layers)


def mlp_critic(dim: int, hidden: int = 512, layers: int = 3) -> nn.Module:
    """x [B, dim] -> one score per sample [B, 1], no sigmoid (the losses apply it where they need it)."""
    return _mlp(dim, 1, hidden, layers)


class _Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def dcgan_generator(latent_dim: int, channels: int, side: int, width: int = 64) -> nn.Module:
    """z [B, latent_dim] -> images [B, channels, side, side] in (-1, 1) (tanh); side divisible by 4.

    Linear to 4·width maps of side/4, then two stride-2 transposed convolutions (ReLU between).
    """
    s = side // 4
    return nn.Sequential(
        nn.Linear(latent_dim, 4 * width * s * s), nn.ReLU(), _Reshape(4 * width, s, s),
        nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, channels, 4, 2, 1), nn.Tanh())


def dcgan_critic(channels: int, side: int, width: int = 64) -> nn.Module:
    """images [B, channels, side, side] -> scores [B, 1]: two stride-2 convolutions (LeakyReLU 0.2), a linear."""
    s = side // 4
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * width * s * s, 1))
