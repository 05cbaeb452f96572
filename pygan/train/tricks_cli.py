"""``pygan train``'s options for the architecture and the tricks: their help, their validation
(before anything is loaded or written), the checks that need the data, and what they pass to
:class:`~pygan.train.Trainer`. The tricks themselves are in :mod:`pygan.train.tricks`."""

from __future__ import annotations

from pygan import _validate as _v
from pygan.train.tricks import ARCHS, TRICK_DEFAULTS, check_combination

__all__ = ["HELP", "validate_config", "check_data", "trainer_kwargs", "fill_defaults"]

HELP = {
    "arch": "small (the default nets: MLPs for points, a 2-layer conv net for images) or dcgan (images of "
            "side 32 or 64: strided convolutions, batch norm in G and, for gan/nsgan, in D; layer norm in any "
            "other critic; N(0, 0.02) init; docs/train.md)",
    "dcgan_width": "--arch dcgan: w, the channels of D's first and G's last hidden convolution",
    "image_side": "--data shapes|digits: the image side, 32 or 64",
    "feature_matching": "the generator minimises ||E f(x) - E f(G(z))||^2 on an intermediate layer f of D "
                        "(Salimans et al. 2016) instead of its loss",
    "feature_layer": "--feature-matching: which layer of D (1 = the first hidden layer; default: the last one)",
    "minibatch_discrimination": "a minibatch-discrimination layer before D's output (gan and nsgan only: it "
                                "couples the samples of a batch)",
    "minibatch_kernels": "--minibatch-discrimination: B, the number of similarity kernels (each of dimension 5)",
    "historical_averaging": "W of the term W ||theta - mean of the past theta||^2 added to both losses (0: off)",
    "label_smoothing": "one-sided label smoothing: the real target s in (0, 1] of the JS losses' discriminator "
                       "(e.g. 0.9; 1: off)",
    "virtual_batchnorm": "virtual batch norm in G: each sample normalised with a reference batch of noise "
                         "fixed at the start (stored in the checkpoint)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def validate_config(cfg) -> None:
    """Check the architecture and trick options of a :class:`~pygan.train.config.TrainConfig`.

    Raises:
        ValueError / TypeError: naming the option (as its flag) and what was expected.
    """
    from pygan.train.data import TOY_DATASETS
    from pygan.train.images import IMAGE_DATASETS

    _v.choice(cfg.arch, "--arch", ARCHS)
    _v.integer(cfg.dcgan_width, "--dcgan-width", low=1)
    _v.integer(cfg.minibatch_kernels, "--minibatch-kernels", low=1)
    if cfg.image_side not in (32, 64) or isinstance(cfg.image_side, bool):
        raise ValueError(f"--image-side must be 32 or 64, got {cfg.image_side!r}")
    for name in ("feature_matching", "minibatch_discrimination", "virtual_batchnorm"):
        _v.boolean(getattr(cfg, name), _flag(name))
    if cfg.feature_layer is not None:
        _v.integer(cfg.feature_layer, "--feature-layer", low=1)
        if not cfg.feature_matching:
            raise ValueError("--feature-layer is only used with --feature-matching")
    _v.number(cfg.historical_averaging, "--historical-averaging", low=0.0)
    _v.number(cfg.label_smoothing, "--label-smoothing", low=0.0, high=1.0, low_open=True)
    check_combination(cfg.loss, minibatch_discrimination=cfg.minibatch_discrimination,
                      label_smoothing=cfg.label_smoothing, flag=_flag)
    if cfg.cuda_graphs and (cfg.arch != "small" or any(getattr(cfg, k) != TRICK_DEFAULTS[k] for k in (
            "feature_matching", "minibatch_discrimination", "historical_averaging", "label_smoothing",
            "virtual_batchnorm"))):
        raise ValueError("--cuda-graphs: not with --arch dcgan or the tricks (--feature-matching, "
                         "--minibatch-discrimination, --historical-averaging, --label-smoothing, --virtual-batchnorm)")
    if cfg.arch == "dcgan" and cfg.data in TOY_DATASETS:
        raise ValueError(f"--arch dcgan needs images (--data {' or '.join(IMAGE_DATASETS)}, or a .npy / .pt file "
                         f"of N x C x H x W images), got the point set {cfg.data!r}")


def check_data(cfg, kind: str, shape: tuple[int, ...], world: int) -> None:
    """The checks that need the data (and the resolved configuration), before any model is built.

    Raises:
        ValueError: --arch dcgan on points or on images whose side is not 32 or 64, a --feature-layer
            that D does not have, or batch norm under several processes.
    """
    if cfg.arch == "dcgan":
        if kind != "images":
            raise ValueError(f"--arch dcgan needs images, got --data {cfg.data!r} with points of shape {list(shape)}")
        if shape[1] not in (32, 64):
            raise ValueError(f"--arch dcgan: images of side 32 or 64 only, got --data {cfg.data!r} of side {shape[1]}")
    if cfg.feature_matching and cfg.feature_layer is not None:
        if cfg.arch == "dcgan":
            depth = {32: 3, 64: 4}[shape[1]]
        else:
            depth = cfg.layers if kind == "points" else 2
        if cfg.feature_layer > depth:
            raise ValueError(f"--feature-layer must be one of the critic's {depth} feature layers (1..{depth}), "
                             f"got {cfg.feature_layer}")
    if world > 1 and cfg.arch == "dcgan":
        from pygan.train.tricks import COUPLED_LOSSES

        if not cfg.virtual_batchnorm or cfg.loss in COUPLED_LOSSES:
            raise ValueError("--arch dcgan under several processes: batch norm would normalise each process's "
                             "slice on its own, so the run would not equal one process; use --virtual-batchnorm "
                             "(for G) with a loss whose critic has layer norm, or one process")


def trainer_kwargs(cfg) -> dict:
    """The :class:`~pygan.train.Trainer` keyword arguments of the tricks."""
    return {k: getattr(cfg, k) for k in ("feature_matching", "feature_layer", "minibatch_discrimination",
                                          "historical_averaging", "label_smoothing", "virtual_batchnorm")}


def fill_defaults(saved: dict | None) -> dict | None:
    """A checkpoint's configuration with the fields of this module that it predates set to their
    defaults (the values that run was trained with), so --resume compares like with like."""
    if not isinstance(saved, dict):
        return saved
    return {**TRICK_DEFAULTS, **saved}
