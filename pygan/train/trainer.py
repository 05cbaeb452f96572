"""The training loop: :class:`Trainer` takes any generator, critic, optimisers and data iterator.

One :meth:`Trainer.train_step` is one generator update preceded by ``n_critic`` critic updates
(WGAN, Arjovsky et al. 2017, Algorithm 1). Every ``eval_every`` steps :meth:`Trainer.evaluate`
computes the **exact** W1 (``pygan.ot.emd2_points``) between N generated samples and N held-out real ones, and the critic's own
estimate −L_D; the numbers are appended to ``OUT/metrics.jsonl``. Checkpoints are written atomically
(temporary file, fsync, rename) every ``ckpt_every`` steps, at the end, on Ctrl-C, and never after a
non-finite loss, so the last checkpoint is always a good one to resume from.

Randomness: every draw of the loop (noise z, the penalty's α, instance noise) comes from the trainer's
own ``torch.Generator``; a data iterator with ``state_dict()`` (the built-in samplers) is saved too.
A resumed run therefore continues with exactly the draws it would have made. Under data parallelism
each rank draws the global batch and keeps its slice (see ``pygan.train.data``), and gradients are
averaged with one flattened all-reduce (``pygan.train.distributed``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from pygan import ot
from pygan.penalties import critic_scores
from pygan.train import distributed as dist_utils
from pygan.train.checkpoint import CHECKPOINT, FORMAT, METRICS, RUN_FILES, CheckpointError, RunFiles, check_state, \
    checksum
from pygan.train.config import check_int, check_nonnegative
from pygan.train.graphs import WARMUP_STEPS, StepGraphs, unsupported
from pygan.train.losses import NEEDS_ALPHA, critic_loss, critic_objective, generator_objective, spec
from pygan.train.progress import Progress, ctrl_c_requests_stop
from pygan.train.rundir import RunLock, remove_stale_temporaries

__all__ = ["Trainer", "TrainingDiverged", "CHECKPOINT", "METRICS"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept (the message says where)."""


def _scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return critic_scores(critic, x, "the trainer")


class Trainer:
    """A thin GAN trainer around the user's own networks, optimisers and data.

    Args:
        generator: maps noise [B, *latent_shape] to samples [B, ...].
        critic: maps samples to one score per sample ([B] or [B, 1]); raw scores, no sigmoid.
        g_optimizer, d_optimizer: the optimisers of the generator's and the critic's parameters (for
            WGAN weight clipping, pass a ``pygan.optim.ClippedRMSprop`` as d_optimizer).
        data: an iterable of real batches [B, ...] (an infinite iterator, or re-iterated when it ends).
        loss: one of ``pygan.train.LOSSES`` (see ``pygan.train.losses`` for each objective).
        latent_shape: the shape of one noise sample (an int for vectors).
        n_critic: critic updates per generator update (default: the loss's, 5 or 1).
        penalty_weight: λ of the gp / one-sided gp / fd penalties, γ of R1 (ignored for the others).
        lazy_every: apply the penalty on one critic update in k, scaled by k (lazy regularisation).
        instance_noise: σ0 of the N(0, σ²) noise added to the critic's real and fake inputs, annealed
            linearly to 0 over ``noise_anneal_steps`` generator steps (0 disables it).
        noise_anneal_steps: see instance_noise (default: the steps passed to :meth:`fit`).
        ema: decay of an exponential moving average of the generator's weights (0 disables it), with
            a warm-up: the decay at step t is min(ema, (1 + t) / (10 + t)). When on, evaluation and
            pictures use the averaged generator.
        lr_decay: "none", or "linear": both learning rates fall linearly from their initial values to
            0 at the last step passed to :meth:`fit` (as the WGAN-GP authors' CIFAR code does).
        eval_data: held-out real samples [N, ...] for the exact W1 (None: W1 is not computed).
        eval_every, ckpt_every: in generator steps.
        out: the run directory (metrics, checkpoints, pictures); None keeps nothing on disk.
        seed: seeds the trainer's generator (the loop's draws) and the fixed evaluation noise.
        config: a JSON-able dict stored in checkpoints and checked on resume (the CLI's options).
        plots: draw matplotlib pictures at each checkpoint (skipped with a note if it is missing).
        progress: show a progress bar (tqdm if installed, a plain line per evaluation otherwise).
        run_lock: the run directory's :class:`~pygan.train.rundir.RunLock` when the caller holds it
            already (``pygan.train.build`` does); None: :meth:`fit` takes it. It is held while
            :meth:`fit` runs, and a second trainer on the same directory is refused.
        cuda_graphs: replay the critic and generator updates as CUDA graphs after a few eager steps
            (``pygan.train.graphs``; ValueError with the reasons where they cannot be captured).
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, g_optimizer: torch.optim.Optimizer,
                 d_optimizer: torch.optim.Optimizer, data: Iterable[torch.Tensor], *, loss: str = "wgan-gp",
                 latent_shape: int | tuple[int, ...] = 2, n_critic: int | None = None,
                 penalty_weight: float = 10.0, lazy_every: int = 1, instance_noise: float = 0.0,
                 noise_anneal_steps: int | None = None, ema: float = 0.0, lr_decay: str = "none",
                 eval_data: torch.Tensor | None = None, eval_every: int = 100, ckpt_every: int = 500,
                 out: str | Path | None = None, seed: int = 0, config: dict | None = None,
                 plots: bool = True, progress: bool = True, run_lock: RunLock | None = None,
                 cuda_graphs: bool = False):
        self.spec = spec(loss)
        self.G, self.D = generator, critic
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.data = data
        self._data_iter: Iterator | None = None
        self.latent_shape = (latent_shape,) if isinstance(latent_shape, int) else tuple(latent_shape)
        self.n_critic = self.spec.n_critic if n_critic is None else check_int(n_critic, "n_critic", 1)
        self.penalty_weight = check_nonnegative(penalty_weight, "penalty_weight")
        self.lazy_every = check_int(lazy_every, "lazy_every", 1)
        self.instance_noise = check_nonnegative(instance_noise, "instance_noise")
        self.noise_anneal_steps = noise_anneal_steps
        if not 0.0 <= float(ema) < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema!r}")
        self.ema = float(ema)
        if lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
        self.lr_decay = lr_decay
        # The initial learning rates, before any checkpoint overwrites the groups with decayed ones.
        self._base_lrs = [[g["lr"] for g in opt.param_groups] for opt in (g_optimizer, d_optimizer)]
        self.eval_every = check_int(eval_every, "eval_every", 1)
        self.ckpt_every = check_int(ckpt_every, "ckpt_every", 1)
        self.out = Path(out) if out is not None else None
        self.files = RunFiles(self.out, dist_utils.rank())
        self.run_lock = run_lock if run_lock is not None or not self.files.writes else RunLock(self.out)
        self.config = config
        self.plots, self.progress = plots, progress
        first = next(self.G.parameters())
        self.device, self.dtype = first.device, first.dtype  # noise is drawn in the generator's dtype
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        if cuda_graphs and (why := unsupported(self.device, world=self.world, lr_decay=lr_decay,
                                               instance_noise=instance_noise, lazy_every=self.lazy_every,
                                               optimizers=(g_optimizer, d_optimizer))):
            raise ValueError("cuda_graphs: the trainer step cannot be captured: " + "; ".join(why))
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        g_eval = torch.Generator().manual_seed(seed + 7_919)
        n_eval = eval_data.shape[0] if eval_data is not None else 0
        self.eval_z = torch.randn((n_eval, *self.latent_shape), generator=g_eval, dtype=self.dtype).to(self.device)
        self.eval_data = eval_data.to(self.device) if eval_data is not None else None
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if self.ema > 0 else None
        self.step = 0            # generator steps done
        self.critic_steps = 0    # critic updates done (the lazy-regularisation clock)
        self.history: list[dict] = []
        self._sums = self._zero_sums()
        self._stop = False
        self._fit_steps = 0         # the steps of the current fit(): the horizon of the schedules
        self._t_start: float | None = None  # when the current fit() began (the records' "elapsed")
        self._batch = 0             # the last real batch's size: the generator update draws as many
        self._last_real: torch.Tensor | None = None  # its shape and dtype are what the graphs capture
        self._warned_plots = False
        # sample() draws from a generator of its own: sampling must not change the training draws.
        self._sample_gen = torch.Generator(device=self.device).manual_seed(seed + 104_729)
        self.graphs = StepGraphs(self.generator) if cuda_graphs else None
        dist_utils.broadcast_parameters(self.G)
        dist_utils.broadcast_parameters(self.D)
        if self.G_ema is not None:
            dist_utils.broadcast_parameters(self.G_ema)

    # ---------------------------------------------------------------- randomness
    def _draw(self, fn, tail: tuple[int, ...], batch: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        # The global batch's draw (identical on every rank), this rank's slice of it.
        full = fn((batch * self.world, *tail), generator=self.generator, device=self.device,
                  dtype=dtype or self.dtype)
        return full[self.rank * batch:(self.rank + 1) * batch]

    def _noise(self, batch: int) -> torch.Tensor:
        return self._draw(torch.randn, self.latent_shape, batch)

    def sigma(self) -> float:
        """The instance-noise σ at the current step (linear decay from σ0 to 0)."""
        if self.instance_noise == 0:
            return 0.0
        horizon = self.noise_anneal_steps or self._fit_steps or 1
        return self.instance_noise * max(0.0, 1.0 - self.step / horizon)

    def _noisy(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma == 0:
            return x
        return x + sigma * self._draw(torch.randn, tuple(x.shape[1:]), x.shape[0], x.dtype)

    def _next_real(self) -> torch.Tensor:
        if self._data_iter is None:
            self._data_iter = iter(self.data)
        try:
            batch = next(self._data_iter)
        except StopIteration:  # a finite iterable: start it again
            self._data_iter = iter(self.data)
            batch = next(self._data_iter)
        if isinstance(batch, (tuple, list)):  # (x, label) datasets: keep x
            batch = batch[0]
        return batch.to(self.device, non_blocking=True)

    # ---------------------------------------------------------------- one step
    def _zero_sums(self) -> dict:
        return {"loss_d": 0.0, "loss_g": 0.0, "penalty": 0.0, "n": 0, "time": 0.0}

    def _penalty_due(self) -> bool:
        # Lazy regularisation: the penalty on one critic update in lazy_every (scaled by lazy_every).
        return (self.spec.penalty is not None and self.penalty_weight > 0
                and self.critic_steps % self.lazy_every == 0)

    def _critic_update(self, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One critic update: L_D(real, G(z)) + the penalty when due. Returns (loss, penalty), detached."""
        real = self._last_real = self._next_real()
        self._batch = real.shape[0]
        if self.graphs is not None and self.graphs.captured:
            self.critic_steps += 1
            return self.graphs.critic(real)
        return self._critic_step(real, sigma)

    def _critic_step(self, real: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        batch = real.shape[0]
        with torch.no_grad():
            fake = self.G(self._noise(batch))
        real, fake = self._noisy(real, sigma), self._noisy(fake, sigma)
        kind = self.spec.penalty if self._penalty_due() else None
        # alpha: the global batch's draw, this rank's slice (after z and the instance noise).
        alpha = self._draw(torch.rand, (), batch, real.dtype) if kind in NEEDS_ALPHA else None
        loss, penalty = critic_loss(self.spec.family, self.D, real, fake, kind,
                                    weight=self.penalty_weight * self.lazy_every, alpha=alpha)
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        dist_utils.all_reduce_gradients(self.D.parameters())
        self.d_opt.step()
        self.critic_steps += 1
        return loss.detach(), penalty.detach()

    def _generator_update(self, sigma: float, batch: int) -> torch.Tensor:
        """One generator update on ``batch`` fresh samples. Returns the loss, detached."""
        if self.graphs is not None and self.graphs.captured:
            return self.graphs.generator_update()
        # No critic weight gradients in the generator's backward (and a user's frozen ones stay frozen).
        trainable = [p for p in self.D.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            fake = self._noisy(self.G(self._noise(batch)), sigma)
            loss = generator_objective(self.spec.name, _scores(self.D, fake))
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        dist_utils.all_reduce_gradients(self.G.parameters())
        self.g_opt.step()
        return loss.detach()

    def _after_warmup_step(self) -> None:
        self.graphs.end_warmup_step()
        if self.graphs.eager_steps >= WARMUP_STEPS:  # capture (runs nothing: the counters are kept)
            critic_steps = self.critic_steps
            self.graphs.capture(lambda real: self._critic_step(real, 0.0),
                                lambda batch: self._generator_update(0.0, batch),
                                torch.empty_like(self._last_real), self._batch)
            self.critic_steps = critic_steps

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        # Warm-up (as TF's ExponentialMovingAverage with num_updates): early on the average would be
        # mostly the random initialisation, so the decay grows to `ema` with the step.
        decay = min(self.ema, (1.0 + self.step) / (10.0 + self.step))
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - decay)
        for b_dst, b_src in zip(self.G_ema.buffers(), self.G.buffers()):
            b_dst.copy_(b_src)

    def _set_learning_rates(self) -> None:
        if self.lr_decay == "linear":  # base · (1 - step / steps)
            frac = max(0.0, 1.0 - self.step / max(self._fit_steps, 1))
            for opt, bases in zip((self.g_opt, self.d_opt), self._base_lrs):
                for group, base in zip(opt.param_groups, bases):
                    group["lr"] = base * frac

    def _finite_stats(self, loss_d: torch.Tensor, loss_g: torch.Tensor, penalty: torch.Tensor) -> dict:
        # One host sync per step; under data parallelism the global batch's means, so that every
        # rank takes the same decision.
        values = torch.stack([loss_d.float(), loss_g.float(), penalty.float()])
        if self.world > 1:
            values = dist_utils.all_reduce_mean(values)
        stats = dict(zip(("loss_d", "loss_g", "penalty"), values.tolist()))
        if not all(math.isfinite(v) for v in stats.values()):
            bad = ", ".join(f"{k} = {v}" for k, v in stats.items() if not math.isfinite(v))
            raise TrainingDiverged(f"training diverged at step {self.step + 1}: {bad}. Nothing after "
                                   f"step {self.step} was saved; {self.last_checkpoint_text()}. Try a lower "
                                   "learning rate or a larger penalty weight.")
        return stats

    def train_step(self) -> dict:
        """One generator update after ``n_critic`` critic updates.

        Returns:
            {"loss_d", "loss_g", "penalty"} as floats (the last critic update's loss and penalty).

        Raises:
            TrainingDiverged: a loss is NaN or infinite (nothing is saved; the last checkpoint stays).
        """
        t0 = time.perf_counter()
        sigma = self.sigma()
        self._set_learning_rates()
        warming = self.graphs is not None and not self.graphs.captured
        with self.graphs.warmup_stream() if warming else contextlib.nullcontext():
            for _ in range(self.n_critic):
                loss_d, penalty = self._critic_update(sigma)
            loss_g = self._generator_update(sigma, self._batch)
        if warming:
            self._after_warmup_step()
        self._update_ema()
        stats = self._finite_stats(loss_d, loss_g, penalty)
        self.step += 1
        for key, value in stats.items():
            self._sums[key] += value
        self._sums["n"] += 1
        self._sums["time"] += time.perf_counter() - t0
        return stats

    # ---------------------------------------------------------------- evaluation
    def critic_estimate(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        """−L_D without the penalty on the given batches (W1's estimate for the W family)."""
        with torch.no_grad():
            return -float(critic_objective(self.spec.family, _scores(self.D, real), _scores(self.D, fake)))

    def evaluate(self) -> dict:
        """The metrics at the current step (rank 0 only computes W1; others return the losses).

        Returns:
            A dict with step, w1 (exact, flattened samples; None without eval_data), w1_samples,
            w1_space ("points", or "flattened pixels" for images: W1 in pixel space, not perceptual),
            critic_estimate, loss_d / loss_g / penalty (means since the last evaluation), step_time
            (seconds per generator step), sigma (instance noise) and elapsed wall time.
        """
        s = self._sums
        n = max(s["n"], 1)
        record = {"step": self.step, "loss_d": s["loss_d"] / n if s["n"] else None,
                  "loss_g": s["loss_g"] / n if s["n"] else None,
                  "penalty": s["penalty"] / n if s["n"] else None,
                  "step_time": s["time"] / n if s["n"] else None, "sigma": self.sigma(),
                  "w1": None, "w1_samples": 0, "w1_space": None, "critic_estimate": None}
        self._sums = self._zero_sums()
        if self.eval_data is not None and self.rank == 0:
            self._check_weights()
            fake = self.sample(z=self.eval_z)
            real = self.eval_data
            w1 = ot.emd2_points(fake.flatten(1).double(), real.flatten(1).double(), metric="euclidean")
            record.update(w1=float(w1), w1_samples=int(real.shape[0]),
                          w1_space="flattened pixels" if real.dim() > 2 else "points",
                          critic_estimate=self.critic_estimate(real, fake))
        record["elapsed"] = time.perf_counter() - self._t_start if self._t_start is not None else 0.0
        self.history.append(record)
        return record

    def sample(self, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generated samples (from the EMA generator when ema > 0), without gradients."""
        g = self.G_ema if self.G_ema is not None else self.G
        if z is None:
            z = torch.randn((n or 1, *self.latent_shape), generator=self._sample_gen, device=self.device,
                            dtype=self.dtype)
        with torch.no_grad():
            return g(z)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue bit-for-bit: weights, optimisers, EMA, RNG states, counters."""
        state = {
            "format": FORMAT, "step": self.step, "critic_steps": self.critic_steps, "config": self.config,
            "generator": self.G.state_dict(), "critic": self.D.state_dict(),
            "g_optimizer": self.g_opt.state_dict(), "d_optimizer": self.d_opt.state_dict(),
            "ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "rng": {"trainer": self.generator.get_state(), "torch": torch.get_rng_state()},
            "data": self.data.state_dict() if hasattr(self.data, "state_dict") else None,
            "running": dict(self._sums),  # the averages since the last evaluation continue after a resume
        }
        state["checksum"] = checksum(state)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ValueError: not a trainer checkpoint, a checksum that does not match, a missing or
                mistyped field, a negative step, or a shape that does not match the models (all
                checked before anything is changed).
        """
        check_state(state, self.G, self.D, self.G_ema, self.g_opt, self.d_opt)
        if self.graphs is not None:  # the optimisers' state tensors are replaced: capture again
            self.graphs = StepGraphs(self.generator)
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["critic"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["ema"])
        self.generator.set_state(state["rng"]["trainer"])
        torch.set_rng_state(state["rng"]["torch"])
        if state.get("data") is not None and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
        self.step, self.critic_steps = int(state["step"]), int(state["critic_steps"])
        if state.get("running") is not None:
            self._sums = {k: type(v)(state["running"][k]) for k, v in self._zero_sums().items()}

    def _check_weights(self) -> None:
        # A finite loss does not prove finite weights (the update after it may overflow): checked
        # before anything is evaluated or saved, so a checkpoint is always a good one.
        tensors = [p.detach() for m in (self.G, self.D, self.G_ema) if m is not None for p in m.parameters()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            raise TrainingDiverged(f"training diverged by step {self.step}: the network weights are no longer "
                                   f"finite (the losses were). {self.last_checkpoint_text()}. Try a lower "
                                   "learning rate or a larger penalty weight.")

    def save_checkpoint(self) -> Path | None:
        """Write ``OUT/checkpoint.pt`` atomically (rank 0; no-op without ``out``).

        Raises:
            TrainingDiverged: the weights are not finite (nothing is written).
        """
        if not self.files.writes:
            return None
        self._check_weights()
        return self.files.save_checkpoint(self.state_dict(), self.step)

    def load_checkpoint(self, path: str | Path | None = None, state: dict | None = None) -> None:
        """Resume from a checkpoint (default ``OUT/checkpoint.pt``).

        Args:
            path: the checkpoint file.
            state: its contents when the caller has already read them (to inspect them first, as
                ``pygan train --resume`` does with the configuration); None reads ``path``.
        """
        path = Path(path) if path is not None else self.files.checkpoint
        if state is None:
            state = self.files.read_checkpoint(path)
        try:
            self.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}; {self.files.fallback_text()}") from exc
        kept = self.files.loaded(self.step, path)
        if kept is not None:
            self.history = kept

    def last_checkpoint_text(self) -> str:
        """Where the last good checkpoint is, as a sentence for error messages."""
        return self.files.last_checkpoint_text()

    # ---------------------------------------------------------------- metrics and pictures
    def _log(self, record: dict) -> None:
        self.files.log(record)

    def draw(self) -> None:
        """Write the pictures (samples / critic contour or image grid, W1 curve) into ``out``."""
        if not self.files.writes or not self.plots or self.eval_data is None:
            return
        from pygan.train import plots

        if not plots.available():
            if not self._warned_plots:
                print("pygan train: matplotlib is not installed, so no pictures are drawn "
                      "(pip install matplotlib, or pygan[plot])", file=sys.stderr)
                self._warned_plots = True
            return
        plots.draw_run(self.out, self.spec.name, self.step, self.eval_data, self.sample(z=self.eval_z), self.D,
                       self.history)

    # ---------------------------------------------------------------- the loop
    def request_stop(self) -> None:
        """Ask :meth:`fit` to save a checkpoint and return after the current step (as Ctrl-C does)."""
        self._stop = True

    def fit(self, steps: int) -> str:
        """Train until ``steps`` generator steps are done in total (a resumed run continues).

        Returns:
            "done", or "interrupted" after Ctrl-C / :meth:`request_stop` (a checkpoint was saved).

        Raises:
            TrainingDiverged: a non-finite loss (the last good checkpoint is kept).
        """
        steps = check_int(steps, "steps", 0)
        self._fit_steps = steps
        self._t_start = time.perf_counter()
        if self.run_lock is not None:
            self.run_lock.acquire()  # RunDirectoryBusy (a ValueError) when another trainer holds it
            remove_stale_temporaries(self.out, RUN_FILES)
        bar = Progress(steps, self.step, enabled=self.progress and self.rank == 0)
        status = "done"
        try:
            with ctrl_c_requests_stop(lambda: self._stop, self.request_stop):
                if self.step == 0 and not self.history:
                    self._log(bar.show(self.evaluate()))
                while self.step < steps:
                    stats = self.train_step()
                    bar.update(self.step, stats)
                    stop = self._stop
                    if self.world > 1:  # a Ctrl-C on any rank stops every rank at the same step
                        flag = torch.tensor([int(stop)], device=self.device)  # nccl reduces device tensors
                        stop = bool(dist_utils.any_flag(flag).item())
                    if stop:
                        self.save_checkpoint()
                        self.draw()
                        status = "interrupted"
                        break
                    if self.step % self.eval_every == 0 or self.step == steps:
                        self._log(bar.show(self.evaluate()))
                    if self.step % self.ckpt_every == 0 or self.step == steps:
                        self.save_checkpoint()
                        self.draw()
        finally:
            bar.close()
            self._stop = False
            if self.run_lock is not None:
                self.run_lock.release()
        if status == "interrupted" and self.rank == 0:
            where = f" to {self.out / CHECKPOINT}" if self.out is not None else ""
            print(f"pygan train: interrupted at step {self.step}; saved{where}. Continue with --resume.",
                  file=sys.stderr)
        return status
