"""Assembling a run of ``python -m pygan train``: the models, optimisers, data and :class:`Trainer`
a :class:`~pygan.train.config.TrainConfig` describes, and the run directory they write to.

Everything the command does is available from Python::

    from pygan.train import TrainConfig, run
    run(TrainConfig(loss="wgan-gp", data="8gaussians", out="runs/demo"))
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from pygan._device import parse_device
from pygan.train import cond_setup
from pygan.train import distributed as dist_utils
from pygan.train.checkpoint import CHECKPOINT, RUN_FILES, read_checkpoint
from pygan.train.config import TrainConfig, check_resume_config, resolve, validate
from pygan.train.cpu import set_threads
from pygan.train.data import make_sampler
from pygan.train.losses import spec
from pygan.train.models import dcgan_critic, dcgan_generator, mlp_critic, mlp_generator
from pygan.train.rundir import RunDirectoryBusy, RunLock, remove_stale_temporaries
from pygan.train.trainer import Trainer
from pygan.train import tricks_cli
from pygan.train.image_data import make_image_sampler
from pygan.train.images import IMAGE_DATASETS
from pygan.train.models import build_models

__all__ = ["RUN_FILES", "build", "run", "make_optimizers"]


def _lock_out(cfg: TrainConfig) -> RunLock:
    """Take --out's lock (creating the directory): one trainer per run directory."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {cfg.out!r} exists and is not a directory")
    lock = RunLock(out)
    try:
        lock.acquire()
    except RunDirectoryBusy as exc:
        flag = "--force: refusing to overwrite a live run: " if cfg.force else \
            "--resume: refusing to resume a live run: " if cfg.resume else "--out: "
        raise RunDirectoryBusy(flag + str(exc), exc.pid) from None
    except OSError as exc:  # read-only, permissions, a missing parent that cannot be created
        raise ValueError(f"--out {cfg.out!r} is not writable: {exc.strerror or exc}") from None
    return lock


def _check_out(cfg: TrainConfig) -> tuple[Path, list[str]]:
    """Refuse an --out that holds another run (unless --resume / --force); return the run files there."""
    out = Path(cfg.out)
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if cfg.resume:
        if not (out / CHECKPOINT).exists():
            raise ValueError(f"--resume: there is no {CHECKPOINT} in {cfg.out!r} to resume from")
    elif existing and not cfg.force:
        raise ValueError(f"--out {cfg.out!r} already holds a run ({', '.join(existing)}); pass --resume to "
                         "continue it or --force to overwrite it")
    return out, existing


def _adam(params, lr: float, betas: tuple[float, float], capturable: bool = False) -> torch.optim.Optimizer:
    # torch's fused Adam (one kernel for all tensors, CPU and CUDA): on the CPU torch's default is the
    # per-tensor loop, 5x slower for the toy MLP (1.3 ms against 0.27 ms a step, measured).
    params = list(params)
    extra = {"capturable": True} if capturable else {}
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, **extra)
    except (RuntimeError, TypeError, ValueError):  # an older torch or an unsupported device / dtype
        return torch.optim.Adam(params, lr=lr, betas=betas, **extra)


def make_optimizers(loss: str, G: torch.nn.Module, D: torch.nn.Module, lr_g: float, lr_d: float,
                    clip: float = 0.01, capturable: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The (generator, critic) optimisers a loss trains with (``pygan.train.losses.LossSpec``).

    WGAN: ``pygan.optim.ClippedRMSprop`` for the critic (the update and the clamp to [-clip, clip]
    fused) and RMSprop (foreach) for the generator. The others: Adam with the loss's betas, fused.

    Args:
        loss: one of ``pygan.train.LOSSES``.
        G, D: the generator and the critic.
        lr_g, lr_d: their learning rates.
        clip: WGAN's clipping bound c.
        capturable: optimisers whose step can be captured in a CUDA graph (``--cuda-graphs``).

    Returns:
        (generator optimiser, critic optimiser).
    """
    s = spec(loss)
    if s.optimizer == "clipped-rmsprop":
        from pygan.optim import ClippedRMSprop

        extra = {"capturable": True} if capturable else {}
        g_opt = torch.optim.RMSprop(G.parameters(), lr=lr_g, foreach=True, **extra)
        return g_opt, ClippedRMSprop(D.parameters(), lr=lr_d, clip=clip)
    return _adam(G.parameters(), lr_g, s.betas, capturable), _adam(D.parameters(), lr_d, s.betas, capturable)


def build(cfg: TrainConfig) -> Trainer:
    """Validate the configuration, prepare the run directory, and build the models, optimisers,
    data and :class:`Trainer` (loading the checkpoint when ``cfg.resume``).

    Args:
        cfg: the run's configuration (None fields take the loss's and the data's defaults).

    Returns:
        The trainer, ready for ``trainer.fit(trainer.config["steps"])``.

    Raises:
        ValueError / TypeError: bad options, data, run directory or checkpoint; every error is raised
            before any training step.
    """
    validate(cfg)
    set_threads(cfg.threads)
    device = parse_device(cfg.device)
    if cfg.cuda_graphs and device.type != "cuda":
        raise ValueError(f"--cuda-graphs needs a CUDA device (--device cuda); got {device}: CUDA graphs replay "
                         "GPU kernels, and on the CPU there is no launch cost to save")
    rank, world = dist_utils.init_from_env(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = not Path(cfg.out).exists()
    lock = _lock_out(cfg) if rank == 0 else None  # rank 0 writes; it holds the lock for the run
    try:
        return _build(cfg, device, rank, world, lock)
    except BaseException:
        if lock is not None:
            lock.release()
            if created:  # leave no empty directory behind a refused run
                try:
                    Path(cfg.out).rmdir()
                except OSError:
                    pass
        raise


def _build(cfg: TrainConfig, device: torch.device, rank: int, world: int, lock: RunLock | None) -> Trainer:
    out, existing = _check_out(cfg)
    # The data decides the defaults (points or images), so it is loaded first; the batch is set after.
    setup = cond_setup.prepare(cfg, device, rank, world)  # a conditional model's data and models (or None)
    if setup is not None:
        sampler, held = setup.sampler, setup.held
    elif cfg.data in IMAGE_DATASETS:
        sampler, held = make_image_sampler(cfg.data, cfg.batch_size or 1, cfg.seed, device, cfg.eval_samples, rank,
                                           world, cfg.image_side)
    else:
        sampler, held = make_sampler(cfg.data, cfg.batch_size or 1, cfg.seed, device, cfg.eval_samples, rank, world)
    full = resolve(cfg, sampler.kind, sampler.sample_shape[0] if sampler.kind == "points" else 0)
    tricks_cli.check_data(full, sampler.kind, sampler.sample_shape, world)
    sampler.batch_size = full.batch_size
    # Every rank has checked --out (and the data is valid) before rank 0 changes anything there.
    dist_utils.barrier()
    if existing and not cfg.resume and rank == 0:  # --force: remove the old run's files, only those
        for f in existing:
            (out / f).unlink()
    if rank == 0:  # what writers killed mid-write left (with --force: whatever their PID)
        remove_stale_temporaries(out, RUN_FILES, everything=cfg.force)
    s = spec(full.loss)
    torch.manual_seed(full.seed)  # the models' initialisation (the same on every rank)
    if setup is not None:
        G, D = setup.models(full)
    elif sampler.kind == "points":
        dim = sampler.sample_shape[0]
        G = mlp_generator(full.latent_dim, dim, full.hidden, full.layers)
        D = mlp_critic(dim, full.hidden, full.layers)
    else:
        c, side, _ = sampler.sample_shape
        G, D = dcgan_generator(full.latent_dim, c, side), dcgan_critic(c, side)
    if full.arch != "small" or full.minibatch_discrimination or full.virtual_batchnorm:
        torch.manual_seed(full.seed)  # the same draws as if only these models were built
        G, D, notes = build_models(full, sampler.kind, sampler.sample_shape, world)
        for note in notes if rank == 0 else ():
            print(f"pygan train: {note}", file=sys.stderr)
    G, D = G.to(device), D.to(device)
    g_opt, d_opt = make_optimizers(full.loss, G, D, full.lr_g, full.lr_d, full.clip, capturable=full.cuda_graphs)
    if s.optimizer == "clipped-rmsprop":
        from pygan import ops

        ops.clip_(D.parameters(), -full.clip, full.clip)  # start inside the box, like every later step
    saved_config = asdict(full)
    trainer = Trainer(G, D, g_opt, d_opt, sampler, loss=full.loss, latent_shape=full.latent_dim,
                      n_critic=full.n_critic, penalty_weight=full.penalty_weight, lazy_every=full.lazy_every,
                      instance_noise=full.instance_noise, noise_anneal_steps=full.steps, ema=full.ema,
                      lr_decay=full.lr_decay,
                      eval_data=held, eval_every=full.eval_every, ckpt_every=full.ckpt_every, out=out,
                      seed=full.seed, config=saved_config, plots=full.plots, progress=full.progress,
                      run_lock=lock, cuda_graphs=full.cuda_graphs,
                      condition=setup.condition if setup is not None else None, **tricks_cli.trainer_kwargs(full))
    if cfg.resume:
        state = read_checkpoint(out / CHECKPOINT)
        check_resume_config(tricks_cli.fill_defaults(state.get("config")) if isinstance(state, dict) else None,
                            saved_config)
        trainer.load_checkpoint(out / CHECKPOINT, state=state)
        if trainer.step >= full.steps and rank == 0:
            print(f"pygan train: the run in {cfg.out} is already at step {trainer.step} >= --steps {full.steps}",
                  file=sys.stderr)
    elif rank == 0:
        (out / "config.json").write_text(json.dumps(saved_config, indent=2) + "\n")
    return trainer


def run(cfg: TrainConfig) -> Trainer:
    """Build and train (see :func:`build`).

    Returns:
        The trainer after :meth:`Trainer.fit`.
    """
    trainer = build(cfg)
    trainer.fit(trainer.config["steps"])
    return trainer
