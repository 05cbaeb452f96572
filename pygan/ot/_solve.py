"""Calling the C++ core (or, without the extension, the reference solver) and packing its results:
status names, warnings, plans, the log dict and the envelope-theorem autograd Function."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from pygan import _build
from pygan.ot import reference
from pygan.ot.certificate import Certificate

# Result codes: POT's (0 infeasible, 1 optimal, 2 unbounded, 3 iteration limit), in the order of
# the C++ core's Status enum, and pygan's 4: the float64 certificate could not confirm the answer.
STATUS = ("infeasible", "optimal", "unbounded", "iteration_limit", "imprecise")


class IterationLimitWarning(UserWarning):
    """The solver stopped at the user's ``max_iter`` (POT: ``numItermax``) before the optimum."""


class ImpreciseWarning(UserWarning):
    """The solver ended, but float64 could not certify the answer optimal (status ``"imprecise"``)."""


class _Solved(NamedTuple):
    cost: torch.Tensor        # [B] float64
    u: torch.Tensor           # [B, n]
    v: torch.Tensor           # [B, m]
    status: list[str]
    iterations: list[int]
    certificate: torch.Tensor  # [B, 3]: primal residual, dual violation, duality gap
    offsets: torch.Tensor     # [B + 1]: problem p's entries are [offsets[p], offsets[p + 1])
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor


def _certify(a, b, M, plan, u, v, cost) -> tuple[list[float], bool]:
    """The certificate's figures and verdict for the reference solver's answers (the C++ core's
    NOTE: [Certificate] rule, in torch)."""
    primal = max(float((plan.sum(1) - a).abs().max()), float((plan.sum(0) - b).abs().max()))
    viol = u[:, None] + v[None, :] - M
    dual = max(0.0, float(viol.max()))
    pairs_ok = bool((viol <= 1e-12 * (u.abs()[:, None] + v.abs()[None, :] + M.abs())).all())
    gap = abs(cost - float(a @ u + b @ v))
    scale = float((plan * M.abs()).sum() + a @ u.abs() + b @ v.abs())
    ok = primal <= 1e-10 * float(a.sum()) and pairs_ok and gap <= 1e-10 * scale
    return [primal, dual, gap], ok


def _pack_reference(problems) -> _Solved:
    costs, us, vs, rows, cols, values, offsets, certs, status = [], [], [], [], [], [], [0], [], []
    for a, b, M in problems:
        plan, u, v, cost = reference.emd(a, b, M)
        cert, ok = _certify(a, b, M, plan, u, v, cost)
        nz = plan.nonzero(as_tuple=True)
        rows.append(nz[0]), cols.append(nz[1]), values.append(plan[nz])
        offsets.append(offsets[-1] + len(nz[0]))
        costs.append(cost), us.append(u), vs.append(v), certs.append(cert)
        status.append(STATUS.index("optimal" if ok else "imprecise"))
    raw = (torch.tensor(costs, dtype=torch.float64), torch.stack(us), torch.stack(vs), torch.tensor(status),
           torch.zeros(len(costs), dtype=torch.long), None, torch.tensor(offsets), torch.cat(rows),
           torch.cat(cols), torch.cat(values), torch.tensor(certs, dtype=torch.float64))
    return _finish(raw)


def _finish(raw) -> _Solved:
    cost, u, v, status, iterations, _rounds, offsets, rows, cols, values, cert = raw
    # tolist(): one conversion each (iterating a tensor costs a few microseconds per element).
    names = [STATUS[s] for s in status.tolist()]
    iterations = iterations.tolist()
    for p, name in enumerate(names):
        if name == "optimal":
            continue
        where = f" (problem {p})" if len(names) > 1 else ""
        figures = (f"certificate: primal residual {float(cert[p, 0]):.3g}, dual violation "
                   f"{float(cert[p, 1]):.3g}, duality gap {float(cert[p, 2]):.3g}")
        if name == "iteration_limit":
            # POT's words first: code that filters on them keeps working.
            warnings.warn(f"numItermax reached before optimality. Try to increase numItermax. (pygan.ot: "
                          f"max_iter reached after {int(iterations[p])} pivots{where}; the plan meets the "
                          f"marginals but is not optimal; {figures})", IterationLimitWarning, stacklevel=4)
        elif name == "imprecise":
            warnings.warn(f"pygan.ot: float64 cannot certify this answer optimal{where} ({figures}); "
                          "log['status'] == 'imprecise'. Costs spanning more orders of magnitude than "
                          "float64 resolves (e.g. 'forbidden' entries of 1e300 next to costs of 1) cause "
                          "this; pass such entries as missing arcs of a sparse M instead",
                          ImpreciseWarning, stacklevel=4)
        elif name == "infeasible":
            warnings.warn(f"Problem infeasible. Check that a and b are in the simplex (pygan.ot{where}: the "
                          "arcs of M cannot carry the masses)", UserWarning, stacklevel=4)
        elif name == "unbounded":
            warnings.warn(f"Problem unbounded (pygan.ot{where})", UserWarning, stacklevel=4)
    return _Solved(cost, u, v, names, iterations, cert, offsets, rows, cols, values)


_EMPTY = torch.empty(0, 0, dtype=torch.float64)


def _solve_dense(a64: torch.Tensor, b64: torch.Tensor, M64: torch.Tensor, max_iter: int,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None, threads: int | None = None) -> _Solved:
    """a64 [B, n] or [n], b64 [B, m] or [m], M64 [B, n, m], [1, n, m] or [n, m]: float64 contiguous
    CPU tensors (a 1-D weight vector, a batch of 1 or a 2-D M is shared by the B problems).
    init: warm-start duals ([B, n], [B, m]) or None; threads: CPU threads (None: all of torch's,
    ``torch.get_num_threads()``). The core takes the count itself: torch's process-wide setting is
    never changed (``torch.set_num_threads`` would race with other Python threads and costs tens
    of microseconds each way, a good part of a small solve)."""
    if _build.load():
        init_u, init_v = init if init is not None else (_EMPTY, _EMPTY)
        return _finish(_build.module().emd_dense(a64, b64, M64, max_iter, init_u, init_v, threads or 0))
    a64, b64, M64 = a64.reshape(-1, a64.shape[-1]), b64.reshape(-1, b64.shape[-1]), M64.reshape(-1, *M64.shape[-2:])
    B = max(a64.shape[0], b64.shape[0], M64.shape[0])
    a64, b64, M64 = a64.expand(B, -1), b64.expand(B, -1), M64.expand(B, -1, -1)
    return _pack_reference([(a64[p], b64[p] * (a64[p].sum() / b64[p].sum()), M64[p]) for p in range(B)])


def _solve_sparse(a64, b64, rows, cols, costs, max_iter: int) -> _Solved:
    """One problem over the listed arcs only (rows, cols int64 [k], costs float64 [k]), solved on
    the calling thread (a single simplex run: nothing to spread over threads)."""
    if not _build.load():
        raise RuntimeError("pygan.ot: a sparse M needs the compiled extension (no reference fallback)")
    return _finish(_build.module().emd_sparse(a64, b64, rows, cols, costs, max_iter))


def _dense_plan(s: _Solved, p: int, n: int, m: int) -> torch.Tensor:
    lo, hi = int(s.offsets[p]), int(s.offsets[p + 1])
    plan = torch.zeros(n, m, dtype=torch.float64)
    plan[s.rows[lo:hi], s.cols[lo:hi]] = s.values[lo:hi]
    return plan


def _dense_plan_numpy(s: _Solved, p: int, n: int, m: int, dtype) -> np.ndarray:
    """Problem p's plan as a numpy array of ``dtype`` (numpy's scatter costs a few microseconds
    where torch's zeros and index_put cost tens: a good part of a 64 x 64 ``emd`` call)."""
    lo, hi = int(s.offsets[p]), int(s.offsets[p + 1])
    plan = np.zeros((n, m), dtype=dtype)
    plan[s.rows.numpy()[lo:hi], s.cols.numpy()[lo:hi]] = s.values.numpy()[lo:hi]
    return plan


def _sparse_plan(s: _Solved, p: int, n: int, m: int, dtype, device) -> torch.Tensor:
    lo, hi = int(s.offsets[p]), int(s.offsets[p + 1])
    index = torch.stack([s.rows[lo:hi], s.cols[lo:hi]])
    plan = torch.sparse_coo_tensor(index, s.values[lo:hi], (n, m), is_coalesced=True, check_invariants=False)
    return plan.to(device=device, dtype=dtype)


class _Envelope(torch.autograd.Function):
    """The optimal cost as a function of (a, b, M) with the solution fixed: the envelope theorem
    gives d/da = u - mean(u), d/db = v - mean(v) (POT's convention), d/dM = P (for M and points)."""

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
            # POT's convention: the dual minus its mean (the projection onto mass-preserving
            # directions, independent of how the duals are centred).
            g = grad.to(torch.float64).cpu().reshape(-1, 1) * (dual - dual.mean(-1, keepdim=True))
            grads.append(g.reshape(shape).to(device, dtype) if len(shape) == g.dim() else
                         g.sum(0).to(device, dtype))
        grad_M = None
        if ctx.needs_input_grad[2]:
            shape, dtype, device = ctx.shapes[2]
            plan = ctx.plan_fn()  # [B, n, m] float64, built only when M needs a gradient
            if plan.is_sparse:  # a sparse M: the flows on its listed arcs, as a sparse gradient
                grad_M = (plan * float(grad)).to(device=device, dtype=dtype)
            else:
                grad_M = (grad.to(torch.float64).cpu().reshape(-1, 1, 1) * plan).reshape(shape).to(device, dtype)
        return grads[0], grads[1], grad_M, None, None, None, None


def _log(solved: _Solved, p: int | None, was_numpy: bool, device, dtype) -> dict:
    def out(t):
        if was_numpy:  # numpy in the inputs' dtype; a numpy scalar for a 0-d value (as POT)
            return t.to(dtype).numpy()[()]
        return t.to(device, dtype)

    pick = (lambda t: t[p]) if p is not None else (lambda t: t)
    status = solved.status[p] if p is not None else solved.status
    codes = STATUS.index(status) if p is not None else [STATUS.index(s) for s in status]
    warning = None
    if p is not None and status != "optimal":
        warning = f"status {status!r} after {solved.iterations[p]} pivots"
    cert = solved.certificate
    certificate = (Certificate(*(float(x) for x in cert[p])) if p is not None else
                   [Certificate(*(float(x) for x in row)) for row in cert])
    return {"cost": out(pick(solved.cost)), "u": out(pick(solved.u)), "v": out(pick(solved.v)),
            "status": status, "result_code": codes,
            "iterations": solved.iterations[p] if p is not None else solved.iterations,
            "warning": warning, "certificate": certificate}

