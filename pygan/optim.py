"""ClippedRMSprop: WGAN's critic update (an RMSprop step, then clamp every parameter) as one fused pass."""

from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer

from pygan import ops

__all__ = ["ClippedRMSprop"]

try:  # the dtype torch.optim keeps its "step" counters in (float32 unless the default dtype is float64)
    from torch.optim.optimizer import _get_scalar_dtype
except ImportError:  # pragma: no cover - older/newer torch without the private helper
    def _get_scalar_dtype():
        return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_nonnegative(value, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid {name}: {value} (expected a finite number >= 0)")
    return float(value)


def _check_clip(clip) -> float | None:
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a positive number or None, got {type(clip).__name__}")
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"Invalid clip: {clip} (expected a finite number > 0, or None for no clamp)")
    return float(clip)


class ClippedRMSprop(Optimizer):
    """torch.optim.RMSprop followed by clamping every parameter to [-clip, clip], fused into one pass.

    WGAN (Arjovsky et al. 2017) trains its critic with RMSprop (lr 5e-5) and clips its weights to
    [-c, c] (c = 0.01) after every update; this optimizer is that update. Per element:

        g   = grad (+ weight_decay * p)           (negated first when maximize=True)
        v   = alpha * v + (1 - alpha) * g^2        state["square_avg"]
        avg = sqrt(v - g_avg^2) + eps if centered  (g_avg = state["grad_avg"], a running mean of g)
              sqrt(v) + eps           otherwise    (eps is added after the square root, as in torch)
        p   = p - lr * g / avg                     (momentum > 0: b = momentum * b + g / avg;
                                                    p = p - lr * b, with b = state["momentum_buffer"])
        p   = clamp(p, -clip, clip)                the clamp happens after the update, every step

    This is exactly torch.optim.RMSprop's update (same order of operations; float32/float64 agree
    with torch to rounding; float16/bfloat16 are computed in float32 and rounded once, where torch
    rounds after every operation). The state has torch's names ("step", "square_avg",
    "momentum_buffer", "grad_avg"), so ``state_dict()`` moves between the two optimizers in both
    directions. Each element of each tensor is read and written once per step (one multi-tensor
    kernel per device and dtype) instead of torch's several passes plus a clamp per parameter.

    Args:
        params: an iterable of parameters or of param-group dicts (any group may set its own options).
        lr: learning rate (default 5e-5, the WGAN paper's).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator after the square root (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the estimated variance of the gradient instead of its second moment.
        clip: clamp parameters to [-clip, clip] after each step (default 0.01, WGAN's c); None turns
            the clamp off, leaving a plain fused RMSprop.
        maximize: maximise the objective instead of minimising it.

    torch.optim.RMSprop's ``foreach``, ``capturable`` and ``differentiable`` options are not taken
    (the kernel is already multi-tensor and never synchronises with the host; a differentiable step
    is not supported): passing them raises TypeError; a loaded state dict whose groups carry them is
    accepted unless ``differentiable`` is True (ValueError). Complex parameters and sparse gradients
    raise TypeError at ``step()``.
    """

    def __init__(self, params, lr: float = 5e-5, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 clip: float | None = 0.01, maximize: bool = False) -> None:
        defaults = {
            "lr": _check_nonnegative(lr, "lr"),
            "alpha": _check_nonnegative(alpha, "alpha"),
            "eps": _check_nonnegative(eps, "eps"),
            "weight_decay": _check_nonnegative(weight_decay, "weight_decay"),
            "momentum": _check_nonnegative(momentum, "momentum"),
            "centered": bool(centered),
            "clip": _check_clip(clip),
            "maximize": bool(maximize),
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        # Validate per-group overrides as strictly as the constructor's arguments.
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            if name in param_group:
                param_group[name] = _check_nonnegative(param_group[name], name)
        if "clip" in param_group:
            param_group["clip"] = _check_clip(param_group["clip"])
        super().add_param_group(param_group)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            # A state dict saved by torch.optim.RMSprop has no "clip": keep this optimizer's.
            group.setdefault("clip", self.defaults.get("clip", 0.01))
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("maximize", False)
            if group.get("differentiable", False):
                raise ValueError("ClippedRMSprop does not support differentiable=True")

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        state = self.state[p]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=_get_scalar_dtype())
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimisation step (one fused kernel per param group, device and dtype).

        Args:
            closure: an optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, square_avgs, buffers, grad_avgs, steps = [], [], [], [], [], []
            momentum, centered = group["momentum"], group["centered"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) < 2 + (momentum > 0) + centered:
                    state = self._init_state(p, group)
                params.append(p)
                grads.append(p.grad)
                square_avgs.append(state["square_avg"])
                steps.append(state["step"])
                if momentum > 0:
                    buffers.append(state["momentum_buffer"])
                if centered:
                    grad_avgs.append(state["grad_avg"])
            if not params:
                continue
            clip = group["clip"]
            ops._rmsprop_step(
                [params, grads, square_avgs, buffers, grad_avgs], group["lr"], group["alpha"],
                group["eps"], group["weight_decay"], momentum, centered, group["maximize"],
                None if clip is None else -clip, clip)
            # torch keeps a per-parameter step counter; RMSprop's update does not read it.
            ops._increment_steps(steps)
        return loss
