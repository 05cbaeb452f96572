"""One step of GAN training: one generator update after ``n_critic`` critic updates
(WGAN, Arjovsky et al. 2017, Algorithm 1), with the schedules around it (instance noise, learning-rate
decay, lazy regularisation, the generator's EMA) and the draws that drive it.

Randomness: every draw of the step (noise z, the penalty's α, instance noise) comes from the step's
own ``torch.Generator``, so a run restored with its state continues with exactly the draws it would
have made. Under data parallelism each rank draws the global batch and keeps its slice (see
``pygan.train.data``), and gradients are averaged with one flattened all-reduce
(``pygan.train.distributed``). :class:`~pygan.train.Trainer` adds the run around the step:
evaluation, checkpoints, pictures and the loop.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from pygan._validate import renamed_keywords
from pygan.penalties import critic_scores
from pygan.train import distributed as dist_utils
from pygan.train.config import check_int, check_nonnegative
from pygan.train.graphs import WARMUP_STEPS, StepGraphs, unsupported
from pygan.train.losses import NEEDS_ALPHA, spec
from pygan.train.tricks import Tricks

__all__ = ["TrainStep", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept (the message says where)."""


def _scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return critic_scores(critic, x, "the trainer")


class TrainStep:
    """The training step around the user's own networks, optimisers and data (the arguments are
    :class:`~pygan.train.Trainer`'s of the same names, which documents them)."""

    @renamed_keywords("TrainStep", generator="G", critic="D")  # the old names, for one release
    def __init__(self, G: nn.Module, D: nn.Module, g_optimizer: torch.optim.Optimizer,
                 d_optimizer: torch.optim.Optimizer, data: Iterable[torch.Tensor], *, loss: str = "wgan-gp",
                 latent_shape: int | tuple[int, ...] = 2, n_critic: int | None = None,
                 penalty_weight: float = 10.0, lazy_every: int = 1, instance_noise: float = 0.0,
                 noise_anneal_steps: int | None = None, ema: float = 0.0, lr_decay: str = "none",
                 seed: int = 0, cuda_graphs: bool = False, condition=None,
                 feature_matching: bool = False, feature_layer: int | None = None,
                 minibatch_discrimination: bool = False, historical_averaging: float = 0.0,
                 label_smoothing: float = 1.0, virtual_batchnorm: bool = False):
        self.spec = spec(loss)
        self.G, self.D = G, D
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
        first = next(self.G.parameters())
        self.device, self.dtype = first.device, first.dtype  # noise is drawn in the generator's dtype
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        if cuda_graphs and (why := unsupported(self.device, world=self.world, lr_decay=lr_decay,
                                               instance_noise=instance_noise, lazy_every=self.lazy_every,
                                               optimizers=(g_optimizer, d_optimizer))):
            raise ValueError("cuda_graphs: the trainer step cannot be captured: " + "; ".join(why))
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if self.ema > 0 else None
        self.step = 0            # generator steps done
        self.critic_steps = 0    # critic updates done (the lazy-regularisation clock)
        self._sums = self._zero_sums()
        self._fit_steps = 0         # the steps of the current fit(): the horizon of the schedules
        self._batch = 0             # the last real batch's size: the generator update draws as many
        self._last_real: torch.Tensor | None = None  # its shape and dtype are what the graphs capture
        self.graphs = StepGraphs(self.generator) if cuda_graphs else None
        dist_utils.broadcast_parameters(self.G)
        dist_utils.broadcast_parameters(self.D)
        if self.G_ema is not None:
            dist_utils.broadcast_parameters(self.G_ema)
        # After the broadcast: the historical averages start from the same weights on every rank.
        self.tricks = Tricks(self, feature_matching=feature_matching, feature_layer=feature_layer,
                             minibatch_discrimination=minibatch_discrimination,
                             historical_averaging=historical_averaging, label_smoothing=label_smoothing,
                             virtual_batchnorm=virtual_batchnorm)
        if cuda_graphs and self.tricks.active:
            raise ValueError("cuda_graphs: the trainer step cannot be captured with the tricks (feature_matching, "
                             "minibatch_discrimination, historical_averaging, label_smoothing, virtual_batchnorm)")
        # A conditional model (pygan.train.cond_step): its updates replace the plain ones below.
        self.condition = condition
        if condition is not None:
            if self.tricks.active:  # a condition's updates replace the plain ones the tricks hook into
                raise ValueError("condition: the training tricks (feature_matching, minibatch_discrimination, "
                                 "historical_averaging, label_smoothing, virtual_batchnorm) are not available "
                                 "with a conditional model")
            condition.attach(self)

    def last_checkpoint_text(self) -> str:
        """Where the last good checkpoint is, for error messages (the Trainer knows; a bare step does not)."""
        return "no checkpoint was written yet"

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

    def next_batch(self):
        """The data's next batch as the data yields it (a tensor, or a tuple such as (x, label)),
        not yet moved to the device. A finite iterable is started again when it runs out. Every
        kind of step (plain, conditional, paired) draws its batches here, so they all consume the
        data, and resume, the same way."""
        if self._data_iter is None:
            self._data_iter = iter(self.data)
        try:
            return next(self._data_iter)
        except StopIteration:  # a finite iterable: start it again
            self._data_iter = iter(self.data)
            return next(self._data_iter)

    def _next_real(self) -> torch.Tensor:
        batch = self.next_batch()
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
        if self.condition is not None:
            return self.condition.critic_update(self, sigma)
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
        loss, penalty = self.tricks.critic_loss(self.spec.family, self.D, real, fake, kind,
                                                weight=self.penalty_weight * self.lazy_every, alpha=alpha)
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        dist_utils.all_reduce_gradients(self.D.parameters())
        self.d_opt.step()
        self.tricks.after_critic_step()
        self.critic_steps += 1
        return loss.detach(), penalty.detach()

    def _generator_update(self, sigma: float, batch: int) -> torch.Tensor:
        """One generator update on ``batch`` fresh samples. Returns the loss, detached."""
        if self.condition is not None:
            return self.condition.generator_update(self, sigma, batch)
        if self.graphs is not None and self.graphs.captured:
            return self.graphs.generator_update()
        # No critic weight gradients in the generator's backward (and a user's frozen ones stay frozen).
        trainable = [p for p in self.D.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            fake = self._noisy(self.G(self._noise(batch)), sigma)
            loss = self.tricks.generator_loss(self, fake, sigma)
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        dist_utils.all_reduce_gradients(self.G.parameters())
        self.g_opt.step()
        self.tricks.after_generator_step()
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
