"""The plain exact OT solvers: the oracle pygan.ot is tested against and its fallback without the
compiled extension. Slow and plainly written (successive shortest paths; the 1-D loss by its
definition)."""

from __future__ import annotations

import torch


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
