"""The EMD solver on ties, duplicates, zero weights, degenerate sizes, scale and mass checks."""

from __future__ import annotations

import math

import pytest
import torch

from ot_fixtures import F64, cdist, dense, gaussians, random_problem, ref_cost, solve, solve_points, t64
from pygan import ot


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
# Overflow, NaN and inf: the right number or a clear error, never a silent wrong one


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_points_cost_and_gradient_in_float64_cast_once(dtype):
    # Squared distances 200^2, 300^2 overflow float16 (max 65504) although the cost 250 does not.
    x = torch.tensor([[0.0], [0.0]], dtype=dtype, requires_grad=True)
    y = torch.tensor([[200.0], [300.0]], dtype=dtype, requires_grad=True)
    cost = ot.emd2_points(x, y)
    assert cost.dtype == dtype and float(cost) == 250.0
    cost.backward()
    torch.testing.assert_close(x.grad.double(), torch.tensor([[-0.5], [-0.5]], dtype=F64))
    torch.testing.assert_close(y.grad.double(), torch.tensor([[0.5], [0.5]], dtype=F64))


def test_points_distances_above_1e154():
    # Finite distances whose squares overflow float64.
    x = torch.tensor([[0.0, 0.0], [1e200, 0.0]], dtype=F64)
    y = torch.tensor([[3e199, 4e199], [1e200, 1e199]], dtype=F64)
    cost, log = ot.emd2_points(x, y, log=True)
    assert log["status"] == "optimal"
    assert float(cost) == pytest.approx((5e199 + 1e199) / 2, rel=1e-14)
    xg = x.clone().requires_grad_(True)
    ot.emd2_points(xg, y).backward()
    assert torch.isfinite(xg.grad).all()
    with pytest.raises(ValueError, match="overflows float64"):
        ot.emd2_points(x, y, metric="sqeuclidean")


def test_check_optimality_propagates_nan():
    a, b, M = random_problem(4, 5, seed=1)
    plan, log = ot.emd(a, b, M, log=True)
    u = log["u"].clone()
    u[2] = float("nan")
    cert = ot.check_optimality(a, b, M, plan, u, log["v"])
    assert math.isnan(cert.dual_violation) and math.isnan(cert.duality_gap)
    bad_plan = plan.clone()
    bad_plan[0, 0] = float("nan")
    assert math.isnan(ot.check_optimality(a, b, M, bad_plan, log["u"], log["v"]).primal_residual)


def test_clustered_point_clouds_finish_and_match_the_dense_solve():
    # 400 points in 8 tight clusters (the trainer's 8gaussians evaluation): the pricing rounds once
    # priced with shifted potentials, whose tolerance disagreed with the simplex's, and never ended.
    from pygan.train import toy_sample

    x = toy_sample("8gaussians", 400, generator=torch.Generator().manual_seed(10_000)).double()
    y = toy_sample("8gaussians", 400, generator=torch.Generator().manual_seed(10_001)).double()
    cost, log = ot.emd2_points(x, y, metric="euclidean", log=True)
    assert log["status"] == "optimal"
    w = torch.full((400,), 1 / 400, dtype=F64)
    dense_cost = ot.emd2(w, w, torch.cdist(x, y))
    assert float(cost) == pytest.approx(float(dense_cost), rel=1e-12)
