"""Default models (``--arch small``): MLPs for points (the WGAN-GP toy code's), small DCGAN-style
conv nets for images; and :func:`build_models`, which picks them or DCGAN (``--arch dcgan``,
:mod:`pygan.train.dcgan`) and adds the trick layers (minibatch discrimination, virtual batch norm).

Neither small critic has BatchNorm (it couples the samples of a batch, so a per-sample gradient penalty
would no longer be per sample; WGAN-GP §4). The generators have none either, so a sample depends
only on its own noise: that keeps data-parallel runs identical to single-process ones.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["mlp_generator", "mlp_critic", "dcgan_generator", "dcgan_critic", "build_models"]


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


# ---------------------------------------------------------------------------------------------------
# --arch, --minibatch-discrimination and --virtual-batchnorm (pygan.train.tricks)

def _with_vbn(net: nn.Sequential) -> nn.Sequential:
    """The same layers with a VirtualBatchNorm before every hidden activation (not at the output).

    The layer before each VirtualBatchNorm loses its bias (as DCGAN's convolutions before a
    normalisation): the normalisation removes any constant shift, so the bias would get a gradient
    of rounding noise only, which Adam's normalised step turns into full-size random steps."""
    from pygan.nn import VirtualBatchNorm

    mods: list[nn.Module] = []
    last = None
    for m in net:
        if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            last = m
        if isinstance(m, nn.ReLU):
            last.register_parameter("bias", None)
            mods.append(VirtualBatchNorm(last.out_features if isinstance(last, nn.Linear) else last.out_channels))
        mods.append(m)
    return nn.Sequential(*mods)


def _with_minibatch(net: nn.Sequential, kernels: int, kernel_dim: int = 5) -> nn.Sequential:
    """The same critic with a MinibatchDiscrimination layer before its last linear unit (replaced by
    one that also reads the B similarity features)."""
    from pygan.nn import MinibatchDiscrimination

    *body, head = list(net)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"minibatch_discrimination: expected a critic ending in nn.Linear, got {type(head).__name__}")
    return nn.Sequential(*body, MinibatchDiscrimination(head.in_features, kernels, kernel_dim),
                         nn.Linear(head.in_features + kernels, head.out_features))


def build_models(cfg, kind: str, shape: tuple[int, ...], world: int = 1) -> tuple[nn.Module, nn.Module, list[str]]:
    """The generator and critic ``pygan train`` uses for a resolved configuration.

    ``--arch small``: the MLPs (points) or the small conv nets (images) above. ``--arch dcgan``:
    :class:`pygan.train.dcgan.DCGANGenerator` / ``DCGANDiscriminator`` (images of side 32 or 64),
    with batch norm in D for gan and nsgan and layer norm for every other loss (a penalised or
    Wasserstein critic must score each sample on its own). ``--virtual-batchnorm`` puts
    VirtualBatchNorm layers in G (before each hidden ReLU) and wraps it in a
    :class:`pygan.nn.ReferenceBatch` with a reference batch of ``batch_size · world`` noise vectors
    (the global batch) drawn from ``seed + 15_485_863``: the same on every process and for any number
    of processes; ``--minibatch-discrimination`` adds a
    MinibatchDiscrimination layer of ``minibatch_kernels`` kernels (dimension 5) before D's output.
    Uses torch's global generator for the initialisation (seeded by the caller).

    Args:
        cfg: the resolved :class:`~pygan.train.config.TrainConfig`.
        kind: "points" or "images".
        shape: one sample's shape.
        world: the number of processes.

    Returns:
        (G, D, notes): notes are lines to tell the user (e.g. the critic's normalisation).
    """
    from pygan.nn import ReferenceBatch
    from pygan.train.tricks import COUPLED_LOSSES

    notes: list[str] = []
    mbd = cfg.minibatch_kernels if cfg.minibatch_discrimination else 0
    if cfg.arch == "dcgan":
        from pygan.train.dcgan import DCGANDiscriminator, DCGANGenerator

        c, side, _ = shape
        d_norm = "batch" if cfg.loss in COUPLED_LOSSES else "layer"
        if d_norm == "layer":
            notes.append(f"--arch dcgan with --loss {cfg.loss}: the critic uses layer norm, not batch norm (batch "
                         "norm couples the samples of a batch; a penalised or Wasserstein critic must score each "
                         "sample on its own)")
        G = DCGANGenerator(cfg.latent_dim, c, side, cfg.dcgan_width, norm="virtual" if cfg.virtual_batchnorm else "batch")
        D = DCGANDiscriminator(c, side, cfg.dcgan_width, norm=d_norm, minibatch_kernels=mbd)
    else:
        if kind == "points":
            dim = shape[0]
            G = mlp_generator(cfg.latent_dim, dim, cfg.hidden, cfg.layers)
            D = mlp_critic(dim, cfg.hidden, cfg.layers)
        else:
            c, side, _ = shape
            G, D = dcgan_generator(cfg.latent_dim, c, side), dcgan_critic(c, side)
        if cfg.virtual_batchnorm:
            G = _with_vbn(G)
        if mbd:
            D = _with_minibatch(D, mbd)
    if cfg.virtual_batchnorm:
        g_ref = torch.Generator().manual_seed(cfg.seed + 15_485_863)
        G = ReferenceBatch(G, torch.randn(cfg.batch_size * world, cfg.latent_dim, generator=g_ref))
    return G, D, notes
