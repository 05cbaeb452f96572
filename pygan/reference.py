"""Pure-PyTorch twins of every pygan op: the test oracle and the fallback when the extension is missing.

It also holds the exact optimal-transport oracles (``emd``: successive shortest paths;
``wasserstein_1d``: through ``emd``), slow and plainly written, for problems of a few dozen points.

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
        n = torch.linalg.vector_norm(g, dim=dims) if dims else g.abs()
        d = n - center
        p = torch.relu(d) ** 2 if one_sided else d**2
    if reduction == "mean":
        p = p.mean()
    elif reduction == "sum":
        p = p.sum()
    return p.to(grads.dtype)


# --------------------------------------------------------------------------------------------------
# Exact optimal transport: the oracle for pygan.ot and its fallback without the extension.
# --------------------------------------------------------------------------------------------------


def _shortest_paths(n, m, M, pot, rem_a, rem_b, flow):
    # Dense Dijkstra from the super source S on the residual graph of the transportation network, with
    # reduced costs c(x, y) + pot[x] - pot[y] (nonnegative by the SSP invariant, so Dijkstra is exact).
    # Nodes: 0 = S, 1..n = sources, n+1..n+m = sinks, n+m+1 = T. Arcs: S->i while supply is left,
    # i->j always (uncapacitated, cost M_ij), j->i while flow_ij > 0 (cost -M_ij), j->T while demand
    # is left. Arcs back into S or out of T are never on a shortest S->T path, so they are left out.
    V = n + m + 2
    T = V - 1
    inf = float("inf")
    dist = [inf] * V
    prev = [-1] * V
    done = [False] * V
    dist[0] = 0.0
    for _ in range(V):
        x, best = -1, inf
        for y in range(V):
            if not done[y] and dist[y] < best:
                x, best = y, dist[y]
        if x < 0:
            break
        done[x] = True
        if x == 0:
            arcs = [(1 + i, 0.0) for i in range(n) if rem_a[i] > 0]
        elif x <= n:
            i = x - 1
            arcs = [(n + 1 + j, M[i][j]) for j in range(m)]
        elif x < T:
            j = x - n - 1
            arcs = [(1 + i, -M[i][j]) for i in range(n) if flow[i][j] > 0]
            if rem_b[j] > 0:
                arcs.append((T, 0.0))
        else:
            arcs = []
        for y, c in arcs:
            # max(0, .): rounding can leave a reduced cost of -1e-17 on a tight arc.
            d = best + max(0.0, c + pot[x] - pot[y])
            if d < dist[y]:
                dist[y], prev[y] = d, x
    return dist, prev


def _cancel_cycles(flow: list[list[float]], n: int, m: int) -> None:
    # Make the plan basic (its support a forest, so at most n + m - 1 entries) in place. Optimal plans
    # from shortest paths can carry flow around a cycle when costs tie; every support arc is tight
    # (u_i + v_j = M_ij), so moving theta around a cycle i1 j1 i2 j2 ... (+ on even arcs, - on odd)
    # keeps the marginals and the cost, and theta = the smallest "-" flow empties one arc.
    while True:
        adj = {x: set() for x in range(n + m)}  # rows 0..n-1, columns n..n+m-1
        for i in range(n):
            for j in range(m):
                if flow[i][j] > 0:
                    adj[i].add(n + j)
                    adj[n + j].add(i)
        # Peel leaves: what is left (if anything) has every degree >= 2, hence a cycle.
        leaves = [x for x in adj if len(adj[x]) == 1]
        while leaves:
            x = leaves.pop()
            for y in adj[x]:
                adj[y].discard(x)
                if len(adj[y]) == 1:
                    leaves.append(y)
            adj[x] = set()
        start = next((x for x in adj if adj[x]), None)
        if start is None:
            return
        # Walk without stepping straight back until a node repeats: the tail of the walk is a cycle.
        path, pos, prev = [start], {start: 0}, None
        while True:
            x = path[-1]
            y = next(z for z in adj[x] if z != prev)
            if y in pos:
                cycle = path[pos[y]:]
                break
            pos[y] = len(path)
            path.append(y)
            prev = x
        arcs = []  # (i, j, sign) around the cycle; it alternates row/column nodes, so its length is even
        for t, x in enumerate(cycle):
            y = cycle[(t + 1) % len(cycle)]
            i, j = (x, y - n) if x < n else (y, x - n)
            arcs.append((i, j, 1.0 if t % 2 == 0 else -1.0))
        theta = min(flow[i][j] for i, j, s in arcs if s < 0)
        for i, j, s in arcs:
            flow[i][j] = 0.0 if (s < 0 and flow[i][j] == theta) else flow[i][j] + s * theta


def emd(a: torch.Tensor, b: torch.Tensor, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Exact discrete optimal transport by successive shortest paths (slow, plainly written).

    Solves min <P, M> over P >= 0 with P 1 = a and P^T 1 = b. Each round finds a cheapest path from a
    source with supply left to a sink with demand left in the residual graph (Dijkstra on costs
    reduced by node potentials), and pushes min(supply left, demand left, flow on the backward arcs
    of the path) along it: flows are real numbers. The potentials stay feasible duals throughout, so
    at the end they certify optimality (complementary slackness). O((n + m)^2) per round; meant for
    problems of a few dozen points.

    Args:
        a: [n] float64 nonnegative weights.
        b: [m] float64 nonnegative weights, sum(b) == sum(a) up to rounding.
        M: [n, m] float64 finite costs (any sign).

    Returns:
        (plan, u, v, cost): plan [n, m] float64, optimal and basic (at most n + m - 1 nonzeros: flow
        left circulating around zero-cost cycles when costs tie is cancelled); u [n], v [m] float64 duals with
        u_i + v_j <= M_ij for every pair (zero-weight rows and columns included: they get the
        c-transform) and equality where plan > 0, centred as POT's ``center_ot_dual`` (a.u == b.v);
        cost = <plan, M> as a Python float.
    """
    n, m = M.shape
    Ml = M.tolist()
    rem_a = a.tolist()
    rem_b = b.tolist()
    flow = [[0.0] * m for _ in range(n)]
    # Initial potentials = shortest distances from S in the empty-flow graph (a DAG), so every reduced
    # cost starts nonnegative even when M has negative entries.
    col_min = [min(Ml[i][j] for i in range(n)) for j in range(m)]
    pot = [0.0] * (n + 1) + col_min + [min(col_min)]
    T = n + m + 1
    while True:
        dist, prev = _shortest_paths(n, m, Ml, pot, rem_a, rem_b, flow)
        D = dist[T]
        if D == float("inf"):
            break  # no supply or no demand left (the totals agree up to rounding)
        # min(dist, D) keeps every reduced cost nonnegative, including at nodes Dijkstra did not reach,
        # and makes the arcs of the path just found tight (reduced cost 0).
        pot = [p + min(d, D) for p, d in zip(pot, dist)]
        path = [T]
        while path[-1] != 0:
            path.append(prev[path[-1]])
        path.reverse()  # S, i, j, i', j', ..., j_last, T
        src, snk = path[1] - 1, path[-2] - n - 1
        delta = min(rem_a[src], rem_b[snk])
        for k in range(2, len(path) - 2, 2):  # backward arcs j -> i on the path
            j, i = path[k] - n - 1, path[k + 1] - 1
            delta = min(delta, flow[i][j])
        rem_a[src] -= delta
        rem_b[snk] -= delta
        for k in range(1, len(path) - 2):
            x, y = path[k], path[k + 1]
            if x <= n:  # forward arc i -> j
                flow[x - 1][y - n - 1] += delta
            else:  # backward arc j -> i: cancel flow
                flow[y - 1][x - n - 1] -= delta

    _cancel_cycles(flow, n, m)
    plan = torch.tensor(flow, dtype=torch.float64).reshape(n, m)
    # Feasible potentials pot give duals u_i = -pot_i, v_j = pot_j with u_i + v_j <= M_ij, tight on
    # the plan's support. The c-transforms below only raise them (objective unchanged, since the duals
    # already certify optimality) and make zero-weight rows/columns tight and rounding-clean.
    v = torch.tensor(pot[n + 1 : n + 1 + m], dtype=torch.float64)
    u = (M - v[None, :]).min(dim=1).values
    v = (M - u[:, None]).min(dim=0).values
    total = float(a.sum() + b.sum())
    c = float((b * v).sum() - (a * u).sum()) / total if total > 0 else 0.0  # zero mass: nothing to centre
    u, v = u + c, v - c
    cost = float((plan * M).sum())
    return plan, u, v, cost


def wasserstein_1d(
    u_values: torch.Tensor,
    v_values: torch.Tensor,
    u_weights: torch.Tensor | None = None,
    v_weights: torch.Tensor | None = None,
    p: float = 1,
) -> torch.Tensor:
    """The 1-D OT loss by its definition: ``emd`` on the cost matrix |x_i - y_j|^p, per batch column.

    The twin of ``pygan.ot.wasserstein_1d`` (which sorts instead): same arguments, same convention
    (W_p^p, no p-th root; weights normalised to sum 1 per column, None = uniform). Not differentiable.

    Args:
        u_values: [n] or [n, *batch] points.
        v_values: [m] or [m, *batch] points (same batch shape).
        u_weights, v_weights: nonnegative weights shaped like the values, [n] / [m] (shared by every
            column), or None.
        p: the exponent of the ground cost, >= 1.

    Returns:
        A float64 tensor of the batch shape (0-d for 1-D values).
    """
    batch = u_values.shape[1:]
    x = u_values.detach().to(torch.float64).reshape(u_values.shape[0], -1)
    y = v_values.detach().to(torch.float64).reshape(v_values.shape[0], -1)

    def weights(w, like):
        if w is None:
            return torch.full_like(like, 1.0 / like.shape[0])
        w = w.detach().to(torch.float64)
        w = w.reshape(-1, 1).expand_as(like) if w.dim() == 1 else w.reshape(like.shape)
        return w / w.sum(0, keepdim=True)

    a, b = weights(u_weights, x), weights(v_weights, y)
    out = [emd(a[:, k], b[:, k], (x[:, k, None] - y[None, :, k]).abs() ** p)[3] for k in range(x.shape[1])]
    return torch.tensor(out, dtype=torch.float64).reshape(batch)
