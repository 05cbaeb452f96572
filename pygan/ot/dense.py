"""The dense (and sparse-M) entry points with POT's signatures: ``emd`` (the plan) and ``emd2`` (the
cost; batched, multi-histogram, differentiable)."""

from __future__ import annotations

import numpy as np
import torch

from pygan import _build
from pygan.ot import _sparse
from pygan.ot._convert import (_balanced, _check_finite, _check_threads, _cpu64, _inputs_ok, _iter_limit,
                               _result_dtype, _tensor, _warm_start, _weight_tensors, _weights)
from pygan.ot._solve import _dense_plan, _dense_plan_numpy, _Envelope, _log, _solve_dense, _solve_sparse, _sparse_plan


def _prepare_dense(a, b, M, batched: bool, mass_tol, rescale, multi: bool = False):
    """The checked float64 CPU problem: (Mt, was_numpy, M64, a64, b64, B). M64 keeps M's shape
    ([n, m] or [B, n, m]); a64 is [n] (shared by the B problems) or [B, n], b64 [m] or [B, m], as
    the core takes them; B is the number of problems."""
    Mt, was_numpy = _tensor(M, "M")
    if Mt.dim() not in ((2, 3) if batched else (2,)):
        raise ValueError(f"M: expected a [n, m]{' or [B, n, m]' if batched else ''} cost matrix, "
                         f"got shape {list(Mt.shape)}")
    if Mt.numel() == 0:
        raise ValueError(f"M: empty cost matrix (shape {list(Mt.shape)}); n, m (and B) must be >= 1")
    M64 = _cpu64(Mt).contiguous()
    n, m = M64.shape[-2:]
    B = batch = M64.shape[0] if M64.dim() == 3 else None
    # Shapes first; the values (finite, non-negative, balanced) in one compiled pass, and only when
    # it finds a fault the torch checks below, which name it (in the order they always had).
    for check in (False, True):
        if check:
            _check_finite(M64, "M", "costs")
        if multi:  # POT's multi-histogram b [m, nb]: nb problems sharing M (passed once, [n, m])
            bt = _tensor(b, "b")[0]
            if bt.shape[0] != m:
                raise ValueError(f"b: a multi-histogram b must have shape [{m}, nb] (columns of M), got {list(bt.shape)}")
            if bt.shape[1] == 0:
                raise ValueError(f"b: a multi-histogram b needs at least one histogram, got shape {list(bt.shape)}")
            b64 = _weights(bt.T, "b", m, bt.shape[1], "columns of M", check).contiguous()
            B = b64.shape[0]
            a64 = _weights(a, "a", n, None, "rows of M", check).contiguous()
        else:
            a64 = _weights(a, "a", n, batch, "rows of M", check).contiguous()
            b64 = _weights(b, "b", m, batch, "columns of M", check).contiguous()
        if check:  # the torch checks compare the B problems' totals side by side
            _balanced(a64.expand(B or 1, n), b64.expand(B or 1, m), mass_tol, rescale)
        elif _inputs_ok(a64, b64, M64, mass_tol, rescale):
            break
    return Mt, was_numpy, M64, a64, b64, B or 1


def _plain_single(a, b, M):
    """(a, b, M, was_numpy) as float64 CPU tensors when the call is one plain dense problem (all
    three numpy float64 arrays, or all three float64 CPU torch tensors that need no gradient, with
    a [n], b [m], M [n, m], n, m >= 1), else None. Exact types only: subclasses, other dtypes,
    devices, layouts and shapes take the general path."""
    t = type(M)
    if t is np.ndarray:
        if not (type(a) is np.ndarray and type(b) is np.ndarray and M.dtype == np.float64
                and a.dtype == np.float64 and b.dtype == np.float64):
            return None
        if M.ndim != 2 or a.ndim != 1 or b.ndim != 1:
            return None
        a, b, M = (torch.from_numpy(np.ascontiguousarray(x)) for x in (a, b, M))
        was_numpy = True
    elif t is torch.Tensor:
        if not (type(a) is torch.Tensor and type(b) is torch.Tensor):
            return None
        for x in (a, b, M):
            if x.dtype is not torch.float64 or not x.is_cpu or x.layout is not torch.strided or x.requires_grad:
                return None
        if M.dim() != 2 or a.dim() != 1 or b.dim() != 1:
            return None
        a, b, M = a.contiguous(), b.contiguous(), M.contiguous()
        was_numpy = False
    else:
        return None
    n, m = M.shape
    if n == 0 or m == 0 or a.shape[0] != n or b.shape[0] != m:
        return None
    return a, b, M, was_numpy


def _emd2_plain(a, b, M, threads, mass_tol, rescale):
    """emd2's cost for one plain dense problem (see :func:`_plain_single`) in one call of the core
    that packs nothing but the cost, or None where the general path must run: other inputs, no
    extension, inputs that fail the checks (the general path words the error) or a status other
    than optimal (it warns; the problem is solved again there). About 40 us less than the general
    path for a 64 x 64 problem, a fifth of the call."""
    plain = _plain_single(a, b, M)
    if plain is None or not _build.load():
        return None
    a64, b64, M64, was_numpy = plain
    cost, status = _build.module().emd2_single(a64, b64, M64, float(mass_tol), bool(rescale), threads or 0)
    if status != 1:  # optimal (STATUS[1])
        return None
    return np.float64(cost) if was_numpy else torch.tensor(cost, dtype=torch.float64)


def _sparse_solve(a, b, M, max_iter, mass_tol, rescale):
    rows, cols, costs, (n, m), kind = _sparse.arcs(M)
    a64 = _weights(a, "a", n, None, "rows of M").contiguous()
    b64 = _weights(b, "b", m, None, "columns of M").contiguous()
    _balanced(a64, b64, mass_tol, rescale)
    return _solve_sparse(a64, b64, rows, cols, costs, max_iter), (n, m), kind, (rows, cols)


def _flows_on_arcs(solved, arcs, m: int) -> torch.Tensor:
    """The plan as a coalesced sparse tensor on exactly M's listed arcs (zero flow included): the
    gradient of emd2 with respect to a sparse M."""
    rows, cols = arcs
    keys = rows * m + cols
    order = torch.argsort(keys)
    flows = torch.zeros(keys.numel(), dtype=torch.float64)
    if solved.values.numel():
        where = torch.searchsorted(keys[order], solved.rows * m + solved.cols)
        flows[order[where]] = solved.values
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), flows, (solved.u.shape[1], m)).coalesce()


def emd(a, b, M, numItermax=None, log: bool = False, center_dual: bool = True, numThreads="max",
        check_marginals: bool = True, potentials_init=None, *, sparse: bool = False,
        max_iter: int | None = None, mass_tol: float = 1e-6, rescale: bool = False):
    """The optimal transport plan between weights ``a`` and ``b`` for costs ``M`` (exact).

    POT's ``ot.emd`` signature (positional order included); pygan's own options are keyword-only.

    Args:
        a: [n] non-negative weights, or None / empty for uniform ``1/n``.
        b: [m] weights, or None / empty for uniform ``1/m``.
        M: [n, m] finite costs (any sign), dense; or a scipy.sparse matrix / torch sparse tensor
            whose listed entries are the only arcs that exist (status ``"infeasible"`` if they
            cannot carry the masses); the plan then comes back sparse, in M's kind.
        numItermax: POT's pivot limit (None, the default: no limit; POT's default is 100000).
        log: also return a dict with ``cost``, ``u``, ``v`` (centred duals, feasible for every pair),
            ``warning`` (None when optimal), ``result_code`` (POT's: 0 infeasible, 1 optimal,
            2 unbounded, 3 iteration limit; pygan's 4: imprecise), ``status`` (its name, see
            :data:`STATUS`), ``iterations`` (pivots) and ``certificate`` (a :class:`Certificate`
            measured by the core).
        center_dual: accepted for POT; the duals are always centred (``a.u == b.v``).
        numThreads: CPU threads for the solve, a positive int or ``"max"`` (torch's setting).
        check_marginals: False accepts any positive totals (b rescaled to sum(a), as POT does).
        potentials_init: ``(u, v)`` of shapes [n], [m]: a warm start, e.g. the duals of the
            previous solve of a slowly changing problem (they choose the first arcs).
        sparse: return a coalesced ``torch.sparse_coo_tensor`` with at most n + m - 1 stored entries
            instead of the dense [n, m] plan.
        max_iter: pygan's name for ``numItermax``. Hitting the limit issues an
            :class:`IterationLimitWarning`; the plan then meets the marginals but is not optimal.
        mass_tol: largest accepted relative difference between ``sum(a)`` and ``sum(b)``.
        rescale: accept any positive totals; ``b`` is rescaled to ``sum(a)``.

    Returns:
        The plan (numpy for numpy ``M``, else a tensor on M's device in the promoted dtype of the
        inputs), and the log dict when ``log`` is true.
    """
    max_iter = _iter_limit(numItermax, max_iter, mass_tol)
    threads = _check_threads(numThreads)
    rescale = rescale or not check_marginals
    if _sparse.is_sparse(M):
        solved, (n, m), kind, _ = _sparse_solve(a, b, M, max_iter, mass_tol, rescale)
        was_numpy = kind == "scipy"
        device = M.device if kind == "torch" else torch.device("cpu")
        dtype = torch.float64 if was_numpy else _result_dtype(M, *(t for t in (a, b) if isinstance(t, torch.Tensor)))
        plan = _sparse.plan(solved.rows, solved.cols, solved.values, (n, m), kind, dtype, device)
        return (plan, _log(solved, 0, was_numpy, device, dtype)) if log else plan
    Mt, was_numpy, M64, a64, b64, _ = _prepare_dense(a, b, M, False, mass_tol, rescale)
    n, m = M64.shape
    solved = _solve_dense(a64, b64, M64, max_iter, _warm_start(potentials_init, n, m, 1), threads)
    dtype = _result_dtype(Mt, *(t for t in (a, b) if isinstance(t, torch.Tensor)))
    if sparse:
        plan = _sparse_plan(solved, 0, n, m, dtype, Mt.device)
    elif was_numpy:
        plan = _dense_plan_numpy(solved, 0, n, m, Mt.numpy().dtype)
    else:
        plan = _dense_plan(solved, 0, n, m).to(Mt.device, dtype)
    if not log:
        return plan
    return plan, _log(solved, 0, was_numpy, Mt.device, dtype)


def emd2(a, b, M, processes=1, numItermax=None, log: bool = False, return_matrix: bool = False,
         center_dual: bool = True, numThreads="max", check_marginals: bool = True, potentials_init=None, *,
         max_iter: int | None = None, mass_tol: float = 1e-6, rescale: bool = False):
    """The optimal transport cost ``<P*, M>`` (exact); batched, multi-histogram and differentiable.

    POT's ``ot.emd2`` signature (positional order included); pygan's own options are keyword-only.

    Args:
        a: [n] or, with a batched M, [B, n] weights; None / empty for uniform.
        b: [m] or [B, m] weights; None / empty for uniform; or, with a 2-D M, POT's multi-histogram
            [m, nb]: nb problems sharing M, solved in parallel, returned as a list as POT does.
        M: [n, m] costs, or [B, n, m] for B independent problems solved in parallel on CPU threads,
            or a sparse [n, m] matrix (see :func:`emd`).
        processes: accepted for POT (ignored; problems run on threads).
        numItermax, center_dual, numThreads, check_marginals, potentials_init: as in :func:`emd`
            (potentials_init may also be [B, n], [B, m] for a batch).
        log: also return the log dict of :func:`emd` (batched: ``u`` [B, n], ``v`` [B, m],
            ``status``/``result_code``/``iterations``/``certificate`` as lists).
        return_matrix: put the plan in ``log["G"]`` (and return the log).
        max_iter, mass_tol, rescale: as in :func:`emd`.

    Returns:
        The cost: 0-d (or [B]); a float for numpy input; a list for a multi-histogram b. For torch
        inputs it is differentiable: the gradient is P with respect to M, u - mean(u) with respect
        to a and v - mean(v) with respect to b (POT's convention).
    """
    max_iter = _iter_limit(numItermax, max_iter, mass_tol)
    threads = _check_threads(numThreads)
    rescale = rescale or not check_marginals
    log = log or return_matrix
    if max_iter < 0 and not log and potentials_init is None:
        result = _emd2_plain(a, b, M, threads, mass_tol, rescale)
        if result is not None:
            return result
    if _sparse.is_sparse(M):
        solved, (n, m), kind, arcs = _sparse_solve(a, b, M, max_iter, mass_tol, rescale)
        was_numpy = kind == "scipy"
        device = M.device if kind == "torch" else torch.device("cpu")
        tensors = _weight_tensors(a, b)
        dtype = torch.float64 if was_numpy else _result_dtype(M, *tensors)
        cost = solved.cost[0]
        result = cost.numpy()[()] if was_numpy else _Envelope.apply(
            tensors[0], tensors[1], M, cost.to(device, dtype), solved.u, solved.v,
            lambda: _flows_on_arcs(solved, arcs, m))
        if not log:
            return result
        out = _log(solved, 0, was_numpy, device, dtype)
        if return_matrix:
            out["G"] = _sparse.plan(solved.rows, solved.cols, solved.values, (n, m), kind, dtype, device)
        return result, out
    multi = b is not None and getattr(b, "ndim", 1) == 2 and getattr(M, "ndim", 0) == 2
    Mt, was_numpy, M64, a64, b64, B = _prepare_dense(a, b, M, True, mass_tol, rescale, multi)
    n, m = M64.shape[-2:]
    solved = _solve_dense(a64, b64, M64, max_iter, _warm_start(potentials_init, n, m, B), threads)
    single = Mt.dim() == 2 and not multi
    tensors = _weight_tensors(a, None if multi else b)
    dtype = _result_dtype(Mt, *tensors)
    if multi:
        return _multi_results(solved, Mt, was_numpy, dtype, tensors[0], log, return_matrix)
    if was_numpy:  # a numpy scalar / array in the inputs' dtype, as POT returns
        result = (solved.cost if dtype is torch.float64 else solved.cost.to(dtype)).numpy()[0 if single else ()]
    else:
        cost = solved.cost[0] if single else solved.cost

        def plan_fn():
            return torch.stack([_dense_plan(solved, p, n, m) for p in range(B)])

        u, v = solved.u, solved.v
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (*tensors, Mt)):
            result = _Envelope.apply(tensors[0], tensors[1], Mt, cost.to(Mt.device, dtype), u, v, plan_fn)
        else:  # nothing to differentiate: skip the autograd Function (~20 us of a small solve)
            result = cost.to(Mt.device, dtype)
    if not log:
        return result
    out = _log(solved, 0 if single else None, was_numpy, Mt.device, dtype)
    if return_matrix:
        plans = torch.stack([_dense_plan(solved, p, n, m) for p in range(B)])
        plans = plans[0] if single else plans
        out["G"] = plans.numpy() if was_numpy else plans.to(Mt.device, dtype)
    return result, out


def _multi_results(solved, Mt, was_numpy, dtype, a_tensor, log, return_matrix) -> list:
    """POT's list for a multi-histogram b: one cost (or [cost, log]) per histogram. Each cost is
    differentiable in M and a (b's columns are not tracked)."""
    n, m = Mt.shape
    results = []
    for p in range(len(solved.status)):
        if was_numpy:
            cost = solved.cost[p].to(dtype).numpy()[()]
        else:
            def plan_fn(p=p):
                return _dense_plan(solved, p, n, m)[None]

            cost = _Envelope.apply(a_tensor, None, Mt, solved.cost[p:p + 1].reshape(()).to(Mt.device, dtype),
                                   solved.u[p:p + 1], solved.v[p:p + 1], plan_fn)
        if not log:
            results.append(cost)
            continue
        out = _log(solved, p, was_numpy, Mt.device, dtype)
        if return_matrix:
            plan = _dense_plan(solved, p, n, m)
            out["G"] = plan.numpy() if was_numpy else plan.to(Mt.device, dtype)
        results.append([cost, out])
    return results
