"""The EMD solver against independent oracles: brute force over permutations, the reference solver
(pygan.ot.reference.emd), POT, closed forms and hypothesis-drawn problems; every solve is also
checked by its optimality certificate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ot_fixtures import (F64, cdist, gaussians, pot, pot_cost, random_problem,
                         ref_cost, solve, solve_points, t64)  # noqa: F401  (pot: a fixture)
from pygan import ot
from pygan.ot import reference


# ----------------------------------------------------------------------------------------------
# Oracles: brute force, the reference solver, POT


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("kind", ["random", "integer", "constant"])
def test_brute_force_assignment(n, kind):
    gen = torch.Generator().manual_seed(n)
    M = torch.rand(n, n, dtype=F64, generator=gen)
    if kind == "integer":
        M = (M * 3).floor()  # many tied optima
    elif kind == "constant":
        M = torch.full((n, n), 0.5, dtype=F64)  # every permutation is optimal
    perms = np.array(list(itertools.permutations(range(n))))
    best = M.numpy()[np.arange(n), perms].sum(1).min() / n
    plan, log = solve(None, None, M)
    assert float(log["cost"]) == pytest.approx(best, rel=1e-13, abs=1e-15)
    assert float(ot.emd2(None, None, M)) == pytest.approx(best, rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("shape, zeros", [(s, False) for s in [(1, 1), (1, 6), (6, 1), (2, 9), (9, 4), (13, 7),
                                                                (17, 23), (30, 40), (40, 30)]]
                         + [(s, True) for s in [(9, 4), (13, 7), (17, 23), (30, 40), (40, 30)]])
def test_matches_reference(shape, zeros):
    n, m = shape
    a, b, M = random_problem(n, m, seed=n * 100 + m, zeros=zeros)
    _, log = solve(a, b, M)
    _, u_ref, v_ref, cost_ref = reference.emd(a, b, M)
    assert float(log["cost"]) == pytest.approx(cost_ref, rel=1e-12, abs=1e-14)
    # The dual objective is the same optimum (duals themselves may differ when degenerate).
    assert float(a @ t64(log["u"]) + b @ t64(log["v"])) == pytest.approx(cost_ref, rel=1e-11, abs=1e-13)


def test_matches_reference_ties_and_negative_costs():
    gen = torch.Generator().manual_seed(5)
    a = torch.tensor([3.0, 0.0, 1.0, 2.0, 2.0, 0.0, 4.0], dtype=F64)
    b = torch.tensor([1.0, 1.0, 0.0, 5.0, 5.0], dtype=F64)
    M = torch.randint(-2, 3, (7, 5), generator=gen).to(F64)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(reference.emd(a, b, M)[3], abs=1e-12)


@pytest.mark.parametrize("case", ["300x200 weighted", "600x600 uniform", "600x500 weighted zeros"])
def test_matches_pot_random(pot, case):
    n, m = (300, 200) if case.startswith("300") else (600, 600) if "uniform" in case else (600, 500)
    a, b, M = random_problem(n, m, seed=n + m, zeros="zeros" in case, uniform="uniform" in case)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9)


@pytest.mark.parametrize("n, m", [(300, 200), (600, 600)])
def test_matches_pot_far_apart_clouds(pot, n, m):
    # Two Gaussians at distance 5: the neighbour arcs alone cannot carry the mass, so this needs
    # the multiscale start / pricing rounds (600 x 600 > 128 x 128 pairs) to be right.
    x, y = gaussians(n, m, seed=n)
    gen = torch.Generator().manual_seed(1)
    b = torch.rand(m, dtype=F64, generator=gen) + 0.1
    b /= b.sum()
    M = cdist(x, y)
    expected = pot_cost(pot, None, b, M)
    assert expected > 4.0  # the clouds really are apart
    _, log = solve(None, b, M)
    assert float(log["cost"]) == pytest.approx(expected, rel=1e-9)
    cost, _ = solve_points(x, y, None, b)
    assert float(cost) == pytest.approx(expected, rel=1e-9)


def test_matches_pot_points_sqeuclidean_3d(pot):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(400, 3, dtype=F64, generator=gen)
    y = torch.randn(250, 3, dtype=F64, generator=gen) * 0.5 + 1.0
    a = torch.rand(400, dtype=F64, generator=gen)
    a[::7] = 0.0
    a /= a.sum()
    cost, _ = solve_points(x, y, a, None, "sqeuclidean")
    assert float(cost) == pytest.approx(pot_cost(pot, a, None, cdist(x, y, 2.0)), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Closed forms


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_piles_example(scale):
    # The piles example: [3, 2, 1, 4] -> [1, 2, 4, 3] at positions 0..3, cost |i - j|: EMD = 5.
    a = torch.tensor([3.0, 2.0, 1.0, 4.0], dtype=F64) * scale
    b = torch.tensor([1.0, 2.0, 4.0, 3.0], dtype=F64) * scale
    pos = torch.arange(4, dtype=F64)
    M = (pos[:, None] - pos[None, :]).abs()
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(5.0 * scale, abs=1e-13)
    assert float(ot.emd2(a, b, M)) == pytest.approx(5.0 * scale, abs=1e-13)
    assert float(ot.emd2_points(pos, pos, a, b)) == pytest.approx(5.0 * scale, abs=1e-13)
    assert ot.emd2(a.numpy(), b.numpy(), M.numpy()) == pytest.approx(5.0 * scale, abs=1e-13)


@pytest.mark.parametrize("theta", [0.0, 0.3, -1.7, 25.0])
@pytest.mark.parametrize("k", [7, 200])  # 200 x 200 > 128 x 128: the restricted / multiscale path
def test_parallel_segments(theta, k):
    # x = (t, 0), y = (t, theta): every pair is at least |theta| apart and the identity matching
    # achieves it, so W1 = |theta| (with many ties along the diagonal).
    t = torch.linspace(0.0, 1.0, k, dtype=F64)
    x = torch.stack([t, torch.zeros_like(t)], 1)
    y = torch.stack([t, torch.full_like(t, theta)], 1)
    cost, _ = solve_points(x, y)
    assert float(cost) == pytest.approx(abs(theta), rel=1e-12, abs=1e-15)
    _, log = solve(None, None, cdist(x, y))
    assert float(log["cost"]) == pytest.approx(abs(theta), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("n", [9, 150])
def test_one_dimensional(p, n):
    gen = torch.Generator().manual_seed(n + p)
    x = torch.randn(n, dtype=F64, generator=gen)
    y = torch.rand(n, dtype=F64, generator=gen) * 3
    M = (x[:, None] - y[None, :]).abs() ** p
    sorted_cost = float(((x.sort().values - y.sort().values).abs() ** p).mean())
    _, log = solve(None, None, M)
    assert float(log["cost"]) == pytest.approx(sorted_cost, rel=1e-12)
    assert float(ot.wasserstein_1d(x, y, p=p)) == pytest.approx(sorted_cost, rel=1e-12)
    assert float(ot.emd2_points(x, y, metric=float(p))) == pytest.approx(sorted_cost, rel=1e-12)
    # Non-uniform weights, n != m: against the sorting solver.
    m = n + 3
    yy = torch.randn(m, dtype=F64, generator=gen)
    a = torch.rand(n, dtype=F64, generator=gen)
    b = torch.rand(m, dtype=F64, generator=gen)
    a, b = a / a.sum(), b / b.sum()
    MM = (x[:, None] - yy[None, :]).abs() ** p
    _, log = solve(a, b, MM)
    assert float(log["cost"]) == pytest.approx(float(ot.wasserstein_1d(x, yy, a, b, p=p)), rel=1e-10)


# ----------------------------------------------------------------------------------------------
# Hypothesis


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    w = st.integers(0, 4)
    a = draw(st.lists(w, min_size=n, max_size=n).filter(lambda l: sum(l) > 0))
    b = draw(st.lists(w, min_size=m, max_size=m).filter(lambda l: sum(l) > 0))
    if draw(st.booleans()):
        costs = st.integers(-3, 3).map(float)  # ties (and negative costs)
    else:
        costs = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)
    M = draw(st.lists(costs, min_size=n * m, max_size=n * m))
    return (torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64),
            torch.tensor(M, dtype=F64).reshape(n, m))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_hypothesis_problems(problem):
    a, b, M = problem
    _, log = solve(a, b, M, rescale=True)
    scale = float(M.abs().max()) or 1.0
    assert float(log["cost"]) == pytest.approx(ref_cost(a, b, M), abs=1e-10 * scale * float(a.sum()))
