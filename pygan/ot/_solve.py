"""Calling the C++ core (or, without the extension, the reference solver) and packing its results:
status names, warnings, plans, the log dict and the envelope-theorem autograd Function."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from pygan import _build
from pygan.ot import reference

# Result codes, in the order of the C++ core's Status enum (and of POT's first codes).
STATUS = ("optimal", "infeasible", "unbounded", "iteration_limit")


class IterationLimitWarning(UserWarning):
    """The solver stopped at the user's ``max_iter`` before reaching the optimum."""


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

