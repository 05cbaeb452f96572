"""The training loop: :class:`Trainer` takes any generator, critic, optimisers and data iterator.

One :meth:`Trainer.train_step` is one generator update preceded by ``n_critic`` critic updates
(:class:`pygan.train.step.TrainStep`). Every ``eval_every`` steps :meth:`Trainer.evaluate` computes
the **exact** W1 (``pygan.ot.emd2_points``) between N generated samples and N held-out real ones,
and the critic's own estimate −L_D; the numbers are appended to ``OUT/metrics.jsonl``. Checkpoints
are written atomically (temporary file, fsync, rename) every ``ckpt_every`` steps, at the end, on
Ctrl-C, and never after a non-finite loss, so the last checkpoint is always a good one to resume
from. A checkpoint holds every random generator's state (and the data iterator's, when it has
``state_dict()``), so a resumed run continues with exactly the draws it would have made.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from pygan import ot
from pygan._validate import renamed_keywords
from pygan.penalties import critic_scores
from pygan.train import distributed as dist_utils
from pygan.train.checkpoint import CHECKPOINT, FORMAT, METRICS, RUN_FILES, CheckpointError, RunFiles, check_state, \
    checksum
from pygan.train.config import check_int
from pygan.train.graphs import StepGraphs
from pygan.train.losses import critic_objective
from pygan.train.progress import Progress, ctrl_c_requests_stop
from pygan.train.rundir import RunLock, remove_stale_temporaries
from pygan.train.step import TrainingDiverged, TrainStep
from pygan.train.tricks import frozen_buffers

__all__ = ["Trainer", "TrainingDiverged", "CHECKPOINT", "METRICS"]


class Trainer(TrainStep):
    """A thin GAN trainer around the user's own networks, optimisers and data.

    Args:
        G: the generator network: maps noise [B, *latent_shape] to samples [B, ...] (the keyword
            ``generator=`` is its deprecated name, accepted for one release).
        D: the critic (discriminator) network: maps samples to one score per sample ([B] or [B, 1]);
            raw scores, no sigmoid (``critic=`` is its deprecated name, accepted for one release).
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
        condition: None, or a conditional model's :class:`pygan.train.cond_step.Condition`
            (``LabelCondition``: G(z, y), D(x, y) and data of (x, y) batches; ``InfoGANCondition``;
            ``Pix2PixCondition``: G(a), D(a, b) and data of (a, b) pairs, eval_data the targets b).
            Its updates, metrics and pictures replace the plain ones (docs/conditional.md).
        **tricks: the training tricks of Salimans et al. 2016 (:class:`pygan.train.tricks.Tricks`,
            docs/train.md): ``feature_matching`` (bool) and ``feature_layer`` (D's layer, 1-based;
            None: the last), ``historical_averaging`` (W >= 0), ``label_smoothing`` (the real target
            s in (0, 1], JS losses only), and ``minibatch_discrimination`` / ``virtual_batchnorm``
            (bool: check that D holds a pygan.nn.MinibatchDiscrimination layer, that G is a
            pygan.nn.ReferenceBatch; ``pygan.train.models.build_models`` builds such nets).
    """

    @renamed_keywords("Trainer", generator="G", critic="D")  # the old names, for one release
    def __init__(self, G: nn.Module, D: nn.Module, g_optimizer: torch.optim.Optimizer,
                 d_optimizer: torch.optim.Optimizer, data: Iterable[torch.Tensor], *, loss: str = "wgan-gp",
                 latent_shape: int | tuple[int, ...] = 2, n_critic: int | None = None,
                 penalty_weight: float = 10.0, lazy_every: int = 1, instance_noise: float = 0.0,
                 noise_anneal_steps: int | None = None, ema: float = 0.0, lr_decay: str = "none",
                 eval_data: torch.Tensor | None = None, eval_every: int = 100, ckpt_every: int = 500,
                 out: str | Path | None = None, seed: int = 0, config: dict | None = None,
                 plots: bool = True, progress: bool = True, run_lock: RunLock | None = None,
                 cuda_graphs: bool = False, condition=None, **tricks):
        super().__init__(G, D, g_optimizer, d_optimizer, data, loss=loss, latent_shape=latent_shape,
                         n_critic=n_critic, penalty_weight=penalty_weight, lazy_every=lazy_every,
                         instance_noise=instance_noise, noise_anneal_steps=noise_anneal_steps, ema=ema,
                         lr_decay=lr_decay, seed=seed, cuda_graphs=cuda_graphs, condition=condition, **tricks)
        self.eval_every = check_int(eval_every, "eval_every", 1)
        self.ckpt_every = check_int(ckpt_every, "ckpt_every", 1)
        self.out = Path(out) if out is not None else None
        self.files = RunFiles(self.out, self.rank)
        self.run_lock = run_lock if run_lock is not None or not self.files.writes else RunLock(self.out)
        self.config = config
        self.plots, self.progress = plots, progress
        g_eval = torch.Generator().manual_seed(seed + 7_919)
        n_eval = eval_data.shape[0] if eval_data is not None else 0
        self.eval_z = torch.randn((n_eval, *self.latent_shape), generator=g_eval, dtype=self.dtype).to(self.device)
        self.eval_data = eval_data.to(self.device) if eval_data is not None else None
        self.history: list[dict] = []
        self._stop = False
        self._t_start: float | None = None  # when the current fit() began (the records' "elapsed")
        self._warned_plots = False
        # sample() draws from a generator of its own: sampling must not change the training draws.
        self._sample_gen = torch.Generator(device=self.device).manual_seed(seed + 104_729)

    # ---------------------------------------------------------------- evaluation
    def critic_estimate(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        """−L_D without the penalty on the given batches (W1's estimate for the W family)."""
        with torch.no_grad():
            D = self.tricks.eval_critic(self.D)
            return -float(critic_objective(self.spec.family, critic_scores(D, real, "the trainer"),
                                           critic_scores(D, fake, "the trainer")))

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
        if self.eval_data is not None and self.rank == 0 and self.condition is not None:
            self._check_weights()
            record.update(self.condition.evaluate(self))  # w1, w1_per_class, code_accuracy, l1, ...
        elif self.eval_data is not None and self.rank == 0:
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
        if self.condition is not None:  # random labels / codes (the condition's own sample() takes them)
            return self.condition.sample(self, n, z)
        g = self.G_ema if self.G_ema is not None else self.G
        if z is None:
            z = torch.randn((n or 1, *self.latent_shape), generator=self._sample_gen, device=self.device,
                            dtype=self.dtype)
        with torch.no_grad(), frozen_buffers(g):  # sampling leaves batch-norm / VBN statistics as they are
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
        if (tricks := self.tricks.state_dict()) is not None:  # historical averages (pygan.train.tricks)
            state["tricks"] = tricks
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
        self.tricks.check_state(state.get("tricks"))
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
        self.tricks.load_state_dict(state.get("tricks"))
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
                      "(pip install matplotlib, or 'pygan-torch[plot]')", file=sys.stderr)
                self._warned_plots = True
            return
        if self.condition is not None:  # per-class rows, traversals, pix2pix triplets
            self.condition.draw(self)
            return
        plots.draw_run(self.out, self.spec.name, self.step, self.eval_data, self.sample(z=self.eval_z),
                       self.tricks.eval_critic(self.D), self.history)

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
