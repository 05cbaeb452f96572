"""Small dense problems, each against an independent oracle: the assignment solver's vectorised
row scan (uniform square problems up to 256 x 256, every length of its vector tail) against scipy's
linear_sum_assignment and the network simplex path; the row-minimum first basis of complete
problems (non-uniform weights, up to 128 x 128 pairs) against HiGHS, over
random, zero and equal weights, ties and degenerate fills; batches against loops of single calls,
with the same statuses and certificates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ot_fixtures import F64, cdist, pot, pot_cost, ref_cost, solve  # noqa: F401 (pot: a fixture)
from pygan import ot

SIMPLEX = 10**12  # an iteration limit no solve reaches: forces the network simplex path


def uniform(n: int) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, dtype=F64)


def lsa_cost(M: torch.Tensor) -> float:
    """The optimal assignment's mean cost (scipy's linear_sum_assignment, an independent solver)."""
    optimize = pytest.importorskip("scipy.optimize")
    C = M.numpy()
    r, c = optimize.linear_sum_assignment(C)
    return float(C[r, c].sum() / C.shape[0])


def highs_cost(a, b, M) -> float:
    """The transport LP solved by HiGHS (scipy's linprog; sparse constraints, so 3 x 6000 fits)."""
    optimize = pytest.importorskip("scipy.optimize")
    sparse = pytest.importorskip("scipy.sparse")
    M, a, b = M.numpy(), a.numpy(), b.numpy()
    n, m = M.shape
    b = b * (a.sum() / b.sum())
    rows = sparse.kron(sparse.eye(n), np.ones((1, m)))
    cols = sparse.kron(np.ones((1, n)), sparse.eye(m))
    res = optimize.linprog(M.ravel(), A_eq=sparse.vstack([rows, cols]).tocsr(), b_eq=np.concatenate([a, b]),
                           bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)


def square_costs(n: int, kind: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "points":
        return cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(n, 2, dtype=F64, generator=gen))
    if kind == "shifted":  # two clouds apart: long augmenting paths
        x = torch.randn(n, 2, dtype=F64, generator=gen)
        return cdist(x, torch.randn(n, 2, dtype=F64, generator=gen) + torch.tensor([1.0, 0.0], dtype=F64))
    if kind == "integer":  # many equally short columns in each Dijkstra step
        return (torch.rand(n, n, dtype=F64, generator=gen) * 3).floor()
    if kind == "duplicates":  # each point three times on each side: zero-cost ties
        k = (n + 2) // 3
        x = torch.rand(k, 2, dtype=F64, generator=gen).repeat(3, 1)[:n]
        return cdist(x, torch.rand(k, 2, dtype=F64, generator=gen).repeat(3, 1)[:n])
    raise ValueError(kind)


# Lengths around the vector widths (4 and 8 doubles) and the size where the probe starts.
@pytest.mark.parametrize("n", [8, 9, 11, 12, 15, 17, 31, 67, 128, 129, 131, 200, 256])
@pytest.mark.parametrize("kind", ["points", "integer", "duplicates"])
def test_assignment_scan_against_linear_sum_assignment(n, kind):
    M = square_costs(n, kind, seed=n)
    plan, log = solve(None, None, M)
    assert float(log["cost"]) == pytest.approx(lsa_cost(M), rel=1e-12, abs=1e-15)
    P = plan.to_dense() if plan.is_sparse else plan
    assert int((P != 0).sum()) == n  # an assignment: the uniform square solver answered
    assert log["iterations"] <= n  # augmenting paths, not pivots


@pytest.mark.parametrize("n", [150, 256])
def test_assignment_up_to_256_agrees_with_the_simplex(n):
    M = square_costs(n, "shifted", seed=3)
    _, log = solve(None, None, M)
    _, log2 = solve(None, None, M, numItermax=SIMPLEX)
    assert float(log["cost"]) == pytest.approx(float(log2["cost"]), rel=1e-12)
    assert log["iterations"] <= n < log2["iterations"]  # paths here, pivots there


def rank_one(n: int, seed: int) -> torch.Tensor:
    """Costs x_i y_j: every augmenting path is long (the assignment solver's worst case found)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.outer(torch.rand(n, dtype=F64, generator=gen), torch.rand(n, dtype=F64, generator=gen))


# Above 256 the probe (a quarter of the problem, NOTE: [Assignment probe]) chooses: the assignment
# solver for unit-square points and integer costs (short paths), the simplex for rank-one costs
# and far-apart clouds; above 1024 the simplex always. Either way the answer is the optimum.
@pytest.mark.parametrize("n, kind, assigned", [(257, "points", True), (600, "points", True), (700, "integer", True),
                                               (300, "rank one", False), (640, "rank one", False),
                                               (1025, "points", False)])
def test_the_probe_chooses_and_both_answers_are_optimal(n, kind, assigned):
    M = rank_one(n, seed=n) if kind == "rank one" else square_costs(n, kind, seed=n)
    plan, log = solve(None, None, M)
    assert log["status"] == "optimal"
    assert float(log["cost"]) == pytest.approx(lsa_cost(M), rel=1e-12, abs=1e-15)
    P = plan.to_dense() if plan.is_sparse else plan
    assert int((P != 0).sum()) == n  # an assignment either way (a vertex of the polytope)
    assert (log["iterations"] <= n) == assigned  # augmenting paths, or pivots


def test_the_probe_leaves_batches_and_points_exact():
    """A batch whose problems the probe sends different ways, and the points path above 256."""
    M = torch.stack([square_costs(300, "points", seed=1), rank_one(300, seed=2)])
    costs, log = ot.emd2(None, None, M, log=True)
    assert log["iterations"][0] <= 300 < log["iterations"][1]
    for p in range(2):
        assert float(costs[p]) == pytest.approx(lsa_cost(M[p]), rel=1e-12)
    gen = torch.Generator().manual_seed(5)
    x, y = torch.rand(400, 2, dtype=F64, generator=gen), torch.rand(400, 2, dtype=F64, generator=gen)
    cost = ot.emd2_points(x, y, metric="euclidean")
    assert float(cost) == pytest.approx(lsa_cost(cdist(x, y)), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Complete problems with non-uniform weights: the row-minimum fill is the simplex's first basis.


def weights(n: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    w = torch.rand(n, dtype=F64, generator=gen) + 0.05
    if kind == "zero" and n > 1:
        w[::4] = 0.0
    elif kind == "equal":  # every fill step empties a row and a column together when n == m
        w = torch.ones(n, dtype=F64)
    elif kind == "integer":  # whole numbers: exact ties of partial sums
        w = (w * 4).ceil()
    return w / w.sum()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 9), (16, 16), (40, 33), (64, 64)])
@pytest.mark.parametrize("kind", ["random", "zero", "equal", "integer"])
def test_complete_start_against_highs(shape, kind):
    n, m = shape
    gen = torch.Generator().manual_seed(10 * n + m)
    a, b = weights(n, kind, gen), weights(m, "random" if kind == "equal" else kind, gen)
    M = cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(m, 2, dtype=F64, generator=gen))
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("costs", ["integer", "constant", "duplicates"])
def test_complete_start_ties(costs):
    gen = torch.Generator().manual_seed(21)
    n, m = 48, 40
    a, b = weights(n, "random", gen), weights(m, "integer", gen)
    if costs == "integer":
        M = (torch.rand(n, m, dtype=F64, generator=gen) * 3).floor()
    elif costs == "constant":
        M = torch.full((n, m), 0.5, dtype=F64)
    else:
        x = torch.rand(8, 2, dtype=F64, generator=gen)
        M = cdist(x.repeat(6, 1), x.repeat(5, 1))
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("n", [100, 128])
def test_complete_start_at_the_size_limit(n):
    gen = torch.Generator().manual_seed(n)
    a, b = weights(n, "random", gen), weights(n, "random", gen)
    M = cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(n, 2, dtype=F64, generator=gen))
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9)


def test_complete_start_tiny_and_huge_costs():
    gen = torch.Generator().manual_seed(5)
    a, b = weights(30, "random", gen), weights(30, "random", gen)
    M = torch.rand(30, 30, dtype=F64, generator=gen)
    _, log1 = solve(a, b, M)
    for scale in (1e-150, 1e150):
        _, log = solve(a, b, M * scale)
        assert float(log["cost"]) == pytest.approx(float(log1["cost"]) * scale, rel=1e-12)


def test_few_rows_many_columns_keeps_the_big_m_start():
    # Complete (few rows), but above the fill's size limit: still exact.
    gen = torch.Generator().manual_seed(6)
    a, b = weights(3, "random", gen), weights(6000, "zero", gen)
    M = torch.rand(3, 6000, dtype=F64, generator=gen)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Batches: the same answers, statuses and certificates as single calls, for any thread count.


@pytest.mark.parametrize("case", ["uniform 64", "uniform 256", "random 48", "zero weights 40"])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_equals_loop(case, threads):
    kind, n = case.rsplit(" ", 1)
    n, B = int(n), 3 if n == 256 else 6
    gen = torch.Generator().manual_seed(n)
    M = torch.stack([cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(n, 2, dtype=F64, generator=gen))
                     for _ in range(B)])
    if kind == "uniform":
        a = b = torch.full((B, n), 1.0 / n, dtype=F64)
    else:
        a = torch.stack([weights(n, "zero" if kind == "zero weights" else "random", gen) for _ in range(B)])
        b = torch.stack([weights(n, "random", gen) for _ in range(B)])
    cost, log = ot.emd2(a, b, M, log=True, numThreads=threads)
    assert log["status"] == ["optimal"] * B
    for p in range(B):
        single, slog = ot.emd2(a[p], b[p], M[p], log=True, numThreads=1)
        assert float(cost[p]) == float(single)  # the same solve, bit for bit
        assert log["iterations"][p] == slog["iterations"]
        assert log["certificate"][p] == slog["certificate"]
        torch.testing.assert_close(log["u"][p], slog["u"], rtol=0, atol=0)
        if kind == "uniform":
            assert float(single) == pytest.approx(lsa_cost(M[p]), rel=1e-12)
        else:
            assert float(single) == pytest.approx(ref_cost(a[p], b[p], M[p]), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Complete problems (every pair an arc, up to 128 x 128): the row-wise vectorised entering search
# and the regret-ordered first basis, against POT and HiGHS over sizes, shapes, ties, zero weights
# and extreme magnitudes.


def points_problem(n: int, m: int, seed: int, p: float = 2.0):
    gen = torch.Generator().manual_seed(seed)
    a, b = weights(n, "random", gen), weights(m, "random", gen)
    M = cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(m, 2, dtype=F64, generator=gen), p)
    return a, b, M


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (8, 8), (9, 7), (17, 33), (33, 17),
                                   (63, 65), (64, 64), (100, 128), (128, 128), (128, 100)])
def test_complete_against_pot_and_highs(pot, shape):
    n, m = shape
    for seed in range(3 if n * m <= 4096 else 1):
        a, b, M = points_problem(n, m, seed=1000 * seed + 7 * n + m)
        _, log = solve(a, b, M)
        cost = float(log["cost"])
        assert cost == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9, abs=1e-15)
        assert cost == pytest.approx(highs_cost(a, b, M), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 24, 31, 32, 33, 47, 64, 65,
                               96, 127, 128])
def test_complete_square_sizes_against_pot(pot, n):
    # Every length around the vector widths (4 and 8 doubles) of the row scans.
    a, b, M = points_problem(n, n, seed=n)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("costs", ["integer", "binary", "constant", "duplicates", "negative", "mixed scales"])
@pytest.mark.parametrize("shape", [(30, 30), (50, 37), (128, 128)])
def test_complete_ties_and_signs_against_highs(costs, shape):
    n, m = shape
    gen = torch.Generator().manual_seed(n + m)
    a, b = weights(n, "integer", gen), weights(m, "random", gen)
    if costs == "integer":
        M = (torch.rand(n, m, dtype=F64, generator=gen) * 4).floor()
    elif costs == "binary":  # a regret of 0 for almost every line
        M = (torch.rand(n, m, dtype=F64, generator=gen) < 0.5).to(F64)
    elif costs == "constant":
        M = torch.full((n, m), 3.0, dtype=F64)
    elif costs == "duplicates":
        x = torch.rand(6, 2, dtype=F64, generator=gen)
        M = cdist(x.repeat((n + 5) // 6, 1)[:n], x.repeat((m + 5) // 6, 1)[:m], 2.0)
    elif costs == "negative":
        M = torch.randn(n, m, dtype=F64, generator=gen)
    else:  # costs of order 1 beside a few of 1e12 (NOTE: [Symbolic big-M])
        M = torch.rand(n, m, dtype=F64, generator=gen)
        M[::7, ::5] = 1e12
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("where", ["rows", "columns", "both", "all but one row"])
def test_complete_zero_weights_against_highs(where):
    gen = torch.Generator().manual_seed(3)
    n, m = 45, 52
    a, b = weights(n, "random", gen), weights(m, "random", gen)
    if where in ("rows", "both"):
        a[::3] = 0.0
    if where in ("columns", "both"):
        b[1::4] = 0.0
    if where == "all but one row":
        a = torch.zeros(n, dtype=F64)
        a[17] = 1.0
    a, b = a / a.sum(), b / b.sum()
    M = cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(m, 2, dtype=F64, generator=gen), 2.0)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e280, 1e295])
def test_complete_extreme_magnitudes(scale):
    # 1e295 is above the vectorised search's bound on the costs (its folded keys need |score| far
    # below 1e300), so it checks the general search that takes over there.
    a, b, M = points_problem(40, 40, seed=9)
    _, ref = solve(a, b, M)
    _, log = solve(a, b, M * scale)
    assert float(log["cost"]) == pytest.approx(float(ref["cost"]) * scale, rel=1e-12)


def test_complete_tiny_and_huge_weights(pot):
    # (POT as the oracle: masses 1e-15 of the total are below HiGHS's feasibility tolerance.)
    gen = torch.Generator().manual_seed(11)
    n, m = 33, 29
    a, b = weights(n, "random", gen), weights(m, "random", gen)
    a[::5] *= 1e-9  # masses a few orders above the start's crumb
    b[::3] *= 1e6
    a, b = a / a.sum(), b / b.sum()
    M = cdist(torch.rand(n, 2, dtype=F64, generator=gen), torch.rand(m, 2, dtype=F64, generator=gen), 2.0)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9, abs=1e-15)


def test_complete_non_contiguous_inputs(pot):
    a, b, M = points_problem(70, 60, seed=4)
    big = torch.zeros(140, 60, dtype=F64)
    big[::2] = M
    wa = torch.zeros(140, dtype=F64)
    wa[::2] = a
    Mt = M.t().contiguous().t()  # the same values, column-major
    assert not Mt.is_contiguous()
    expected = pot_cost(pot, a, b, M)
    for A, B, C in ((a, b, Mt), (wa[::2], b, big[::2]), (a, torch.flip(torch.flip(b, [0]), [0]), M)):
        _, log = solve(A, B, C)
        assert float(log["cost"]) == pytest.approx(expected, rel=1e-9)


def test_complete_warm_start_matches_cold(pot):
    # potentials_init shifts the complete arcs' costs (NOTE: [Warm start]); same optimum.
    a, b, M = points_problem(48, 56, seed=5)
    _, cold = solve(a, b, M)
    M2 = M * (1 + 0.05 * torch.rand(M.shape, dtype=F64, generator=torch.Generator().manual_seed(1)))
    _, warm = solve(a, b, M2, potentials_init=(cold["u"], cold["v"]))
    assert float(warm["cost"]) == pytest.approx(pot_cost(pot, a, b, M2), rel=1e-9)
