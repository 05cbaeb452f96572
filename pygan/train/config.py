"""The configuration of ``python -m pygan train``: :class:`TrainConfig`, its defaults and validation.

Defaults that depend on the data (see docs/train.md for the evidence behind them): batch 256 for
points and 64 for images; the penalty weight λ (gp, one-sided gp, fd) 0.1 for points, as in the
WGAN-GP authors' toy code, and 10 (the paper's) for images; R1's γ 0.1 for points and 10 for images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pygan import _validate as check
from pygan.train import tricks_cli
from pygan.train.data import TOY_DATASETS
from pygan.train.images import IMAGE_DATASETS
from pygan.train.losses import LOSSES, spec

__all__ = ["TrainConfig", "FIELD_HELP", "RESUMABLE", "resolve", "validate", "check_resume_config", "check_int",
           "check_nonnegative"]

# Options that may change between a run and its --resume (they do not change what is trained).
RESUMABLE = {"steps", "out", "resume", "force", "eval_every", "ckpt_every", "device", "threads", "cuda_graphs",
             "progress", "plots"}


@dataclass
class TrainConfig:
    """The trainer's options (the CLI's flags, with ``-`` for ``_``). None means "the default for this
    loss / data" (resolved by :func:`resolve`)."""

    loss: str = "wgan-gp"
    data: str = "8gaussians"
    out: str = "runs/demo"
    steps: int = 2000
    batch_size: int | None = None
    n_critic: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    penalty_weight: float | None = None
    clip: float = 0.01
    lazy_every: int = 1
    instance_noise: float = 0.0
    ema: float = 0.999
    lr_decay: str = "none"
    latent_dim: int | None = None
    hidden: int = 512
    layers: int = 3
    eval_every: int = 100
    eval_samples: int = 1000
    ckpt_every: int = 250
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    cuda_graphs: bool = False
    resume: bool = False
    force: bool = False
    progress: bool = True
    plots: bool = True
    # conditional models (pygan.train.cond_setup; docs/conditional.md)
    conditional: bool = False
    projection: bool = False
    labels: str = ""
    infogan_categorical: int | None = None
    infogan_continuous: int | None = None
    lambda_info: float = 1.0
    pix2pix: bool = False
    lambda_l1: float = 100.0
    # The architecture and the training tricks (pygan.train.tricks, pygan.train.tricks_cli).
    arch: str = "small"
    dcgan_width: int = 64
    image_side: int = 32
    feature_matching: bool = False
    feature_layer: int | None = None
    minibatch_discrimination: bool = False
    minibatch_kernels: int = 16
    historical_averaging: float = 0.0
    label_smoothing: float = 1.0
    virtual_batchnorm: bool = False


# One line per field: the command line's --help (and the documentation of each option).
FIELD_HELP = {
    "loss": f"one of: {', '.join(LOSSES)}",
    "data": f"a toy dataset ({', '.join(TOY_DATASETS)}), digits (8x8, labelled; needs scikit-learn), outlines "
            "(pairs, --pix2pix) or a .npy / .pt file of N x d points or N x C x H x W images in [-1, 1] or "
            "[0, 255] (.npz: x and y for --conditional, a and b for --pix2pix)",
    "out": "run directory: metrics.jsonl, checkpoint.pt, config.json, samples.png, w1.png",
    "steps": "generator steps in total (a resumed run continues up to this number)",
    "batch_size": "samples per batch and per process (default: 256 for points, 64 for images)",
    "n_critic": "critic updates per generator update (default: 5 for the W losses, 1 for gan/nsgan/nsgan-r1)",
    "lr_g": "generator learning rate (default: the loss's: 1e-4 W-GP/FD, 5e-5 wgan, 2e-4 gan/nsgan)",
    "lr_d": "critic learning rate (default: the same as the generator's)",
    "penalty_weight": "λ of wgan-gp / wgan-gp-one-sided / wgan-fd and γ of nsgan-r1 (γ/2·E||∇D||²) "
                      "(default: 0.1 for points, 10 for images; docs/train.md says why)",
    "clip": "wgan: critic weights are clipped to [-clip, clip] after every update",
    "lazy_every": "lazy regularisation: apply the penalty on one critic update in k, scaled by k",
    "instance_noise": "σ0 of Gaussian instance noise on the critic's inputs, annealed linearly to 0 "
                      "over the run (0: off)",
    "ema": "decay of an exponential moving average of the generator (e.g. 0.999; 0: off); "
           "evaluation and pictures then use the average",
    "lr_decay": "none, or linear: both learning rates fall linearly to 0 at the last step",
    "latent_dim": "noise dimension (default: 2 for 2-D points, d for d-dimensional points, 100 for images)",
    "hidden": "width of the MLPs' hidden layers (points; conditional models also images under 16 px)",
    "layers": "hidden layers of the MLPs (points; conditional models also images under 16 px)",
    "eval_every": "evaluate the exact W1 every this many generator steps",
    "eval_samples": "N generated vs N held-out real samples for the exact W1",
    "ckpt_every": "write checkpoint.pt (and the pictures) every this many generator steps",
    "seed": "seeds the models' initialisation, the data and every draw of the loop",
    "device": "cpu, cuda, cuda:N or auto (cuda if available; under torchrun, cuda:LOCAL_RANK)",
    "threads": "CPU threads of torch (1: fastest for the toy models on a shared machine, measured; "
               "docs/train.md)",
    "cuda_graphs": "replay the critic and generator updates as CUDA graphs (CUDA only; not with --lr-decay, "
                   "--instance-noise, --lazy-every > 1, --loss wgan or several processes; docs/train.md)",
    "resume": "continue the run in --out from its checkpoint (the configuration must match)",
    "force": "overwrite a run already in --out (removes only the files a run writes)",
    "progress": "progress bar (tqdm if installed, else a line per evaluation)",
    "plots": "draw the pictures (needs matplotlib)",
    "conditional": "class-conditional G(z, y) and D(x, y) on labelled data (the toy sets' classes, digits, an "
                   ".npz with x and y, or --labels); logs w1_per_class (and class_accuracy on images)",
    "projection": "with --conditional: a projection critic D(x, y) = psi(phi(x)) + <e(y), phi(x)> instead of "
                  "concatenating e(y) to x",
    "labels": "with --conditional: a .npy file of N integer labels in [0, K), one per sample of --data",
    "infogan_categorical": "InfoGAN: a categorical code of K values (K >= 2; labels are not used for training); "
                           "logs code_accuracy",
    "infogan_continuous": "InfoGAN: C continuous codes in U(-1, 1) (C >= 1)",
    "lambda_info": "InfoGAN: λ_info, the weight of the information term",
    "pix2pix": "pix2pix on paired data (--data outlines, or an .npz with a = inputs and b = targets): U-Net G, "
               "patch critic, + λ_L1·E|b - G(a)|; logs l1 (held out)",
    "lambda_l1": "pix2pix: λ_L1, the weight of the L1 term",
}
FIELD_HELP.update(tricks_cli.HELP)
FIELD_HELP["data"] += "; or images with no download: shapes (procedural) or digits (8x8, upsampled; --image-side)"


def resolve(cfg: TrainConfig, kind: str, dim: int) -> TrainConfig:
    """Fill the None fields with the loss's and the data's defaults.

    Args:
        cfg: the configuration as given.
        kind: "points" or "images" (the data's kind decides the batch, λ and latent defaults).
        dim: the points' dimension (ignored for images).

    Returns:
        A new :class:`TrainConfig` without None fields.
    """
    s = spec(cfg.loss)
    out = TrainConfig(**asdict(cfg))
    points = kind == "points"
    if out.batch_size is None:
        out.batch_size = 256 if points else 64
    if out.n_critic is None:
        out.n_critic = s.n_critic
    if out.lr_g is None:
        out.lr_g = s.lr
    if out.lr_d is None:
        out.lr_d = out.lr_g
    if out.penalty_weight is None:
        out.penalty_weight = 0.1 if points else 10.0
    if out.latent_dim is None:
        out.latent_dim = max(2, dim) if points else 100
    return out


def check_int(value, name: str, minimum: int) -> int:
    """``value`` if it is an int >= ``minimum``: :func:`pygan._validate.integer` under the trainer's
    old name (TypeError for a bool, float or str, ValueError ``"name must be an int >= 1, got 0"``)."""
    return check.integer(value, name, low=minimum)


def check_nonnegative(value, name: str) -> float:
    """``value`` as a float if it is a finite real number >= 0: :func:`pygan._validate.number` with
    ``low=0`` under the trainer's old name (ValueError ``"name must be a finite number >= 0, got -1.0"``)."""
    return check.number(value, name, low=0)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def validate(cfg: TrainConfig) -> None:
    """Check every option of ``cfg`` (types and ranges), before anything is loaded or written.

    Raises:
        ValueError: naming the option (as its command-line flag) and what was expected.
    """
    spec(cfg.loss)  # the valid names
    for name in ("steps", "eval_every", "eval_samples", "ckpt_every", "lazy_every", "hidden", "layers", "threads"):
        value = getattr(cfg, name)
        minimum = 0 if name == "steps" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{_flag(name)} must be an integer >= {minimum}, got {value!r}")
    for name in ("batch_size", "n_critic", "latent_dim"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
    for name in ("lr_g", "lr_d", "penalty_weight", "clip", "instance_noise"):
        value = getattr(cfg, name)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < math.inf):
            raise ValueError(f"{_flag(name)} must be a finite number >= 0, got {value!r}")
    if cfg.lr_decay not in ("none", "linear"):
        raise ValueError(f"--lr-decay must be none or linear, got {cfg.lr_decay!r}")
    if not 0 <= cfg.ema < 1:
        raise ValueError(f"--ema must be in [0, 1), got {cfg.ema!r}")
    from pygan.train import cond_setup

    cond_setup.validate(cfg)  # the conditional options
    if (cfg.data not in TOY_DATASETS + cond_setup.NAMED_DATA and cfg.data not in IMAGE_DATASETS
            and not cfg.data.endswith((".npy", ".pt", ".npz"))):
        names = TOY_DATASETS + tuple(n for n in IMAGE_DATASETS + tuple(cond_setup.NAMED_DATA)
                                     if n not in TOY_DATASETS)
        raise ValueError(f"--data {cfg.data!r}: unknown dataset; expected one of "
                         f"{', '.join(dict.fromkeys(names))} or a .npy / .pt / .npz file")
    tricks_cli.validate_config(cfg)
    if cond_setup.active(cfg):
        # The conditional models are built and updated by pygan.train.cond_step, which the DCGAN
        # architecture and the tricks do not reach: refused rather than silently ignored.
        tricks_on = [flag for flag, on in (
            ("--arch dcgan", cfg.arch != "small"), ("--feature-matching", cfg.feature_matching),
            ("--minibatch-discrimination", cfg.minibatch_discrimination),
            ("--historical-averaging", cfg.historical_averaging > 0),
            ("--label-smoothing", cfg.label_smoothing != 1.0), ("--virtual-batchnorm", cfg.virtual_batchnorm)) if on]
        if tricks_on:
            raise ValueError(f"{', '.join(tricks_on)}: not available with --conditional, --infogan-* or --pix2pix "
                             "(conditional models use their own networks and updates)")


def check_resume_config(saved: dict | None, cfg: dict) -> None:
    """Refuse to resume a checkpoint trained with another configuration.

    Args:
        saved: the configuration stored in the checkpoint (None: not written by ``pygan train``).
        cfg: the resolved configuration of this invocation (``asdict(resolve(...))``).

    Raises:
        ValueError: listing every option that differs (those in :data:`RESUMABLE` may differ, and
            the penalty's options for a loss without a penalty).
    """
    if saved is None:
        raise ValueError("--resume: the checkpoint was not written by `pygan train` (it has no configuration)")
    free = set(RESUMABLE)
    s = spec(saved["loss"]) if saved.get("loss") in LOSSES else None
    if s is not None and s.penalty is None:
        free.add("penalty_weight")  # not used by this loss
        free.add("lazy_every")
    if saved.get("instance_noise") or saved.get("lr_decay", "none") != "none":
        free.discard("steps")  # --steps is then the horizon of a schedule: changing it changes the run
    # An option newer than the checkpoint is absent from it: at its default it is what that run trained with.
    defaults = asdict(TrainConfig())
    free |= {k for k in cfg if k not in saved and k in defaults and cfg[k] == defaults[k]}
    diff = [f"{k}: checkpoint {saved.get(k)!r}, now {cfg.get(k)!r}" for k in sorted(set(saved) | set(cfg))
            if k not in free and saved.get(k) != cfg.get(k)]
    if diff:
        raise ValueError("--resume: the checkpoint was trained with a different configuration:\n  "
                         + "\n  ".join(diff) + "\nstart a new run (another --out, or --force) instead")
