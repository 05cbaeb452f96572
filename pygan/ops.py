"""pygan's fused ops: thin typed wrappers over ``torch.ops.pygan`` with the reference as fallback.

The ops are real torch ops (schemas in ``csrc/pygan.cpp``), so they work with ``torch.compile``,
``torch.library.opcheck`` and fake tensors. When the extension cannot be built, the same functions run
``pygan.reference`` after one ``PyganExtensionWarning`` (``PYGAN_REQUIRE_EXT=1`` makes that an error).
Arguments are validated completely before any tensor is modified, on both paths: on the extension
path by the C++ checks (Python only names what the dispatcher refuses before them, and refuses meta
tensors mixed with real ones in the fake kernels), on the fallback path by their Python twins below.
Messages follow ``pygan._validate``: ``"op: argument ..., expected ..."``.

Internal API (used by ``pygan.optim``, not public): :func:`rmsprop_step_lists_`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from pygan import _build, _cuda_policy, _internal, reference
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


def _as_tensor_list(tensors: Iterable[torch.Tensor] | torch.Tensor, name: str, op: str) -> list[torch.Tensor]:
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


def _as_bound(value, name: str, op: str) -> float | None:
    return check.real(value, name, op, allow_none=True)


def _named(lists: Sequence[Sequence[torch.Tensor]], names: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
    return [(f"{name}[{i}]", t) for lst, name in zip(lists, names) for i, t in enumerate(lst)]


def _name_dispatch_error(err: Exception, lists, names, op: str) -> None:
    """Name the argument when pybind11 (a non-tensor element: TypeError) or the dispatcher (a sparse
    tensor: NotImplementedError, before any kernel or C++ check runs) refused the call; returns
    when the error is something else, for the caller to re-raise."""
    for lst, name in zip(lists, names):
        _as_tensor_list(lst, name, op)
    if isinstance(err, NotImplementedError):
        for arg, t in _named(lists, names):
            if t.layout != torch.strided:
                if arg.startswith("grads["):
                    raise TypeError(f"{op}: {arg} is sparse; RMSprop does not support sparse gradients") from err
                raise TypeError(f"{op}: {arg} has layout {t.layout}; expected a dense (strided) tensor") from err


# ---- The fallback path's checks: Python twins of the C++ ones (csrc/cpu/*_cpu.cpp). ----

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


def _check_clip_args(tensors: Sequence[torch.Tensor], min: float | None, max: float | None) -> None:
    if min is None and max is None:
        raise ValueError("clip_: at least one of min and max must not be None")
    _check_bounds(min, max, "clip_", "min", "max")
    for i, t in enumerate(tensors):
        _check_float_strided(t, "clip_", f"tensors[{i}]")
        _check_writable(t, "clip_", f"tensors[{i}]")
    check.same_device(_named([tensors], ["tensors"]), "clip_")


_RMSPROP_LISTS = ("params", "grads", "square_avgs", "momentum_buffers", "grad_avgs")


def _check_rmsprop_args(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
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
    check.same_device(_named([params, grads, square_avgs, momentum_buffers, grad_avgs], _RMSPROP_LISTS), op)
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
        ValueError: both bounds None, a NaN bound, min > max, a tensor whose elements overlap in
            memory, or a meta tensor in a list that also holds tensors with data (the meta kernel
            would run and leave the others unclipped). Nothing is modified when an error is raised.
    """
    # Fast path for the common call (a list and float bounds): per-element checks happen in C++.
    if type(tensors) is not list:
        tensors = _as_tensor_list(tensors, "tensors", "clip_")
    lo = min if type(min) is float else _as_bound(min, "min", "clip_")
    hi = max if type(max) is float else _as_bound(max, "max", "clip_")
    if tensors and _native("clip_", tensors):
        try:
            if torch.compiler.is_compiling():
                torch.ops.pygan.clip_.default(tensors, lo, hi)
            else:  # the same op, through a cheaper argument parser (csrc/python.cpp)
                _build.module().clip_(tensors, lo, hi)
        except (NotImplementedError, TypeError) as err:
            _name_dispatch_error(err, [tensors], ["tensors"], "clip_")
            raise
    else:
        _check_clip_args(_as_tensor_list(tensors, "tensors", "clip_"), lo, hi)
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
    lists = [_as_tensor_list(x, name, op) for x, name in zip(
        (params, grads, square_avgs, momentum_buffers, grad_avgs), _RMSPROP_LISTS)]
    numbers = [check.real(v, name, op) for v, name in (
        (lr, "lr"), (alpha, "alpha"), (eps, "eps"), (weight_decay, "weight_decay"), (momentum, "momentum"))]
    bounds = [_as_bound(clip_min, "clip_min", op), _as_bound(clip_max, "clip_max", op)]
    # The kernels read and write each element once, so an argument that shares memory with a written
    # one gives a wrong number silently (torch's RMSprop would too): refused before anything runs.
    written = _named([lists[0]] + lists[2:], [_RMSPROP_LISTS[0]] + list(_RMSPROP_LISTS[2:]))
    check.no_shared_memory(written, _named([lists[1]], ["grads"]), op)
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
            _name_dispatch_error(err, lists, _RMSPROP_LISTS, "rmsprop_step_")
            raise
    else:
        _check_rmsprop_args(*lists, lr, alpha, eps, weight_decay, momentum, centered, clip_min, clip_max)
        reference.rmsprop_step_(*lists, lr, alpha, eps, weight_decay, momentum, centered, maximize,
                                clip_min, clip_max)


_REDUCTIONS = ("none", "mean", "sum")


def _check_batched_float(t, op: str, arg: str) -> None:
    check.tensor(t, arg, op, min_dim=1)


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
    check.number(center, "center", op, low=0)
    check.choice(reduction, "reduction", _REDUCTIONS, op)
    if grads.shape[0] == 0 and reduction == "mean":
        raise ValueError(f"{op}: grads has batch size 0; the mean over an empty batch is undefined "
                         "(use reduction='sum' or 'none')")


def _as_alpha(alpha, real: torch.Tensor, check_range: bool = True) -> torch.Tensor:
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
    traced = torch.compiler.is_compiling() or _is_capturing(alpha)
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


def _is_capturing(t: torch.Tensor) -> bool:
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


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
    _check_batched_float(real, "interpolate", "real")
    _check_batched_float(fake, "interpolate", "fake")
    if fake.device != real.device:  # before drawing alpha on real's device
        raise ValueError(f"interpolate: fake is on {fake.device} but real is on {real.device}")
    check.generator(generator, "generator", "interpolate")
    if _check_alpha is not None:  # its former private spelling, for callers not yet updated
        check_alpha = _check_alpha
    alpha = _draw_alpha(real, generator) if alpha is None else _as_alpha(alpha, real, check_alpha)
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
    center = check.real(center, "center", "grad_penalty")
    if not isinstance(reduction, str):
        raise TypeError(f"grad_penalty: reduction must be a str, got {type(reduction).__name__}")
    if _native("grad_penalty", (grads,)):
        if torch.compiler.is_compiling():
            return torch.ops.pygan.grad_penalty.default(grads, center, bool(one_sided), reduction)[0]
        return _build.module().grad_penalty(grads, center, bool(one_sided), reduction)
    _check_grad_penalty_args(grads, center, reduction)
    return reference.grad_penalty(grads, center, bool(one_sided), reduction)


_registered = False


def _register_python_parts() -> None:
    """Fake (meta) kernels for torch.compile / FakeTensor; called once after the library loads."""
    global _registered
    if _registered:
        return
    _registered = True

    # clip_ and rmsprop_step_ only mutate their inputs in place and return nothing.
    # They also run, as the meta kernels, when a meta tensor is among real ones in eager mode: the
    # dispatcher then skips the real kernels, so that mix is refused here (pygan._validate.same_device).
    @torch.library.register_fake("pygan::clip_")
    def _clip_fake(tensors, min, max):
        check.same_device(_named([tensors], ["tensors"]), "clip_")

    @torch.library.register_fake("pygan::rmsprop_step_")
    def _rmsprop_step_fake(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                           weight_decay, momentum, centered, maximize, clip_min, clip_max):
        lists = [params, grads, square_avgs, momentum_buffers, grad_avgs]
        check.same_device(_named(lists, _RMSPROP_LISTS), "rmsprop_step_")

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
        norms = grads.new_empty((batch,), dtype=_internal.accumulation_dtype(grads.dtype))
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
