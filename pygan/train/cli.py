"""``python -m pygan train``: the configuration, how it builds a :class:`Trainer`, and the command line.

Everything the command does is available from Python::

    from pygan.train import TrainConfig, run
    run(TrainConfig(loss="wgan-gp", data="8gaussians", out="runs/demo"))

Defaults that depend on the data (see docs/train.md for the evidence behind them): batch 256 for
points and 64 for images; the penalty weight λ (gp, one-sided gp, fd) 0.1 for points, as in the
WGAN-GP authors' toy code, and 10 (the paper's) for images; R1's γ 0.1 for points and 10 for images.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from pygan._device import parse_device
from pygan.train import distributed as dist_utils
from pygan.train.data import TOY_DATASETS, make_sampler
from pygan.train.losses import LOSSES, spec
from pygan.train.models import dcgan_critic, dcgan_generator, mlp_critic, mlp_generator
from pygan.train.trainer import CHECKPOINT, METRICS, Trainer, read_checkpoint

__all__ = ["TrainConfig", "build", "run", "main", "make_optimizers"]

# Files a run writes into OUT: --force removes exactly these, nothing else.
RUN_FILES = (CHECKPOINT, METRICS, "config.json", "samples.png", "w1.png")

# Options that may change between a run and its --resume (they do not change what is trained).
RESUMABLE = {"steps", "out", "resume", "force", "eval_every", "ckpt_every", "device", "progress", "plots"}


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
    resume: bool = False
    force: bool = False
    progress: bool = True
    plots: bool = True


_HELP = {
    "loss": f"one of: {', '.join(LOSSES)}",
    "data": f"a toy dataset ({', '.join(TOY_DATASETS)}) or a .npy / .pt file of N x d points or "
            "N x C x H x W images in [-1, 1] or [0, 255]",
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
    "hidden": "width of the MLPs' hidden layers (points)",
    "layers": "hidden layers of the MLPs (points)",
    "eval_every": "evaluate the exact W1 every this many generator steps",
    "eval_samples": "N generated vs N held-out real samples for the exact W1",
    "ckpt_every": "write checkpoint.pt (and the pictures) every this many generator steps",
    "seed": "seeds the models' initialisation, the data and every draw of the loop",
    "device": "cpu, cuda, cuda:N or auto (cuda if available; under torchrun, cuda:LOCAL_RANK)",
    "resume": "continue the run in --out from its checkpoint (the configuration must match)",
    "force": "overwrite a run already in --out (removes only the files a run writes)",
    "progress": "progress bar (tqdm if installed, else a line per evaluation)",
    "plots": "draw the pictures (needs matplotlib)",
}


def resolve(cfg: TrainConfig, kind: str, dim: int) -> TrainConfig:
    """Fill the None fields with the loss's and the data's defaults (a new config)."""
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


def _check(cfg: TrainConfig) -> None:
    spec(cfg.loss)  # the valid names
    for name in ("steps", "eval_every", "eval_samples", "ckpt_every", "lazy_every", "hidden", "layers"):
        value = getattr(cfg, name)
        minimum = 0 if name == "steps" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")
    for name in ("batch_size", "n_critic", "latent_dim"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    for name in ("lr_g", "lr_d", "penalty_weight", "clip", "instance_noise"):
        value = getattr(cfg, name)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    if cfg.lr_decay not in ("none", "linear"):
        raise ValueError(f"--lr-decay must be none or linear, got {cfg.lr_decay!r}")
    if not 0 <= cfg.ema < 1:
        raise ValueError(f"--ema must be in [0, 1), got {cfg.ema!r}")
    if cfg.data not in TOY_DATASETS and not cfg.data.endswith((".npy", ".pt")):
        raise ValueError(f"--data {cfg.data!r}: unknown dataset; expected one of {', '.join(TOY_DATASETS)} "
                         "or a .npy / .pt file")


def _check_out(cfg: TrainConfig) -> tuple[Path, list[str]]:
    """Refuse an --out that holds another run (unless --resume / --force); return the run files there."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {cfg.out!r} exists and is not a directory")
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if cfg.resume:
        if not (out / CHECKPOINT).exists():
            raise ValueError(f"--resume: there is no {CHECKPOINT} in {cfg.out!r} to resume from")
    elif existing and not cfg.force:
        raise ValueError(f"--out {cfg.out!r} already holds a run ({', '.join(existing)}); pass --resume to "
                         "continue it or --force to overwrite it")
    return out, existing


def _check_resume_config(saved: dict | None, cfg: dict) -> None:
    if saved is None:
        raise ValueError("--resume: the checkpoint was not written by `pygan train` (it has no configuration)")
    free = set(RESUMABLE)
    s = spec(saved["loss"]) if saved.get("loss") in LOSSES else None
    if s is not None and s.penalty is None:
        free.add("penalty_weight")  # not used by this loss
        free.add("lazy_every")
    if saved.get("instance_noise") or saved.get("lr_decay", "none") != "none":
        free.discard("steps")  # --steps is then the horizon of a schedule: changing it changes the run
    diff = [f"{k}: checkpoint {saved.get(k)!r}, now {cfg.get(k)!r}" for k in sorted(set(saved) | set(cfg))
            if k not in free and saved.get(k) != cfg.get(k)]
    if diff:
        raise ValueError("--resume: the checkpoint was trained with a different configuration:\n  "
                         + "\n  ".join(diff) + "\nstart a new run (another --out, or --force) instead")


def _adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    # torch's fused Adam (one kernel for all tensors, CPU and CUDA): on the CPU torch's default is the
    # per-tensor loop, 5x slower for the toy MLP (1.3 ms against 0.27 ms a step, measured).
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch or an unsupported device / dtype
        return torch.optim.Adam(params, lr=lr, betas=betas)


def make_optimizers(loss: str, G: torch.nn.Module, D: torch.nn.Module, lr_g: float, lr_d: float,
                    clip: float = 0.01) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The (generator, critic) optimisers a loss trains with (``pygan.train.losses.LossSpec``).

    WGAN: ``pygan.optim.ClippedRMSprop`` for the critic (the update and the clamp to [-clip, clip]
    fused) and RMSprop (foreach) for the generator. The others: Adam with the loss's betas, fused.
    """
    s = spec(loss)
    if s.optimizer == "clipped-rmsprop":
        from pygan.optim import ClippedRMSprop

        return torch.optim.RMSprop(G.parameters(), lr=lr_g, foreach=True), ClippedRMSprop(D.parameters(), lr=lr_d, clip=clip)
    return _adam(G.parameters(), lr_g, s.betas), _adam(D.parameters(), lr_d, s.betas)


def build(cfg: TrainConfig) -> Trainer:
    """Validate the configuration, prepare the run directory, and build the models, optimisers,
    data and :class:`Trainer` (loading the checkpoint when ``cfg.resume``). Every error is raised
    before any training step."""
    _check(cfg)
    device = parse_device(cfg.device)
    rank, world = dist_utils.init_from_env(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out, existing = _check_out(cfg)
    # The data decides the defaults (points or images), so it is loaded first; the batch is set after.
    sampler, held = make_sampler(cfg.data, cfg.batch_size or 1, cfg.seed, device, cfg.eval_samples, rank, world)
    full = resolve(cfg, sampler.kind, sampler.sample_shape[0] if sampler.kind == "points" else 0)
    sampler.batch_size = full.batch_size
    # Every rank has checked --out (and the data is valid) before rank 0 changes anything there.
    dist_utils.barrier()
    if existing and not cfg.resume and rank == 0:  # --force: remove the old run's files, only those
        for f in existing:
            (out / f).unlink()
    s = spec(full.loss)
    torch.manual_seed(full.seed)  # the models' initialisation (the same on every rank)
    if sampler.kind == "points":
        dim = sampler.sample_shape[0]
        G = mlp_generator(full.latent_dim, dim, full.hidden, full.layers)
        D = mlp_critic(dim, full.hidden, full.layers)
    else:
        c, side, _ = sampler.sample_shape
        G, D = dcgan_generator(full.latent_dim, c, side), dcgan_critic(c, side)
    G, D = G.to(device), D.to(device)
    g_opt, d_opt = make_optimizers(full.loss, G, D, full.lr_g, full.lr_d, full.clip)
    if s.optimizer == "clipped-rmsprop":
        from pygan import ops

        ops.clip_(D.parameters(), -full.clip, full.clip)  # start inside the box, like every later step
    saved_config = asdict(full)
    trainer = Trainer(G, D, g_opt, d_opt, sampler, loss=full.loss, latent_shape=full.latent_dim,
                      n_critic=full.n_critic, penalty_weight=full.penalty_weight, lazy_every=full.lazy_every,
                      instance_noise=full.instance_noise, noise_anneal_steps=full.steps, ema=full.ema,
                      lr_decay=full.lr_decay,
                      eval_data=held, eval_every=full.eval_every, ckpt_every=full.ckpt_every, out=out,
                      seed=full.seed, config=saved_config, plots=full.plots, progress=full.progress)
    if cfg.resume:
        state = read_checkpoint(out / CHECKPOINT)
        _check_resume_config(state.get("config") if isinstance(state, dict) else None, saved_config)
        trainer.load_checkpoint(out / CHECKPOINT, state=state)
        if trainer.step >= full.steps and rank == 0:
            print(f"pygan train: the run in {cfg.out} is already at step {trainer.step} >= --steps {full.steps}",
                  file=sys.stderr)
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(saved_config, indent=2) + "\n")
    return trainer


def run(cfg: TrainConfig) -> Trainer:
    """Build and train (see :func:`build`); returns the trainer after :meth:`Trainer.fit`."""
    trainer = build(cfg)
    trainer.fit(trainer.config["steps"])
    return trainer


def parser() -> argparse.ArgumentParser:
    """The ``python -m pygan train`` argument parser, one flag per :class:`TrainConfig` field."""
    p = argparse.ArgumentParser(
        prog="python -m pygan train",
        description="Train a GAN / WGAN / WGAN-GP on a toy distribution or your own data, with the exact "
                    "W1 (pygan.ot.emd2_points) logged to OUT/metrics.jsonl, pictures, checkpoints and "
                    "--resume. Data parallel: torchrun --nproc_per_node=N -m pygan train ... "
                    "Details: docs/train.md.")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            if default:
                p.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                               help="turn off: " + _HELP[f.name])
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=_HELP[f.name])
            continue
        kind = {"int | None": int, "float | None": float}.get(str(f.type), None)
        if kind is None:
            kind = type(default)
        shown = "" if default is None else f" (default: {default})"  # None: the help text says it
        p.add_argument(flag, dest=f.name, type=kind, default=default, help=_HELP[f.name] + shown)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan train``; returns the exit code (1 with a message on bad input)."""
    from pygan.train.trainer import TrainingDiverged

    args = parser().parse_args(argv)
    cfg = TrainConfig(**vars(args))
    try:
        trainer = build(cfg)
    except (ValueError, TypeError) as exc:
        print(f"pygan train: error: {exc}", file=sys.stderr)
        return 2
    try:
        status = trainer.fit(trainer.config["steps"])
    except TrainingDiverged as exc:
        print(f"pygan train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the last checkpoint is kept)
        print(f"pygan train: stopped at step {trainer.step} without saving; "
              f"{trainer._last_checkpoint_text()}", file=sys.stderr)
        return 130
    finally:
        dist_utils.shutdown()
    if trainer.rank == 0 and trainer.history:
        last = trainer.history[-1]
        if last.get("w1") is not None:
            at = "" if last["step"] == trainer.step else f" (last evaluated at step {last['step']})"
            space = " on flattened pixels" if last.get("w1_space") == "flattened pixels" else ""
            print(f"pygan train: {status} at step {trainer.step}{at}: exact W1{space} {last['w1']:.4f} "
                  f"({last['w1_samples']} vs {last['w1_samples']} samples), critic estimate "
                  f"{last['critic_estimate']:.4f}; results in {cfg.out}/", file=sys.stderr)
    return 130 if status == "interrupted" else 0
