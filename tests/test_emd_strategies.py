"""The solver core's strategies, each against independent oracles on cases that take it: the
assignment solver for uniform square problems (n == m, equal masses, n <= 256, and up to 1024
where its probe sends them), checked against brute force, HiGHS (scipy's linprog, when
installed), the plain reference solver and the network simplex path (an iteration limit, which the
assignment solver does not take, forces that path).
Ties, duplicated points, n = 1, huge and tiny costs; every solve is checked by its certificate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ot_fixtures import F64, cdist, ref_cost, solve, solve_points, t64
from pygan import ot

SIMPLEX = 10**12  # an iteration limit no solve reaches: the network simplex path, not the assignment


def uniform(n: int) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, dtype=F64)


def highs_cost(a, b, M) -> float:
    """The transport LP solved by HiGHS (an independent LP solver)."""
    optimize = pytest.importorskip("scipy.optimize")
    M = t64(M).numpy()
    n, m = M.shape
    a, b = t64(a).numpy(), t64(b).numpy()
    b = b * (a.sum() / b.sum())
    rows = np.kron(np.eye(n), np.ones((1, m)))
    cols = np.kron(np.ones((1, n)), np.eye(m))
    res = optimize.linprog(M.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]),
                           bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)


def both_paths(a, b, M):
    """Solves with the default choice and with the network simplex forced; both certified and equal."""
    plan, log = solve(a, b, M)
    plan2, log2 = solve(a, b, M, numItermax=SIMPLEX)
    scale = float(t64(M).abs().max()) or 1.0
    assert float(log["cost"]) == pytest.approx(float(log2["cost"]), rel=1e-12, abs=1e-14 * scale)
    return plan, log


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("kind", ["random", "integer", "constant", "duplicates"])
def test_assignment_brute_force(n, kind):
    gen = torch.Generator().manual_seed(100 + n)
    if kind == "duplicates":  # every point twice on each side: many zero-cost ties
        x = torch.rand((n + 1) // 2, 2, dtype=F64, generator=gen).repeat(2, 1)[:n]
        y = torch.rand((n + 1) // 2, 2, dtype=F64, generator=gen).repeat(2, 1)[:n]
        M = cdist(x, y)
    else:
        M = torch.rand(n, n, dtype=F64, generator=gen)
        if kind == "integer":
            M = (M * 3).floor()
        elif kind == "constant":
            M = torch.full((n, n), 0.25, dtype=F64)
    perms = np.array(list(itertools.permutations(range(n))))
    best = M.numpy()[np.arange(n), perms].sum(1).min() / n
    plan, log = both_paths(uniform(n), uniform(n), M)
    assert float(log["cost"]) == pytest.approx(best, rel=1e-13, abs=1e-15)
    # The plan is an assignment of mass 1/n per row.
    P = plan.to_dense() if plan.is_sparse else plan
    assert int((P != 0).sum()) == n and torch.allclose(P.sum(1), uniform(n), rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [16, 64, 128])
@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_assignment_against_highs_and_reference(n, shift):
    gen = torch.Generator().manual_seed(n)
    x = torch.rand(n, 2, dtype=F64, generator=gen)
    y = torch.rand(n, 2, dtype=F64, generator=gen) + torch.tensor([shift, 0.0], dtype=F64)
    for p in (1.0, 2.0):
        M = cdist(x, y, p)
        _, log = both_paths(None, None, M)
        assert float(log["cost"]) == pytest.approx(ref_cost(None, None, M), rel=1e-12)
        if n <= 64:
            assert float(log["cost"]) == pytest.approx(highs_cost(uniform(n), uniform(n), M), rel=1e-9)


def test_assignment_masses_equal_but_not_one_over_n():
    # Equal masses of any value and totals that differ (b is rescaled): still the assignment case.
    M = torch.rand(40, 40, dtype=F64, generator=torch.Generator().manual_seed(3))
    a, b = torch.full((40,), 2.5, dtype=F64), torch.full((40,), 2.5 * (1 + 1e-15), dtype=F64)
    _, log = both_paths(a, b, M)
    assert float(log["cost"]) == pytest.approx(ref_cost(a, b, M), rel=1e-12)


@pytest.mark.parametrize("scale", [1e-150, 1e-12, 1e12, 1e150])
def test_assignment_tiny_and_huge_costs(scale):
    M = torch.rand(30, 30, dtype=F64, generator=torch.Generator().manual_seed(5))
    _, log = both_paths(None, None, M * scale)
    _, log1 = solve(None, None, M)
    assert float(log["cost"]) == pytest.approx(float(log1["cost"]) * scale, rel=1e-12)


def test_assignment_costs_over_many_orders_of_magnitude():
    # A few huge costs next to costs of order 1: the answer is certified (by the assignment
    # solver or, should its certificate fail, by the network simplex it falls back to).
    M = torch.rand(50, 50, dtype=F64, generator=torch.Generator().manual_seed(6))
    M[::7, ::3] = 1e20
    _, log = both_paths(None, None, M)
    assert float(log["cost"]) == pytest.approx(ref_cost(None, None, M), rel=1e-12)
    assert float(log["cost"]) < 1.0  # the huge entries are avoided


def test_assignment_batched_equals_single():
    gen = torch.Generator().manual_seed(7)
    M = torch.rand(9, 64, 64, dtype=F64, generator=gen)
    batched = ot.emd2(None, None, M)
    single = torch.stack([ot.emd2(None, None, M[p], numItermax=SIMPLEX) for p in range(9)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=0)


def test_non_uniform_square_takes_the_simplex():
    # Unequal masses are not an assignment; the answer must still be exact.
    gen = torch.Generator().manual_seed(8)
    a = torch.rand(20, dtype=F64, generator=gen) + 0.1
    a = a / a.sum()
    M = torch.rand(20, 20, dtype=F64, generator=gen)
    _, log = solve(a, uniform(20), M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, uniform(20), M), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# The restricted-arc path (more than 128 x 128 pairs) starts the simplex from its greedy fill's
# basis: a forest with the components hung off the root. Degenerate fills (equal masses, where each
# greedy step empties a row and a column at once; ties; zero masses; duplicated points) are the
# cases where that basis is most degenerate.


def _restricted_problem(kind: str, seed: int):
    gen = torch.Generator().manual_seed(seed)
    n, m = 150, 170
    a = torch.rand(n, dtype=F64, generator=gen) + 0.1
    b = torch.rand(m, dtype=F64, generator=gen) + 0.1
    x = torch.randn(n, 2, dtype=F64, generator=gen)
    y = torch.randn(m, 2, dtype=F64, generator=gen) + torch.tensor([2.0, 1.0], dtype=F64)
    if kind == "equal masses":
        n = m = 160
        a = b = uniform(n)
        x, y = x[:1].repeat(n, 1) + torch.randn(n, 2, dtype=F64, generator=gen), torch.randn(n, 2, dtype=F64, generator=gen)
    elif kind == "integer costs":
        return a / a.sum(), b / b.sum(), (torch.rand(n, m, dtype=F64, generator=gen) * 4).floor()
    elif kind == "zero masses":
        a[::3] = 0.0
        b[1::4] = 0.0
    elif kind == "duplicates":
        x = x[: n // 3].repeat(3, 1)
        y = y[: m // 2 + 1].repeat(2, 1)[:m]
    elif kind == "far apart":
        y = y + torch.tensor([50.0, 0.0], dtype=F64)
    return a / a.sum(), b / b.sum(), cdist(x, y)


@pytest.mark.parametrize("kind", ["non-uniform", "equal masses", "integer costs", "zero masses", "duplicates",
                                  "far apart"])
def test_feasible_start_against_highs(kind):
    a, b, M = _restricted_problem(kind, seed=11)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-8)


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_feasible_start_tiny_and_huge_costs(scale):
    a, b, M = _restricted_problem("non-uniform", seed=12)
    _, log = solve(a, b, M * scale)
    _, log1 = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(float(log1["cost"]) * scale, rel=1e-12)


def test_feasible_start_points_path():
    # emd2_points on clouds: the same start over costs computed from the points.
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(160, 2, dtype=F64, generator=gen)
    y = torch.randn(140, 2, dtype=F64, generator=gen) + torch.tensor([4.0, 0.0], dtype=F64)
    a = torch.rand(160, dtype=F64, generator=gen) + 0.1
    b = torch.rand(140, dtype=F64, generator=gen) + 0.1
    a, b = a / a.sum(), b / b.sum()
    cost, log = solve_points(x, y, a, b)
    assert float(cost) == pytest.approx(highs_cost(a, b, cdist(x, y)), rel=1e-8)
