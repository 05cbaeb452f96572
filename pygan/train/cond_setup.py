"""The conditional options of ``python -m pygan train``: their validation, and the data, models and
:class:`~pygan.train.cond_step.Condition` of a conditional run (``--conditional``,
``--infogan-categorical K`` / ``--infogan-continuous C``, ``--pix2pix``).

:func:`validate` checks the options alone (before anything is loaded); :func:`prepare` loads the
data (labels, pairs) and checks it; both raise ValueError naming the option or the file, so the
command exits with 2 before the first step and writes nothing to --out.
"""

from __future__ import annotations

import math

import torch

from pygan.train import cond_data
from pygan.train.data import TOY_DATASETS, TensorSampler, ToySampler, load_data_file, toy_centres

__all__ = ["NAMED_DATA", "active", "validate", "prepare", "Setup"]

NAMED_DATA = cond_data.LABELLED_DATASETS + cond_data.PAIRED_DATA  # --data names beside the toy sets
PIX2PIX_WIDTH, PIX2PIX_DEPTH = 16, 4  # the U-Net's first width and levels (sides divisible by 16)
# Images with a side below this get MLPs on their flattened pixels (--hidden, --layers): at 8x8 the
# conv nets start from 2x2 maps, and on digits they did not learn in 500 steps (class_accuracy 0.1-0.17,
# against 0.83 after 300 steps for the MLPs; docs/conditional.md).
MLP_BELOW = 16


def _image_mlp_generator(d_in: int, shape, hidden: int, layers: int):
    from torch import nn

    from pygan.train.conditional import _mlp_body

    c, h, w = shape
    return nn.Sequential(*_mlp_body(d_in, hidden, layers), nn.Linear(hidden if layers else d_in, c * h * w), nn.Tanh(),
                         nn.Unflatten(1, (c, h, w)))


def _image_mlp_body(d_in: int, hidden: int, layers: int):
    from torch import nn

    from pygan.train.conditional import _mlp_body

    return nn.Sequential(nn.Flatten(), *_mlp_body(d_in, hidden, layers))


def _infogan(cfg) -> bool:
    return cfg.infogan_categorical is not None or cfg.infogan_continuous is not None


def active(cfg) -> bool:
    """Whether the configuration asks for a conditional model."""
    return bool(cfg.conditional or cfg.pix2pix or _infogan(cfg))


def _size(value, flag: str, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ValueError(f"{flag} must be an integer >= {minimum}, got {value!r}")


def validate(cfg) -> None:
    """Check the conditional options of a :class:`~pygan.train.config.TrainConfig` (no data is read).

    Raises:
        ValueError: naming the option (as its flag) and what was expected.
    """
    for name in ("conditional", "projection", "pix2pix"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"--{name} must be True or False, got {getattr(cfg, name)!r}")
    _size(cfg.infogan_categorical, "--infogan-categorical", 2)
    _size(cfg.infogan_continuous, "--infogan-continuous", 1)
    for name in ("lambda_info", "lambda_l1"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    if not isinstance(cfg.labels, str):
        raise ValueError(f"--labels must be a file name, got {cfg.labels!r}")
    chosen = [flag for flag, on in (("--conditional", cfg.conditional), ("--infogan-*", _infogan(cfg)),
                                    ("--pix2pix", cfg.pix2pix)) if on]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)}: choose one kind of conditional model")
    if cfg.projection and not cfg.conditional:
        raise ValueError("--projection needs --conditional (it is a way of giving the critic the label)")
    if cfg.labels and not (cfg.conditional or _infogan(cfg)):
        raise ValueError("--labels needs --conditional (or InfoGAN, which uses them for code_accuracy only)")
    if cfg.data in cond_data.PAIRED_DATA and not cfg.pix2pix:
        raise ValueError(f"--data {cfg.data} is a paired set (outline -> filled shape): pass --pix2pix")
    if active(cfg) and cfg.cuda_graphs:
        raise ValueError("--cuda-graphs: not supported with conditional models")


class Setup:
    """What :func:`prepare` returns: ``sampler`` and ``held`` (the trainer's data and eval_data),
    ``condition``, and :meth:`models`."""

    def __init__(self, sampler, held, condition, make_models):
        self.sampler, self.held, self.condition, self._make = sampler, held, condition, make_models

    def models(self, full) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The generator and critic for the resolved configuration (after ``torch.manual_seed``)."""
        return self._make(full)


def _label_models(sampler, k: int, projection: bool):
    from pygan.train import conditional as C

    def make(full):
        if sampler.kind == "points":
            dim = sampler.sample_shape[0]
            return (C.conditional_mlp_generator(full.latent_dim, k, dim, full.hidden, full.layers),
                    C.conditional_mlp_critic(dim, k, full.hidden, full.layers, projection=projection))
        c, side, _ = sampler.sample_shape
        if side < MLP_BELOW:
            e = 8  # the embedding's size, as in the conditional MLPs
            G = C.ConditionalGenerator(_image_mlp_generator(full.latent_dim + e, (c, side, side), full.hidden,
                                                            full.layers), k, e)
            body = _image_mlp_body((c if projection else c + e) * side * side, full.hidden, full.layers)
            return G, C.ConditionalCritic(body, full.hidden, k, e, projection=projection)
        return (C.conditional_dcgan_generator(full.latent_dim, k, c, side),
                C.conditional_dcgan_critic(c, side, k, projection=projection))
    return make


def _infogan_models(sampler, codes_of):
    from torch import nn

    from pygan.train.conditional import _mlp_body
    from pygan.train.infogan import InfoGANCritic
    from pygan.train.models import dcgan_generator, mlp_generator

    def make(full):
        codes = codes_of(full)
        if sampler.kind == "points":
            dim = sampler.sample_shape[0]
            G = mlp_generator(codes.latent_dim, dim, full.hidden, full.layers)
            return G, InfoGANCritic(_mlp_body(dim, full.hidden, full.layers), full.hidden, codes)
        c, side, _ = sampler.sample_shape
        if side < MLP_BELOW:
            return (_image_mlp_generator(codes.latent_dim, (c, side, side), full.hidden, full.layers),
                    InfoGANCritic(_image_mlp_body(c * side * side, full.hidden, full.layers), full.hidden, codes))
        width = 64
        body = nn.Sequential(nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 4, 2, 1),
                             nn.LeakyReLU(0.2), nn.Flatten())
        return dcgan_generator(codes.latent_dim, c, side), InfoGANCritic(body, 2 * width * (side // 4) ** 2, codes)
    return make


def prepare(cfg, device, rank: int = 0, world: int = 1) -> Setup | None:
    """Load and check the data of a conditional run; None when ``cfg`` asks for no conditional model.

    Raises:
        ValueError: the data has no labels / is not paired / has bad labels or shapes (naming them).
    """
    if not active(cfg):
        return None
    from pygan.train.cond_eval import Classifier, nearest_centre
    from pygan.train.cond_step import InfoGANCondition, LabelCondition, Pix2PixCondition

    batch, seed = cfg.batch_size or 1, cfg.seed
    if cfg.pix2pix:
        from pygan.train.pix2pix import PatchCritic, UNetGenerator

        a, b, a_held, b_held = cond_data.paired_data(cfg.data, seed, cfg.eval_samples, 2 ** PIX2PIX_DEPTH)
        sampler = cond_data.PairSampler(a, b, batch, seed + 1_000_033, device, rank, world)
        condition = Pix2PixCondition(a_held, cfg.lambda_l1)

        def make(full):
            return (UNetGenerator(a.shape[1], b.shape[1], width=PIX2PIX_WIDTH, depth=PIX2PIX_DEPTH),
                    PatchCritic(a.shape[1], b.shape[1], width=PIX2PIX_WIDTH, layers=1))
        return Setup(sampler, b_held.to(device), condition, make)

    if cfg.conditional:
        train, held, held_y, k = cond_data.labelled_data(cfg.data, cfg.labels, seed, cfg.eval_samples)
        if train[0] == "toy":
            sampler = cond_data.LabelledToySampler(cfg.data, batch, seed + 1_000_033, device, rank, world)
        else:
            sampler = cond_data.PairSampler(train[0], train[1], batch, seed + 1_000_033, device, rank, world)
        classifier = Classifier(*train, k) if held.dim() == 4 else None
        condition = LabelCondition(k, held_y, classifier=classifier)
        return Setup(sampler, held.to(device), condition, _label_models(sampler, k, cfg.projection))

    # InfoGAN: labels (when the data has them) only label the generated samples for code_accuracy
    eval_classes, k = None, None
    if cfg.data in TOY_DATASETS:
        if cfg.labels:
            raise ValueError(f"--labels: --data {cfg.data} has its own classes; leave --labels out")
        sampler = ToySampler(cfg.data, batch, seed + 1_000_033, device, rank, world)
        from pygan.train.data import toy_sample

        held = toy_sample(cfg.data, cfg.eval_samples, generator=torch.Generator().manual_seed(seed + 1_000_003))
        centres = toy_centres(cfg.data)
        if centres is not None:
            eval_classes, k = nearest_centre(centres), centres.shape[0]
    elif cfg.data in cond_data.LABELLED_DATASETS or cfg.data.endswith(".npz") or cfg.labels:
        (x, y), held, _, k = cond_data.labelled_data(cfg.data, cfg.labels, seed, cfg.eval_samples)
        sampler = TensorSampler(x, batch, seed + 1_000_033, device, rank, world)
        eval_classes = Classifier(x, y, k).predict
    else:
        x = load_data_file(cfg.data)
        held_rows, train_rows = cond_data.split_held_out(x.shape[0], cfg.eval_samples, seed)
        sampler, held = TensorSampler(x[train_rows], batch, seed + 1_000_033, device, rank, world), x[held_rows]

    def codes_of(full):
        from pygan.train.infogan import InfoGANCodes

        return InfoGANCodes(full.latent_dim, categorical=cfg.infogan_categorical, continuous=cfg.infogan_continuous)

    # the codes' noise size is the resolved --latent-dim: the condition takes them from the critic
    condition = InfoGANCondition(None, cfg.lambda_info, eval_classes=eval_classes, num_classes=k)
    return Setup(sampler, held.to(device), condition, _infogan_models(sampler, codes_of))
