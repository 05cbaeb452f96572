"""Gradient penalties on a critic, each one call: WGAN-GP, one-sided, R1/R2, DRAGAN, finite-difference.

Each function takes the critic (any callable mapping a batch [B, ...] to scores [B] or [B, 1]) and
data, and returns the penalty term to add to the critic's loss, already weighted. The gradient-based
ones differentiate the critic with ``create_graph=True`` (so the penalty's gradient reaches the
critic's parameters through a double backward, exactly as the canonical snippets do) and finish with
the fused :func:`pygan.ops.grad_penalty`; :func:`fd_penalty` needs no double backward.

Naming: the weight is ``weight`` (λ) everywhere except R1's ``gamma`` (the R1 paper's name, with its
½). It has no default (a default of 10 made ``lambda_gp * gradient_penalty(D, real, fake)`` silently
10x too large) and ``weight`` is keyword-only; ``generator`` and ``scaler`` are keyword-only too.

The canonical WGAN-GP snippet these replace (Gulrajani et al. 2017)::

    alpha = torch.rand(B, 1, 1, 1, device=real.device)            # one weight per sample
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grads = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
    penalty = weight * ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()   # per-sample norm

Mixed precision: pass the ``torch.amp.GradScaler`` you train with as ``scaler``. The input gradients
are then taken of the *scaled* critic output (so float16 gradients do not underflow) and divided by
the scale before the norm, torch's documented recipe for gradient penalties under AMP; the returned
penalty is unscaled, ready for ``scaler.scale(loss).backward()``. An inf/NaN from an overflowing
scale reaches the parameter gradients, where the scaler's ``step`` sees it and skips the step.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pygan import _internal, ops
from pygan import _validate as check
from pygan.lazy import LazyRegularizer  # noqa: F401  (part of this module's public names)

__all__ = ["gradient_penalty", "r1_penalty", "dragan_penalty", "fd_penalty", "LazyRegularizer"]


# Critics already checked for BatchNorm (a weak set: checking walks every module, once is enough).
_checked_critics: weakref.WeakSet = weakref.WeakSet()


def allow_batchnorm(critic: nn.Module) -> None:
    """Internal API: no BatchNorm warning for ``critic`` (a JS-loss critic, which no penalty constrains per sample)."""
    _checked_critics.add(critic)


def _warn_if_batchnorm(critic: Callable) -> None:
    if not isinstance(critic, nn.Module) or critic in _checked_critics:
        return
    _checked_critics.add(critic)
    for name, module in critic.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            warnings.warn(
                f"the critic contains {type(module).__name__} ({name or 'the critic itself'}): batch "
                "normalisation couples the samples of a batch, so a per-sample gradient penalty no longer "
                "constrains each sample's gradient (WGAN-GP §4). Use LayerNorm, GroupNorm, "
                "InstanceNorm or no normalisation in the critic.", UserWarning, stacklevel=3)
            return


def _check_number(value, name: str, fn: str, minimum: float | None = 0.0) -> float:
    return check.number(value, name, fn, low=minimum)


def _required(value, name: str, fn: str, advice: str, keyword_only: bool = True) -> float:
    """A penalty weight the caller must give (a default would hide a 10x mistake, docs/penalties.md)."""
    if value is None:
        raise TypeError(f"{fn}: {name} is required{' (keyword-only)' if keyword_only else ''}; {advice}")
    return check.number(value, name, fn, low=0)


_GP_ADVICE = ("pass weight=10.0 for the paper's λ = 10 (0.1 in the authors' toy code), or weight=1.0 when you "
              "multiply the result by λ yourself, as in `lambda_gp * gradient_penalty(...)`")


def _check_scaler(scaler, fn: str):
    if scaler is not None and not all(callable(getattr(scaler, m, None)) for m in ("is_enabled", "scale", "get_scale")):
        raise TypeError(f"{fn}: scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")
    return scaler


def _check_batch(x, name: str, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{fn}: {name} has shape {list(x.shape)}; expected a non-empty batch [B, ...]")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} has dtype {x.dtype}; expected a floating-point tensor")
    return x


def _check_critic_args(critic_args, fn: str) -> tuple:
    """Extra critic inputs (e.g. a conditional critic's labels): a tuple, passed after x."""
    if not isinstance(critic_args, tuple):
        raise TypeError(f"{fn}: critic_args: expected a tuple of extra critic inputs, got "
                        f"{type(critic_args).__name__}")
    return critic_args


def _critic_scores(critic: Callable, x: torch.Tensor, fn: str, critic_args: tuple = ()) -> torch.Tensor:
    """critic(x, *critic_args) checked to be one score per sample, returned flattened to [B]."""
    check.callable_(critic, "critic", fn, "callable (an nn.Module or a function)")
    _warn_if_batchnorm(critic)
    out = critic(x, *critic_args)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{fn}: the critic returned a {type(out).__name__}; expected a tensor of scores")
    batch = x.shape[0]
    if out.dim() == 0 or out.shape[0] != batch or out.numel() != batch:
        raise ValueError(f"{fn}: the critic returned shape {list(out.shape)} for a batch of {batch}; "
                         f"expected one score per sample: [{batch}] or [{batch}, 1]")
    return out.reshape(batch)


def critic_scores(critic: Callable, x: torch.Tensor, caller: str = "critic") -> torch.Tensor:
    """``critic(x)`` checked to be one score per sample, flattened to [B] (shared with ``pygan.train``).

    Args:
        critic: maps [B, ...] to scores [B] or [B, 1].
        x: the batch [B, ...].
        caller: the name error messages start with.

    Returns:
        The scores, shape [B].

    Raises:
        TypeError / ValueError: the critic is not callable, or does not return one score per sample.
    """
    return _critic_scores(critic, x, caller)


def _input_grads(critic: Callable, x: torch.Tensor, fn: str, scaler=None, with_scores: bool = False,
                 critic_args: tuple = ()):
    """d sum_i critic(x)_i / dx with create_graph=True: row i is the gradient of critic(x_i)
    (and the scores themselves when ``with_scores``). The gradient is with respect to x only:
    ``critic_args`` are held fixed."""
    scores = _critic_scores(critic, x, fn, critic_args)
    if not scores.requires_grad:
        raise ValueError(f"{fn}: the critic's output does not depend on its input (it does not require "
                         "grad; was it computed under torch.no_grad() or from detached tensors?)")
    total = scores.sum()
    scaled = scaler is not None and scaler.is_enabled()
    if scaled:
        total = scaler.scale(total)
    (grads,) = torch.autograd.grad(total, x, create_graph=True, allow_unused=True)
    if grads is None:
        raise ValueError(f"{fn}: the critic's output does not depend on its input, so its gradient with "
                         "respect to the input is undefined")
    if scaled:
        grads = grads * (1.0 / scaler.get_scale())
    return (grads, scores) if with_scores else grads


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     *args, weight: float | None = None, center: float = 1.0, one_sided: bool = False,
                     alpha: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     scaler: Any = None, check_alpha: bool = True, critic_args: tuple = ()) -> torch.Tensor:
    """The WGAN-GP penalty: ``weight * E_i[(||∇D(x̂_i)|| - center)^2]``, x̂ = α·real + (1-α)·fake.

    α is drawn U[0, 1) per sample; the norm is per sample over all non-batch dims. real and fake are
    detached (the penalty trains the critic only), x̂ is differentiated with ``create_graph=True``,
    and the penalty's gradient reaches the critic's parameters through the double backward: they
    equal those of the canonical snippet in this module's docstring.

    Args:
        critic: maps [B, ...] to scores [B] or [B, 1]. BatchNorm inside gives a warning (it couples
            the samples, so the penalty is no longer per sample).
        real, fake: batches of equal shape [B, ...], dtype and device.
        weight: λ, **required and keyword-only** (10 in the paper; the authors' toy code uses 0.1;
            1.0 when you multiply the result by λ yourself). A number, NumPy scalar or one-element
            tensor (read once). There is no default: a default of 10 made ``lambda_gp *
            gradient_penalty(D, real, fake)`` silently 10x too large (docs/penalties.md).
        center: the target norm (1 for WGAN-GP; 0 gives a zero-centred penalty ||∇D||^2).
        one_sided: penalise only norms above center: ``weight * E[max(0, ||∇D|| - center)^2]``.
        alpha: None (draw), or one weight per sample in [0, 1]: a tensor or NumPy array of shape [B],
            [B, 1, ..., 1], or such a one broadcast to real's shape (``alpha.expand_as(real)``).
        generator: the torch.Generator alpha is drawn from, for reproducible runs.
        scaler: a ``torch.amp.GradScaler`` when training with mixed precision (module docstring).
        check_alpha: check a given alpha's values lie in [0, 1] (False skips the host sync, for an
            alpha drawn from torch.rand).
        critic_args: extra inputs passed to the critic after x̂, ``critic(x̂, *critic_args)``, held
            fixed: for a conditional critic ``D(x, y)`` pass ``critic_args=(y,)``, and the gradient
            is taken with respect to x only, each sample at its own y (real_i and fake_i share y_i).

    weight, center, one_sided and alpha are keyword-only; passing them by position (the former
    signature) still works for one release, with a DeprecationWarning.

    Returns:
        A 0-d tensor, differentiable with respect to the critic's parameters.

    Raises:
        TypeError / ValueError: bad shapes, dtypes or devices; a critic whose output is not one score
            per sample or does not depend on its input.
    """
    fn = "gradient_penalty"
    if args:
        weight, center, one_sided, alpha = check.deprecated_positional(
            args, {"weight": None, "center": 1.0, "one_sided": False, "alpha": None}, fn,
            {"weight": weight, "center": center, "one_sided": one_sided, "alpha": alpha}).values()
    weight = _required(weight, "weight", fn, _GP_ADVICE)
    _check_batch(real, "real", fn)
    _check_batch(fake, "fake", fn)
    center = _check_number(center, "center", fn)
    check.generator(generator, "generator", fn)
    _check_scaler(scaler, fn)
    x_hat = ops.interpolate(real.detach(), fake.detach(), alpha, generator=generator,
                            check_alpha=check_alpha).requires_grad_(True)
    grads = _input_grads(critic, x_hat, fn, scaler, critic_args=_check_critic_args(critic_args, fn))
    return weight * ops.grad_penalty(grads, center=center, one_sided=one_sided)


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, gamma: float | None = None, *,
               scaler: Any = None, return_scores: bool = False, critic_args: tuple = ()):
    """The zero-centred R1 penalty ``gamma / 2 * E_i ||∇D(real_i)||^2`` (Mescheder et al. 2018).

    The factor is **gamma / 2** (the paper's and StyleGAN's convention; some code uses gamma without
    the half: pass twice the value to match it). Called on fake samples it is the R2 penalty.

    Args:
        critic: maps [B, ...] to scores [B] or [B, 1].
        real: the batch the gradient is taken at, [B, ...] (detached first).
        gamma: the weight γ >= 0, required (the R1 paper's name for it, kept rather than ``weight``;
            e.g. 10): a number, NumPy scalar or one-element tensor.
        scaler: a ``torch.amp.GradScaler`` under mixed precision (module docstring).
        return_scores: also return the critic's scores of ``real`` [B], from the same forward, so
            a caller can reuse them in its loss (one forward instead of two; the trainer does).
        critic_args: extra critic inputs held fixed, ``critic(real, *critic_args)`` (a conditional
            critic's labels): the gradient is with respect to ``real`` only.

    Returns:
        A 0-d tensor, differentiable with respect to the critic's parameters; with
        ``return_scores``, the pair (penalty, scores).
    """
    fn = "r1_penalty"
    gamma = _required(gamma, "gamma", fn, "pass gamma=γ, e.g. gamma=10.0 (the result is γ/2·E||∇D||², the ½ "
                      "included), or gamma=2.0 when you multiply a plain E||∇D||² by your own weight",
                      keyword_only=False)
    _check_batch(real, "real", fn)
    _check_scaler(scaler, fn)
    x = real.detach().requires_grad_(True)
    grads, scores = _input_grads(critic, x, fn, scaler, with_scores=True,
                                 critic_args=_check_critic_args(critic_args, fn))
    penalty = (gamma / 2) * ops.grad_penalty(grads, center=0.0)
    return (penalty, scores) if return_scores else penalty


def dragan_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, *args,
                   weight: float | None = None, scale: float = 0.5, center: float = 1.0,
                   generator: torch.Generator | None = None, scaler: Any = None) -> torch.Tensor:
    """The DRAGAN penalty (Kodali et al. 2017): the gradient penalty around the real data.

    As in the authors' code: perturbed = real + scale · std(real) · U[0, 1) noise (std over the whole
    batch), then ``weight * E[(||∇D(x̂)|| - center)^2]`` at x̂ = α·real + (1-α)·perturbed.

    Args:
        critic: maps [B, ...] to scores [B] or [B, 1].
        real: [B, ...] real samples.
        weight: λ, required and keyword-only (10 in the paper), as in :func:`gradient_penalty`
            (by position: deprecated, a DeprecationWarning, for one release).
        scale: the perturbation's size relative to the data's standard deviation (0.5 in the paper).
        center: the target norm (1).
        generator: the torch.Generator for the noise and α.
        scaler: a ``torch.amp.GradScaler`` under mixed precision.

    Returns:
        A 0-d tensor, differentiable with respect to the critic's parameters.
    """
    fn = "dragan_penalty"
    if args:
        weight = check.deprecated_positional(args, {"weight": None}, fn, {"weight": weight})["weight"]
    weight = _required(weight, "weight", fn, _GP_ADVICE.replace("gradient_penalty", "dragan_penalty"))
    _check_batch(real, "real", fn)
    scale = _check_number(scale, "scale", fn)
    check.generator(generator, "generator", fn)
    real = real.detach()
    noise = _internal.uniform(real.shape, real.device, real.dtype, generator)
    std = real.std() if real.numel() > 1 else real.new_zeros(())
    perturbed = real + scale * std * noise
    return gradient_penalty(critic, real, perturbed, weight=weight, center=center, generator=generator,
                            scaler=scaler)


def fd_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
               *args, weight: float | None = None, one_sided: bool = False, alpha: torch.Tensor | None = None,
               generator: torch.Generator | None = None, check_alpha: bool = True,
               _check_alpha: bool | None = None, critic_args: tuple = ()) -> torch.Tensor:
    """The finite-difference penalty: a Lipschitz penalty with no double backward.

    ``weight * E_{x1, x2 ~ P_x̂}[(|D(x1) - D(x2)| / ||x1 - x2|| - 1)^2]``: the slope of the critic
    between two independent samples of the interpolate distribution is pushed towards 1, the
    difference-quotient version of WGAN-GP's gradient norm. x̂_i = α_i·real_i + (1-α_i)·fake_i are
    drawn as in :func:`gradient_penalty`; since they are independent across the batch, x̂_i is paired
    with x̂_{i+1 mod B}, so one critic evaluation of B samples gives B pairs. Pairs at distance 0 (a
    duplicated sample) have no slope and are left out of the mean. One ordinary backward suffices.

    Args:
        critic: maps [B, ...] to scores [B] or [B, 1].
        real, fake: batches of equal shape [B, ...] with B >= 2.
        weight: λ, required and keyword-only, as in :func:`gradient_penalty` (by position:
            deprecated, a DeprecationWarning, for one release).
        one_sided: penalise only slopes above 1: ``max(0, slope - 1)^2``.
        alpha: None (draw) or per-sample weights in [0, 1], as in :func:`gradient_penalty`.
        generator: the torch.Generator alpha is drawn from.
        check_alpha: check a given alpha's values (False skips the host sync).
        critic_args: extra critic inputs held fixed (a conditional critic's labels y). Both ends of
            a pair are then scored at the same condition: x̂_i and x̂_{i+1} both at y_i (a second
            critic evaluation), so the slope is the critic's in x alone.

    Returns:
        A 0-d tensor, differentiable with respect to the critic's parameters.
    """
    fn = "fd_penalty"
    if args:
        weight = check.deprecated_positional(args, {"weight": None}, fn, {"weight": weight})["weight"]
    if _check_alpha is not None:  # its former private spelling, for callers not yet updated
        check_alpha = _check_alpha
    weight = _required(weight, "weight", fn, _GP_ADVICE.replace("gradient_penalty", "fd_penalty"))
    _check_batch(real, "real", fn)
    _check_batch(fake, "fake", fn)
    if real.shape[0] < 2:
        raise ValueError(f"{fn}: a batch of at least 2 samples is needed to form pairs, got {real.shape[0]}")
    check.generator(generator, "generator", fn)
    x_hat = ops.interpolate(real.detach(), fake.detach(), alpha, generator=generator, check_alpha=check_alpha)
    critic_args = _check_critic_args(critic_args, fn)
    scores = _critic_scores(critic, x_hat, fn, critic_args)
    if not scores.requires_grad:
        raise ValueError(f"{fn}: the critic's output does not require grad (computed under "
                         "torch.no_grad()?), so the penalty cannot train it")
    with torch.no_grad():
        diff = x_hat - x_hat.roll(1, 0)
        dist = torch.linalg.vector_norm(diff.flatten(1).float(), dim=1) if diff.dim() > 1 else diff.abs().float()
        valid = dist > 0
        safe = torch.where(valid, dist, torch.ones_like(dist))
    # the pair's other end: the rolled scores, or (conditions) the rolled point scored at this sample's
    other = scores.float().roll(1, 0) if not critic_args else _critic_scores(critic, x_hat.roll(1, 0), fn,
                                                                             critic_args).float()
    slope = (scores.float() - other).abs() / safe
    excess = slope - 1
    per_pair = torch.relu(excess) ** 2 if one_sided else excess**2
    per_pair = torch.where(valid, per_pair, torch.zeros_like(per_pair))
    return weight * per_pair.sum() / valid.sum().clamp_min(1)
