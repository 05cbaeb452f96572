"""The training tricks in the trainer: feature matching, minibatch discrimination, historical
averaging, one-sided label smoothing and virtual batch norm (Salimans et al. 2016, *Improved
Techniques for Training GANs*, arXiv:1606.03498; the layers and loss terms are in :mod:`pygan.nn`).

:class:`Tricks` is what a :class:`~pygan.train.step.TrainStep` calls around its two updates:

* the critic's loss: with ``label_smoothing`` s < 1 the JS discriminator's BCE has real targets s
  (:func:`pygan.nn.label_smoothing_loss`); with ``historical_averaging`` W > 0 the term
  W·‖θ_D − mean θ_D‖² is added (and the running mean updated after every critic update);
* the generator's loss: with ``feature_matching`` it is ‖E f(x) − E f(G(z))‖² on an intermediate
  layer f of D (the last real batch of the step, under the same instance noise), instead of the
  loss's own L_G; W·‖θ_G − mean θ_G‖² is added with historical averaging.

Minibatch discrimination and virtual batch norm are layers of the networks (built by
:func:`pygan.train.models.build_models` for ``pygan train``); the Trainer's flags of those names
check that the networks hold them. Which loss takes which trick (:func:`check_combination`):

* label smoothing: the JS losses only (gan, nsgan, nsgan-r1): a Wasserstein critic has no targets;
* minibatch discrimination (and batch norm in D): gan and nsgan only. It couples the samples of a
  batch, so a per-sample gradient penalty (wgan-gp, wgan-gp-one-sided, wgan-fd, nsgan-r1) is no
  longer per sample, and a Wasserstein critic's −L_D is no longer an estimate of W1 through a
  function f(x) of one sample;
* feature matching, historical averaging, virtual batch norm (in G, where each sample depends only
  on itself and the fixed reference batch): every loss.

"The batch" under data parallelism: minibatch discrimination sums over the *global* batch (every
process's rows, gathered with gradients), feature matching averages over the global batch, and the
virtual batch norm's reference batch is drawn from the same seed on every process; so N processes
with batch B train what one process with batch N·B trains. Evaluation (the critic's estimate and
the contour picture, on rank 0 only) runs D on chunks of ``batch`` samples, each its own minibatch,
without communication.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from pygan import _validate as _v
from pygan.nn import (HistoricalAverage, MinibatchDiscrimination, ReferenceBatch, VirtualBatchNorm,
                      feature_matching_loss, label_smoothing_loss)
from pygan.penalties import critic_scores
from pygan.train.losses import LOSSES, critic_loss, generator_objective, spec

__all__ = ["ARCHS", "TRICK_DEFAULTS", "COUPLED_LOSSES", "SMOOTHING_LOSSES", "Tricks", "check_combination",
           "feature_extractor", "EvalCritic", "frozen_buffers"]

ARCHS = ("small", "dcgan")
# The configuration fields this module adds, with their defaults: a checkpoint written before they
# existed was trained with these values.
TRICK_DEFAULTS = {"arch": "small", "dcgan_width": 64, "image_side": 32, "feature_matching": False,
                  "feature_layer": None, "minibatch_discrimination": False, "minibatch_kernels": 16,
                  "historical_averaging": 0.0, "label_smoothing": 1.0, "virtual_batchnorm": False}
COUPLED_LOSSES = ("gan", "nsgan")  # D may hold layers that couple the samples of a batch
SMOOTHING_LOSSES = tuple(n for n in LOSSES if spec(n).family == "js")
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Softplus)


def check_combination(loss: str, *, minibatch_discrimination: bool, label_smoothing: float,
                      flag=lambda name: name) -> None:
    """Refuse a trick with a loss it does not apply to (the module docstring says which and why).

    Args:
        loss: the loss name.
        minibatch_discrimination, label_smoothing: the options.
        flag: how to name an option in the message (``--label-smoothing`` on the command line).

    Raises:
        ValueError: naming the option and the losses it applies to.
    """
    if label_smoothing != 1.0 and loss not in SMOOTHING_LOSSES:
        raise ValueError(f"{flag('label_smoothing')} {label_smoothing:g} applies to the JS losses only "
                         f"({', '.join(SMOOTHING_LOSSES)}), got loss {loss!r}: a Wasserstein critic has no "
                         "targets to smooth")
    if minibatch_discrimination and loss not in COUPLED_LOSSES:
        raise ValueError(f"{flag('minibatch_discrimination')} applies to {' and '.join(COUPLED_LOSSES)} only, got "
                         f"loss {loss!r}: the layer couples the samples of a batch, so a per-sample gradient "
                         "penalty is no longer per sample and a Wasserstein critic no longer scores each sample "
                         "on its own")


def feature_extractor(D: nn.Module, layer: int | None, name: str = "feature_layer"):
    """f(x) = the output of D's intermediate layer ``layer`` (1-based; None: the last one), flattened.

    D provides ``features(x, layer)`` and ``depth`` (as :class:`pygan.train.dcgan.DCGANDiscriminator`),
    or is an ``nn.Sequential``, whose feature layers are the outputs of its activations (ReLU,
    LeakyReLU, ...): layer k is what the k-th activation returns.

    Returns:
        (f, depth): the function x -> [B, features] and the number of feature layers.

    Raises:
        ValueError: D has no feature layers, or ``layer`` is not one of them (naming ``name``).
    """
    if hasattr(D, "features") and isinstance(getattr(D, "depth", None), int):
        depth = D.depth
        run = D.features
    elif isinstance(D, nn.Sequential):
        ends = [i for i, m in enumerate(D) if isinstance(m, _ACTIVATIONS)]
        depth = len(ends)
        run = (lambda x, k: D[:ends[k - 1] + 1](x).flatten(1))
    else:
        raise ValueError(f"{name}: feature matching needs a critic with a features(x, layer) method and a depth, "
                         f"or an nn.Sequential, got {type(D).__name__}")
    if depth == 0:
        raise ValueError(f"{name}: the critic has no intermediate layer (no activation) to match features on")
    if layer is None:
        layer = depth
    layer = _v.integer(layer, name, low=1)
    if layer > depth:
        raise ValueError(f"{name} must be one of the critic's {depth} feature layers (1..{depth}), got {layer}")
    return (lambda x: run(x, layer)), depth


@contextlib.contextmanager
def frozen_buffers(module: nn.Module | None):
    """Restore ``module``'s buffers on exit: evaluating a network must not change it. (Batch norm in
    training mode updates its running statistics, VirtualBatchNorm stores the reference statistics:
    an evaluation a resumed run makes at another step than the uninterrupted one would otherwise
    change the checkpoint.)"""
    buffers = list(module.buffers()) if module is not None else []
    saved = [b.detach().clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in zip(buffers, saved):
                b.copy_(v)


class EvalCritic(nn.Module):
    """D for evaluation: its buffers left unchanged (:func:`frozen_buffers`), and when it holds a
    batch-coupled layer, run on chunks of ``batch`` samples, each its own minibatch, without
    communication (evaluation runs on rank 0 only)."""

    def __init__(self, D: nn.Module, batch: int, chunked: bool = True):
        super().__init__()
        self.D, self.batch, self.chunked = D, max(1, int(batch)), chunked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = [m for m in self.D.modules() if isinstance(m, MinibatchDiscrimination)]
        saved = [m.global_batch for m in layers]
        for m in layers:
            m.global_batch = False
        try:
            with frozen_buffers(self.D):
                if not self.chunked:
                    return self.D(x)
                return torch.cat([self.D(c) for c in x.split(self.batch)])
        finally:
            for m, g in zip(layers, saved):
                m.global_batch = g


class Tricks:
    """The tricks of one :class:`~pygan.train.step.TrainStep` (its arguments of the same names).

    Args:
        step: the step (its spec, G, D, and noise helpers are used).
        feature_matching: the generator minimises the feature-matching loss instead of its own.
        feature_layer: D's layer for feature matching (None: the last intermediate one).
        minibatch_discrimination: D must hold a :class:`pygan.nn.MinibatchDiscrimination` layer.
        historical_averaging: W >= 0 (0: off).
        label_smoothing: the real target s in (0, 1] (1: off).
        virtual_batchnorm: G must be run through :class:`pygan.nn.ReferenceBatch`.
    """

    def __init__(self, step, *, feature_matching: bool = False, feature_layer: int | None = None,
                 minibatch_discrimination: bool = False, historical_averaging: float = 0.0,
                 label_smoothing: float = 1.0, virtual_batchnorm: bool = False):
        self.feature_matching = _v.boolean(feature_matching, "feature_matching")
        self.minibatch_discrimination = _v.boolean(minibatch_discrimination, "minibatch_discrimination")
        self.virtual_batchnorm = _v.boolean(virtual_batchnorm, "virtual_batchnorm")
        self.weight = _v.number(historical_averaging, "historical_averaging", low=0.0)
        self.label_smoothing = _v.number(label_smoothing, "label_smoothing", low=0.0, high=1.0, low_open=True)
        name = step.spec.name
        has_mbd = any(isinstance(m, MinibatchDiscrimination) for m in step.D.modules())
        if self.minibatch_discrimination and not has_mbd:
            raise ValueError("minibatch_discrimination: the critic holds no pygan.nn.MinibatchDiscrimination layer "
                             "(pygan.train.models.build_models adds one)")
        check_combination(name, minibatch_discrimination=has_mbd, label_smoothing=self.label_smoothing)
        has_vbn = any(isinstance(m, VirtualBatchNorm) for m in step.G.modules())
        if self.virtual_batchnorm and not isinstance(step.G, ReferenceBatch):
            raise ValueError("virtual_batchnorm: the generator must be a pygan.nn.ReferenceBatch around a network "
                             f"with VirtualBatchNorm layers, got {type(step.G).__name__}")
        if has_vbn and not any(isinstance(m, ReferenceBatch) for m in step.G.modules()):
            raise ValueError("virtual_batchnorm: the generator's VirtualBatchNorm layers need a pygan.nn.ReferenceBatch "
                             "around them (the fixed reference batch)")
        self.features = None
        if feature_matching:
            self.features, _ = feature_extractor(step.D, feature_layer)
        elif feature_layer is not None:
            raise ValueError("feature_layer: only used with feature_matching=True")
        self.coupled = has_mbd
        # Evaluation's minibatch: the global training batch (the same with any number of processes).
        self.eval_batch = (getattr(step.data, "batch_size", None) or 256) * step.world
        has_buffers = any(True for _ in step.D.buffers())
        self._eval_critic = EvalCritic(step.D, self.eval_batch, has_mbd) if has_mbd or has_buffers else step.D
        if name in COUPLED_LOSSES:
            # No gradient penalty: batch norm in D is what these losses were designed with, so the
            # penalties' BatchNorm warning (pygan.penalties) does not apply to this critic.
            from pygan.penalties import allow_batchnorm

            allow_batchnorm(step.D)
            allow_batchnorm(self._eval_critic)
        self.ha_g = HistoricalAverage(step.G, self.weight) if self.weight > 0 else None
        self.ha_d = HistoricalAverage(step.D, self.weight) if self.weight > 0 else None

    @property
    def active(self) -> bool:
        """Whether any trick changes the step (False: the step is exactly the plain one)."""
        return (self.feature_matching or self.coupled or self.virtual_batchnorm or self.ha_g is not None
                or self.label_smoothing != 1.0)

    def critic_loss(self, family, D, real, fake, penalty=None, *, weight=0.0, alpha=None):
        """:func:`pygan.train.losses.critic_loss` with label smoothing and historical averaging."""
        s = self.label_smoothing
        objective = None if s == 1.0 else (lambda d_real, d_fake: label_smoothing_loss(d_real, d_fake, s))
        loss, term = critic_loss(family, D, real, fake, penalty, weight=weight, alpha=alpha, objective=objective)
        if self.ha_d is not None:
            loss = loss + self.ha_d.penalty()
        return loss, term

    def generator_loss(self, step, fake: torch.Tensor, sigma: float) -> torch.Tensor:
        """L_G (or feature matching) on the generated batch ``fake``, plus historical averaging."""
        if self.features is not None:
            with torch.no_grad():
                real = self.features(step._noisy(step._last_real, sigma))
            loss = feature_matching_loss(real, self.features(fake))
        else:
            loss = generator_objective(step.spec.name, critic_scores(step.D, fake, "the trainer"))
        if self.ha_g is not None:
            loss = loss + self.ha_g.penalty()
        return loss

    def after_critic_step(self) -> None:
        if self.ha_d is not None:
            self.ha_d.update()

    def after_generator_step(self) -> None:
        if self.ha_g is not None:
            self.ha_g.update()

    def eval_critic(self, D: nn.Module) -> nn.Module:
        """D as evaluation should call it: an :class:`EvalCritic` (on chunks of the training batch
        size when D couples samples) when D has buffers or couples samples; D itself otherwise."""
        if D is self._eval_critic or (isinstance(self._eval_critic, EvalCritic) and D is self._eval_critic.D):
            return self._eval_critic
        return EvalCritic(D, self.eval_batch, self.coupled) if self.coupled or any(True for _ in D.buffers()) else D

    def state_dict(self) -> dict | None:
        """The historical averages' running means (None without historical averaging)."""
        if self.ha_g is None:
            return None
        return {"historical_average": {"generator": self.ha_g.state_dict(), "critic": self.ha_d.state_dict()}}

    def check_state(self, state) -> None:
        """ValueError unless ``state`` (a checkpoint's "tricks") fits this configuration."""
        if self.ha_g is None:
            return
        if not isinstance(state, dict) or not isinstance(state.get("historical_average"), dict):
            raise ValueError("tricks: the checkpoint has no historical averages but this trainer uses "
                             "historical_averaging > 0")
        ha = state["historical_average"]
        for key, avg in (("generator", self.ha_g), ("critic", self.ha_d)):
            copy = HistoricalAverage(avg.params, avg.weight)
            copy.load_state_dict(ha.get(key))  # checks count, shapes

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`'s output (after :meth:`check_state`)."""
        if self.ha_g is not None:
            self.ha_g.load_state_dict(state["historical_average"]["generator"])
            self.ha_d.load_state_dict(state["historical_average"]["critic"])
