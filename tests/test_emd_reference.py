"""The reference exact OT solver (pygan.ot.reference.emd): the oracle the fast solver is tested against,
so it is checked here against independent oracles (brute force over permutations, POT, scipy's LP)
and against its own optimality certificate (marginals, dual feasibility, complementary slackness)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan.ot.reference import emd

F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


def random_problem(n: int, m: int, gen: torch.Generator, zeros: bool = False):
    a = torch.rand(n, dtype=F64, generator=gen) + 0.05
    b = torch.rand(m, dtype=F64, generator=gen) + 0.05
    if zeros:  # zero-weight rows and columns, keeping positive totals
        a[1::3] = 0.0
        if m > 1:
            b[::3] = 0.0
    a, b = a / a.sum(), b / b.sum()
    return a, b, torch.randn(n, m, dtype=F64, generator=gen)


def assert_certificate(a, b, M, plan, u, v, cost, tol=1e-12):
    """Everything that proves (plan, u, v) optimal, checked directly with torch."""
    n, m = M.shape
    scale = max(1.0, float(M.abs().max())) * max(1.0, float(a.sum()))
    assert plan.shape == (n, m) and u.shape == (n,) and v.shape == (m,)
    assert plan.dtype == u.dtype == v.dtype == F64
    assert isinstance(cost, float)
    assert float(plan.min()) >= 0
    torch.testing.assert_close(plan.sum(1), a, rtol=0, atol=tol * max(1.0, float(a.sum())))
    torch.testing.assert_close(plan.sum(0), b, rtol=0, atol=tol * max(1.0, float(a.sum())))
    slack = M - u[:, None] - v[None, :]
    assert float(slack.min()) >= -tol * scale, "dual infeasible"  # every pair, zero weights included
    assert float((slack * plan).abs().max()) <= tol * scale, "complementary slackness"
    assert cost == pytest.approx(float((plan * M).sum()), abs=tol * scale)
    assert cost == pytest.approx(float(a @ u + b @ v), abs=tol * scale), "duality gap"
    assert float(a @ u) == pytest.approx(float(b @ v), abs=tol * scale), "not centred"
    assert int((plan > 0).sum()) <= n + m - 1, "plan not basic"
    # Rows/columns of zero weight get the c-transform: tight somewhere.
    for i in torch.nonzero(a == 0).flatten().tolist():
        assert float(slack[i].min()) == pytest.approx(0.0, abs=tol * scale)
    for j in torch.nonzero(b == 0).flatten().tolist():
        assert float(slack[:, j].min()) == pytest.approx(0.0, abs=tol * scale)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brute_force_assignment(n, seed):
    gen = torch.Generator().manual_seed(seed)
    M = torch.rand(n, n, dtype=F64, generator=gen)
    if seed == 2:
        M = (M * 3).floor()  # integer costs: many tied optima
    Ml = M.tolist()
    best = min(sum(Ml[i][perm[i]] for i in range(n)) / n for perm in itertools.permutations(range(n)))
    a = torch.full((n,), 1.0 / n, dtype=F64)
    plan, u, v, cost = emd(a, a.clone(), M)
    assert cost == pytest.approx(best, abs=1e-14)
    assert_certificate(a, a, M, plan, u, v, cost)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_piles_example(scale):
    # The piles example: masses 10 each -> EMD 5; normalised (scale 0.1) -> 0.5.
    a, b = t64([3, 2, 1, 4]) * scale, t64([1, 2, 4, 3]) * scale
    x = torch.arange(4, dtype=F64)
    M = (x[:, None] - x[None, :]).abs()
    plan, u, v, cost = emd(a, b, M)
    assert cost == pytest.approx(5.0 * scale, abs=1e-14)
    assert_certificate(a, b, M, plan, u, v, cost)


@pytest.mark.parametrize("n,m", [(1, 1), (1, 5), (6, 1)])
def test_single_point(n, m):
    gen = torch.Generator().manual_seed(n * 10 + m)
    a, b, M = random_problem(n, m, gen)
    plan, u, v, cost = emd(a, b, M)
    # With one source (or sink) the plan is forced: everything goes to (comes from) it.
    expected = a[:, None] * b[None, :]
    torch.testing.assert_close(plan, expected, rtol=0, atol=1e-15)
    assert cost == pytest.approx(float((expected * M).sum()), abs=1e-14)
    assert_certificate(a, b, M, plan, u, v, cost)


def test_zero_weights():
    gen = torch.Generator().manual_seed(3)
    a, b, M = random_problem(9, 11, gen, zeros=True)
    plan, u, v, cost = emd(a, b, M)
    assert float(plan[a == 0].abs().sum()) == 0.0 and float(plan[:, b == 0].abs().sum()) == 0.0
    assert_certificate(a, b, M, plan, u, v, cost)
    # Dropping the zero-weight rows/columns does not change the optimum.
    _, _, _, cost_kept = emd(a[a > 0], b[b > 0], M[a > 0][:, b > 0])
    assert cost == pytest.approx(cost_kept, abs=1e-14)


def test_ties_and_duplicate_points():
    gen = torch.Generator().manual_seed(4)
    # Points on a 3x3 grid with duplicates, squared-distance costs: integers, heavily tied.
    x = torch.randint(0, 3, (12, 2), generator=gen).to(F64)
    y = x[torch.randperm(12, generator=gen)]
    a = torch.full((12,), 1 / 12, dtype=F64)
    M = torch.cdist(x, y) ** 2
    plan, u, v, cost = emd(a, a.clone(), M)
    assert cost == pytest.approx(0.0, abs=1e-15)  # the same point set, permuted
    assert_certificate(a, a, M, plan, u, v, cost)
    # Constant costs: every plan is optimal.
    M = torch.full((5, 7), 2.5, dtype=F64)
    a, b, _ = random_problem(5, 7, gen)
    plan, u, v, cost = emd(a, b, M)
    assert cost == pytest.approx(2.5, abs=1e-14)
    assert_certificate(a, b, M, plan, u, v, cost)


def test_negative_costs_and_shift():
    gen = torch.Generator().manual_seed(5)
    a, b, M = random_problem(6, 8, gen)
    plan, u, v, cost = emd(a, b, M)
    _, _, _, shifted = emd(a, b, M - 7.0)
    assert shifted == pytest.approx(cost - 7.0, abs=1e-13)
    assert_certificate(a, b, M, plan, u, v, cost)


def test_masses_equal_up_to_rounding():
    gen = torch.Generator().manual_seed(6)
    a, b, M = random_problem(7, 9, gen)
    b = b * (1 + 1e-15)
    plan, u, v, cost = emd(a, b, M)
    assert_certificate(a, b, M, plan, u, v, cost, tol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_against_pot(seed):
    ot = pytest.importorskip("ot")
    gen = torch.Generator().manual_seed(100 + seed)
    n, m = 3 + seed, 15 - seed  # rectangular, both ways
    a, b, M = random_problem(n, m, gen, zeros=seed % 2 == 1)
    if seed % 4 == 2:
        M = M.round()
    plan, u, v, cost = emd(a, b, M)
    assert cost == pytest.approx(float(ot.emd2(a.numpy(), b.numpy(), M.numpy())), abs=1e-12)
    assert_certificate(a, b, M, plan, u, v, cost)


def test_unnormalised_masses_against_pot():
    ot = pytest.importorskip("ot")
    gen = torch.Generator().manual_seed(7)
    a = torch.randint(1, 6, (12,), generator=gen).to(F64)
    b = torch.randint(1, 6, (15,), generator=gen).to(F64)
    b[0] += a.sum() - b.sum() if a.sum() > b.sum() else 0.0
    a[0] += b.sum() - a.sum() if b.sum() > a.sum() else 0.0
    M = torch.rand(12, 15, dtype=F64, generator=gen)
    plan, u, v, cost = emd(a, b, M)
    assert cost == pytest.approx(float(ot.emd2(a.numpy(), b.numpy(), M.numpy())), rel=1e-12)
    assert_certificate(a, b, M, plan, u, v, cost)


@st.composite
def problems(draw):
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 5))
    a = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n).filter(lambda w: sum(w) > 0))
    b = draw(st.lists(st.integers(0, 4), min_size=m, max_size=m).filter(lambda w: sum(w) > 0))
    M = draw(st.lists(st.integers(-3, 3), min_size=n * m, max_size=n * m))  # small integers: ties
    a, b = t64(a), t64(b)
    return a / a.sum(), b / b.sum(), t64(M).reshape(n, m)


@settings(max_examples=50, deadline=None)
@given(problems())
def test_hypothesis_against_linprog(problem):
    linprog = pytest.importorskip("scipy.optimize").linprog
    a, b, M = problem
    n, m = M.shape
    plan, u, v, cost = emd(a, b, M)
    assert_certificate(a, b, M, plan, u, v, cost)
    # An independent LP solve of the same transportation problem (HiGHS).
    rows = [[1.0 if k // m == i else 0.0 for k in range(n * m)] for i in range(n)]
    cols = [[1.0 if k % m == j else 0.0 for k in range(n * m)] for j in range(m)]
    res = linprog(M.flatten().numpy(), A_eq=rows + cols, b_eq=torch.cat([a, b]).numpy(), bounds=(0, None),
                  method="highs")
    assert res.status == 0
    assert cost == pytest.approx(res.fun, abs=1e-9)
