"""The dense entry points: ``emd`` (the plan) and ``emd2`` (the cost, batched, differentiable)."""

from __future__ import annotations

import numpy as np
import torch

from pygan.ot._convert import (_balanced, _check_finite, _check_options, _result_dtype, _tensor,
                               _weight_tensors, _weights)
from pygan.ot._solve import _dense_plan, _Envelope, _log, _solve_dense, _sparse_plan


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

