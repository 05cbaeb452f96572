"""ClippedRMSprop: WGAN's critic update (an RMSprop step, then clamp every parameter) as one fused pass."""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from pygan import _internal, ops
from pygan import _validate as check

__all__ = ["ClippedRMSprop"]

try:  # the dtype torch.optim keeps its "step" counters in (float32 unless the default dtype is float64)
    from torch.optim.optimizer import _get_scalar_dtype
except ImportError:  # pragma: no cover - older/newer torch without the private helper
    def _get_scalar_dtype():
        return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32

_WHERE = "ClippedRMSprop"
_NONNEGATIVE = ("lr", "alpha", "eps", "weight_decay", "momentum")


def _check_nonnegative(value, name: str) -> float:
    return check.number(value, name, _WHERE, low=0)


def _check_clip(clip) -> float | None:
    return check.number(clip, "clip", _WHERE, low=0, low_open=True, allow_none=True)


def _check_differentiable(value) -> bool:
    if value:
        raise TypeError("ClippedRMSprop: differentiable must be False (the fused step is not differentiable), "
                        "got True; use torch.optim.RMSprop(differentiable=True) and clamp the weights yourself")
    return False


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
        lr: learning rate. **The default is 5e-5, the WGAN paper's (Algorithm 1), not torch's RMSprop
            default of 1e-2**: when you swap this class in for ``torch.optim.RMSprop``, pass the lr you
            used there.
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator after the square root (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the estimated variance of the gradient instead of its second moment.
        clip: clamp parameters to [-clip, clip] after each step (default 0.01, WGAN's c); None turns
            the clamp off, leaving a plain fused RMSprop.
        maximize: maximise the objective instead of minimising it.
        capturable: as in torch.optim.RMSprop: keep the step counters on the parameters' device, so
            a step can be captured in a CUDA graph (the fused step itself never synchronises with the
            host, whatever this is).
        foreach: as in torch.optim.RMSprop, accepted for drop-in use (None, True or False) and kept
            in the param groups; it changes nothing, since the fused kernel is always multi-tensor.
        differentiable: only False (the default); True raises TypeError, the fused step is not
            differentiable.

    The options keep torch.optim.RMSprop's names and the param groups carry all of torch's keys, so
    state dicts move between the two optimizers in both directions (one loaded with
    ``differentiable=True`` is refused with ValueError). Complex parameters and sparse gradients
    raise TypeError at ``step()``; a loaded state whose tensors share memory with the parameters
    (which would make the step's result wrong) raises ValueError.
    """

    def __init__(self, params, lr: float = 5e-5, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 clip: float | None = 0.01, maximize: bool = False, capturable: bool = False,
                 foreach: bool | None = None, differentiable: bool = False) -> None:
        if foreach is not None:
            check.boolean(foreach, "foreach", _WHERE)
        defaults = {
            "lr": _check_nonnegative(lr, "lr"),
            "alpha": _check_nonnegative(alpha, "alpha"),
            "eps": _check_nonnegative(eps, "eps"),
            "weight_decay": _check_nonnegative(weight_decay, "weight_decay"),
            "momentum": _check_nonnegative(momentum, "momentum"),
            "centered": bool(centered),
            "clip": _check_clip(clip),
            "maximize": bool(maximize),
            "capturable": bool(capturable),
            "foreach": foreach,
            "differentiable": _check_differentiable(differentiable),
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        # Validate per-group overrides as strictly as the constructor's arguments.
        for name in _NONNEGATIVE:
            if name in param_group:
                param_group[name] = _check_nonnegative(param_group[name], name)
        if "clip" in param_group:
            param_group["clip"] = _check_clip(param_group["clip"])
        if "differentiable" in param_group:
            param_group["differentiable"] = _check_differentiable(param_group["differentiable"])
        super().add_param_group(param_group)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            # A state dict saved by torch.optim.RMSprop has no "clip": keep this optimizer's.
            group.setdefault("clip", self.defaults.get("clip", 0.01))
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("maximize", False)
            group.setdefault("capturable", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            if group["differentiable"]:
                raise ValueError("ClippedRMSprop: differentiable must be False in every param group of a loaded "
                                 "state (the fused step is not differentiable), got True")

    def load_state_dict(self, state_dict: dict) -> None:
        """torch's ``Optimizer.load_state_dict``, then a check that no loaded state tensor shares memory
        with a parameter or another state tensor (the fused step reads each element once, so the
        result would be silently wrong; ``step()`` does not repeat the check).

        Raises:
            ValueError: naming the parameter and the state entry.
        """
        super().load_state_dict(state_dict)
        written = []
        for g, group in enumerate(self.param_groups):
            for k, p in enumerate(group["params"]):
                written.append((f"param_groups[{g}]['params'][{k}]", p))
                for key in ("square_avg", "momentum_buffer", "grad_avg"):
                    t = self.state.get(p, {}).get(key)
                    if isinstance(t, torch.Tensor):
                        written.append((f"the state {key!r} of param_groups[{g}]['params'][{k}]", t))
        check.no_shared_memory(written, where="ClippedRMSprop.load_state_dict")

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        state = self.state[p]
        if "step" not in state:  # on the parameter's device when capturable, as torch's RMSprop
            state["step"] = (torch.zeros((), dtype=_get_scalar_dtype(), device=p.device) if group["capturable"]
                             else torch.zeros((), dtype=_get_scalar_dtype()))
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
            ops.rmsprop_step_lists_(
                [params, grads, square_avgs, buffers, grad_avgs], group["lr"], group["alpha"],
                group["eps"], group["weight_decay"], momentum, centered, group["maximize"],
                None if clip is None else -clip, clip)
            # torch keeps a per-parameter step counter; RMSprop's update does not read it.
            _internal.increment_steps(steps)
        return loss
