"""Pure-PyTorch twins of every pygan op: the test oracle and the fallback when the extension is missing.

The exact optimal-transport oracles live in ``pygan.ot.reference``.

Each function here computes what its fused op computes, written plainly with torch calls, one tensor
at a time. They take the same arguments as the ``torch.ops.pygan`` ops and assume those arguments
were validated (``pygan.ops`` validates before calling either). The differentiable ones
(``interpolate``, ``grad_penalty``) are differentiable through torch's autograd, to any order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pygan._internal import accumulation_dtype

__all__ = ["clip_", "rmsprop_step_", "interpolate", "grad_penalty", "emd", "wasserstein_1d"]

_REDUCED = (torch.float16, torch.bfloat16)


def _round_bound(bound: float | None, dtype: torch.dtype) -> float | None:
    # The bound as the tensor's dtype holds it (round to nearest; beyond the range: +-inf), which is
    # what the kernels compare against. torch.clamp_ instead raises when a bound overflows the dtype.
    if bound is None:
        return None
    return torch.tensor(bound, dtype=torch.float64).to(dtype).item()


@torch.no_grad()
def clip_(tensors: Sequence[torch.Tensor], min: float | None, max: float | None) -> None:
    """Clamp each tensor in place to [min, max] with ``torch.clamp_`` (NaN propagates).

    Args:
        tensors: floating-point tensors, updated in place.
        min, max: the bounds; None leaves that side unbounded. Each is first rounded to the tensor's
            dtype; a bound beyond the dtype's range becomes +-inf.
    """
    rounded = {}
    for t in tensors:
        if t.dtype not in rounded:
            rounded[t.dtype] = (_round_bound(min, t.dtype), _round_bound(max, t.dtype))
        t.clamp_(*rounded[t.dtype])


@torch.no_grad()
def rmsprop_step_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    square_avgs: Sequence[torch.Tensor],
    momentum_buffers: Sequence[torch.Tensor],
    grad_avgs: Sequence[torch.Tensor],
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    clip_min: float | None,
    clip_max: float | None,
) -> None:
    """One torch.optim.RMSprop step per parameter (torch's single-tensor code, line for line), then
    the clamp to [clip_min, clip_max] (skipped when both are None).

    float16/bfloat16 tensors are updated in float32 and rounded once at the end, as the fused kernels
    do (torch.optim.RMSprop instead rounds after every operation).

    Args:
        params: parameters, updated in place.
        grads: their gradients (same shapes and dtypes).
        square_avgs: the running averages of squared gradients, updated in place.
        momentum_buffers: one per parameter when momentum > 0, else empty; updated in place.
        grad_avgs: one per parameter when centered, else empty; updated in place.
        lr, alpha, eps, weight_decay, momentum, centered, maximize: as in torch.optim.RMSprop.
        clip_min, clip_max: the clamp applied to the updated parameters; None leaves a side open.
    """
    clip = clip_min is not None or clip_max is not None
    for i, (param, grad, square_avg) in enumerate(zip(params, grads, square_avgs)):
        buf = momentum_buffers[i] if momentum > 0 else None
        grad_avg = grad_avgs[i] if centered else None
        originals = (param, square_avg, buf, grad_avg)
        if param.dtype in _REDUCED:
            param, grad, square_avg = param.float(), grad.float(), square_avg.float()
            buf = buf.float() if buf is not None else None
            grad_avg = grad_avg.float() if grad_avg is not None else None

        grad = grad if not maximize else -grad
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if centered:
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)
        if momentum > 0:
            buf.mul_(momentum).addcdiv_(grad, avg)
            param.add_(buf, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)
        if clip:
            # Bounds rounded to the parameter's own dtype first, as clip_ and the kernels do.
            param.clamp_(_round_bound(clip_min, originals[0].dtype), _round_bound(clip_max, originals[0].dtype))

        for original, updated in zip(originals, (param, square_avg, buf, grad_avg)):
            if original is not None and updated is not original:
                original.copy_(updated)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha[i] * real[i] + (1 - alpha[i]) * fake[i]`` for every sample i along dim 0.

    16-bit inputs are computed in float32 and rounded once, as the kernels do.

    Args:
        real, fake: tensors of equal shape [B, ...], dtype and device.
        alpha: shape [B], real's dtype.

    Returns:
        A tensor of real's shape and dtype.
    """
    a = alpha.reshape(alpha.shape[0], *([1] * (real.dim() - 1)))
    if real.dtype in _REDUCED:
        a32 = a.float()
        return (a32 * real.float() + (1 - a32) * fake.float()).to(real.dtype)
    return a * real + (1 - a) * fake


def _norm(g: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Per-sample L2 norms that stay exact for tiny gradients, as the kernels compute them.

    The plain norm squares the elements, which underflows below about sqrt(min normal) of g's dtype
    (1e-154 in float64) and gives norm 0 (and the zero-norm slope 0) for a row of tiny gradients.
    Where the plain sum of squares is below min / eps, the norm is taken again scaled by the row's
    largest element (a constant for autograd, so the gradient is still g / ||g||). No host sync.
    """
    n = torch.linalg.vector_norm(g, dim=dims)
    if g.numel() == 0:  # nothing to scale (amax refuses empty reductions)
        return n
    info = torch.finfo(g.dtype)
    small = n * n < info.tiny / info.eps
    m = g.detach().abs().amax(dim=dims, keepdim=True)
    m = torch.where((m > 0) & torch.isfinite(m), m, torch.ones_like(m))
    scaled = torch.linalg.vector_norm(g / m, dim=dims) * m.reshape(n.shape)
    return torch.where(small, scaled, n)


def grad_penalty(grads: torch.Tensor, center: float, one_sided: bool, reduction: str) -> torch.Tensor:
    """The gradient-penalty epilogue on per-sample gradients (the canonical WGAN-GP lines).

    With n_i = ||grads[i]||_2 over all non-batch dims (accumulated in float32 for 16-bit inputs, in
    float64 otherwise): p_i = n_i^2 when center == 0 (no square root: R1/R2), else (n_i - center)^2,
    or relu(n_i - center)^2 when one_sided. The gradient at n_i = 0 is 0 (torch's norm backward).

    Args:
        grads: [B, ...] per-sample gradients.
        center: the target norm (>= 0).
        one_sided: penalise only norms above center.
        reduction: "none" ([B]), "mean" or "sum" (0-d).

    Returns:
        The penalty in grads' dtype.
    """
    g = grads.to(accumulation_dtype(grads.dtype))
    dims = tuple(range(1, g.dim()))
    if center == 0:
        p = (g * g).sum(dims) if dims else g * g
    else:
        n = _norm(g, dims) if dims else g.abs()
        d = n - center
        p = torch.relu(d) ** 2 if one_sided else d**2
    if reduction == "mean":
        p = p.mean()
    elif reduction == "sum":
        p = p.sum()
    return p.to(grads.dtype)
