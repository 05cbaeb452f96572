"""Exact discrete optimal transport (Earth Mover's Distance), POT-compatible names.

The solver (csrc/emd/, see docs/ot.md) is a network simplex in float64 on CPU threads; inputs may
be numpy arrays or torch tensors on any device and in any floating dtype, and results come back in
the input's kind, device and dtype. Conventions (docs/ot.md):

- ``EMD(a, b, M) = min <P, M>`` over plans ``P >= 0`` with row sums ``a`` and column sums ``b``.
- ``a``/``b`` of None (or empty, as POT allows) mean uniform weights. Totals must agree to
  ``mass_tol`` (relative); within it, ``b`` is rescaled to ``sum(a)``. ``rescale=True`` accepts
  any positive totals and rescales ``b`` the same way.
- Duals ``u``, ``v`` satisfy ``u_i + v_j <= M_ij`` for *every* pair (zero-weight rows and columns
  included) with equality on the plan's support, and are centred like POT's: ``a.u == b.v``.
- Gradients (envelope theorem): ``d emd2 / dM = P``, ``/ da = u``, ``/ db = v``; for
  ``emd2_points``, ``d / dx_i = sum_j P_ij d c(x_i, y_j) / dx_i``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import NamedTuple

import numpy as np
import torch

from pygan import _build, reference
from pygan._ot1d import wasserstein_1d

__all__ = ["emd", "emd2", "emd2_points", "wasserstein_1d", "check_optimality", "Certificate",
           "IterationLimitWarning", "STATUS"]

# Result codes, in the order of the C++ core's Status enum (and of POT's first codes).
STATUS = ("optimal", "infeasible", "unbounded", "iteration_limit")
_METRICS = {"sqeuclidean": 0, "euclidean": 1}


class IterationLimitWarning(UserWarning):
    """The solver stopped at the user's ``max_iter`` before reaching the optimum."""


class Certificate(NamedTuple):
    """What :func:`check_optimality` measures (all zero for an exact optimum, rounding aside).

    Attributes:
        primal_residual: ``max(|P 1 - a|, |P^T 1 - b|, max(-P, 0))``: how far P is from a plan.
        dual_violation: ``max(0, max_ij u_i + v_j - M_ij)``: how far (u, v) is from dual feasible.
        duality_gap: ``|<P, M> - (a.u + b.v)|``: zero iff both are optimal (given the two above).
    """

    primal_residual: float
    dual_violation: float
    duality_gap: float


# ----------------------------------------------------------------------------------------------
# Input checks and conversion


def _tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    """(tensor, came_from_numpy); refuses non-floating dtypes with a TypeError naming ``name``."""
    if isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    elif isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floating-point numbers, got numpy dtype {x.dtype}")
        t, was_numpy = torch.from_numpy(np.ascontiguousarray(x)), True
    elif isinstance(x, (list, tuple)):
        t, was_numpy = torch.as_tensor(np.asarray(x, dtype=np.float64)), True
    else:
        raise TypeError(f"{name} must be a torch tensor or a numpy array, got {type(x).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {t.dtype}")
    return t, was_numpy


def _check_finite(t: torch.Tensor, name: str, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: {what} must be finite (found NaN or inf)")


def _weights(w, name: str, size: int, batch: int | None, side: str) -> torch.Tensor:
    """The user's weights as a float64 CPU tensor of shape [size] or [batch, size]; None or an empty
    1-D array (POT's convention) give uniform weights 1/size, of shape [size]."""
    t = None if w is None else _tensor(w, name)[0]
    if t is None or (t.numel() == 0 and t.dim() == 1):
        return torch.full((size,), 1.0 / size, dtype=torch.float64)
    shapes = [(size,)] + ([(batch, size)] if batch is not None else [])
    if tuple(t.shape) not in shapes:
        expected = " or ".join(str(list(s)) for s in shapes)
        raise ValueError(f"{name}: expected shape {expected} ({size} {side}), got {list(t.shape)}")
    t64 = t.detach().to("cpu", torch.float64)
    _check_finite(t64, name, "weights")
    if bool((t64 < 0).any()):
        raise ValueError(f"{name}: weights must be non-negative")
    return t64


def _balanced(a64: torch.Tensor, b64: torch.Tensor, mass_tol: float, rescale: bool) -> None:
    sa, sb = a64.sum(-1), b64.sum(-1)
    if bool((sa <= 0).any()) or bool((sb <= 0).any()):
        raise ValueError("a and b: each side's total weight must be positive")
    rel = (sa - sb).abs() / torch.maximum(sa, sb)
    if not rescale and bool((rel > mass_tol).any()):
        worst = int(rel.argmax())
        raise ValueError(
            f"a and b: total masses differ (sum(a) = {float(sa.reshape(-1)[worst]):.17g}, "
            f"sum(b) = {float(sb.reshape(-1)[worst]):.17g}, relative difference "
            f"{float(rel.reshape(-1)[worst]):.3g} > mass_tol = {mass_tol:g}); pass rescale=True to "
            "rescale b to sum(a), or fix the weights")


def _check_options(max_iter, mass_tol) -> int:
    if not isinstance(mass_tol, numbers.Real) or not math.isfinite(mass_tol) or mass_tol < 0:
        raise ValueError(f"mass_tol must be a finite non-negative number, got {mass_tol!r}")
    if max_iter is None:
        return -1
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be None (no limit) or a non-negative integer, got {max_iter!r}")
    return int(max_iter)


def _weight_tensors(a, b) -> list[torch.Tensor | None]:
    """a and b where they are non-empty torch tensors (they take part in autograd and in the result
    dtype), else None."""
    return [t if isinstance(t, torch.Tensor) and t.numel() > 0 else None for t in (a, b)]


def _result_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    dtype = None
    for t in tensors:
        if t is not None:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return dtype


# ----------------------------------------------------------------------------------------------
# Calling the solver


class _Solved(NamedTuple):
    cost: torch.Tensor        # [B] float64
    u: torch.Tensor           # [B, n]
    v: torch.Tensor           # [B, m]
    status: list[str]
    iterations: list[int]
    offsets: torch.Tensor     # [B + 1]: problem p's entries are [offsets[p], offsets[p + 1])
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor


def _pack_reference(results) -> _Solved:
    costs, us, vs, rows, cols, values, offsets = [], [], [], [], [], [], [0]
    for plan, u, v, cost in results:
        nz = plan.nonzero(as_tuple=True)
        rows.append(nz[0]), cols.append(nz[1]), values.append(plan[nz])
        offsets.append(offsets[-1] + len(nz[0]))
        costs.append(cost), us.append(u), vs.append(v)
    return _Solved(torch.tensor(costs, dtype=torch.float64), torch.stack(us), torch.stack(vs),
                   ["optimal"] * len(costs), [0] * len(costs), torch.tensor(offsets),
                   torch.cat(rows), torch.cat(cols), torch.cat(values))


def _finish(raw) -> _Solved:
    cost, u, v, status, iterations, _rounds, offsets, rows, cols, values = raw
    names = [STATUS[int(s)] for s in status]
    for p, name in enumerate(names):
        where = f" (problem {p})" if len(names) > 1 else ""
        if name == "iteration_limit":
            warnings.warn(f"pygan.ot: max_iter reached after {int(iterations[p])} pivots{where}; the "
                          "result is not optimal (log['status'] == 'iteration_limit')",
                          IterationLimitWarning, stacklevel=4)
        elif name != "optimal":
            warnings.warn(f"pygan.ot: the solver ended with status {name!r}{where}", RuntimeWarning,
                          stacklevel=4)
    return _Solved(cost, u, v, names, [int(i) for i in iterations], offsets, rows, cols, values)


def _solve_dense(a64: torch.Tensor, b64: torch.Tensor, M64: torch.Tensor, max_iter: int) -> _Solved:
    """a64 [B, n], b64 [B, m], M64 [B, n, m]: float64 contiguous CPU tensors."""
    if _build.load():
        return _finish(_build.module().emd_dense(a64, b64, M64, max_iter))
    return _pack_reference([reference.emd(a64[p], b64[p] * (a64[p].sum() / b64[p].sum()), M64[p])
                            for p in range(M64.shape[0])])


def _dense_plan(s: _Solved, p: int, n: int, m: int) -> torch.Tensor:
    lo, hi = int(s.offsets[p]), int(s.offsets[p + 1])
    plan = torch.zeros(n, m, dtype=torch.float64)
    plan[s.rows[lo:hi], s.cols[lo:hi]] = s.values[lo:hi]
    return plan


def _sparse_plan(s: _Solved, p: int, n: int, m: int, dtype, device) -> torch.Tensor:
    lo, hi = int(s.offsets[p]), int(s.offsets[p + 1])
    index = torch.stack([s.rows[lo:hi], s.cols[lo:hi]])
    plan = torch.sparse_coo_tensor(index, s.values[lo:hi], (n, m), is_coalesced=True, check_invariants=False)
    return plan.to(device=device, dtype=dtype)


def _prepare_dense(a, b, M, batched: bool, mass_tol, rescale):
    Mt, was_numpy = _tensor(M, "M")
    if Mt.dim() not in ((2, 3) if batched else (2,)):
        raise ValueError(f"M: expected a [n, m]{' or [B, n, m]' if batched else ''} cost matrix, "
                         f"got shape {list(Mt.shape)}")
    if Mt.numel() == 0:
        raise ValueError(f"M: empty cost matrix (shape {list(Mt.shape)}); n, m (and B) must be >= 1")
    M64 = Mt.detach().to("cpu", torch.float64)
    _check_finite(M64, "M", "costs")
    M64 = M64.reshape(-1, *Mt.shape[-2:]).contiguous()
    B, n, m = M64.shape
    batch = B if Mt.dim() == 3 else None
    a_full = _weights(a, "a", n, batch, "rows of M").expand(B, n).contiguous()
    b_full = _weights(b, "b", m, batch, "columns of M").expand(B, m).contiguous()
    _balanced(a_full, b_full, mass_tol, rescale)
    return Mt, was_numpy, M64, a_full, b_full


class _Envelope(torch.autograd.Function):
    """The optimal cost as a function of (a, b, M) with the solution fixed: the envelope theorem
    gives d/da = u, d/db = v, d/dM = P (for M and points)."""

    @staticmethod
    def forward(ctx, a, b, M, cost, u, v, plan_fn):
        ctx.save_for_backward(u, v)
        ctx.plan_fn = plan_fn
        ctx.shapes = tuple(None if t is None else (t.shape, t.dtype, t.device) for t in (a, b, M))
        return cost.clone()

    @staticmethod
    def backward(ctx, grad):
        u, v = ctx.saved_tensors
        grads = []
        for k, dual in enumerate((u, v)):
            spec = ctx.shapes[k]
            if spec is None or not ctx.needs_input_grad[k]:
                grads.append(None)
                continue
            shape, dtype, device = spec
            g = grad.to(torch.float64).cpu().reshape(-1, 1) * dual
            grads.append(g.reshape(shape).to(device, dtype) if len(shape) == g.dim() else
                         g.sum(0).to(device, dtype))
        grad_M = None
        if ctx.needs_input_grad[2]:
            shape, dtype, device = ctx.shapes[2]
            plan = ctx.plan_fn()  # [B, n, m] float64, built only when M needs a gradient
            grad_M = (grad.to(torch.float64).cpu().reshape(-1, 1, 1) * plan).reshape(shape).to(device, dtype)
        return grads[0], grads[1], grad_M, None, None, None, None


# ----------------------------------------------------------------------------------------------
# Public API


def emd(a, b, M, log: bool = False, *, sparse: bool = False, max_iter: int | None = None,
        mass_tol: float = 1e-6, rescale: bool = False):
    """The optimal transport plan between weights ``a`` and ``b`` for costs ``M`` (exact).

    Args:
        a: [n] non-negative weights, or None / empty for uniform ``1/n``.
        b: [m] weights, or None / empty for uniform ``1/m``.
        M: [n, m] finite costs (any sign).
        log: also return a dict with ``cost``, ``u``, ``v`` (centred duals, feasible for every pair),
            ``status`` (``'optimal'``, ``'infeasible'``, ``'unbounded'``, ``'iteration_limit'``),
            ``result_code`` (its index in :data:`STATUS`), ``iterations`` (pivots), ``warning``.
        sparse: return a coalesced ``torch.sparse_coo_tensor`` with at most n + m - 1 stored entries
            instead of the dense [n, m] plan.
        max_iter: a limit on simplex pivots (None: no limit). Hitting it issues an
            :class:`IterationLimitWarning`; the plan is then not optimal and may miss the marginals.
        mass_tol: largest accepted relative difference between ``sum(a)`` and ``sum(b)``.
        rescale: accept any positive totals; ``b`` is rescaled to ``sum(a)``.

    Returns:
        The plan (numpy for numpy ``M``, else a tensor on M's device in the promoted dtype of the
        inputs), and the log dict when ``log`` is true.
    """
    max_iter = _check_options(max_iter, mass_tol)
    Mt, was_numpy, M64, a64, b64 = _prepare_dense(a, b, M, False, mass_tol, rescale)
    solved = _solve_dense(a64, b64, M64, max_iter)
    n, m = M64.shape[1:]
    dtype = _result_dtype(Mt, *(t for t in (a, b) if isinstance(t, torch.Tensor)))
    if sparse:
        plan = _sparse_plan(solved, 0, n, m, dtype, Mt.device)
    else:
        plan = _dense_plan(solved, 0, n, m)
        plan = plan.numpy().astype(Mt.numpy().dtype if was_numpy else np.float64) if was_numpy \
            else plan.to(Mt.device, dtype)
    if not log:
        return plan
    return plan, _log(solved, 0, was_numpy, Mt.device, dtype)


def _log(solved: _Solved, p: int | None, was_numpy: bool, device, dtype) -> dict:
    def out(t):
        if was_numpy:
            return t.numpy() if t.dim() else float(t)
        return t.to(device, dtype)

    pick = (lambda t: t[p]) if p is not None else (lambda t: t)
    status = solved.status[p] if p is not None else solved.status
    codes = STATUS.index(status) if p is not None else [STATUS.index(s) for s in status]
    warning = None
    if p is not None and status != "optimal":
        warning = f"status {status!r} after {solved.iterations[p]} pivots"
    return {"cost": out(pick(solved.cost)), "u": out(pick(solved.u)), "v": out(pick(solved.v)),
            "status": status, "result_code": codes,
            "iterations": solved.iterations[p] if p is not None else solved.iterations,
            "warning": warning}


def emd2(a, b, M, log: bool = False, *, max_iter: int | None = None, mass_tol: float = 1e-6,
         rescale: bool = False):
    """The optimal transport cost ``<P*, M>`` (exact); batched and differentiable.

    Args:
        a: [n] or, with a batched M, [B, n] weights; None / empty for uniform.
        b: [m] or [B, m] weights; None / empty for uniform.
        M: [n, m] costs, or [B, n, m] for B independent problems solved in parallel on CPU threads.
        log: also return the log dict of :func:`emd` (batched: ``u`` [B, n], ``v`` [B, m],
            ``status``/``result_code``/``iterations`` as lists).
        max_iter, mass_tol, rescale: as in :func:`emd`.

    Returns:
        The cost: 0-d (or [B]); a float for numpy input. For torch inputs it is differentiable:
        the gradient is P with respect to M, u with respect to a and v with respect to b.
    """
    max_iter = _check_options(max_iter, mass_tol)
    Mt, was_numpy, M64, a64, b64 = _prepare_dense(a, b, M, True, mass_tol, rescale)
    solved = _solve_dense(a64, b64, M64, max_iter)
    B, n, m = M64.shape
    single = Mt.dim() == 2
    tensors = _weight_tensors(a, b)
    dtype = _result_dtype(Mt, *tensors)
    cost = solved.cost[0] if single else solved.cost
    if was_numpy:
        result = float(cost) if single else cost.numpy()
    else:
        def plan_fn():
            return torch.stack([_dense_plan(solved, p, n, m) for p in range(B)])

        u, v = solved.u, solved.v
        result = _Envelope.apply(tensors[0], tensors[1], Mt, cost.to(Mt.device, dtype), u, v, plan_fn)
    if not log:
        return result
    return result, _log(solved, 0 if single else None, was_numpy, Mt.device, dtype)


def _pair_costs(x: torch.Tensor, y: torch.Tensor, metric: int, p: float) -> torch.Tensor:
    """c(x_k, y_k) row by row, differentiable, with a zero (sub)gradient where x_k == y_k."""
    sq = (x - y).pow(2).sum(-1)
    if metric == 0:
        return sq
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    power = 0.5 if metric == 1 else 0.5 * p
    return torch.where(positive, safe.pow(power), torch.zeros_like(sq))


def emd2_points(x, y, a=None, b=None, metric="euclidean", *, log: bool = False,
                max_iter: int | None = None, mass_tol: float = 1e-6, rescale: bool = False):
    """The exact optimal transport cost between two point clouds, without an n x m cost matrix.

    Costs are computed on the fly from the points (the solver keeps only a sparse set of arcs and
    prices all pairs in passes), so 20000 x 20000 clouds fit in well under 2 GB.

    Args:
        x: [n, d] (or [n]) points; y: [m, d] (or [m]) points with the same d.
        a, b: weights as in :func:`emd` (None: uniform).
        metric: ``"euclidean"`` (cost ``||x - y||``, the W1 of the two clouds), ``"sqeuclidean"``
            (``||x - y||^2``, W2 squared) or a number ``p >= 1`` (``||x - y||^p``, W_p to the p).
        log: also return the :func:`emd` log dict plus ``plan`` (a sparse COO [n, m] tensor).
        max_iter, mass_tol, rescale: as in :func:`emd`.

    Returns:
        The cost (0-d tensor, or a float for numpy input), differentiable with respect to x and y
        (through the fixed optimal plan) and to a and b (the duals).
    """
    max_iter = _check_options(max_iter, mass_tol)
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"metric must be 'euclidean', 'sqeuclidean' or a number p >= 1, got {metric!r}")
        code, p = _METRICS[metric], 2.0 if metric == "sqeuclidean" else 1.0
    elif isinstance(metric, numbers.Real) and not isinstance(metric, bool):
        p = float(metric)
        if not math.isfinite(p) or p < 1:
            raise ValueError(f"metric: a power p must be finite and >= 1, got {metric!r}")
        code = 1 if p == 1 else 0 if p == 2 else 2
    else:
        raise TypeError(f"metric must be a string or a number, got {type(metric).__name__}")
    xt, x_numpy = _tensor(x, "x")
    yt, y_numpy = _tensor(y, "y")
    xt = xt.unsqueeze(-1) if xt.dim() == 1 else xt
    yt = yt.unsqueeze(-1) if yt.dim() == 1 else yt
    if xt.dim() != 2 or yt.dim() != 2:
        raise ValueError(f"x and y: expected [n, d] and [m, d] points, got {list(xt.shape)} and {list(yt.shape)}")
    if xt.shape[1] != yt.shape[1]:
        raise ValueError(f"x and y: dimensions differ ({xt.shape[1]} and {yt.shape[1]})")
    if xt.numel() == 0 or yt.numel() == 0:
        raise ValueError(f"x and y: need at least one point of dimension >= 1 each, got {list(xt.shape)} and {list(yt.shape)}")
    if xt.device != yt.device:
        raise ValueError(f"x and y: must be on the same device, got {xt.device} and {yt.device}")
    n, m = xt.shape[0], yt.shape[0]
    x64 = xt.detach().to("cpu", torch.float64).contiguous()
    y64 = yt.detach().to("cpu", torch.float64).contiguous()
    _check_finite(x64, "x", "points")
    _check_finite(y64, "y", "points")
    a_full = _weights(a, "a", n, None, "points in x").contiguous()
    b_full = _weights(b, "b", m, None, "points in y").contiguous()
    _balanced(a_full, b_full, mass_tol, rescale)
    if _build.load():
        # The core rescales b to sum(a) itself (emd.h), as it does for emd_dense.
        solved = _finish(_build.module().emd_points(a_full, b_full, x64, y64, code, p, max_iter))
    else:
        M64 = _pair_costs(x64[:, None, :], y64[None, :, :], code, p)
        solved = _solve_dense(a_full[None], b_full[None], M64[None].contiguous(), max_iter)
    tensors = _weight_tensors(a, b)
    dtype = _result_dtype(xt, yt, *tensors)
    rows, cols, values = solved.rows, solved.cols, solved.values
    if x_numpy and y_numpy:
        result = float(solved.cost[0])
    else:
        device = xt.device
        idx_r, idx_c = rows.to(device), cols.to(device)
        # Only the plan's entries (at most n + m - 1 pairs) are recomputed, so autograd sees the
        # cost as a function of the points; its value is the solver's cost up to rounding.
        pair = _pair_costs(xt[idx_r].to(dtype), yt[idx_c].to(dtype), code, p)
        weighted = (values.to(device, dtype) * pair).sum()
        result = weighted + _Envelope.apply(tensors[0], tensors[1], None,
                                            torch.zeros((), dtype=dtype, device=device),
                                            solved.u, solved.v, None)
    if not log:
        return result
    out_log = _log(solved, 0, x_numpy and y_numpy, xt.device, dtype)
    out_log["plan"] = _sparse_plan(solved, 0, n, m, dtype, xt.device)
    return result, out_log


def check_optimality(a, b, M, plan, u, v) -> Certificate:
    """The optimality certificate of a transport plan and duals (docs/ot.md).

    P is optimal and (u, v) dual optimal iff all three numbers are zero: P is a plan, (u, v) is dual
    feasible, and the primal and dual objectives agree (complementary slackness).

    Args:
        a, b: weights (None: uniform), M: [n, m] costs, plan: [n, m] dense or sparse COO,
        u: [n], v: [m]. numpy arrays or torch tensors (any device); computed in float64.

    Returns:
        A :class:`Certificate` of Python floats.
    """
    def f64(t, name):
        return _tensor(t, name)[0].detach().to("cpu", torch.float64)

    M64 = f64(M, "M")
    if M64.dim() != 2:
        raise ValueError(f"M: expected [n, m], got {list(M64.shape)}")
    n, m = M64.shape
    P = _tensor(plan, "plan")[0].detach().to("cpu", torch.float64)
    P = P.to_dense() if P.is_sparse else P
    u64, v64 = f64(u, "u").reshape(-1), f64(v, "v").reshape(-1)
    if P.shape != (n, m) or u64.shape != (n,) or v64.shape != (m,):
        raise ValueError(f"plan, u, v: expected shapes [{n}, {m}], [{n}], [{m}]; got "
                         f"{list(P.shape)}, {list(u64.shape)}, {list(v64.shape)}")
    a64 = _weights(a, "a", n, None, "rows of M")
    b64 = _weights(b, "b", m, None, "columns of M")
    primal = max(float((P.sum(1) - a64).abs().max()), float((P.sum(0) - b64).abs().max()),
                 float((-P).clamp_min(0).max()))
    dual = max(0.0, float((u64[:, None] + v64[None, :] - M64).max()))
    gap = abs(float((P * M64).sum()) - float(a64 @ u64 + b64 @ v64))
    return Certificate(primal, dual, gap)
