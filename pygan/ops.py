"""pygan's fused ops: thin typed wrappers over ``torch.ops.pygan`` with the reference as fallback.

The ops are real torch ops (schemas in ``csrc/pygan.cpp``), so they work with ``torch.compile``,
``torch.library.opcheck`` and fake tensors. When the extension cannot be built, the same functions run
``pygan.reference`` after one ``PyganExtensionWarning`` (``PYGAN_REQUIRE_EXT=1`` makes that an error).
Arguments are validated completely before any tensor is modified, on both paths: on the extension
path by the C++ checks (Python only names what the dispatcher refuses before them, and refuses meta
tensors mixed with real ones in the fake kernels), on the fallback path by their Python twins (``pygan._ops_checks``).
Messages follow ``pygan._validate``: ``"op: argument ..., expected ..."``.

This module holds the public ops and where each call goes (the compiled op or its twin); the argument
handling and the fallback path's checks are in ``pygan._ops_checks``, the fake kernels in
``pygan._ops_fake``.

Internal API (used by ``pygan.optim``, not public): :func:`rmsprop_step_lists_`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from pygan import _build, _cuda_policy, _internal, _ops_fake, reference
from pygan import _ops_checks as op_args
from pygan import _validate as check

__all__ = ["clip_", "rmsprop_step_", "interpolate", "grad_penalty"]


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
        ValueError: both bounds None, a NaN bound, min > max, a tensor whose elements overlap in
            memory, or a meta tensor in a list that also holds tensors with data (the meta kernel
            would run and leave the others unclipped). Nothing is modified when an error is raised.
    """
    # Fast path for the common call (a list and float bounds): per-element checks happen in C++.
    if type(tensors) is not list:
        tensors = op_args.as_tensor_list(tensors, "tensors", "clip_")
    lo = min if type(min) is float else op_args.as_bound(min, "min", "clip_")
    hi = max if type(max) is float else op_args.as_bound(max, "max", "clip_")
    if tensors and _native("clip_", tensors):
        try:
            if torch.compiler.is_compiling():
                torch.ops.pygan.clip_.default(tensors, lo, hi)
            else:  # the same op, through a cheaper argument parser (csrc/python.cpp)
                _build.module().clip_(tensors, lo, hi)
        except (NotImplementedError, TypeError) as err:
            op_args.name_dispatch_error(err, [tensors], ["tensors"], "clip_")
            raise
    else:
        op_args.check_clip_args(op_args.as_tensor_list(tensors, "tensors", "clip_"), lo, hi)
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
        TypeError / ValueError: naming the argument, before anything is modified; also for a meta
        tensor among tensors with data, and for arguments that share memory with a tensor the step
        writes (e.g. a state that is the parameter itself).
    """
    op = "rmsprop_step_"
    lists = [op_args.as_tensor_list(x, name, op) for x, name in zip(
        (params, grads, square_avgs, momentum_buffers, grad_avgs), op_args.RMSPROP_LISTS)]
    numbers = [check.real(v, name, op) for v, name in (
        (lr, "lr"), (alpha, "alpha"), (eps, "eps"), (weight_decay, "weight_decay"), (momentum, "momentum"))]
    bounds = [op_args.as_bound(clip_min, "clip_min", op), op_args.as_bound(clip_max, "clip_max", op)]
    # The kernels read and write each element once, so an argument that shares memory with a written
    # one gives a wrong number silently (torch's RMSprop would too): refused before anything runs.
    written = op_args.named([lists[0]] + lists[2:], [op_args.RMSPROP_LISTS[0]] + list(op_args.RMSPROP_LISTS[2:]))
    check.no_shared_memory(written, op_args.named([lists[1]], ["grads"]), op)
    rmsprop_step_lists_(lists, *numbers, bool(centered), bool(maximize), *bounds)


def rmsprop_step_lists_(lists: list[list[torch.Tensor]], lr: float, alpha: float, eps: float,
                        weight_decay: float, momentum: float, centered: bool, maximize: bool,
                        clip_min: float | None, clip_max: float | None) -> None:
    """Internal API (``pygan.optim.ClippedRMSprop.step``): :func:`rmsprop_step_` for arguments that are
    already in canonical form.

    The extension's C++ checks (or their Python twins on the fallback path) still run; what this skips
    is the list conversion and :func:`rmsprop_step_`'s memory-sharing check, which the optimizer makes
    once when its state is created or loaded instead of on every step.

    Args:
        lists: ``[params, grads, square_avgs, momentum_buffers, grad_avgs]``, each a list of tensors.
        lr, alpha, eps, weight_decay, momentum: floats. centered, maximize: bools.
        clip_min, clip_max: floats or None.
    """
    if lists[0] and _native("rmsprop_step_", lists[0]):
        step = (torch.ops.pygan.rmsprop_step_.default if torch.compiler.is_compiling()
                else _build.module().rmsprop_step_)
        try:
            step(*lists, lr, alpha, eps, weight_decay, momentum, centered, maximize, clip_min, clip_max)
        except (NotImplementedError, TypeError) as err:
            op_args.name_dispatch_error(err, lists, op_args.RMSPROP_LISTS, "rmsprop_step_")
            raise
    else:
        op_args.check_rmsprop_args(*lists, lr, alpha, eps, weight_decay, momentum, centered, clip_min, clip_max)
        reference.rmsprop_step_(*lists, lr, alpha, eps, weight_decay, momentum, centered, maximize,
                                clip_min, clip_max)


def _draw_alpha(real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # U[0, 1) per sample, in float32 for 16-bit inputs (rounding may then give exactly 1.0).
    dtype = real.dtype if real.dtype in (torch.float32, torch.float64) else torch.float32
    return _internal.uniform(real.shape[0], real.device, dtype, generator).to(real.dtype)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None, *args,
                generator: torch.Generator | None = None, check_alpha: bool = True,
                _check_alpha: bool | None = None) -> torch.Tensor:
    """``alpha[i] * real[i] + (1 - alpha[i]) * fake[i]``: one random point per sample on the segment
    between a real and a fake sample (WGAN-GP's x-hat), in one fused pass.

    The weight is **per sample** (dim 0), broadcast over all other dims: not one weight for the batch
    and not one per element, the two mistakes common in WGAN-GP code.

    Args:
        real: [B, ...] float16, bfloat16, float32 or float64, on any device.
        fake: same shape, dtype and device as real.
        alpha: None to draw U[0, 1) per sample, or one weight per sample with values in [0, 1]: a
            tensor or NumPy array of shape [B] or [B, 1, ..., 1], or such a one broadcast to real's
            shape (``alpha.expand_as(real)``; a copy must hold one value per sample, which is read).
            The values are checked (one host sync on a GPU). Cast to real's dtype.
        generator: keyword-only: the torch.Generator alpha is drawn from when alpha is None, so runs
            reproduce; a CPU generator also serves CUDA data (alpha is drawn on the generator's device
            and moved). Passing it by position is deprecated (a DeprecationWarning, for one release).
        check_alpha: check that a given alpha lies in [0, 1] (skip it, and its host sync, for an
            alpha you drew from torch.rand yourself).

    Returns:
        A tensor of real's shape and dtype (real's memory layout when real and fake share it,
        contiguous otherwise); 16-bit inputs are computed in float32 and rounded once.
        Differentiable with respect to real, fake and alpha.

    Raises:
        TypeError / ValueError: naming the argument (shapes, dtypes, devices, alpha's shape or range).
    """
    if args:
        generator = check.deprecated_positional(args, {"generator": None}, "interpolate",
                                                {"generator": generator})["generator"]
    op_args.check_batched_float(real, "interpolate", "real")
    op_args.check_batched_float(fake, "interpolate", "fake")
    if fake.device != real.device:  # before drawing alpha on real's device
        raise ValueError(f"interpolate: fake is on {fake.device} but real is on {real.device}")
    check.generator(generator, "generator", "interpolate")
    if _check_alpha is not None:  # its former private spelling, for callers not yet updated
        check_alpha = _check_alpha
    alpha = _draw_alpha(real, generator) if alpha is None else op_args.as_alpha(alpha, real, check_alpha)
    if _native("interpolate", (real,)):
        if torch.compiler.is_compiling():
            return torch.ops.pygan.interpolate.default(real, fake, alpha)
        return _build.module().interpolate(real, fake, alpha)  # the same op, cheaper parsing
    op_args.check_interpolate_args(real, fake)
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
    op_args.check_batched_float(grads, "grad_penalty", "grads")
    center = check.real(center, "center", "grad_penalty")
    if not isinstance(reduction, str):
        raise TypeError(f"grad_penalty: reduction must be a str, got {type(reduction).__name__}")
    if _native("grad_penalty", (grads,)):
        if torch.compiler.is_compiling():
            return torch.ops.pygan.grad_penalty.default(grads, center, bool(one_sided), reduction)[0]
        return _build.module().grad_penalty(grads, center, bool(one_sided), reduction)
    op_args.check_grad_penalty_args(grads, center, reduction)
    return reference.grad_penalty(grads, center, bool(one_sided), reduction)


_registered = False


def _register_python_parts() -> None:
    """Register the fake (meta) kernels of pygan._ops_fake; called once after the library loads.

    The registration is made here, not in pygan._ops_fake: torch checks that a C++ op's fake kernel
    is registered from the module its schema names (``m.set_python_module("pygan.ops")``).
    """
    global _registered
    if _registered:
        return
    _registered = True
    for op, fake in _ops_fake.FAKES.items():
        torch.library.register_fake(op, fake)


# The loader calls this once the library is loaded (it knows nothing about the ops).
_build.on_load(_register_python_parts)
