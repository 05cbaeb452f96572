"""pygan's fused ops: thin typed wrappers over ``torch.ops.pygan`` with the reference as fallback.

The ops are real torch ops (schemas in ``csrc/pygan.cpp``), so they work with ``torch.compile``,
``torch.library.opcheck`` and fake tensors. When the extension cannot be built, the same functions run
``pygan.reference`` after one ``PyganExtensionWarning`` (``PYGAN_REQUIRE_EXT=1`` makes that an error).
Arguments are validated completely before any tensor is modified, on both paths.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import torch

from pygan import _build, _cuda_policy, reference

__all__ = ["clip_", "rmsprop_step_", "interpolate", "grad_penalty"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _use_ext() -> bool:
    # One indirection so tests can run every op through the reference path too.
    return _build.load()


def _native(op: str, tensors: Sequence[torch.Tensor]) -> bool:
    """Whether `op` on `tensors` runs the compiled kernels: the extension is loaded, and no tensor is
    on CUDA unless op's CUDA kernel is enabled (pygan/_cuda_policy.py, NOTE: [No unverified CUDA
    kernel by default]); otherwise the twin in pygan.reference runs, after a one-time warning."""
    if not _use_ext():
        return False
    if torch.compiler.is_compiling():
        return not _any_cuda(tensors) or _cuda_policy.cuda_kernel_enabled(op)
    # No CUDA tensor can exist before CUDA is initialised: CPU-only programs pay for one call.
    if torch.cuda.is_initialized() and _any_cuda(tensors) and not _cuda_policy.cuda_kernel_enabled(op):
        _cuda_policy.warn_twin(op)
        return False
    return True


def _any_cuda(tensors) -> bool:
    # (Non-tensors are left to the argument checks, which name them.)
    return any(isinstance(t, torch.Tensor) and t.is_cuda for t in tensors)


def _as_tensor_list(tensors: Iterable[torch.Tensor] | torch.Tensor, name: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if not isinstance(tensors, list):
        if not isinstance(tensors, Iterable):
            raise TypeError(f"{name} must be a tensor or an iterable of tensors, got {type(tensors).__name__}")
        tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{i}] is a {type(t).__name__}; expected a torch.Tensor")
    return tensors


def _as_bound(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number or None, got {type(value).__name__}")
    return float(value)


# ---- Python twins of the C++ argument checks (csrc/<op>.cpp), used on the fallback path. ----

def _check_float_strided(t: torch.Tensor, op: str, arg: str, i: int) -> None:
    if t.layout != torch.strided:
        raise TypeError(f"{op}: {arg}[{i}] has layout {t.layout}; expected a dense (strided) tensor")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg}[{i}] has dtype {t.dtype}; expected float16, bfloat16, float32 or float64")


def _check_writable(t: torch.Tensor, op: str, arg: str, i: int) -> None:
    if torch._debug_has_internal_overlap(t) == 1:  # 1: MemOverlap::Yes
        raise ValueError(f"{op}: {arg}[{i}] has elements that share memory (an expand()ed tensor?); "
                         "it cannot be updated in place")


def _check_bounds(lo: float | None, hi: float | None, op: str, lo_name: str, hi_name: str) -> None:
    for value, name in ((lo, lo_name), (hi, hi_name)):
        if value is not None and math.isnan(value):
            raise ValueError(f"{op}: {name} is NaN; expected a number or None")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{op}: {lo_name} ({lo}) is greater than {hi_name} ({hi})")


def _check_clip_args(tensors: Sequence[torch.Tensor], min: float | None, max: float | None) -> None:
    if min is None and max is None:
        raise ValueError("clip_: at least one of min and max must not be None")
    _check_bounds(min, max, "clip_", "min", "max")
    for i, t in enumerate(tensors):
        _check_float_strided(t, "clip_", "tensors", i)
        _check_writable(t, "clip_", "tensors", i)


def _check_rmsprop_args(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                        weight_decay, momentum, centered, clip_min, clip_max) -> None:
    op = "rmsprop_step_"
    for value, name in ((lr, "lr"), (alpha, "alpha"), (eps, "eps"), (weight_decay, "weight_decay"),
                        (momentum, "momentum")):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{op}: {name} must be a finite number >= 0, got {value}")
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
        _check_float_strided(p, op, "params", i)
        _check_writable(p, op, "params", i)
        if grads[i].layout != torch.strided:
            raise TypeError(f"{op}: grads[{i}] is sparse; RMSprop does not support sparse gradients")
        companions = [(grads, "grads"), (square_avgs, "square_avgs")]
        companions += [(momentum_buffers, "momentum_buffers")] if momentum > 0 else []
        companions += [(grad_avgs, "grad_avgs")] if centered else []
        for lst, name in companions:
            t = lst[i]
            _check_float_strided(t, op, name, i)
            if t.shape != p.shape:
                raise ValueError(f"{op}: {name}[{i}] has shape {list(t.shape)} but params[{i}] has shape {list(p.shape)}")
            if t.dtype != p.dtype:
                raise TypeError(f"{op}: {name}[{i}] has dtype {t.dtype} but params[{i}] has dtype {p.dtype}")
            if t.device != p.device:
                raise ValueError(f"{op}: {name}[{i}] is on {t.device} but params[{i}] is on {p.device}")
            if name != "grads":
                _check_writable(t, op, name, i)
    if clip_min is not None or clip_max is not None:
        _check_bounds(clip_min, clip_max, op, "clip_min", "clip_max")


# ---- Public ops. ----

def clip_(tensors: Iterable[torch.Tensor] | torch.Tensor, min: float | None, max: float | None) -> None:
    """Clamp every element of every tensor to [min, max], in place, in one pass (WGAN weight clipping).

    The drop-in replacement for ``for p in critic.parameters(): p.data.clamp_(-c, c)``. Like that loop
    it is a parameter update, not a differentiable op: it may be called on leaf parameters that require
    grad, outside ``torch.no_grad()``, and records nothing for autograd (version counters are bumped,
    so a tensor saved for backward and clipped before backward is still reported by autograd).

    Results are exactly ``torch.clamp``'s: bounds are first rounded to each tensor's dtype, and NaN
    elements stay NaN.

    Args:
        tensors: a tensor or an iterable of tensors (e.g. ``critic.parameters()``): float16, bfloat16,
            float32 or float64, any shapes, contiguous or not, on CPU or CUDA (a mixed list is handled
            per device).
        min: lower bound, or None for none.
        max: upper bound, or None for none.

    Returns:
        None. The tensors are modified in place.

    Raises:
        TypeError: a non-floating, complex or sparse tensor, or a bound that is not a real number.
        ValueError: both bounds None, a NaN bound, min > max, or a tensor whose elements overlap in
            memory. Nothing is modified when an error is raised.
    """
    # Fast path for the common call (a list and float bounds): per-element checks happen in C++.
    if type(tensors) is not list:
        tensors = _as_tensor_list(tensors, "tensors")
    lo = min if type(min) is float else _as_bound(min, "min")
    hi = max if type(max) is float else _as_bound(max, "max")
    if tensors and _native("clip_", tensors):
        try:
            if torch.compiler.is_compiling():
                torch.ops.pygan.clip_.default(tensors, lo, hi)
            else:  # the same op, through a cheaper argument parser (csrc/python.cpp)
                _build.module().clip_(tensors, lo, hi)
        except (RuntimeError, TypeError):
            # Errors raised before our checks ran (a non-tensor element, a sparse tensor reaching the
            # dispatcher): the Python checks name the argument. If they pass, the original stands.
            _check_clip_args(_as_tensor_list(tensors, "tensors"), lo, hi)
            raise
    else:
        _check_clip_args(_as_tensor_list(tensors, "tensors"), lo, hi)
        reference.clip_(tensors, lo, hi)


def rmsprop_step_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    square_avgs: Sequence[torch.Tensor],
    momentum_buffers: Sequence[torch.Tensor] = (),
    grad_avgs: Sequence[torch.Tensor] = (),
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    clip_min: float | None = None,
    clip_max: float | None = None,
) -> None:
    """One fused torch.optim.RMSprop step over many parameters, then the clamp to [clip_min, clip_max].

    The functional form behind :class:`pygan.optim.ClippedRMSprop` (which most users want instead).
    Every element of every tensor is read and written once. The update is torch's, in torch's order
    of operations (``eps`` is added after the square root); float16/bfloat16 are computed in float32
    and rounded once.

    Args:
        params: parameters, updated in place.
        grads: their gradients, same shapes, dtypes and devices.
        square_avgs: running averages of squared gradients, updated in place.
        momentum_buffers: one per parameter when ``momentum > 0``, else empty; updated in place.
        grad_avgs: one per parameter when ``centered``, else empty; updated in place.
        lr, alpha, eps, weight_decay, momentum, centered, maximize: as in ``torch.optim.RMSprop``.
        clip_min, clip_max: bounds of the clamp after the update; both None means no clamp.

    Returns:
        None.

    Raises:
        TypeError / ValueError: naming the argument, before anything is modified.
    """
    lists = [_as_tensor_list(x, name) for x, name in (
        (params, "params"), (grads, "grads"), (square_avgs, "square_avgs"),
        (momentum_buffers, "momentum_buffers"), (grad_avgs, "grad_avgs"))]
    bounds = [_as_bound(clip_min, "clip_min"), _as_bound(clip_max, "clip_max")]
    _rmsprop_step(lists, float(lr), float(alpha), float(eps), float(weight_decay), float(momentum),
                  bool(centered), bool(maximize), *bounds)


def _rmsprop_step(lists, lr, alpha, eps, weight_decay, momentum, centered, maximize, clip_min, clip_max):
    # Shared by rmsprop_step_ and ClippedRMSprop.step (whose lists are already lists of tensors).
    if lists[0] and _native("rmsprop_step_", lists[0]):
        step = (torch.ops.pygan.rmsprop_step_.default if torch.compiler.is_compiling()
                else _build.module().rmsprop_step_)
        try:
            step(*lists, lr, alpha, eps, weight_decay, momentum, centered, maximize, clip_min, clip_max)
        except (RuntimeError, TypeError):  # see clip_
            _check_rmsprop_args(*lists, lr, alpha, eps, weight_decay, momentum, centered, clip_min, clip_max)
            raise
    else:
        _check_rmsprop_args(*lists, lr, alpha, eps, weight_decay, momentum, centered, clip_min, clip_max)
        reference.rmsprop_step_(*lists, lr, alpha, eps, weight_decay, momentum, centered, maximize,
                                clip_min, clip_max)


_REDUCTIONS = ("none", "mean", "sum")


def _check_batched_float(t, op: str, arg: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"{op}: {arg} has layout {t.layout}; expected a dense (strided) tensor")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} has dtype {t.dtype}; expected float16, bfloat16, float32 or float64")
    if t.dim() < 1:
        raise ValueError(f"{op}: {arg} is 0-d; expected a batch of samples along dim 0 (shape [B, ...])")


def _check_interpolate_args(real, fake) -> None:
    # The part of check_interpolate_args (csrc/penalty.cpp) that interpolate() leaves to the
    # kernels, for the fallback path (types, devices and alpha are checked before either path).
    op = "interpolate"
    if real.shape != fake.shape:
        raise ValueError(f"{op}: real has shape {list(real.shape)} but fake has shape {list(fake.shape)}; "
                         "expected equal shapes")
    if real.dtype != fake.dtype:
        raise TypeError(f"{op}: real has dtype {real.dtype} but fake has dtype {fake.dtype}")


def _check_grad_penalty_args(grads, center: float, reduction: str) -> None:
    # The part of check_grad_penalty_args (csrc/penalty.cpp) that grad_penalty() leaves to the
    # kernels, for the fallback path (grads' type is checked before either path).
    op = "grad_penalty"
    if not (math.isfinite(center) and center >= 0):
        raise ValueError(f"{op}: center must be a finite number >= 0, got {center}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if grads.shape[0] == 0 and reduction == "mean":
        raise ValueError(f"{op}: grads has batch size 0; the mean over an empty batch is undefined "
                         "(use reduction='sum' or 'none')")


def _as_alpha(alpha, real: torch.Tensor, check_range: bool = True) -> torch.Tensor:
    """A user's alpha as a [B] tensor of real's dtype, after checking its shape and range (the range
    check reads the values, a host sync on a GPU: ``check_range=False`` skips it for alphas the
    caller drew from ``torch.rand`` itself, as the trainer does)."""
    if not isinstance(alpha, torch.Tensor):
        raise TypeError(f"interpolate: alpha must be a tensor of shape [B] or None, got {type(alpha).__name__}")
    if alpha.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"interpolate: alpha has dtype {alpha.dtype}; expected a floating-point tensor")
    batch = real.shape[0]
    # [B] or the canonical snippet's [B, 1, ..., 1]; a scalar (one alpha for the whole batch) or one
    # alpha per element are the two classic mistakes this refuses.
    if (alpha.dim() == 0 or alpha.dim() > real.dim() or alpha.shape[0] != batch
            or any(s != 1 for s in alpha.shape[1:])):
        raise ValueError(f"interpolate: alpha has shape {list(alpha.shape)}; expected [{batch}] (one weight "
                         f"per sample) or [{batch}, 1, ..., 1]")
    if alpha.device != real.device:
        raise ValueError(f"interpolate: alpha is on {alpha.device} but real is on {real.device}")
    if check_range and not torch.compiler.is_compiling() and not _is_capturing(alpha):
        inside = (alpha >= 0) & (alpha <= 1)  # False for NaN too
        if not bool(inside.all()):
            bad = alpha[~inside].flatten()[0].item()
            raise ValueError(f"interpolate: alpha must lie in [0, 1]; it contains {bad}")
    return alpha.reshape(batch).to(real.dtype)


def _is_capturing(t: torch.Tensor) -> bool:
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def _rand(shape, device: torch.device, dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) numbers for `device`, drawn on the generator's device and moved, so a CPU generator
    also serves CUDA data and reproduces the same numbers (torch.rand alone rejects the mix)."""
    source = generator.device if generator is not None else device
    if torch.device(source).type == "cpu" and torch.device(device).type == "cuda" and (
            torch.cuda.is_current_stream_capturing()):
        # The copy to the GPU would come from pageable host memory: illegal while capturing a graph.
        raise ValueError("generator: a CPU generator cannot draw for CUDA data while a CUDA graph is being "
                         "captured; pass a CUDA generator (torch.Generator('cuda')) or None")
    return torch.rand(shape, generator=generator, device=source, dtype=dtype).to(device, non_blocking=True)


def _draw_alpha(real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # U[0, 1) per sample, in float32 for 16-bit inputs (rounding may then give exactly 1.0).
    dtype = real.dtype if real.dtype in (torch.float32, torch.float64) else torch.float32
    return _rand(real.shape[0], real.device, dtype, generator).to(real.dtype)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None,
                generator: torch.Generator | None = None, *, _check_alpha: bool = True) -> torch.Tensor:
    """``alpha[i] * real[i] + (1 - alpha[i]) * fake[i]``: one random point per sample on the segment
    between a real and a fake sample (WGAN-GP's x-hat), in one fused pass.

    The weight is **per sample** (dim 0), broadcast over all other dims: not one weight for the batch
    and not one per element, the two mistakes common in WGAN-GP code.

    Args:
        real: [B, ...] float16, bfloat16, float32 or float64, on any device.
        fake: same shape, dtype and device as real.
        alpha: None to draw U[0, 1) per sample, or a tensor of shape [B] (or [B, 1, ..., 1]) with
            values in [0, 1] (checked, which costs one host sync on a GPU). Cast to real's dtype.
        generator: the torch.Generator alpha is drawn from when alpha is None, so runs reproduce; a
            CPU generator also serves CUDA data (alpha is drawn on the generator's device and moved).

    Returns:
        A tensor of real's shape and dtype (real's memory layout when real and fake share it,
        contiguous otherwise); 16-bit inputs are computed in float32 and rounded once.
        Differentiable with respect to real, fake and alpha.

    Raises:
        TypeError / ValueError: naming the argument (shapes, dtypes, devices, alpha's shape or range).
    """
    _check_batched_float(real, "interpolate", "real")
    _check_batched_float(fake, "interpolate", "fake")
    if fake.device != real.device:  # before drawing alpha on real's device
        raise ValueError(f"interpolate: fake is on {fake.device} but real is on {real.device}")
    # (_check_alpha=False is private: for callers that drew alpha from torch.rand themselves.)
    alpha = _draw_alpha(real, generator) if alpha is None else _as_alpha(alpha, real, _check_alpha)
    if _native("interpolate", (real,)):
        if torch.compiler.is_compiling():
            return torch.ops.pygan.interpolate.default(real, fake, alpha)
        return _build.module().interpolate(real, fake, alpha)  # the same op, cheaper parsing
    _check_interpolate_args(real, fake)
    return reference.interpolate(real, fake, alpha)


def grad_penalty(grads: torch.Tensor, center: float = 1.0, one_sided: bool = False,
                 reduction: str = "mean") -> torch.Tensor:
    """The gradient-penalty epilogue: per-sample gradient norms to the penalty, in one fused pass.

    With n_i = ||grads[i]||_2, the L2 norm of sample i over **all non-batch dims**:

    * ``center > 0``: p_i = (n_i - center)^2, or max(n_i - center, 0)^2 when ``one_sided``
      (WGAN-GP with center 1; the one-sided variant of the same paper);
    * ``center == 0``: p_i = n_i^2, the squared norm, with no square root (R1 / R2).

    Then the mean over the batch (``reduction="mean"``), the sum, or the per-sample values ("none").
    float16/bfloat16 accumulate in float32 and float32 in float64 (so elements near 1e20 still give a
    finite norm). The backward is one fused pass too and is itself differentiable (gradgradcheck).

    At n_i = 0 with center > 0 the penalty has a kink (a cone); its gradient there is defined as 0,
    the subgradient torch's own norm backward uses, so it is finite and the same on every backend.

    Args:
        grads: [B, ...] per-sample gradients, e.g. ``autograd.grad(critic(x).sum(), x,
            create_graph=True)[0]``; float16, bfloat16, float32 or float64, any layout.
        center: the target norm, a finite number >= 0.
        one_sided: penalise only norms above center.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        A 0-d tensor ("mean", "sum") or a [B] tensor ("none") in grads' dtype.

    Raises:
        TypeError / ValueError: naming the argument; also for "mean" over an empty batch.
    """
    _check_batched_float(grads, "grad_penalty", "grads")
    if isinstance(center, bool) or not isinstance(center, numbers.Real):
        raise TypeError(f"grad_penalty: center must be a real number, got {type(center).__name__}")
    center = float(center)
    if not isinstance(reduction, str):
        raise TypeError(f"grad_penalty: reduction must be a str, got {type(reduction).__name__}")
    if _native("grad_penalty", (grads,)):
        if torch.compiler.is_compiling():
            return torch.ops.pygan.grad_penalty.default(grads, center, bool(one_sided), reduction)[0]
        return _build.module().grad_penalty(grads, center, bool(one_sided), reduction)
    _check_grad_penalty_args(grads, center, reduction)
    return reference.grad_penalty(grads, center, bool(one_sided), reduction)


def _increment_steps(steps: list[torch.Tensor]) -> None:
    # ClippedRMSprop's per-parameter step counters (torch's RMSprop update does not read them).
    if not torch.compiler.is_compiling() and _build.module() is not None:
        _build.module().increment_(steps)
    else:
        torch._foreach_add_(steps, 1)


_registered = False


def _register_python_parts() -> None:
    """Fake (meta) kernels for torch.compile / FakeTensor; called once after the library loads."""
    global _registered
    if _registered:
        return
    _registered = True

    # clip_ and rmsprop_step_ only mutate their inputs in place and return nothing.
    @torch.library.register_fake("pygan::clip_")
    def _clip_fake(tensors, min, max):
        return None

    @torch.library.register_fake("pygan::rmsprop_step_")
    def _rmsprop_step_fake(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                           weight_decay, momentum, centered, maximize, clip_min, clip_max):
        return None

    # The fake kernels mirror the layouts the real kernels return (csrc/cpu/penalty_cpu.cpp): the
    # input's strides when it is sample-blocked, contiguous otherwise.
    @torch.library.register_fake("pygan::interpolate")
    def _interpolate_fake(real, fake, alpha):
        if _sample_blocked(real):
            return torch.empty_like(real)
        if _sample_blocked(fake):
            return torch.empty_like(fake)
        return real.new_empty(real.shape)

    @torch.library.register_fake("pygan::grad_penalty")
    def _grad_penalty_fake(grads, center, one_sided, reduction):
        batch = grads.shape[0]
        penalty = grads.new_empty((batch,) if reduction == "none" else ())
        norms = grads.new_empty((batch,), dtype=reference._acc_dtype(grads.dtype))
        return penalty, norms

    @torch.library.register_fake("pygan::grad_penalty_backward")
    def _grad_penalty_backward_fake(grad_out, grads, norms, center, one_sided, reduction):
        return torch.empty_like(grads) if _sample_blocked(grads) else grads.new_empty(grads.shape)


# The loader calls this once the library is loaded (it knows nothing about the ops).
_build.on_load(_register_python_parts)


def _sample_blocked(t: torch.Tensor) -> bool:
    # Python twin of pygan::is_sample_blocked (csrc/penalty.cpp).
    from torch._prims_common import is_non_overlapping_and_dense_or_false as is_non_overlapping_and_dense

    if not is_non_overlapping_and_dense(t):
        return False
    if t.dim() == 0 or t.shape[0] <= 1 or t.numel() == 0:
        return True
    return t.stride(0) == t.numel() // t.shape[0]
