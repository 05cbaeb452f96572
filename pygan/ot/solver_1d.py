"""Exact 1-D optimal transport by sorting: ``wasserstein_1d`` (re-exported by ``pygan.ot``).

In one dimension with a ground cost |x - y|^p (p >= 1, convex in x - y) the optimal plan matches the
two distributions in sorted order, so the OT loss is the integral over q in [0, 1] of
|F_u^{-1}(q) - F_v^{-1}(q)|^p, with F^{-1} the quantile functions. Both are step functions whose
steps sit at the cumulative weights, so merging the two sets of breakpoints gives the integral exactly
as a finite sum. This is POT's ``ot.wasserstein_1d`` algorithm, written in torch ops only: it runs on
any device and autograd differentiates it with respect to the values and the weights.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["wasserstein_1d"]

_REDUCED = (torch.float16, torch.bfloat16)


def _check_values(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        # Rejected rather than converted: POT's uniform weights would take the integer dtype (1/n -> 0).
        raise TypeError(f"{name} must have a floating-point dtype, got {t.dtype} (convert with .double())")
    if t.dim() == 0:
        raise ValueError(f"{name} must have at least 1 dimension ([n] or [n, *batch]), got a 0-d tensor")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one point along dim 0, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _check_weights(name: str, w: object, values: torch.Tensor, values_name: str) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {w.dtype} (convert with .double())")
    if w.device != values.device:
        raise ValueError(f"{name} is on {w.device} but {values_name} is on {values.device}")
    if w.shape != values.shape and not (w.dim() == 1 and w.shape[0] == values.shape[0]):
        raise ValueError(
            f"{name} must have the shape of {values_name} {tuple(values.shape)} or be 1-D of length "
            f"{values.shape[0]} (shared by every batch column), got {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool((w < 0).any()):
        raise ValueError(f"{name} contains negative weights")
    if w.numel() > 0 and not bool((w.sum(0) > 0).all()):
        raise ValueError(f"{name} has zero total weight (in at least one batch column)")
    return w


def _check_p(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    p = float(p)
    if not math.isfinite(p) or p < 1:
        raise ValueError(f"p must be finite and >= 1 (|x - y|^p is not a convex cost below 1), got {p}")
    return p


def _sorted_cdf(x: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    # Sorted values [k, B] and the cumulative weights at them, normalised per column. Dividing the
    # cumulative sum by its own last entry (rather than the weights by their sum) makes the last
    # breakpoint exactly 1.0 for both distributions, so the merged breakpoints end together.
    k = x.shape[0]
    if w is None:
        w = torch.ones((), dtype=x.dtype, device=x.device).expand(x.shape)
    elif w.shape != x.shape:
        w = w.reshape(k, 1).expand(x.shape)
    xs, order = torch.sort(x, dim=0)
    cw = torch.cumsum(w.gather(0, order), dim=0)
    return xs, cw / cw[-1:]


def _quantiles(qs: torch.Tensor, cw: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    # F^{-1}(q) = the first sorted value whose cumulative weight is >= q (searchsorted, left side).
    # A q a rounding error above the last breakpoint is clipped to the last value.
    idx = torch.searchsorted(cw.detach().T.contiguous(), qs.detach().T.contiguous()).T
    return xs.gather(0, idx.clamp_(max=xs.shape[0] - 1))


def wasserstein_1d(
    u_values: torch.Tensor,
    v_values: torch.Tensor,
    u_weights: torch.Tensor | None = None,
    v_weights: torch.Tensor | None = None,
    p: float = 1,
) -> torch.Tensor:
    """Exact OT loss between (batches of) 1-D empirical distributions, with ground cost |x - y|^p.

    Returns W_p^p, the p-th power of the p-Wasserstein distance (no p-th root), like POT's
    ``ot.wasserstein_1d``: the integral over q in [0, 1] of |F_u^{-1}(q) - F_v^{-1}(q)|^p, computed
    exactly from the sorted values and the merged cumulative weights. Differentiable (autograd) with
    respect to the values and the weights, on any device.

    Conventions:
        - Batched over trailing dimensions: column k of u_values is one distribution, compared with
          column k of v_values.
        - Weights are normalised to total 1 per column (so only their ratios matter and the gradient
          with respect to the weights has no component along the weights themselves). POT does not
          normalise: with weights of equal totals s it returns s times this value, and it is
          undefined for unequal totals; for weights summing to 1 the two agree.
        - Dtype: the result has the promoted dtype of the inputs (float16/bfloat16 are computed in
          float32 and rounded once). Integer, bool and complex inputs are rejected, not converted.

    Args:
        u_values: [n] or [n, *batch] floating points of the first distribution(s), n >= 1, finite.
        v_values: [m] or [m, *batch] points of the second, m >= 1, the same batch shape and device.
        u_weights: nonnegative finite weights shaped like u_values, or [n] (shared by every batch
            column), or None for uniform 1/n. Each column needs a positive total.
        v_weights: likewise for v_values.
        p: the exponent of the ground cost, a finite real >= 1.

    Returns:
        A tensor of shape ``batch`` (0-d for 1-D values) holding the OT loss of each column.

    Raises:
        TypeError: an argument is not a tensor (weights: or None), has a non-floating dtype, or p is
            not a real number. The message names the argument.
        ValueError: empty or 0-d values, NaN/inf values or weights, negative weights, a zero total
            weight, mismatched shapes or devices, p < 1 or non-finite. The message names the argument.
    """
    u_values = _check_values("u_values", u_values)
    v_values = _check_values("v_values", v_values)
    if v_values.device != u_values.device:
        raise ValueError(f"v_values is on {v_values.device} but u_values is on {u_values.device}")
    batch = u_values.shape[1:]
    if v_values.shape[1:] != batch:
        raise ValueError(
            f"u_values and v_values must have the same batch (trailing) shape, got "
            f"{tuple(u_values.shape)} and {tuple(v_values.shape)}"
        )
    if u_weights is not None:
        u_weights = _check_weights("u_weights", u_weights, u_values, "u_values")
    if v_weights is not None:
        v_weights = _check_weights("v_weights", v_weights, v_values, "v_values")
    p = _check_p(p)

    dtype = u_values.dtype
    for t in (v_values, u_weights, v_weights):
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    work = torch.float32 if dtype in _REDUCED else dtype

    n, m, cols = u_values.shape[0], v_values.shape[0], math.prod(batch)

    def flat(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
        # [k, *batch] -> [k, cols] (explicit cols: reshape(k, -1) is ambiguous when cols == 0).
        if t is None:
            return None
        t = t.to(work)
        return t if t.dim() == 1 and batch else t.reshape(k, cols)

    xs, cu = _sorted_cdf(flat(u_values, n), flat(u_weights, n))
    ys, cv = _sorted_cdf(flat(v_values, m), flat(v_weights, m))

    # The merged breakpoints split [0, 1] into pieces of length delta on which both quantile
    # functions are constant; each is evaluated at its piece's right end (quantiles are left-continuous).
    qs, _ = torch.sort(torch.cat((cu, cv), dim=0), dim=0)
    delta = torch.diff(qs, dim=0, prepend=torch.zeros_like(qs[:1]))
    gap = (_quantiles(qs, cu, xs) - _quantiles(qs, cv, ys)).abs()
    # pow(gap, 1) would have the same value; abs alone keeps the p == 1 graph lean.
    cost = (delta * (gap if p == 1 else gap.pow(p))).sum(dim=0)
    return cost.reshape(batch).to(dtype)
