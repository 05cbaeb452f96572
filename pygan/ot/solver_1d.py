"""Exact 1-D optimal transport by sorting: ``wasserstein_1d`` (re-exported by ``pygan.ot``).

In one dimension with a ground cost |x - y|^p (p >= 1, convex in x - y) the optimal plan matches the
two distributions in sorted order, so the OT loss is the integral over q in [0, 1] of
|F_u^{-1}(q) - F_v^{-1}(q)|^p, with F^{-1} the quantile functions. Both are step functions whose
steps sit at the cumulative weights, so merging the two sets of breakpoints gives the integral exactly
as a finite sum. This is POT's ``ot.wasserstein_1d`` algorithm, written in torch ops: it runs on
any device and autograd differentiates it with respect to the values and the weights. On CPU, when
no gradient is tracked, the compiled twin (pygan.ot._native_1d: one sort per side and a linear merge
in float64, instead of a third sort and two binary searches) gives the same numbers several times
faster. Numpy arrays are accepted too (numpy in, numpy out). ``emd_1d`` / ``emd2_1d`` are POT's plan / cost forms of the
same sorted matching.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
import torch

from pygan import _validate
from pygan.ot import _native_1d

__all__ = ["wasserstein_1d", "emd_1d", "emd2_1d"]

PlanTuple = namedtuple("PlanTuple", ["data", "rows", "cols"])

_REDUCED = (torch.float16, torch.bfloat16)


def _check_values(name: str, t: object) -> torch.Tensor:
    _validate.tensor(t, name, floating=False)  # a dense tensor; the dtype message below says what to do
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
    # |x - y|^p is not a convex cost below p = 1 (the sorted matching is then not optimal).
    return _validate.number(p, "p", low=1)


def _from_numpy(values: dict) -> tuple[dict, bool]:
    """Numpy inputs as torch tensors (all of them numpy, or none: mixing is refused). An empty list
    means None (POT's "uniform"); other lists are accepted beside numpy values."""
    values = {k: None if isinstance(v, (list, tuple)) and len(v) == 0 else v for k, v in values.items()}
    kinds = {k: isinstance(v, np.ndarray) for k, v in values.items() if v is not None}
    if not any(kinds.values()):
        return values, False
    values = {k: np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    names = list(values)
    for k, v in values.items():
        if v is not None and not isinstance(v, np.ndarray):
            first = next(n for n in names if kinds.get(n))
            raise TypeError(f"{', '.join(names)}: expected all numpy arrays or all tensors (numpy in, numpy "
                            f"out), got a numpy array for {first} and {type(v).__name__} for {k}")
        if v is not None and v.dtype.kind != "f":
            raise TypeError(f"{k} must have a floating-point dtype, got numpy dtype {v.dtype}")
    return {k: None if v is None else torch.from_numpy(np.ascontiguousarray(v)) for k, v in values.items()}, True


def _sorted_cdf(x: torch.Tensor, w: torch.Tensor | None, require_sort: bool = True):
    # Sorted values [k, B] and the cumulative weights at them, normalised per column. Dividing the
    # cumulative sum by its own last entry (rather than the weights by their sum) makes the last
    # breakpoint exactly 1.0 for both distributions, so the merged breakpoints end together.
    k = x.shape[0]
    if w is None:
        w = torch.ones((), dtype=x.dtype, device=x.device).expand(x.shape)
    elif w.shape != x.shape:
        w = w.reshape(k, 1).expand(x.shape)
    if require_sort:
        xs, order = torch.sort(x, dim=0)
    else:  # the caller promises sorted values (POT's require_sort=False)
        xs, order = x, torch.arange(k, device=x.device).reshape(k, 1).expand(x.shape)
    cw = torch.cumsum(w.gather(0, order), dim=0)
    return xs, cw / cw[-1:], order


def _quantiles(qs: torch.Tensor, cw: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # F^{-1}(q) = the first sorted value whose cumulative weight is >= q (searchsorted, left side).
    # A q a rounding error above the last breakpoint is clipped to the last value.
    idx = torch.searchsorted(cw.detach().T.contiguous(), qs.detach().T.contiguous()).T
    idx = idx.clamp_(max=xs.shape[0] - 1)
    return xs.gather(0, idx), idx


def wasserstein_1d(
    u_values: torch.Tensor,
    v_values: torch.Tensor,
    u_weights: torch.Tensor | None = None,
    v_weights: torch.Tensor | None = None,
    p: float = 1,
    require_sort: bool = True,
    return_plans=False,
):
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
        require_sort: False when the values are already sorted along dim 0 (skips the sort).
        return_plans: True: also return the optimal plans, one sparse [n, m] matrix per batch
            column (scipy coo_matrix for numpy input, torch sparse COO otherwise); "coo_tuple": as
            ``PlanTuple(data, rows, cols)``. Masses are the normalised weights (total 1).

    Returns:
        A tensor of shape ``batch`` (0-d for 1-D values) holding the OT loss of each column, numpy
        for numpy input; with ``return_plans``, ``(loss, plans)``. A loss that overflows is inf.

    Raises:
        TypeError: an argument is not a tensor (weights: or None), has a non-floating dtype, or p is
            not a real number. The message names the argument.
        ValueError: empty or 0-d values, NaN/inf values or weights, negative weights, a zero total
            weight, mismatched shapes or devices, p < 1 or non-finite. The message names the argument.
    """
    if return_plans not in (False, True, "coo_tuple"):
        raise ValueError(f'return_plans: expected False, True or "coo_tuple", got {return_plans!r}')
    inputs, was_numpy = _from_numpy({"u_values": u_values, "v_values": v_values, "u_weights": u_weights,
                                     "v_weights": v_weights})
    u_values, v_values, u_weights, v_weights = inputs.values()
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

    if not return_plans and _native_1d.usable(u_values, v_values, u_weights, v_weights):
        # CPU, no gradient: the compiled sort-and-merge (float64 throughout, rounded once).
        cost = _native_1d.costs(flat(u_values, n), flat(v_values, m), flat(u_weights, n), flat(v_weights, m), p,
                                require_sort).reshape(batch).to(dtype)
        return cost.numpy()[()] if was_numpy else cost
    delta, qu, qv, rows, cols = _matching(flat(u_values, n), flat(v_values, m), flat(u_weights, n),
                                          flat(v_weights, m), require_sort)
    gap = (qu - qv).abs()
    # pow(gap, 1) would have the same value; abs alone keeps the p == 1 graph lean. A piece of
    # length 0 contributes 0 even where the gap is inf (0 * inf would be NaN).
    terms = delta * (gap if p == 1 else gap.pow(p))
    cost = torch.where(delta > 0, terms, torch.zeros_like(terms)).sum(dim=0).reshape(batch).to(dtype)
    cost = cost.detach().numpy()[()] if was_numpy else cost
    if not return_plans:
        return cost
    plans = [_plan(delta[:, k], rows[:, k], cols[:, k], (n, m), return_plans, was_numpy, dtype)
             for k in range(delta.shape[1])]
    return cost, plans


def _matching(x, y, wx, wy, require_sort=True):
    """The sorted (monotone) matching of x [n, B] and y [m, B]: per merged piece, its mass delta,
    the two quantile values and the original indices they come from (all [n + m, B])."""
    xs, cu, ou = _sorted_cdf(x, wx, require_sort)
    ys, cv, ov = _sorted_cdf(y, wy, require_sort)
    # The merged breakpoints split [0, 1] into pieces of length delta on which both quantile
    # functions are constant; each is evaluated at its piece's right end (quantiles are left-continuous).
    qs, _ = torch.sort(torch.cat((cu, cv), dim=0), dim=0)
    delta = torch.diff(qs, dim=0, prepend=torch.zeros_like(qs[:1]))
    qu, iu = _quantiles(qs, cu, xs)
    qv, iv = _quantiles(qs, cv, ys)
    return delta, qu, qv, ou.gather(0, iu), ov.gather(0, iv)


def _plan(data, rows, cols, shape, kind, was_numpy, dtype):
    data, rows, cols = data.detach(), rows.detach(), cols.detach()
    if kind == "coo_tuple":
        if was_numpy:
            return PlanTuple(data.numpy(), rows.numpy(), cols.numpy())
        return PlanTuple(data.to(dtype), rows, cols)
    if was_numpy:
        from scipy.sparse import coo_matrix

        return coo_matrix((data.numpy(), (rows.numpy(), cols.numpy())), shape=shape)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), data.to(dtype), shape).coalesce()


_METRICS_1D = {"sqeuclidean": 2.0, "euclidean": 1.0, "cityblock": 1.0}


def _emd_1d(x_a, x_b, a, b, metric, p, check_marginals, want_plan=True):
    inputs, was_numpy = _from_numpy({"x_a": x_a, "x_b": x_b, "a": a, "b": b})
    x_a, x_b, a, b = inputs.values()
    x_a = _check_values("x_a", x_a)
    x_b = _check_values("x_b", x_b)
    if x_a.dim() > 2 or (x_a.dim() == 2 and x_a.shape[1] != 1) or x_b.dim() > 2 or (x_b.dim() == 2 and x_b.shape[1] != 1):
        raise ValueError(f"x_a and x_b: expected 1-D samples ([n] or [n, 1]), got {list(x_a.shape)} and {list(x_b.shape)}")
    x, y = x_a.reshape(-1), x_b.reshape(-1)
    if x.device != y.device:
        raise ValueError(f"x_b is on {y.device} but x_a is on {x.device}")
    a = None if a is None or a.numel() == 0 else _check_weights("a", a, x, "x_a")
    b = None if b is None or b.numel() == 0 else _check_weights("b", b, y, "x_b")
    if metric == "minkowski":
        power = _check_p(p)
    elif metric in _METRICS_1D:
        power = _METRICS_1D[metric]
    else:
        raise ValueError(f"metric: expected 'sqeuclidean', 'minkowski', 'euclidean' or 'cityblock', got {metric!r}")
    mass = 1.0 if a is None else float(a.double().sum())
    if check_marginals and b is not None or check_marginals and a is not None:
        mb = 1.0 if b is None else float(b.double().sum())
        if abs(mass - mb) > 1e-6 * max(mass, mb):
            raise ValueError(f"a and b: total masses differ (sum(a) = {mass:.17g}, sum(b) = {mb:.17g}); "
                             "pass check_marginals=False to rescale b to sum(a)")
    dtype = x.dtype
    for t in (y, a, b):
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    if _native_1d.usable(x.detach()):  # CPU: the compiled sort-and-merge (not differentiable anyway)
        cost, delta, rows, cols = _native_1d.matching(x, y, a, b, power, want_plan)
        return delta * mass, rows, cols, (x.shape[0], y.shape[0]), cost * mass, was_numpy, dtype, x.device
    f64 = [None if t is None else t.detach().to(torch.float64).reshape(-1, 1) for t in (x, y, a, b)]
    delta, qu, qv, rows, cols = _matching(*f64)
    delta, rows, cols = delta[:, 0] * mass, rows[:, 0], cols[:, 0]
    cost = float((delta * (qu - qv)[:, 0].abs().pow(power)).where(delta > 0, torch.zeros_like(delta)).sum())
    return delta, rows, cols, (x.shape[0], y.shape[0]), cost, was_numpy, dtype, x.device


def emd_1d(x_a, x_b, a=None, b=None, metric="sqeuclidean", p=1.0, dense=True, log=False, check_marginals=True):
    """POT's ``ot.emd_1d``: the exact OT plan between 1-D samples (the sorted matching).

    Args:
        x_a: [n] (or [n, 1]) samples; x_b: [m] samples. numpy or torch.
        a, b: weights (None or empty: uniform); b is rescaled to sum(a).
        metric: "sqeuclidean" (|x - y|^2), "minkowski" (|x - y|^p), "euclidean" / "cityblock"
            (|x - y|). The plan is the same for all (any convex cost of x - y); the cost differs.
        p: the power for "minkowski".
        dense: a dense [n, m] plan (else sparse: scipy coo_matrix / torch sparse COO).
        log: also return ``{"cost": ...}``.
        check_marginals: refuse totals that differ beyond 1e-6 (relative).

    Returns:
        The plan (in the inputs' kind), and the log dict when ``log`` is true.
    """
    delta, rows, cols, shape, cost, was_numpy, dtype, device = _emd_1d(x_a, x_b, a, b, metric, p, check_marginals)
    plan = _dense(delta, rows, cols, shape) if dense else _plan(delta, rows, cols, shape, True, was_numpy, torch.float64)
    if dense and was_numpy:
        plan = plan.numpy()
    if was_numpy:
        plan = plan.astype(_np_dtype(dtype))
    else:
        plan = plan.to(device=device, dtype=dtype)
    if log:
        return plan, {"cost": _scalar(cost, was_numpy, dtype, device)}
    return plan


def _np_dtype(dtype: torch.dtype):
    return torch.empty((), dtype=dtype).numpy().dtype


def _scalar(cost: float, was_numpy: bool, dtype, device):
    """The cost in the inputs' kind and dtype (a numpy scalar for numpy inputs, as POT returns)."""
    if was_numpy:
        return np.asarray(cost, dtype=_np_dtype(dtype))[()]
    return torch.tensor(cost, dtype=dtype, device=device)


def emd2_1d(x_a, x_b, a=None, b=None, metric="sqeuclidean", p=1.0, dense=True, log=False):
    """POT's ``ot.emd2_1d``: the exact OT cost between 1-D samples (arguments as :func:`emd_1d`;
    ``dense`` only shapes ``log["G"]``). Not differentiable (use :func:`wasserstein_1d`).

    Returns:
        The cost (a numpy scalar for numpy input, else a 0-d tensor), and with ``log`` a dict
        holding the plan under ``"G"``.
    """
    delta, rows, cols, shape, cost, was_numpy, dtype, device = _emd_1d(x_a, x_b, a, b, metric, p, True, log)
    out = _scalar(cost, was_numpy, dtype, device)
    if not log:
        return out
    if dense:
        plan = _dense(delta, rows, cols, shape)
        plan = plan.numpy().astype(_np_dtype(dtype)) if was_numpy else plan.to(device=device, dtype=dtype)
    else:
        plan = _plan(delta, rows, cols, shape, True, was_numpy, torch.float64)
    return out, {"G": plan}


def _dense(delta, rows, cols, shape) -> torch.Tensor:
    """The plan's pieces summed into a dense float64 [n, m] tensor (no scipy needed)."""
    plan = torch.zeros(shape, dtype=torch.float64, device=delta.device)
    return plan.index_put_((rows, cols), delta.detach().to(torch.float64), accumulate=True)
