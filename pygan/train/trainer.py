"""The training loop: :class:`Trainer` takes any generator, critic, optimisers and data iterator.

One :meth:`Trainer.train_step` is one generator update preceded by ``n_critic`` critic updates
(Arjovsky et al. 2017, Algorithm 1). Every ``eval_every`` steps :meth:`Trainer.evaluate` computes the **exact** W1
(``pygan.ot.emd2_points``) between N generated samples and N held-out real ones, and the critic's own
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

import copy
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pygan import ops, ot
from pygan._atomic import atomic_write
from pygan.penalties import fd_penalty
from pygan.train import distributed as dist_utils
from pygan.train.losses import critic_objective, generator_objective, spec

__all__ = ["Trainer", "TrainingDiverged", "CHECKPOINT", "METRICS"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
_FORMAT = 1


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept (the message says where)."""


def _scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = critic(x)
    if out.numel() != x.shape[0]:
        raise ValueError(f"the critic returned shape {list(out.shape)} for a batch of {x.shape[0]}; "
                         "expected one score per sample ([B] or [B, 1])")
    return out.reshape(x.shape[0])


def read_checkpoint(path: str | Path) -> Any:
    """torch.load with ``weights_only=True`` (loading never runs code from the file), on the CPU:
    RNG states must stay CPU ByteTensors; ``load_state_dict`` moves the rest to the models' device."""
    return torch.load(path, map_location="cpu", weights_only=True)


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename over it (``pygan._atomic``)."""
    atomic_write(path, lambda f: torch.save(obj, f))


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
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, g_optimizer: torch.optim.Optimizer,
                 d_optimizer: torch.optim.Optimizer, data: Iterable[torch.Tensor], *, loss: str = "wgan-gp",
                 latent_shape: int | tuple[int, ...] = 2, n_critic: int | None = None,
                 penalty_weight: float = 10.0, lazy_every: int = 1, instance_noise: float = 0.0,
                 noise_anneal_steps: int | None = None, ema: float = 0.0, lr_decay: str = "none",
                 eval_data: torch.Tensor | None = None, eval_every: int = 100, ckpt_every: int = 500,
                 out: str | Path | None = None, seed: int = 0, config: dict | None = None,
                 plots: bool = True, progress: bool = True):
        self.spec = spec(loss)
        self.G, self.D = generator, critic
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.data = data
        self._data_iter: Iterator | None = None
        self.latent_shape = (latent_shape,) if isinstance(latent_shape, int) else tuple(latent_shape)
        self.n_critic = self.spec.n_critic if n_critic is None else _int(n_critic, "n_critic", 1)
        self.penalty_weight = _nonneg(penalty_weight, "penalty_weight")
        self.lazy_every = _int(lazy_every, "lazy_every", 1)
        self.instance_noise = _nonneg(instance_noise, "instance_noise")
        self.noise_anneal_steps = noise_anneal_steps
        if not 0.0 <= float(ema) < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema!r}")
        self.ema = float(ema)
        if lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
        self.lr_decay = lr_decay
        # The initial learning rates, before any checkpoint overwrites the groups with decayed ones.
        self._base_lrs = [[g["lr"] for g in opt.param_groups] for opt in (g_optimizer, d_optimizer)]
        self.eval_every = _int(eval_every, "eval_every", 1)
        self.ckpt_every = _int(ckpt_every, "ckpt_every", 1)
        self.out = Path(out) if out is not None else None
        self.config = config
        self.plots, self.progress = plots, progress
        first = next(self.G.parameters())
        self.device, self.dtype = first.device, first.dtype  # noise is drawn in the generator's dtype
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self._seed = seed
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
        horizon = self.noise_anneal_steps or getattr(self, "_fit_steps", 0) or 1
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

    def _critic_update(self, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        real = self._next_real()
        batch = self._batch = real.shape[0]  # the generator update uses the same batch size
        with torch.no_grad():
            fake = self.G(self._noise(batch))
        real, fake = self._noisy(real, sigma), self._noisy(fake, sigma)
        penalty_kind = self.spec.penalty
        due = penalty_kind is not None and self.critic_steps % self.lazy_every == 0 and self.penalty_weight > 0
        weight = self.penalty_weight * self.lazy_every
        penalty = torch.zeros((), device=self.device)
        if due and penalty_kind == "r1":
            # R1 at the real batch: reuse its forward for the loss (one forward, one double backward).
            real = real.detach().requires_grad_(True)
            d_real = _scores(self.D, real)
            (grads,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            penalty = (weight / 2) * ops.grad_penalty(grads, center=0.0)
            d_fake = _scores(self.D, fake)
        else:
            d_real, d_fake = _scores(self.D, real), _scores(self.D, fake)
            if due and penalty_kind in ("gp", "gp-one-sided"):
                alpha = self._draw(torch.rand, (), batch, real.dtype)
                # alpha comes from torch.rand: skip the range check (a host sync per update on a GPU).
                x_hat = ops.interpolate(real, fake, alpha, _check_alpha=False).requires_grad_(True)
                (grads,) = torch.autograd.grad(_scores(self.D, x_hat).sum(), x_hat, create_graph=True)
                penalty = weight * ops.grad_penalty(grads, center=1.0, one_sided=penalty_kind == "gp-one-sided")
            elif due and penalty_kind == "fd":
                alpha = self._draw(torch.rand, (), batch, real.dtype)
                penalty = fd_penalty(self.D, real, fake, weight, alpha=alpha, _check_alpha=False)
        objective = critic_objective(self.spec.family, d_real, d_fake)
        loss = objective + penalty
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        dist_utils.all_reduce_gradients(self.D.parameters())
        self.d_opt.step()
        self.critic_steps += 1
        return loss.detach(), penalty.detach()

    def _generator_update(self, sigma: float, batch: int) -> torch.Tensor:
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
        if self.G_ema is not None:
            with torch.no_grad():
                src, dst = list(self.G.parameters()), list(self.G_ema.parameters())
                # Warm-up (as TF's ExponentialMovingAverage with num_updates): early on the average
                # would be mostly the random initialisation, so the decay grows to `ema` with the step.
                decay = min(self.ema, (1.0 + self.step) / (10.0 + self.step))
                torch._foreach_lerp_(dst, src, 1.0 - decay)
                for b_dst, b_src in zip(self.G_ema.buffers(), self.G.buffers()):
                    b_dst.copy_(b_src)
        return loss.detach()

    def train_step(self) -> dict:
        """One generator update after ``n_critic`` critic updates.

        Returns:
            {"loss_d", "loss_g", "penalty"} as floats (the last critic update's loss and penalty).

        Raises:
            TrainingDiverged: a loss is NaN or infinite (nothing is saved; the last checkpoint stays).
        """
        t0 = time.perf_counter()
        sigma = self.sigma()
        if self.lr_decay == "linear":
            frac = max(0.0, 1.0 - self.step / max(getattr(self, "_fit_steps", 0), 1))
            for opt, bases in zip((self.g_opt, self.d_opt), self._base_lrs):
                for group, base in zip(opt.param_groups, bases):
                    group["lr"] = base * frac
        for _ in range(self.n_critic):
            loss_d, penalty = self._critic_update(sigma)
        loss_g = self._generator_update(sigma, self._batch)
        values = torch.stack([loss_d.float(), loss_g.float(), penalty.float()])
        if self.world > 1:  # the global batch's losses, and every rank takes the same NaN decision
            values = dist_utils.all_reduce_mean(values)
        values = values.tolist()
        stats = {"loss_d": values[0], "loss_g": values[1], "penalty": values[2]}
        if not all(math.isfinite(v) for v in values):
            where = self._last_checkpoint_text()
            bad = ", ".join(f"{k} = {v}" for k, v in stats.items() if not math.isfinite(v))
            raise TrainingDiverged(f"training diverged at step {self.step + 1}: {bad}. Nothing after "
                                   f"step {self.step} was saved; {where}. Try a lower learning rate or "
                                   "a larger penalty weight.")
        self.step += 1
        s = self._sums
        s["loss_d"] += values[0]
        s["loss_g"] += values[1]
        s["penalty"] += values[2]
        s["n"] += 1
        s["time"] += time.perf_counter() - t0
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
        record["elapsed"] = time.perf_counter() - self._t_start if hasattr(self, "_t_start") else 0.0
        self.history.append(record)
        return record

    def sample(self, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generated samples (from the EMA generator when ema > 0), without gradients."""
        g = self.G_ema if self.G_ema is not None else self.G
        if z is None:  # from a generator of its own: sampling must not change the training draws
            if not hasattr(self, "_sample_gen"):
                self._sample_gen = torch.Generator(device=self.device).manual_seed(self._seed + 104_729)
            z = torch.randn((n or 1, *self.latent_shape), generator=self._sample_gen, device=self.device,
                            dtype=self.dtype)
        with torch.no_grad():
            return g(z)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue bit-for-bit: weights, optimisers, EMA, RNG states, counters."""
        state = {
            "format": _FORMAT, "step": self.step, "critic_steps": self.critic_steps, "config": self.config,
            "generator": self.G.state_dict(), "critic": self.D.state_dict(),
            "g_optimizer": self.g_opt.state_dict(), "d_optimizer": self.d_opt.state_dict(),
            "ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "rng": {"trainer": self.generator.get_state(), "torch": torch.get_rng_state()},
            "data": self.data.state_dict() if hasattr(self.data, "state_dict") else None,
            "running": dict(self._sums),  # the averages since the last evaluation continue after a resume
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (ValueError if it is not a pygan trainer checkpoint)."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError("not a pygan trainer checkpoint (format "
                             f"{state.get('format') if isinstance(state, dict) else type(state).__name__})")
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["critic"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        if self.G_ema is not None:
            if state["ema"] is None:
                raise ValueError("the checkpoint has no EMA generator but this trainer uses ema > 0")
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
                                   f"finite (the losses were). {self._last_checkpoint_text()}. Try a lower "
                                   "learning rate or a larger penalty weight.")

    def save_checkpoint(self) -> Path | None:
        """Write ``OUT/checkpoint.pt`` atomically (rank 0; no-op without ``out``).

        Raises:
            TrainingDiverged: the weights are not finite (nothing is written).
        """
        if self.out is None or self.rank != 0:
            return None
        self._check_weights()
        path = self.out / CHECKPOINT
        atomic_save(self.state_dict(), path)
        self._last_ckpt = (self.step, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None, state: dict | None = None) -> None:
        """Resume from a checkpoint (default ``OUT/checkpoint.pt``), read with :func:`read_checkpoint`.

        Args:
            path: the checkpoint file.
            state: its contents when the caller has already read them (to inspect them first, as
                ``pygan train --resume`` does with the configuration); None reads ``path``.
        """
        path = Path(path) if path is not None else self.out / CHECKPOINT
        self.load_state_dict(read_checkpoint(path) if state is None else state)
        self._last_ckpt = (self.step, path)
        if self.out is not None:
            self._truncate_metrics()

    def _last_checkpoint_text(self) -> str:
        last = getattr(self, "_last_ckpt", None)
        if last is None:
            return "no checkpoint was written yet"
        return f"the last good checkpoint is {last[1]} (step {last[0]}); resume from it with --resume"

    # ---------------------------------------------------------------- metrics and pictures
    def _log(self, record: dict) -> None:
        if self.out is None or self.rank != 0:
            return
        # Non-finite floats become null: strict JSON readers reject NaN / Infinity.
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()

    def _truncate_metrics(self) -> None:
        # Lines written after the checkpoint (a crash between an evaluation and the next checkpoint)
        # would be written again on resume: drop them, atomically.
        path = self.out / METRICS
        if self.rank != 0 or not path.exists():
            return
        kept, self.history = [], []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("step", 0) <= self.step:
                kept.append(line)
                self.history.append(rec)
        atomic_write(path, lambda f: f.write("".join(k + "\n" for k in kept)), binary=False)

    def draw(self) -> None:
        """Write the pictures (samples / critic contour or image grid, W1 curve) into ``out``."""
        if self.out is None or self.rank != 0 or not self.plots:
            return
        from pygan.train import plots

        if not plots.available():
            if not getattr(self, "_warned_plots", False):
                print("pygan train: matplotlib is not installed, so no pictures are drawn "
                      "(pip install matplotlib, or 'pygan-torch[plot]')", file=sys.stderr)
                self._warned_plots = True
            return
        real = self.eval_data
        if real is None:
            return
        fake = self.sample(z=self.eval_z)
        title = f"{self.spec.name}, step {self.step}"
        if real.dim() == 2:
            plots.points(real, fake, self.D, self.out / "samples.png", title=title)
        else:
            plots.image_grid(fake[:64], self.out / "samples.png", title=title)
        plots.w1_curve(self.history, self.out / "w1.png", title=f"{self.spec.name}: exact W1 and the critic's estimate")

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
        steps = _int(steps, "steps", 0)
        self._fit_steps = steps
        self._t_start = time.perf_counter()
        if self.out is not None and self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        old_handler = None
        if threading.current_thread() is threading.main_thread():
            def on_sigint(signum, frame):
                if self._stop:  # a second Ctrl-C: stop now, without the checkpoint
                    raise KeyboardInterrupt
                self._stop = True
            old_handler = signal.signal(signal.SIGINT, on_sigint)
        bar = _Progress(steps, self.step, enabled=self.progress and self.rank == 0)
        status = "done"
        try:
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
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            self._stop = False
        if status == "interrupted" and self.rank == 0:
            where = f" to {self.out / CHECKPOINT}" if self.out is not None else ""
            print(f"pygan train: interrupted at step {self.step}; saved{where}. Continue with --resume.",
                  file=sys.stderr)
        return status


class _Progress:
    """tqdm when installed; otherwise one plain line per evaluation."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.enabled, self.total, self.bar = enabled, total, None
        self.last_w1 = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, step: int, stats: dict) -> None:
        if self.bar is not None:
            self.bar.n = step
            post = {"loss_d": f"{stats['loss_d']:.4f}", "loss_g": f"{stats['loss_g']:.4f}"}
            if self.last_w1 is not None:
                post["W1"] = f"{self.last_w1:.4f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(0)

    def show(self, record: dict) -> dict:
        if record.get("w1") is not None:
            self.last_w1 = record["w1"]
        if self.enabled and self.bar is None:
            parts = [f"step {record['step']}/{self.total}"]
            for key in ("loss_d", "loss_g", "w1", "critic_estimate"):
                if record.get(key) is not None:
                    parts.append(f"{key} {record[key]:.4f}")
            if record.get("step_time"):
                parts.append(f"{record['step_time']:.3f} s/step")
            print("  ".join(parts), flush=True)
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _nonneg(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
