"""Conditional training steps: a class-conditional GAN, InfoGAN and pix2pix inside the trainer.

A :class:`Condition` is handed to :class:`~pygan.train.Trainer` (``condition=``); the trainer's
critic and generator updates, evaluation, sampling and pictures then call into it. Each one keeps
the rest of the step as it is: the loss (any of ``pygan.train.LOSSES``), ``n_critic``, the penalty
and its lazy schedule, instance noise, the EMA generator, data parallelism (every draw is the global
batch's, each rank keeps its slice) and bit-exact resume (every draw comes from the trainer's own
generator).

* :class:`LabelCondition` (Mirza & Osindero 2014): the data yields ``(x, y)`` with y a class in
  [0, K); ``G(z, y)`` and ``D(x, y)`` (see :mod:`pygan.train.conditional`). The fake batch of a
  critic update is generated with the real batch's labels, and the penalty is taken with respect
  to x only, each sample at its own y (``critic_args=(y,)`` of :mod:`pygan.penalties`); the
  generator update reuses the last real batch's labels (the data's class frequencies).
* :class:`InfoGANCondition` (Chen et al. 2016): G's input is ``[z', c]`` (:class:`~pygan.train.infogan.InfoGANCodes`),
  D an :class:`~pygan.train.infogan.InfoGANCritic` whose Q head shares its body; the information
  loss ``λ_info·(CE + NLL)`` is added to the critic's loss (on the fake batch, training Q) and to the
  generator's. Labels in the data, if any, are never used for training.
* :class:`Pix2PixCondition` (Isola et al. 2017): the data yields pairs ``(a, b)``; ``G(a)`` and
  ``D(a, b)`` (a patch critic); the generator's loss adds ``λ_L1·E|b - G(a)|``. The JS losses are
  taken over the patch scores, the W losses and every penalty on the per-sample mean score
  (``PatchCritic.score``), with respect to b only at the same a.

Objectives (D's scores of real / fake under each sample's own condition c)::

    L_D = L_loss(D(x, c), D(G(z, c), c)) + penalty_x(D(·, c)) [+ λ_info·(CE + NLL) for InfoGAN]
    L_G = L_loss_G(D(G(z, c), c)) [+ λ_info·(CE + NLL)] [+ λ_L1·E|b - G(a)| for pix2pix]
"""

from __future__ import annotations

import torch

from pygan.penalties import critic_scores, fd_penalty, gradient_penalty, r1_penalty
from pygan.train import distributed as dist_utils
from pygan.train.losses import NEEDS_ALPHA, critic_objective, generator_objective

__all__ = ["Condition", "LabelCondition", "InfoGANCondition", "Pix2PixCondition", "conditional_critic_loss"]


def conditional_critic_loss(family: str, critic, real: torch.Tensor, fake: torch.Tensor, critic_args: tuple,
                            penalty: str | None = None, *, weight: float = 0.0, alpha: torch.Tensor | None = None,
                            scores=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_D + penalty`` of a critic ``critic(x, *critic_args)``; the penalty w.r.t. x at the same args.

    Args:
        family: "w" or "js".
        critic: ``critic(x, *critic_args)`` -> one score per sample.
        real, fake: batches [B, ...] (fake detached), both under the same conditions.
        critic_args: the conditions (e.g. ``(y,)``), held fixed by the penalty.
        penalty: None or a :class:`~pygan.train.losses.LossSpec` penalty name.
        weight: λ (γ for "r1").
        alpha: the per-sample interpolation weights of the penalties in ``NEEDS_ALPHA``.
        scores: None, or ``scores(x, *critic_args)`` giving the tensor the objective averages (the
            patch scores of pix2pix's JS losses); the penalty always uses ``critic``.

    Returns:
        (loss, penalty) as 0-d tensors.
    """
    term = torch.zeros((), device=real.device)
    one = lambda x: critic(x, *critic_args)  # noqa: E731  (one score per sample, checked)
    if penalty == "r1" and scores is None:
        term, d_real = r1_penalty(critic, real, gamma=weight, return_scores=True, critic_args=critic_args)
    else:
        if penalty == "r1":
            term = r1_penalty(critic, real, gamma=weight, critic_args=critic_args)
        d_real = critic_scores(one, real, "the trainer") if scores is None else scores(real, *critic_args).flatten()
    d_fake = critic_scores(one, fake, "the trainer") if scores is None else scores(fake, *critic_args).flatten()
    if penalty == "fd":
        term = fd_penalty(critic, real, fake, weight=weight, alpha=alpha, check_alpha=False, critic_args=critic_args)
    elif penalty in ("gp", "gp-one-sided"):
        term = gradient_penalty(critic, real, fake, weight=weight, one_sided=penalty == "gp-one-sided",
                                alpha=alpha, check_alpha=False, critic_args=critic_args)
    return critic_objective(family, d_real, d_fake) + term, term


class Condition:
    """How a conditional run draws, trains on, evaluates and pictures its conditions (base class).

    Subclasses implement :meth:`critic_update`, :meth:`generator_update`, :meth:`evaluate`,
    :meth:`sample` and :meth:`draw`; ``step`` is the :class:`~pygan.train.step.TrainStep` (or
    :class:`~pygan.train.Trainer`) that holds the models, optimisers, data and generator.
    """

    name = "condition"

    def attach(self, step) -> None:
        """Called once by the trainer's constructor; refuses what cannot be combined with conditions."""
        if step.graphs is not None:
            raise ValueError(f"cuda_graphs: not supported with a {self.name} condition (the conditions are "
                             "drawn per step on the host)")

    # ------------------------------------------------------------ shared pieces
    @staticmethod
    def fetch(step) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (x, condition) batch of the data, on the trainer's device."""
        batch = step.next_batch()
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("data: a conditional trainer needs batches (x, condition), got "
                             f"{type(batch).__name__}")
        return tuple(t.to(step.device, non_blocking=True) for t in batch)

    @staticmethod
    def penalty_args(step, real: torch.Tensor) -> tuple[str | None, torch.Tensor | None, float]:
        """(penalty kind or None, alpha or None, weight) of this critic update (lazy schedule)."""
        kind = step.spec.penalty if step._penalty_due() else None
        alpha = step._draw(torch.rand, (), real.shape[0], real.dtype) if kind in NEEDS_ALPHA else None
        return kind, alpha, step.penalty_weight * step.lazy_every

    @staticmethod
    def apply_critic(step, loss: torch.Tensor) -> None:
        step.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        dist_utils.all_reduce_gradients(step.D.parameters())
        step.d_opt.step()
        step.critic_steps += 1

    @staticmethod
    def apply_generator(step, loss_fn) -> torch.Tensor:
        """Backward of ``loss_fn()`` into G only (the critic's weights frozen meanwhile), then G's step."""
        trainable = [p for p in step.D.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            loss = loss_fn()
            step.g_opt.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        dist_utils.all_reduce_gradients(step.G.parameters())
        step.g_opt.step()
        return loss.detach()

    @staticmethod
    def generator_for_eval(trainer):
        return trainer.G_ema if trainer.G_ema is not None else trainer.G

    def critic_update(self, step, sigma: float):
        raise NotImplementedError

    def generator_update(self, step, sigma: float, batch: int) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, trainer) -> dict:
        raise NotImplementedError

    def sample(self, trainer, n: int | None, z: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, trainer) -> None:
        raise NotImplementedError


class LabelCondition(Condition):
    """Class labels y in [0, K) given to ``G(z, y)`` and ``D(x, y)``.

    Args:
        num_classes: K.
        eval_labels: the held-out real samples' labels [N] (the trainer's ``eval_data`` are the
            samples): evaluation generates one sample per held-out one, with its label, and reports
            ``w1`` (all of them) and ``w1_per_class`` (class k generated vs class k held out).
        classifier: optional, for images: a :class:`pygan.train.cond_eval.Classifier` fit on the real
            training split; evaluation then reports ``class_accuracy`` (the share of generated samples
            it labels with the class they were generated for).
        class_names: optional names of the classes (pictures).
    """

    name = "class-label"

    def __init__(self, num_classes: int, eval_labels: torch.Tensor, classifier=None, class_names=None):
        from pygan.train.conditional import check_labels

        self.num_classes = int(num_classes)
        self.eval_labels = check_labels(eval_labels, self.num_classes, name="eval_labels", where="LabelCondition")
        self.classifier = classifier
        self.class_names = class_names
        self._y: torch.Tensor | None = None  # the last real batch's labels (the generator update's)

    def critic_update(self, step, sigma):
        real, y = self.fetch(step)
        self._y = y
        step._last_real, step._batch = real, real.shape[0]
        with torch.no_grad():
            fake = step.G(step._noise(real.shape[0]), y)
        real, fake = step._noisy(real, sigma), step._noisy(fake, sigma)
        kind, alpha, weight = self.penalty_args(step, real)
        loss, penalty = conditional_critic_loss(step.spec.family, step.D, real, fake, (y,), kind, weight=weight,
                                                alpha=alpha)
        self.apply_critic(step, loss)
        return loss.detach(), penalty.detach()

    def generator_update(self, step, sigma, batch):
        y = self._y

        def loss():
            fake = step._noisy(step.G(step._noise(y.shape[0]), y), sigma)
            return generator_objective(step.spec.name, critic_scores(lambda x: step.D(x, y), fake, "the trainer"))

        return self.apply_generator(step, loss)

    def evaluate(self, trainer) -> dict:
        from pygan.train import cond_eval

        return cond_eval.evaluate_labels(trainer, self)

    def sample(self, trainer, n=None, z=None, y=None) -> torch.Tensor:
        """Samples of G (the EMA one when on) for labels y (default: drawn uniformly) and noise z."""
        n = n if n is not None else (z.shape[0] if z is not None else 1)
        if y is None:
            y = torch.randint(self.num_classes, (n,), generator=trainer._sample_gen, device=trainer.device)
        if z is None:
            z = torch.randn((y.shape[0], *trainer.latent_shape), generator=trainer._sample_gen, device=trainer.device,
                            dtype=trainer.dtype)
        with torch.no_grad():
            return self.generator_for_eval(trainer)(z, y.to(trainer.device))

    def draw(self, trainer) -> None:
        from pygan.train import cond_plots

        cond_plots.draw_labels(trainer, self)


class InfoGANCondition(Condition):
    """InfoGAN's latent codes: ``G([z', c])``, an :class:`~pygan.train.infogan.InfoGANCritic` with a Q head.

    Args:
        codes: the :class:`~pygan.train.infogan.InfoGANCodes` layout (the trainer's latent_shape
            becomes ``codes.latent_dim``); None takes the critic's (``D.q.codes``).
        lambda_info: λ_info (1 in the paper for discrete codes).
        eval_classes: optional, how to label generated samples with true classes for
            ``code_accuracy``: a callable mapping samples [N, ...] to int64 classes [N] (the nearest
            mode of a toy set, or a classifier's prediction for images), with ``num_classes``.
        num_classes: the number of those classes.
    """

    name = "InfoGAN"

    def __init__(self, codes=None, lambda_info: float = 1.0, eval_classes=None, num_classes: int | None = None):
        self.codes = codes
        if isinstance(lambda_info, bool) or not isinstance(lambda_info, (int, float)) \
                or not 0 <= lambda_info < float("inf"):
            raise ValueError(f"InfoGANCondition: lambda_info: expected a finite number >= 0, got {lambda_info!r}")
        self.lambda_info = float(lambda_info)
        self.eval_classes, self.num_classes = eval_classes, num_classes

    def attach(self, step) -> None:
        super().attach(step)
        if not hasattr(step.D, "score_and_q"):
            raise TypeError("InfoGANCondition: the critic must have score_and_q (an infogan.InfoGANCritic), got "
                            f"{type(step.D).__name__}")
        if self.codes is None:
            self.codes = step.D.q.codes
        step.latent_shape = (self.codes.latent_dim,)

    def draw_codes(self, step, batch: int):
        """The global batch's latents and codes (drawn from the trainer's generator), this rank's slice."""
        latent, c = self.codes.sample(batch * step.world, generator=step.generator, device=step.device,
                                      dtype=step.dtype)
        rows = slice(step.rank * batch, (step.rank + 1) * batch)
        from pygan.train.infogan import LatentCodes

        return latent[rows], LatentCodes(c.categorical[rows] if c.categorical is not None else None,
                                         c.continuous[rows] if c.continuous is not None else None)

    def info_loss(self, q, c) -> torch.Tensor:
        from pygan.train.infogan import information_loss

        return information_loss(q, c, lambda_info=self.lambda_info)

    def critic_update(self, step, sigma):
        real = step._next_real()  # labels, if the data has any, are not used for training
        step._last_real, step._batch = real, real.shape[0]
        latent, c = self.draw_codes(step, real.shape[0])
        with torch.no_grad():
            fake = step.G(latent)
        real, fake = step._noisy(real, sigma), step._noisy(fake, sigma)
        kind, alpha, weight = self.penalty_args(step, real)
        loss, penalty = conditional_critic_loss(step.spec.family, step.D, real, fake, (), kind, weight=weight,
                                                alpha=alpha)
        _, q = step.D.score_and_q(fake)
        loss = loss + self.info_loss(q, c)
        self.apply_critic(step, loss)
        return loss.detach(), penalty.detach()

    def generator_update(self, step, sigma, batch):
        def loss():
            latent, c = self.draw_codes(step, batch)
            fake = step._noisy(step.G(latent), sigma)
            score, q = step.D.score_and_q(fake)
            return generator_objective(step.spec.name, score.reshape(-1)) + self.info_loss(q, c)

        return self.apply_generator(step, loss)

    def evaluate(self, trainer) -> dict:
        from pygan.train import cond_eval

        return cond_eval.evaluate_infogan(trainer, self)

    def sample(self, trainer, n=None, z=None) -> torch.Tensor:
        """Samples of G for latents z (default: fresh ones, codes drawn from their priors)."""
        if z is None:
            z, _ = self.codes.sample(n or 1, generator=trainer._sample_gen, device=trainer.device, dtype=trainer.dtype)
        with torch.no_grad():
            return self.generator_for_eval(trainer)(z)

    def draw(self, trainer) -> None:
        from pygan.train import cond_plots

        cond_plots.draw_infogan(trainer, self)


class Pix2PixCondition(Condition):
    """pix2pix: the data yields pairs (a, b); ``G(a)``, a patch critic ``D(a, b)``, ``λ_L1·E|b - G(a)|``.

    Args:
        eval_inputs: the held-out inputs a [N, C_a, H, W] (the trainer's ``eval_data`` are their
            targets b): evaluation reports ``l1`` = E|b - G(a)| on them (without λ) and ``w1``, the
            exact W1 between the outputs and the targets as flattened pixels.
        lambda_l1: λ_L1 (100, the paper's).
    """

    name = "pix2pix"

    def __init__(self, eval_inputs: torch.Tensor, lambda_l1: float = 100.0):
        if isinstance(lambda_l1, bool) or not isinstance(lambda_l1, (int, float)) or not 0 <= lambda_l1 < float("inf"):
            raise ValueError(f"Pix2PixCondition: lambda_l1: expected a finite number >= 0, got {lambda_l1!r}")
        self.lambda_l1 = float(lambda_l1)
        self.eval_inputs = eval_inputs
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None

    def attach(self, step) -> None:
        super().attach(step)
        if not hasattr(step.D, "score"):
            raise TypeError("Pix2PixCondition: the critic must be a pix2pix.PatchCritic (with score), got "
                            f"{type(step.D).__name__}")
        self.eval_inputs = self.eval_inputs.to(step.device)

    def _score(self, step):
        return lambda b, a: step.D.score(a, b)  # one score per sample: the W losses and the penalties

    def _patches(self, step):
        return (lambda b, a: step.D(a, b)) if step.spec.family == "js" else None

    def critic_update(self, step, sigma):
        a, b = self.fetch(step)
        self._pair = (a, b)
        step._last_real, step._batch = b, b.shape[0]
        with torch.no_grad():
            fake = step.G(a)
        real, fake = step._noisy(b, sigma), step._noisy(fake, sigma)
        kind, alpha, weight = self.penalty_args(step, real)
        loss, penalty = conditional_critic_loss(step.spec.family, self._score(step), real, fake, (a,), kind,
                                                weight=weight, alpha=alpha, scores=self._patches(step))
        self.apply_critic(step, loss)
        return loss.detach(), penalty.detach()

    def generator_update(self, step, sigma, batch):
        from pygan.train.pix2pix import l1_loss

        a, b = self._pair

        def loss():
            out = step.G(a)
            fake = step._noisy(out, sigma)
            scores = step.D(a, fake).flatten() if step.spec.family == "js" else step.D.score(a, fake).reshape(-1)
            return generator_objective(step.spec.name, scores) + l1_loss(out, b, lambda_l1=self.lambda_l1)

        return self.apply_generator(step, loss)

    def evaluate(self, trainer) -> dict:
        from pygan.train import cond_eval

        return cond_eval.evaluate_pix2pix(trainer, self)

    def sample(self, trainer, n=None, z=None, a=None) -> torch.Tensor:
        """G(a) (the EMA generator when on); a defaults to the first n held-out inputs."""
        if a is None:
            a = self.eval_inputs[:n or 1]
        with torch.no_grad():
            return self.generator_for_eval(trainer)(a.to(trainer.device))

    def draw(self, trainer) -> None:
        from pygan.train import cond_plots

        cond_plots.draw_pix2pix(trainer, self)
