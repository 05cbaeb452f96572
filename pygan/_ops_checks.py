"""The fused ops' argument handling (a part of :mod:`pygan.ops`): turning the user's arguments into
canonical form, naming the argument the dispatcher refused, and the fallback path's checks, the Python
twins of the C++ ones (``csrc/<op>.cpp``), so both paths refuse the same input with the same message.

Internal API (used by ``pygan.ops`` and ``pygan._ops_fake`` only). Messages follow ``pygan._validate``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from pygan import _validate as check

__all__ = ["RMSPROP_LISTS", "REDUCTIONS", "as_tensor_list", "as_bound", "named", "name_dispatch_error",
           "check_clip_args", "check_rmsprop_args", "check_batched_float", "check_interpolate_args",
           "check_grad_penalty_args", "as_alpha", "is_capturing"]


def as_tensor_list(tensors: Iterable[torch.Tensor] | torch.Tensor, name: str, op: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if not isinstance(tensors, list):
        if not isinstance(tensors, Iterable):
            raise TypeError(f"{op}: {name} must be a tensor or an iterable of tensors, got {type(tensors).__name__}")
        tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name}[{i}] is a {type(t).__name__}; expected a torch.Tensor")
    return tensors


def as_bound(value, name: str, op: str) -> float | None:
    return check.real(value, name, op, allow_none=True)


def named(lists: Sequence[Sequence[torch.Tensor]], names: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
    return [(f"{name}[{i}]", t) for lst, name in zip(lists, names) for i, t in enumerate(lst)]


def name_dispatch_error(err: Exception, lists, names, op: str) -> None:
    """Name the argument when pybind11 (a non-tensor element: TypeError) or the dispatcher (a sparse
    tensor: NotImplementedError, before any kernel or C++ check runs) refused the call; returns
    when the error is something else, for the caller to re-raise."""
    for lst, name in zip(lists, names):
        as_tensor_list(lst, name, op)
    if isinstance(err, NotImplementedError):
        for arg, t in named(lists, names):
            if t.layout != torch.strided:
                if arg.startswith("grads["):
                    raise TypeError(f"{op}: {arg} is sparse; RMSprop does not support sparse gradients") from err
                raise TypeError(f"{op}: {arg} has layout {t.layout}; expected a dense (strided) tensor") from err


# ---- The fallback path's checks: Python twins of the C++ ones (csrc/<op>.cpp). ----

def _check_float_strided(t: torch.Tensor, op: str, arg: str) -> None:
    check.tensor(t, arg, op)


def _check_writable(t: torch.Tensor, op: str, arg: str) -> None:
    if torch._debug_has_internal_overlap(t) == 1:  # 1: MemOverlap::Yes
        raise ValueError(f"{op}: {arg} has elements that share memory (an expand()ed tensor?); "
                         "it cannot be updated in place")


def _check_bounds(lo: float | None, hi: float | None, op: str, lo_name: str, hi_name: str) -> None:
    for value, name in ((lo, lo_name), (hi, hi_name)):
        if value is not None and math.isnan(value):
            raise ValueError(f"{op}: {name} is NaN; expected a number or None")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{op}: {lo_name} ({lo}) is greater than {hi_name} ({hi})")


def check_clip_args(tensors: Sequence[torch.Tensor], min: float | None, max: float | None) -> None:
    if min is None and max is None:
        raise ValueError("clip_: at least one of min and max must not be None")
    _check_bounds(min, max, "clip_", "min", "max")
    for i, t in enumerate(tensors):
        _check_float_strided(t, "clip_", f"tensors[{i}]")
        _check_writable(t, "clip_", f"tensors[{i}]")
    check.same_device(named([tensors], ["tensors"]), "clip_")


RMSPROP_LISTS = ("params", "grads", "square_avgs", "momentum_buffers", "grad_avgs")


def check_rmsprop_args(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                        weight_decay, momentum, centered, clip_min, clip_max) -> None:
    op = "rmsprop_step_"
    for value, name in ((lr, "lr"), (alpha, "alpha"), (eps, "eps"), (weight_decay, "weight_decay"),
                        (momentum, "momentum")):
        check.number(value, name, op, low=0)
    n = len(params)
    for lst, expected, name, when in (
        (grads, n, "grads", "one per parameter"),
        (square_avgs, n, "square_avgs", "one per parameter"),
        (momentum_buffers, n if momentum > 0 else 0, "momentum_buffers",
         "one per parameter when momentum > 0, none otherwise"),
        (grad_avgs, n if centered else 0, "grad_avgs", "one per parameter when centered, none otherwise"),
    ):
        if len(lst) != expected:
            raise ValueError(f"{op}: {name} has {len(lst)} tensors; expected {expected} ({when})")
    for i, p in enumerate(params):
        _check_float_strided(p, op, f"params[{i}]")
        _check_writable(p, op, f"params[{i}]")
        if grads[i].layout != torch.strided:
            raise TypeError(f"{op}: grads[{i}] is sparse; RMSprop does not support sparse gradients")
        companions = [(grads, "grads"), (square_avgs, "square_avgs")]
        companions += [(momentum_buffers, "momentum_buffers")] if momentum > 0 else []
        companions += [(grad_avgs, "grad_avgs")] if centered else []
        for lst, name in companions:
            t = lst[i]
            _check_float_strided(t, op, f"{name}[{i}]")
            if t.shape != p.shape:
                raise ValueError(f"{op}: {name}[{i}] has shape {list(t.shape)} but params[{i}] has shape {list(p.shape)}")
            if t.dtype != p.dtype:
                raise TypeError(f"{op}: {name}[{i}] has dtype {t.dtype} but params[{i}] has dtype {p.dtype}")
            if t.device != p.device and "meta" not in (t.device.type, p.device.type):
                raise ValueError(f"{op}: {name}[{i}] is on {t.device} but params[{i}] is on {p.device}")
            if name != "grads":
                _check_writable(t, op, f"{name}[{i}]")
    check.same_device(named([params, grads, square_avgs, momentum_buffers, grad_avgs], RMSPROP_LISTS), op)
    if clip_min is not None or clip_max is not None:
        _check_bounds(clip_min, clip_max, op, "clip_min", "clip_max")

REDUCTIONS = ("none", "mean", "sum")


def check_batched_float(t, op: str, arg: str) -> None:
    check.tensor(t, arg, op, min_dim=1)


def check_interpolate_args(real, fake) -> None:
    # The part of check_interpolate_args (csrc/penalty.cpp) that interpolate() leaves to the
    # kernels, for the fallback path (types, devices and alpha are checked before either path).
    op = "interpolate"
    if real.shape != fake.shape:
        raise ValueError(f"{op}: real has shape {list(real.shape)} but fake has shape {list(fake.shape)}; "
                         "expected equal shapes")
    if real.dtype != fake.dtype:
        raise TypeError(f"{op}: real has dtype {real.dtype} but fake has dtype {fake.dtype}")


def check_grad_penalty_args(grads, center: float, reduction: str) -> None:
    # The part of check_grad_penalty_args (csrc/penalty.cpp) that grad_penalty() leaves to the
    # kernels, for the fallback path (grads' type is checked before either path).
    op = "grad_penalty"
    check.number(center, "center", op, low=0)
    check.choice(reduction, "reduction", REDUCTIONS, op)
    if grads.shape[0] == 0 and reduction == "mean":
        raise ValueError(f"{op}: grads has batch size 0; the mean over an empty batch is undefined "
                         "(use reduction='sum' or 'none')")


def as_alpha(alpha, real: torch.Tensor, check_range: bool = True) -> torch.Tensor:
    """A user's alpha as a [B] tensor of real's dtype, after checking its shape and range (the range
    check reads the values, a host sync on a GPU: ``check_range=False`` skips it for alphas the
    caller drew from ``torch.rand`` itself, as the trainer does)."""
    op = "interpolate"
    if type(alpha).__module__ == "numpy" and hasattr(alpha, "__array__"):
        alpha = torch.as_tensor(alpha, device=real.device)  # NumPy α, as the authors' scripts draw it
    if not isinstance(alpha, torch.Tensor):
        raise TypeError(f"{op}: alpha must be a tensor of shape [B] or None, got {type(alpha).__name__}")
    if alpha.dtype not in check.FLOAT_DTYPES:
        raise TypeError(f"{op}: alpha has dtype {alpha.dtype}; expected a floating-point tensor")
    batch = real.shape[0]
    # One weight per sample: [B], the canonical snippet's [B, 1, ..., 1], or such an α broadcast to
    # real's shape (``alpha.expand_as(real)``, the WGAN-GP authors' toy script), expanded or copied.
    # A scalar (one α for the whole batch) or one α per element are the two classic mistakes refused.
    expected = (f"expected [{batch}] (one weight per sample), [{batch}, 1, ..., 1], or such a tensor "
                f"expanded to real's shape {list(real.shape)} (the same value over each sample)")
    if (alpha.dim() == 0 or alpha.dim() > real.dim() or alpha.shape[0] != batch
            or any(s not in (1, r) for s, r in zip(alpha.shape[1:], real.shape[1:]))):
        raise ValueError(f"{op}: alpha has shape {list(alpha.shape)}; {expected}")
    if alpha.device != real.device:
        raise ValueError(f"{op}: alpha is on {alpha.device} but real is on {real.device}")
    traced = torch.compiler.is_compiling() or is_capturing(alpha)
    if check_range and not traced:
        inside = (alpha >= 0) & (alpha <= 1)  # False for NaN too
        if not bool(inside.all()):
            bad = alpha[~inside].flatten()[0].item()
            raise ValueError(f"{op}: alpha must lie in [0, 1]; it contains {bad}")
    if alpha.numel() != batch:
        spread = [d for d in range(1, alpha.dim()) if alpha.shape[d] != 1 and alpha.stride(d) != 0]
        per_sample = alpha[(slice(None),) + (0,) * (alpha.dim() - 1)]
        if spread:  # materialised: the values must be constant within each sample (read: a host sync)
            if traced:
                raise ValueError(f"{op}: alpha has shape {list(alpha.shape)}; under torch.compile or graph "
                                 f"capture pass it as [{batch}] (alpha[:, 0, ..., 0]) or expanded")
            flat = alpha.reshape(batch, -1)
            if not torch.equal(flat, flat[:, :1].expand_as(flat)):
                raise ValueError(f"{op}: alpha has shape {list(alpha.shape)} with different values within a "
                                 f"sample; {expected}")
        alpha = per_sample
    return alpha.reshape(batch).to(real.dtype)


def is_capturing(t: torch.Tensor) -> bool:
    return t.is_cuda and torch.cuda.is_current_stream_capturing()
