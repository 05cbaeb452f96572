"""The exact EMD solver (pygan.ot: emd, emd2, emd2_points): every solve is checked by its optimality
certificate (primal feasibility, dual feasibility on every pair, zero duality gap, a basic plan), and
the costs against independent oracles: brute force over permutations, the slow reference solver
(pygan.reference.emd), POT, and closed forms."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygan
from pygan import ot, reference
from testing import DEVICES

F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# Helpers


def t64(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", F64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def dense(plan) -> torch.Tensor:
    if isinstance(plan, torch.Tensor) and plan.is_sparse:
        plan = plan.to_dense()
    return t64(plan)


def weights_or_uniform(w, size: int) -> torch.Tensor:
    if w is None or (hasattr(w, "__len__") and len(w) == 0):
        return torch.full((size,), 1.0 / size, dtype=F64)
    return t64(w)


def cdist(x, y, p: float = 1.0) -> torch.Tensor:
    """||x_i - y_j||^p in float64, computed directly (no matrix-product shortcut, so it rounds like
    the solver's on-the-fly costs)."""
    x, y = t64(x), t64(y)
    x = x[:, None] if x.dim() == 1 else x
    y = y[:, None] if y.dim() == 1 else y
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) ** (0.5 * p)


def assert_optimal(a, b, M, plan, u, v):
    """The optimality certificate of a solve, scale-relative: the plan is a plan (to 1e-12 of
    the mass), the duals are feasible for EVERY pair (zero-weight rows/columns included) and the
    primal and dual objectives agree (to 1e-9 of max|M|); the plan is basic (<= n + m - 1 entries).
    b is brought to a's total first, as the solver does (mass_tol / rescale)."""
    M = t64(M)
    n, m = M.shape
    a, b = weights_or_uniform(a, n), weights_or_uniform(b, m)
    mass = float(a.sum())
    b = b * (mass / float(b.sum()))
    P = dense(plan)
    assert P.shape == (n, m)
    assert tuple(t64(u).shape) == (n,) and tuple(t64(v).shape) == (m,)
    cert = ot.check_optimality(a, b, M, P, t64(u), t64(v))
    scale = float(M.abs().max()) or 1.0
    assert cert.primal_residual <= 1e-12 * mass, cert
    assert cert.dual_violation <= 1e-9 * scale, cert
    assert cert.duality_gap <= 1e-9 * scale * max(1.0, mass), cert
    assert int((P != 0).sum()) <= n + m - 1, "plan is not basic"
    # Zero-weight rows / columns never get mass (implied by the residual, but stated exactly).
    assert float(P[a == 0].abs().sum()) == 0.0 and float(P[:, b == 0].abs().sum()) == 0.0
    return cert


def solve(a, b, M, **kwargs):
    """emd with log, asserting an optimal status and the certificate; returns (plan, log)."""
    plan, log = ot.emd(a, b, M, log=True, **kwargs)
    assert log["status"] == "optimal" and log["result_code"] == 0 and log["warning"] is None
    assert_optimal(a, b, M, plan, log["u"], log["v"])
    cost = float(log["cost"])
    assert cost == pytest.approx(float((dense(plan) * t64(M)).sum()), rel=1e-12, abs=1e-15)
    return plan, log


def solve_points(x, y, a=None, b=None, metric="euclidean", **kwargs):
    """emd2_points with log, checked by the certificate against the dense costs; returns (cost, log)."""
    cost, log = ot.emd2_points(x, y, a, b, metric, log=True, **kwargs)
    assert log["status"] == "optimal"
    p = {"euclidean": 1.0, "sqeuclidean": 2.0}.get(metric, metric)
    M = cdist(x, y, p)
    assert_optimal(a, b, M, log["plan"], log["u"], log["v"])
    value = float(t64(cost))
    assert value == pytest.approx(float((dense(log["plan"]) * M).sum()), rel=1e-12, abs=1e-15)
    assert value == pytest.approx(float(t64(log["cost"])), rel=1e-12, abs=1e-15)
    return cost, log


def random_problem(n: int, m: int, seed: int, zeros: bool = False, uniform: bool = False):
    gen = torch.Generator().manual_seed(seed)
    if uniform:
        a, b = torch.full((n,), 1.0 / n, dtype=F64), torch.full((m,), 1.0 / m, dtype=F64)
    else:
        a = torch.rand(n, dtype=F64, generator=gen) + 0.05
        b = torch.rand(m, dtype=F64, generator=gen) + 0.05
        if zeros:
            a[1::3] = 0.0
            b[::4] = 0.0
        a, b = a / a.sum(), b / b.sum()
    return a, b, torch.randn(n, m, dtype=F64, generator=gen)


def gaussians(n: int, m: int, seed: int, shift: float = 5.0):
    """Two 2-D clouds at distance `shift`: every nearest neighbour lies in a point's own cloud."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, dtype=F64, generator=gen)
    y = torch.randn(m, 2, dtype=F64, generator=gen) + torch.tensor([shift, 0.0], dtype=F64)
    return x, y


def ref_cost(a, b, M) -> float:
    M = t64(M)
    a, b = weights_or_uniform(a, M.shape[0]), weights_or_uniform(b, M.shape[1])
    return reference.emd(a, b * (a.sum() / b.sum()), M)[3]


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


@pytest.fixture(scope="module")
def pot():
    return pytest.importorskip("ot")


def _pot_cost(pot, a, b, M) -> float:
    n, m = M.shape
    a, b = weights_or_uniform(a, n), weights_or_uniform(b, m)
    return float(pot.emd2(a.numpy(), (b * (a.sum() / b.sum())).numpy(), t64(M).numpy(), numItermax=10**8))


@pytest.mark.parametrize("case", ["300x200 weighted", "600x600 uniform", "600x500 weighted zeros"])
def test_matches_pot_random(pot, case):
    n, m = (300, 200) if case.startswith("300") else (600, 600) if "uniform" in case else (600, 500)
    a, b, M = random_problem(n, m, seed=n + m, zeros="zeros" in case, uniform="uniform" in case)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(_pot_cost(pot, a, b, M), rel=1e-9)


@pytest.mark.parametrize("n, m", [(300, 200), (600, 600)])
def test_matches_pot_far_apart_clouds(pot, n, m):
    # Two Gaussians at distance 5: the neighbour arcs alone cannot carry the mass, so this needs
    # the multiscale start / pricing rounds (600 x 600 > 128 x 128 pairs) to be right.
    x, y = gaussians(n, m, seed=n)
    gen = torch.Generator().manual_seed(1)
    b = torch.rand(m, dtype=F64, generator=gen) + 0.1
    b /= b.sum()
    M = cdist(x, y)
    expected = _pot_cost(pot, None, b, M)
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
    assert float(cost) == pytest.approx(_pot_cost(pot, a, None, cdist(x, y, 2.0)), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Closed forms


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_piles_example(scale):
    # Piles [3, 2, 1, 4] -> [1, 2, 4, 3] at positions 0..3, cost |i - j|: EMD = 5.
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
# Ties, duplicates, zero weights, degenerate sizes, mass checks


def test_duplicate_points_cost_zero_and_finite_gradient():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(12, 2, dtype=F64, generator=gen)
    for metric in ["euclidean", "sqeuclidean", 1.5, 3]:
        x = base.clone().requires_grad_(True)
        y = base.clone().requires_grad_(True)
        cost, _ = solve_points(x, y, metric=metric)
        assert float(cost.detach()) == 0.0
        cost.backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all(), metric
        assert float(x.grad.abs().max()) == 0.0 and float(y.grad.abs().max()) == 0.0
    # Partly duplicated points (half of y sits on x): still finite gradients, certificate holds.
    x = base.clone().requires_grad_(True)
    y = torch.cat([base[:6], torch.randn(4, 2, dtype=F64, generator=gen)]).requires_grad_(True)
    cost, _ = solve_points(x, y)
    cost.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_dense_zero_diagonal_duplicates():
    x, _ = gaussians(20, 1, seed=4)
    x = torch.cat([x, x[:5]])  # duplicated rows of M as well
    M = cdist(x, x)
    _, log = solve(None, None, M)
    assert float(log["cost"]) == 0.0


@pytest.mark.parametrize("shape", [(9, 6), (200, 150)])
def test_zero_weights(shape):
    n, m = shape
    a, b, M = random_problem(n, m, seed=7, zeros=True)
    assert (a == 0).any() and (b == 0).any()
    plan, log = solve(a, b, M)  # the certificate checks duals on the zero-weight rows/columns too
    P = dense(plan)
    assert float(P[a == 0].sum()) == 0.0 and float(P[:, b == 0].sum()) == 0.0
    # Their duals are tight (c-transform): u_i = min_j M_ij - v_j.
    u, v = t64(log["u"]), t64(log["v"])
    slack = M - u[:, None] - v[None, :]
    assert float(slack[a == 0].min(1).values.abs().max()) <= 1e-12 * float(M.abs().max())
    assert float(ref_cost(a, b, M) if n < 50 else log["cost"]) == pytest.approx(float(log["cost"]), rel=1e-12)
    # Dropping the zero-weight rows/columns does not change the cost.
    assert float(ot.emd2(a[a > 0], b[b > 0], M[a > 0][:, b > 0])) == pytest.approx(float(log["cost"]), rel=1e-12)


def test_single_positive_weight():
    a = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=F64)
    b = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    M = torch.randn(4, 3, dtype=F64)
    plan, log = solve(a, b, M)
    torch.testing.assert_close(dense(plan)[2], b, rtol=0, atol=1e-15)
    assert float(log["cost"]) == pytest.approx(float(b @ M[2]), rel=1e-14)


@pytest.mark.parametrize("n, m", [(1, 1), (1, 9), (9, 1), (1, 300), (300, 1)])
def test_one_row_or_column(n, m):
    a, b, M = random_problem(n, m, seed=n * m)
    plan, log = solve(a, b, M)
    expected = (b @ M[0]) if n == 1 else (a @ M[:, 0])
    assert float(log["cost"]) == pytest.approx(float(expected), rel=1e-13)
    torch.testing.assert_close(dense(plan), (b[None, :] if n == 1 else a[:, None]).expand(n, m), rtol=0, atol=1e-15)


def test_all_equal_costs_and_zero_costs():
    for value in [0.0, 2.5, -1.0]:
        a, b, _ = random_problem(15, 11, seed=2)
        M = torch.full((15, 11), value, dtype=F64)
        _, log = solve(a, b, M)
        assert float(log["cost"]) == pytest.approx(value, abs=1e-14)


def test_float32_masses_differing_by_rounding_are_accepted():
    gen = torch.Generator().manual_seed(11)
    a = torch.softmax(torch.randn(37, generator=gen), 0)
    b = torch.softmax(torch.randn(41, generator=gen) * 3, 0)
    assert a.dtype == torch.float32 and float(a.double().sum()) != float(b.double().sum())
    M = torch.rand(37, 41, generator=gen)
    cost = ot.emd2(a, b, M)
    assert cost.dtype == torch.float32
    _, log = solve(a.double(), b.double(), M.double())  # b rescaled to a's total inside
    assert float(cost) == pytest.approx(float(log["cost"]), rel=1e-6)
    plan = ot.emd(a, b, M)
    assert plan.dtype == torch.float32
    torch.testing.assert_close(plan.double().sum(1), a.double(), rtol=0, atol=1e-6)
    x = torch.randn(37, 2, generator=gen)
    y = torch.randn(41, 2, generator=gen)
    assert ot.emd2_points(x, y, a, b).dtype == torch.float32


@pytest.mark.parametrize("n, m", [(20, 30), (600, 500)])
def test_scale_and_offset_invariance(n, m):
    # Tolerances must be relative: tiny (1e-9) or huge (1e9) costs, or a large offset, give the same
    # plan's cost up to that scale. (POT's absolute tolerance stops early on the 1e-9 case.)
    a, b, M = random_problem(n, m, seed=n)
    M = M.abs()
    base = float(solve(a, b, M)[1]["cost"])
    for factor in [1e-9, 1e9]:
        _, log = solve(a, b, M * factor)
        assert float(log["cost"]) == pytest.approx(base * factor, rel=1e-12)
    _, log = solve(a, b, M + 1e6)
    assert float(log["cost"]) - 1e6 == pytest.approx(base, abs=1e-8)
    _, log = solve(a, b, -M)  # all-negative costs
    assert float(log["cost"]) <= -base


def test_separable_costs_every_plan_optimal():
    # M_ij = f_i + g_j: every plan costs a.f + b.g, every arc is tight (maximal degeneracy).
    gen = torch.Generator().manual_seed(9)
    f, g = torch.randn(300, dtype=F64, generator=gen), torch.randn(310, dtype=F64, generator=gen)
    _, log = solve(None, None, f[:, None] + g[None, :])
    assert float(log["cost"]) == pytest.approx(float(f.mean() + g.mean()), abs=1e-13)


@pytest.mark.parametrize("metric, p", [("euclidean", 1), ("sqeuclidean", 2), (3, 3)])
def test_integer_points_on_a_line_many_ties(metric, p):
    # 500 x 400 points on six integer positions: massive ties, restricted-arc path.
    gen = torch.Generator().manual_seed(p)
    x = torch.randint(0, 6, (500,), generator=gen).to(F64)
    y = torch.randint(0, 6, (400,), generator=gen).to(F64)
    cost, _ = solve_points(x, y, metric=metric)
    assert float(cost) == pytest.approx(float(ot.wasserstein_1d(x, y, p=p)), rel=1e-12)
    grid = torch.cartesian_prod(torch.arange(12.0, dtype=F64), torch.arange(12.0, dtype=F64))
    cost, _ = solve_points(grid, grid + torch.tensor([3.0, 0.0], dtype=F64), metric=metric)
    assert float(cost) == pytest.approx(3.0 ** p, rel=1e-12)


@pytest.mark.parametrize("fn", ["emd", "emd2", "emd2_points"])
def test_masses_differing_beyond_tolerance(fn):
    a, b, M = random_problem(6, 8, seed=3)
    b2 = b * 1.01
    x, y = torch.randn(6, 2, dtype=F64), torch.randn(8, 2, dtype=F64)

    def call(**kw):
        if fn == "emd2_points":
            return ot.emd2_points(x, y, a, b2, **kw)
        return getattr(ot, fn)(a, b2, M, **kw)

    with pytest.raises(ValueError, match="rescale"):
        call()
    with pytest.raises(ValueError, match="mass_tol"):
        call(mass_tol=1e-3)
    call(mass_tol=0.02)  # a looser tolerance accepts it
    out = call(rescale=True)
    ref = ot.emd2_points(x, y, a, b) if fn == "emd2_points" else ot.emd2(a, b, M)
    if fn == "emd":
        torch.testing.assert_close(out.sum(1), a, rtol=0, atol=1e-15)
        out = (out * M).sum()
    assert float(out) == pytest.approx(float(ref), rel=1e-12)


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


# ----------------------------------------------------------------------------------------------
# Gradients


def test_grad_M_is_plan_and_matches_finite_differences():
    a, b, M = random_problem(13, 17, seed=21)
    Mg = M.clone().requires_grad_(True)
    cost = ot.emd2(a, b, Mg)
    cost.backward()
    plan = ot.emd(a, b, M)
    torch.testing.assert_close(Mg.grad, plan, rtol=0, atol=0)
    eps = 1e-6
    for seed in range(3):
        D = torch.randn(13, 17, dtype=F64, generator=torch.Generator().manual_seed(seed))
        fd = (float(ot.emd2(a, b, M + eps * D)) - float(ot.emd2(a, b, M - eps * D))) / (2 * eps)
        assert fd == pytest.approx(float((Mg.grad * D).sum()), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("n, m", [(11, 14), (12, 12)])
def test_grad_weights_are_duals_and_match_finite_differences(n, m):
    a, b, M = random_problem(n, m, seed=22)
    ag, bg = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    cost, log = ot.emd2(ag, bg, M, log=True)
    cost.backward()
    torch.testing.assert_close(ag.grad, log["u"], rtol=0, atol=0)
    torch.testing.assert_close(bg.grad, log["v"], rtol=0, atol=0)
    eps = 1e-7
    gen = torch.Generator().manual_seed(5)
    for w, grad, is_a in [(a, ag.grad, True), (b, bg.grad, False)]:
        d = torch.randn(w.shape[0], dtype=F64, generator=gen)
        d -= d.mean()  # mass-preserving direction

        def f(s):
            return float(ot.emd2(a + s * d, b, M) if is_a else ot.emd2(a, b + s * d, M))

        fd = (f(eps) - f(-eps)) / (2 * eps)
        assert fd == pytest.approx(float(d @ grad), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", 3])
def test_grad_points_match_finite_differences(metric):
    gen = torch.Generator().manual_seed(23)
    x = torch.randn(14, 3, dtype=F64, generator=gen)
    y = torch.randn(10, 3, dtype=F64, generator=gen) + 0.5
    a = torch.rand(14, dtype=F64, generator=gen) + 0.1
    b = torch.rand(10, dtype=F64, generator=gen) + 0.1
    a, b = a / a.sum(), b / b.sum()
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ag, bg = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    cost, log = ot.emd2_points(xg, yg, ag, bg, metric, log=True)
    power = {"euclidean": 1, "sqeuclidean": 2}.get(metric, metric)
    assert float(cost.detach()) == pytest.approx(float(ot.emd2(a, b, cdist(x, y, power))), rel=1e-12)
    cost.backward()
    torch.testing.assert_close(ag.grad, log["u"], rtol=0, atol=0)
    torch.testing.assert_close(bg.grad, log["v"], rtol=0, atol=0)
    eps = 1e-6
    for name, grad in [("x", xg.grad), ("y", yg.grad), ("a", ag.grad), ("b", bg.grad)]:
        base = {"x": x, "y": y, "a": a, "b": b}[name]
        D = torch.randn(base.shape, dtype=F64, generator=gen)
        if name in "ab":
            D -= D.mean()

        def f(s):
            args = {"x": x, "y": y, "a": a, "b": b}
            args[name] = base + s * D
            return float(ot.emd2_points(args["x"], args["y"], args["a"], args["b"], metric))

        fd = (f(eps) - f(-eps)) / (2 * eps)
        assert fd == pytest.approx(float((grad * D).sum()), rel=1e-6, abs=1e-9), name
    # d/dx_i = sum_j P_ij dc(x_i, y_j)/dx_i, written out for the euclidean case.
    if metric == "euclidean":
        P = dense(log["plan"])
        diff = x[:, None, :] - y[None, :, :]
        expected = (P[:, :, None] * diff / diff.norm(dim=-1, keepdim=True)).sum(1)
        torch.testing.assert_close(xg.grad, expected, rtol=1e-12, atol=1e-14)


def test_grad_float32_inputs():
    a, b, M = random_problem(5, 6, seed=1)
    M32 = M.float().requires_grad_(True)
    ot.emd2(a.float(), b.float(), M32).backward()
    assert M32.grad.dtype == torch.float32
    torch.testing.assert_close(M32.grad, ot.emd(a.float(), b.float(), M.float()))


@pytest.mark.parametrize("a_kind", ["batched", "shared", "none"])
def test_batched_backward(a_kind):
    B, n, m = 4, 6, 9
    gen = torch.Generator().manual_seed(31)
    M = torch.randn(B, n, m, dtype=F64, generator=gen)
    a_b = torch.rand(B, n, dtype=F64, generator=gen) + 0.1
    a_b /= a_b.sum(1, keepdim=True)
    a_s = a_b[0].clone()
    b = torch.rand(m, dtype=F64, generator=gen) + 0.1
    b /= b.sum()
    a = {"batched": a_b, "shared": a_s, "none": None}[a_kind]
    Mg = M.clone().requires_grad_(True)
    ag = None if a is None else a.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)
    w = torch.randn(B, dtype=F64, generator=gen)
    cost = ot.emd2(ag, bg, Mg)
    assert cost.shape == (B,)
    (cost * w).sum().backward()
    assert Mg.grad.shape == (B, n, m) and bg.grad.shape == (m,)
    grad_M, grad_a, grad_b = torch.zeros_like(M), torch.zeros(n, dtype=F64), torch.zeros(m, dtype=F64)
    for p in range(B):
        ap = None if a is None else (a[p] if a.dim() == 2 else a)
        plan, log = ot.emd(ap, b, M[p], log=True)
        grad_M[p] = w[p] * plan
        grad_a = grad_a + w[p] * log["u"]
        grad_b = grad_b + w[p] * log["v"]
        if a_kind == "batched":
            torch.testing.assert_close(ag.grad[p], w[p] * log["u"], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(Mg.grad, grad_M, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(bg.grad, grad_b, rtol=1e-12, atol=1e-14)  # [m] broadcast: summed
    if a_kind == "batched":
        assert ag.grad.shape == (B, n)
    elif a_kind == "shared":
        assert ag.grad.shape == (n,)
        torch.testing.assert_close(ag.grad, grad_a, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Batched emd2


@pytest.mark.parametrize("a_kind", ["batched", "shared", "none"])
@pytest.mark.parametrize("b_kind", ["batched", "shared", "none"])
def test_batched_equals_loop(a_kind, b_kind):
    B, n, m = 5, 7, 4
    gen = torch.Generator().manual_seed(41)
    M = torch.randn(B, n, m, dtype=F64, generator=gen)

    def weights(kind, size):
        if kind == "none":
            return None
        w = torch.rand((B, size) if kind == "batched" else (size,), dtype=F64, generator=gen) + 0.1
        return w / w.sum(-1, keepdim=True)

    a, b = weights(a_kind, n), weights(b_kind, m)

    def pick(w, p):
        return None if w is None else (w[p] if w.dim() == 2 else w)

    cost, log = ot.emd2(a, b, M, log=True)
    assert cost.shape == (B,)
    assert log["u"].shape == (B, n) and log["v"].shape == (B, m)
    assert log["status"] == ["optimal"] * B and log["result_code"] == [0] * B
    assert isinstance(log["iterations"], list) and len(log["iterations"]) == B
    for p in range(B):
        single = ot.emd2(pick(a, p), pick(b, p), M[p])
        assert float(cost[p]) == pytest.approx(float(single), rel=1e-14, abs=1e-15)
        plan = ot.emd(pick(a, p), pick(b, p), M[p])
        assert_optimal(pick(a, p), pick(b, p), M[p], plan, log["u"][p], log["v"][p])


def test_batched_single_and_numpy():
    a, b, M = random_problem(6, 5, seed=43)
    cost = ot.emd2(a, b, M[None])
    assert cost.shape == (1,)
    assert float(cost[0]) == pytest.approx(float(ot.emd2(a, b, M)), rel=1e-14)
    Ms = torch.randn(3, 6, 5, dtype=F64)
    out = ot.emd2(a.numpy(), b.numpy(), Ms.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, ot.emd2(a, b, Ms).numpy(), rtol=1e-14)


def test_batched_mixed_sizes_including_multiscale():
    # Problems in one batch can be solved in parallel; each must match its own solve.
    gen = torch.Generator().manual_seed(44)
    M = torch.rand(3, 150, 140, dtype=F64, generator=gen)
    M[1] = (M[1] * 4).floor()  # ties
    cost, log = ot.emd2(None, None, M, log=True)
    for p in range(3):
        plan, lp = solve(None, None, M[p])
        assert float(cost[p]) == float(lp["cost"])
        assert_optimal(None, None, M[p], plan, log["u"][p], log["v"][p])


# ----------------------------------------------------------------------------------------------
# API: types, dtypes, sparse plans, logs, metrics


def test_numpy_in_numpy_out():
    a, b, M = random_problem(5, 7, seed=51)
    an, bn, Mn = a.numpy(), b.numpy(), M.numpy()
    plan = ot.emd(an, bn, Mn)
    assert isinstance(plan, np.ndarray) and plan.dtype == np.float64 and plan.shape == (5, 7)
    plan32 = ot.emd(an, bn, Mn.astype(np.float32))
    assert isinstance(plan32, np.ndarray) and plan32.dtype == np.float32
    cost = ot.emd2(an, bn, Mn)
    assert isinstance(cost, float)
    plan_t, log = ot.emd(an, bn, Mn, log=True)
    assert isinstance(log["cost"], float)
    assert isinstance(log["u"], np.ndarray) and isinstance(log["v"], np.ndarray)
    assert_optimal(an, bn, Mn, plan_t, log["u"], log["v"])
    np.testing.assert_array_equal(plan, ot.emd(a, b, M).numpy())
    assert cost == float(ot.emd2(a, b, M))
    assert ot.emd2([], [], Mn) == pytest.approx(float(ot.emd2(None, None, M)), rel=1e-14)  # POT: [] = uniform
    assert isinstance(ot.emd2_points(np.zeros((3, 2)), np.ones((4, 2))), float)
    assert ot.emd2_points(np.zeros((3, 2)), np.ones((4, 2))) == pytest.approx(math.sqrt(2), rel=1e-14)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_dtype_and_device(dtype, device):
    a, b, M = random_problem(8, 6, seed=52)
    a, b, M = a.to(device, dtype), b.to(device, dtype), M.to(device, dtype)
    plan, log = ot.emd(a, b, M, log=True)
    assert plan.dtype == dtype and plan.device == M.device
    assert log["u"].dtype == dtype and log["cost"].dtype == dtype and log["u"].device == M.device
    cost = ot.emd2(a, b, M)
    assert cost.dtype == dtype and cost.dim() == 0 and cost.device == M.device
    x, y = torch.randn(8, 2).to(device, dtype), torch.randn(6, 2).to(device, dtype)
    c, plog = ot.emd2_points(x, y, a, b, log=True)
    assert c.dtype == dtype and c.device == x.device and plog["plan"].dtype == dtype
    ref = ot.emd2(a.double().cpu(), b.double().cpu(), M.double().cpu())
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert float(cost) == pytest.approx(float(ref), rel=tol, abs=tol)
    # Mixed dtypes promote.
    assert ot.emd2(a.to(F64), b.to(F64), M.float()).dtype == F64


def test_sparse_plan():
    a, b, M = random_problem(40, 30, seed=53, zeros=True)
    plan = ot.emd(a, b, M)
    sp, log = ot.emd(a, b, M, sparse=True, log=True)
    assert sp.is_sparse and sp.layout == torch.sparse_coo and sp.is_coalesced()
    assert sp.shape == (40, 30) and sp.dtype == F64
    assert sp._nnz() <= 40 + 30 - 1
    assert (sp._values() > 0).all()
    torch.testing.assert_close(sp.to_dense(), plan, rtol=0, atol=0)
    assert_optimal(a, b, M, sp, log["u"], log["v"])
    # Already coalesced means sorted row-major, unique indices: coalescing again changes nothing.
    again = sp.clone().coalesce()
    torch.testing.assert_close(again._indices(), sp._indices(), rtol=0, atol=0)
    sp32 = ot.emd(a.float(), b.float(), M.float(), sparse=True)
    assert sp32.is_sparse and sp32.dtype == torch.float32
    # numpy M with sparse=True: a torch sparse tensor (numpy has none).
    spn = ot.emd(a.numpy(), b.numpy(), M.numpy(), sparse=True)
    assert spn.is_sparse
    torch.testing.assert_close(spn.to_dense(), plan, rtol=0, atol=0)


def test_log_keys_and_centring():
    a, b, M = random_problem(12, 9, seed=54, zeros=True)
    M = M + 100.0  # an offset the centring must remove from neither side in particular
    _, log = solve(a, b, M)
    assert set(log) == {"cost", "u", "v", "status", "result_code", "iterations", "warning"}
    assert isinstance(log["iterations"], int) and log["iterations"] >= 0
    assert float(a @ log["u"]) == pytest.approx(float(b @ log["v"]), abs=1e-12 * float(M.abs().max()))
    assert float(a @ log["u"] + b @ log["v"]) == pytest.approx(float(log["cost"]), rel=1e-12)
    c2, log2 = ot.emd2(a, b, M, log=True)
    assert float(c2) == float(log["cost"]) and log2["status"] == "optimal"
    torch.testing.assert_close(log2["u"], log["u"], rtol=0, atol=0)
    c3, log3 = solve_points(torch.randn(12, 2, dtype=F64), torch.randn(9, 2, dtype=F64), a, b)
    assert set(log3) >= {"cost", "u", "v", "status", "result_code", "iterations", "warning", "plan"}
    assert float(a @ log3["u"]) == pytest.approx(float(b @ log3["v"]), abs=1e-12)


def test_points_log_plan_marginals():
    gen = torch.Generator().manual_seed(55)
    x, y = torch.randn(300, 2, dtype=F64, generator=gen), torch.randn(260, 2, dtype=F64, generator=gen)
    a = torch.rand(300, dtype=F64, generator=gen)
    b = torch.rand(260, dtype=F64, generator=gen)
    a, b = a / a.sum(), b / b.sum()
    cost, log = solve_points(x, y, a, b)
    P = log["plan"]
    assert P.is_sparse and P.is_coalesced() and P.shape == (300, 260) and P._nnz() <= 300 + 260 - 1
    torch.testing.assert_close(torch.sparse.sum(P, 1).to_dense(), a, rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.sparse.sum(P, 0).to_dense(), b, rtol=0, atol=1e-14)
    assert float(cost) == pytest.approx(float(log["cost"]), rel=1e-13)


@pytest.mark.parametrize("metric, p", [("euclidean", 1.0), ("sqeuclidean", 2.0), (1, 1.0), (2.0, 2.0),
                                       (3, 3.0), (1.5, 1.5)])
@pytest.mark.parametrize("size", [25, 170])
def test_metrics_agree_with_dense(metric, p, size):
    gen = torch.Generator().manual_seed(56 + size)
    x = torch.randn(size, 3, dtype=F64, generator=gen)
    y = torch.randn(size + 5, 3, dtype=F64, generator=gen) + 0.3
    cost, _ = solve_points(x, y, metric=metric)
    assert float(cost) == pytest.approx(float(ot.emd2(None, None, cdist(x, y, p))), rel=1e-12)


def test_one_dimensional_point_inputs():
    gen = torch.Generator().manual_seed(57)
    x, y = torch.randn(20, dtype=F64, generator=gen), torch.randn(15, dtype=F64, generator=gen)
    c1 = ot.emd2_points(x, y)
    c2 = ot.emd2_points(x[:, None], y[:, None])
    assert float(c1) == float(c2)
    assert float(c1) == pytest.approx(float(ot.wasserstein_1d(x, y)), rel=1e-12)
    xg = x.clone().requires_grad_(True)
    ot.emd2_points(xg, y).backward()
    assert xg.grad.shape == (20,)


# ----------------------------------------------------------------------------------------------
# max_iter


@pytest.mark.parametrize("fn", ["emd", "emd2", "emd2_points"])
def test_max_iter_hit_warns(fn):
    a, b, M = random_problem(50, 50, seed=61)
    x, y = gaussians(50, 50, seed=61)
    with pytest.warns(ot.IterationLimitWarning, match="max_iter"):
        if fn == "emd":
            _, log = ot.emd(a, b, M, log=True, max_iter=1)
        elif fn == "emd2":
            _, log = ot.emd2(a, b, M, log=True, max_iter=1)
        else:
            _, log = ot.emd2_points(x, y, log=True, max_iter=1)
    assert log["status"] == "iteration_limit" and log["result_code"] == 3
    assert log["iterations"] <= 1 and log["warning"] is not None
    assert issubclass(ot.IterationLimitWarning, UserWarning)


def test_max_iter_hit_batched_and_large():
    M = torch.rand(2, 200, 200, dtype=F64)  # restricted-arc path: the limit spans pricing rounds
    with pytest.warns(ot.IterationLimitWarning):
        _, log = ot.emd2(None, None, M, log=True, max_iter=5)
    assert log["status"] == ["iteration_limit"] * 2
    assert all(it <= 5 for it in log["iterations"])


def test_max_iter_none_or_large_never_warns():
    a, b, M = random_problem(60, 70, seed=62)
    x, y = gaussians(150, 140, seed=62)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, log = ot.emd(a, b, M, log=True, max_iter=None)
        ot.emd(a, b, M, sparse=True)
        ot.emd2(a, b, M[None].expand(3, -1, -1).contiguous(), max_iter=None)
        ot.emd2_points(x, y, log=True)
        _, log2 = ot.emd(a, b, M, log=True, max_iter=10**7)
    assert log["status"] == log2["status"] == "optimal"
    assert log2["iterations"] == log["iterations"]


def test_first_sparse_plan_does_not_warn():
    # torch warns once per process about unchecked sparse invariants unless told explicitly; the
    # first sparse plan in a fresh process must not surface that (or any) warning.
    code = ("import warnings, torch; warnings.simplefilter('error'); import pygan.ot as ot; "
            "c, log = ot.emd2_points(torch.randn(5, 2), torch.randn(4, 2), log=True); "
            "ot.emd(None, None, torch.rand(3, 3), sparse=True); print('ok')")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(pygan.__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# Bad input

_M = torch.rand(3, 4, dtype=F64)
_x, _y = torch.rand(3, 2, dtype=F64), torch.rand(4, 2, dtype=F64)
_nan_M = _M.clone()
_nan_M[1, 2] = float("nan")
_inf_M = _M.clone()
_inf_M[0, 0] = -float("inf")
_nan_x = _x.clone()
_nan_x[2, 1] = float("nan")
_inf_y = _y.clone()
_inf_y[0, 0] = float("inf")

BAD = [
    ("nan M emd", lambda: ot.emd(None, None, _nan_M), ValueError, "M"),
    ("inf M emd2", lambda: ot.emd2(None, None, _inf_M), ValueError, "M"),
    ("nan M numpy", lambda: ot.emd2(None, None, _nan_M.numpy()), ValueError, "M"),
    ("nan x", lambda: ot.emd2_points(_nan_x, _y), ValueError, "x"),
    ("inf y", lambda: ot.emd2_points(_x, _inf_y), ValueError, "y"),
    ("nan a", lambda: ot.emd2(torch.tensor([0.5, float("nan"), 0.5], dtype=F64), None, _M), ValueError, "a"),
    ("negative a", lambda: ot.emd(torch.tensor([0.5, -0.1, 0.6], dtype=F64), None, _M), ValueError, "a"),
    ("negative b", lambda: ot.emd2(None, torch.tensor([0.5, 0.6, -0.1, 0.0], dtype=F64), _M), ValueError, "b"),
    ("negative b points", lambda: ot.emd2_points(_x, _y, None, torch.tensor([0.5, 0.6, -0.1, 0.0], dtype=F64)),
     ValueError, "b"),
    ("zero total a", lambda: ot.emd2(torch.zeros(3, dtype=F64), None, _M), ValueError, "a"),
    ("a length n+1", lambda: ot.emd(torch.full((4,), 0.25, dtype=F64), None, _M), ValueError, "a"),
    ("b length m-1", lambda: ot.emd2(None, torch.full((3,), 1 / 3, dtype=F64), _M), ValueError, "b"),
    ("a points length", lambda: ot.emd2_points(_x, _y, torch.full((4,), 0.25, dtype=F64)), ValueError, "a"),
    ("a 2-D for single M", lambda: ot.emd2(torch.full((2, 3), 1 / 3, dtype=F64), None, _M), ValueError, "a"),
    ("batched a wrong B", lambda: ot.emd2(torch.full((2, 3), 1 / 3, dtype=F64), None, _M[None].expand(3, 3, 4)),
     ValueError, "a"),
    ("M 1-D", lambda: ot.emd(None, None, torch.rand(4, dtype=F64)), ValueError, "M"),
    ("M 3-D for emd", lambda: ot.emd(None, None, torch.rand(2, 3, 4, dtype=F64)), ValueError, "M"),
    ("M 4-D for emd2", lambda: ot.emd2(None, None, torch.rand(2, 2, 3, 4, dtype=F64)), ValueError, "M"),
    ("x y different d", lambda: ot.emd2_points(torch.rand(3, 2), torch.rand(4, 3)), ValueError, "x and y"),
    ("x 3-D", lambda: ot.emd2_points(torch.rand(3, 2, 2), torch.rand(4, 2)), ValueError, "x"),
    ("n = 0", lambda: ot.emd(None, None, torch.rand(0, 4, dtype=F64)), ValueError, "M"),
    ("m = 0", lambda: ot.emd2(None, None, torch.rand(3, 0, dtype=F64)), ValueError, "M"),
    ("B = 0", lambda: ot.emd2(None, None, torch.rand(0, 3, 4, dtype=F64)), ValueError, "M"),
    ("x empty", lambda: ot.emd2_points(torch.rand(0, 2), torch.rand(4, 2)), ValueError, "x"),
    ("y empty", lambda: ot.emd2_points(torch.rand(3, 2), torch.rand(0, 2)), ValueError, "y"),
    ("d = 0", lambda: ot.emd2_points(torch.rand(3, 0), torch.rand(4, 0)), ValueError, "x"),
    ("int M", lambda: ot.emd(None, None, torch.ones(3, 4, dtype=torch.int64)), TypeError, "M"),
    ("int M numpy", lambda: ot.emd2(None, None, np.ones((3, 4), dtype=np.int32)), TypeError, "M"),
    ("bool M", lambda: ot.emd2(None, None, torch.ones(3, 4, dtype=torch.bool)), TypeError, "M"),
    ("complex M", lambda: ot.emd2(None, None, torch.ones(3, 4, dtype=torch.complex64)), TypeError, "M"),
    ("complex M numpy", lambda: ot.emd(None, None, np.ones((3, 4), dtype=np.complex128)), TypeError, "M"),
    ("int a", lambda: ot.emd2(torch.ones(3, dtype=torch.int64), None, _M), TypeError, "a"),
    ("bool b", lambda: ot.emd2(None, torch.ones(4, dtype=torch.bool), _M), TypeError, "b"),
    ("int x", lambda: ot.emd2_points(torch.ones(3, 2, dtype=torch.int32), _y), TypeError, "x"),
    ("complex y", lambda: ot.emd2_points(_x, torch.ones(4, 2, dtype=torch.complex128)), TypeError, "y"),
    ("M a string", lambda: ot.emd2(None, None, "costs"), TypeError, "M"),
    ("max_iter negative", lambda: ot.emd(None, None, _M, max_iter=-1), ValueError, "max_iter"),
    ("max_iter float", lambda: ot.emd2(None, None, _M, max_iter=10.0), (ValueError, TypeError), "max_iter"),
    ("max_iter bool", lambda: ot.emd2(None, None, _M, max_iter=True), (ValueError, TypeError), "max_iter"),
    ("max_iter points", lambda: ot.emd2_points(_x, _y, max_iter=-5), ValueError, "max_iter"),
    ("mass_tol negative", lambda: ot.emd2(None, None, _M, mass_tol=-1.0), ValueError, "mass_tol"),
    ("mass_tol nan", lambda: ot.emd(None, None, _M, mass_tol=float("nan")), ValueError, "mass_tol"),
    ("metric unknown", lambda: ot.emd2_points(_x, _y, metric="cityblock"), ValueError, "metric"),
    ("metric p < 1", lambda: ot.emd2_points(_x, _y, metric=0.5), ValueError, "metric"),
    ("metric p inf", lambda: ot.emd2_points(_x, _y, metric=float("inf")), ValueError, "metric"),
    ("metric None", lambda: ot.emd2_points(_x, _y, metric=None), (ValueError, TypeError), "metric"),
]


@pytest.mark.parametrize("call, exc, name", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_bad_input_messages_name_the_argument_first():
    # The argument the message names is the one at fault, not just any of them.
    with pytest.raises(ValueError, match=r"^b\b"):
        ot.emd2(None, torch.tensor([0.5, 0.6, -0.1, 0.0], dtype=F64), _M)
    with pytest.raises(ValueError, match=r"^y\b"):
        ot.emd2_points(_x, _inf_y)
    with pytest.raises(TypeError, match=r"^M\b"):
        ot.emd2(None, None, torch.ones(3, 4, dtype=torch.int64))


# ----------------------------------------------------------------------------------------------
# The fallback (no compiled extension): the reference solver behind the same API


@pytest.fixture
def no_ext(monkeypatch):
    monkeypatch.setattr(ot._build, "load", lambda: False)


@pytest.mark.parametrize("zeros", [False, True])
def test_fallback_matches_extension(zeros, monkeypatch):
    a, b, M = random_problem(9, 12, seed=71, zeros=zeros)
    x, y = torch.randn(9, 2, dtype=F64), torch.randn(12, 2, dtype=F64)
    Ms = torch.randn(3, 9, 12, dtype=F64)
    ext = (ot.emd2(a, b, M), ot.emd2_points(x, y, a, b, "sqeuclidean"), ot.emd2(a, b, Ms), ot.emd(a, b, M))
    monkeypatch.setattr(ot._build, "load", lambda: False)
    plan, log = solve(a, b, M)
    assert log["status"] == "optimal"
    assert float(log["cost"]) == pytest.approx(float(ext[0]), rel=1e-12)
    assert float(ot.emd2(a, b, M)) == pytest.approx(float(ext[0]), rel=1e-12)
    cost, plog = solve_points(x, y, a, b, "sqeuclidean")
    assert float(cost) == pytest.approx(float(ext[1]), rel=1e-12)
    torch.testing.assert_close(ot.emd2(a, b, Ms), ext[2], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(dense(plan), ext[3], rtol=1e-12, atol=1e-15)  # unique optimum
    sp = ot.emd(a, b, M, sparse=True)
    assert sp.is_coalesced()
    torch.testing.assert_close(sp.to_dense(), ext[3], rtol=1e-12, atol=1e-15)
    # Gradients through the fallback.
    Mg = M.clone().requires_grad_(True)
    ag = a.clone().requires_grad_(True)
    c, lg = ot.emd2(ag, b, Mg, log=True)
    c.backward()
    torch.testing.assert_close(Mg.grad, ext[3], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ag.grad, lg["u"], rtol=0, atol=0)


def test_fallback_rescale_and_numpy(no_ext):
    a = np.array([3.0, 2.0, 1.0, 4.0])
    b = np.array([1.0, 2.0, 4.0, 3.0]) * 2
    pos = np.arange(4.0)
    M = np.abs(pos[:, None] - pos[None, :])
    with pytest.raises(ValueError, match="rescale"):
        ot.emd2(a, b, M)
    assert ot.emd2(a, b, M, rescale=True) == pytest.approx(5.0, abs=1e-13)
    assert ot.emd2_points(pos, pos, a, b, rescale=True) == pytest.approx(5.0, abs=1e-13)
    plan = ot.emd(a, b, M, rescale=True)
    assert isinstance(plan, np.ndarray)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-14)
