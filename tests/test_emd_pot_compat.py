"""pygan.ot as a drop-in for POT's exact OT: result codes, POT's signatures (positional order
included), numThreads, multi-histogram b, return_matrix, the potentials_init warm start, sparse cost
matrices (scipy and torch), and costs spanning many orders of magnitude (the "huge cost" family,
where a wrong plan must never be reported optimal)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ot_fixtures import F64, assert_core_certificate, assert_optimal, dense, gaussians, random_problem, solve, t64
from pygan import ot
from pygan.ot import reference



def sp():
    """scipy.sparse, or skip the test that needs it (scipy is optional)."""
    return pytest.importorskip("scipy.sparse")


# ----------------------------------------------------------------------------------------------
# Costs spanning many orders of magnitude


@pytest.mark.parametrize("big", [1e10, 1e12, 1e14, 1e16, 1e18, 1e20])
def test_huge_cost_three_by_three(big):
    # The optimum avoids the huge entry: rows 0, 1 send 1/3 - ... the exact value is 10/3.
    a = np.ones(3) / 3
    M = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 5.0], [5.0, 5.0, big]])
    plan, log = solve(a, a, M)
    exact = reference.emd(torch.tensor(a), torch.tensor(a), torch.tensor(M))[3]
    assert exact == pytest.approx(10 / 3, rel=1e-14)
    assert float(log["cost"]) == pytest.approx(10 / 3, rel=1e-13)
    assert ot.emd2(a, a, M) == pytest.approx(10 / 3, rel=1e-13)
    cert = ot.check_optimality(a, a, M, plan, log["u"], log["v"])
    assert cert.duality_gap <= 1e-12 and cert.dual_violation <= 1e-12


@pytest.mark.parametrize("big", [1e10, 1e14, 1e20])
@pytest.mark.parametrize("shape", [(60, 80), (200, 240)])  # complete arc set, and pricing rounds
def test_forbidden_arcs_marker(big, shape):
    # 30 % of the entries set to a "forbidden" marker: the same optimum as those arcs left out.
    n, m = shape
    rng = np.random.default_rng(n)
    M = rng.random((n, m))
    mask = rng.random((n, m)) < 0.3
    M[mask] = big
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    _, log = solve(a, b, M)
    rows, cols = np.nonzero(~mask)
    S = sp().coo_matrix((M[rows, cols], (rows, cols)), shape=(n, m))
    expected, slog = ot.emd2(a, b, S, log=True)
    assert slog["status"] == "optimal"
    assert float(log["cost"]) == pytest.approx(expected, rel=1e-12)
    assert float(log["cost"]) < 1.0  # nothing forbidden used


def test_status_never_contradicts_certificate_on_extreme_costs():
    # Costs of 1e300 next to costs of 1e-300: whatever float64 can do, the status agrees with the
    # certificate the core measured (optimal only when it holds, else "imprecise" and a warning).
    rng = np.random.default_rng(3)
    for trial in range(6):
        M = rng.random((9, 11)) * 10.0 ** rng.integers(-300, 300, size=(9, 11))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plan, log = ot.emd(None, None, M, log=True)
        cert = ot.check_optimality(None, None, M, plan, log["u"], log["v"])
        u, v = np.asarray(log["u"]), np.asarray(log["v"])
        w = np.full(9, 1 / 9), np.full(11, 1 / 11)
        magnitude = float((plan * np.abs(M)).sum() + w[0] @ np.abs(u) + w[1] @ np.abs(v))
        pair_slack = (u[:, None] + v[None, :] - M) - 1e-12 * (np.abs(u)[:, None] + np.abs(v)[None, :] + np.abs(M))
        if log["status"] == "optimal":
            assert log["result_code"] == 1
            assert cert.duality_gap <= 1e-9 * magnitude and pair_slack.max() <= 0, (trial, cert)
            assert not any(issubclass(w.category, ot.ImpreciseWarning) for w in caught)
        else:
            assert log["status"] == "imprecise" and log["result_code"] == 4
            assert any(issubclass(w.category, ot.ImpreciseWarning) and "duality gap" in str(w.message)
                       for w in caught)


# ----------------------------------------------------------------------------------------------
# Result codes, signatures, warnings


def test_result_codes_are_pots():
    assert ot.STATUS[:4] == ("infeasible", "optimal", "unbounded", "iteration_limit")
    a, b, M = random_problem(7, 9, seed=1)
    _, log = ot.emd(a, b, M, log=True)
    assert log["result_code"] == 1 and log["warning"] is None
    with pytest.warns(UserWarning, match="numItermax reached before optimality"):
        _, log = ot.emd(a, b, M, log=True, numItermax=1)
    assert log["result_code"] == 3


def test_pot_positional_order():
    a, b, M = random_problem(12, 10, seed=2)
    plan = ot.emd(a, b, M, 100000)  # POT's positional numItermax: a plan, not a (plan, log) tuple
    assert isinstance(plan, torch.Tensor) and plan.shape == (12, 10)
    plan2, log = ot.emd(a, b, M, 100000, True, True, 1, True, None)
    torch.testing.assert_close(plan2, plan, rtol=0, atol=0)
    cost = ot.emd2(a, b, M, 1, 100000)
    cost2, log2 = ot.emd2(a, b, M, 1, 100000, True, True, True, 1, True, None)
    assert float(cost) == float(cost2) == pytest.approx(float(log["cost"]), rel=1e-14)
    torch.testing.assert_close(log2["G"], plan, rtol=0, atol=0)
    c3, log3 = ot.emd2(a.numpy(), b.numpy(), M.numpy(), return_matrix=True)
    assert isinstance(log3["G"], np.ndarray)
    np.testing.assert_allclose(log3["G"], plan.numpy(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="numItermax and max_iter"):
        ot.emd(a, b, M, numItermax=5, max_iter=6)


@pytest.mark.parametrize("threads", [1, 2, "max"])
def test_num_threads(threads):
    x, y = gaussians(300, 280, seed=3)
    M = torch.cdist(x, y)
    before = torch.get_num_threads()
    _, log = solve(None, None, M, numThreads=threads)
    assert torch.get_num_threads() == before
    assert float(ot.emd2(None, None, M, numThreads=threads)) == pytest.approx(float(log["cost"]), rel=1e-12)


def test_check_marginals_false_rescales():
    a = np.array([3.0, 2.0, 1.0, 4.0])
    b = np.array([1.0, 2.0, 4.0, 3.0]) * 2
    pos = np.arange(4.0)
    M = np.abs(pos[:, None] - pos[None, :])
    with pytest.raises(ValueError):
        ot.emd2(a, b, M)
    assert ot.emd2(a, b, M, check_marginals=False) == pytest.approx(5.0, abs=1e-13)


def test_multi_histogram_b():
    a, _, M = random_problem(15, 12, seed=4)
    gen = torch.Generator().manual_seed(4)
    bs = torch.rand(12, 5, dtype=F64, generator=gen)
    bs /= bs.sum(0, keepdim=True)
    out = ot.emd2(a.numpy(), bs.numpy(), M.numpy())
    assert isinstance(out, list) and len(out) == 5
    for k in range(5):
        assert out[k] == pytest.approx(float(ot.emd2(a, bs[:, k], M)), rel=1e-13)
    with_log = ot.emd2(a, bs, M, log=True)
    assert len(with_log) == 5 and with_log[2][1]["status"] == "optimal"
    assert float(with_log[2][0]) == pytest.approx(out[2], rel=1e-13)
    Mg = M.clone().requires_grad_(True)
    costs = ot.emd2(a, bs, Mg)
    torch.stack(costs).sum().backward()
    expected = sum(ot.emd(a, bs[:, k], M) for k in range(5))
    torch.testing.assert_close(Mg.grad, expected, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# potentials_init: a warm start


@pytest.mark.parametrize("n", [40, 400])  # complete arc set, and the restricted/multiscale path
def test_warm_start_equals_cold(n):
    x, y = gaussians(n, n + 7, seed=5)
    M = torch.cdist(x, y)
    _, cold = solve(None, None, M)
    gen = torch.Generator().manual_seed(6)
    M2 = M + 1e-3 * torch.rand(M.shape, dtype=F64, generator=gen)  # the next evaluation's problem
    _, cold2 = solve(None, None, M2)
    _, warm2 = solve(None, None, M2, potentials_init=(cold["u"], cold["v"]))
    assert float(warm2["cost"]) == pytest.approx(float(cold2["cost"]), rel=1e-12)
    c = ot.emd2(None, None, M2, potentials_init=(cold["u"].numpy(), cold["v"].numpy()))
    assert float(c) == pytest.approx(float(cold2["cost"]), rel=1e-12)
    # Batched: one warm start per problem.
    cb = ot.emd2(None, None, torch.stack([M2, M2]), potentials_init=(torch.stack([cold["u"]] * 2),
                                                                    torch.stack([cold["v"]] * 2)))
    torch.testing.assert_close(cb, torch.full((2,), float(cold2["cost"]), dtype=F64), rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------------------
# Sparse cost matrices: only the listed arcs exist


def _sparse_case(n, m, density, seed):
    rng = np.random.default_rng(seed)
    M = rng.random((n, m))
    keep = rng.random((n, m)) < density
    keep[np.arange(n), np.arange(n) % m] = True  # feasible for uniform weights when n <= m... roughly
    return M, keep


@pytest.mark.parametrize("kind", ["scipy_coo", "scipy_csr", "torch_coo", "torch_csr"])
def test_sparse_equals_dense_with_missing_arcs(kind):
    n, m = 30, 30
    M, keep = _sparse_case(n, m, 0.3, seed=7)
    rows, cols = np.nonzero(keep)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    # The dense twin: missing arcs priced out by a cost above any path (exact: the costs are <= 1).
    Md = np.where(keep, M, 1e3)
    _, dlog = solve(a, b, Md)
    if kind.startswith("scipy"):
        S = sp().coo_matrix((M[rows, cols], (rows, cols)), shape=(n, m))
        S = S.tocsr() if kind == "scipy_csr" else S
    else:
        S = torch.sparse_coo_tensor(torch.tensor(np.stack([rows, cols])), torch.tensor(M[rows, cols]), (n, m))
        S = S.to_sparse_csr() if kind == "torch_csr" else S
    plan, log = ot.emd(a, b, S, log=True)
    assert log["status"] == "optimal" and log["result_code"] == 1
    P = plan.toarray() if kind.startswith("scipy") else plan.to_dense().numpy()
    assert (P[~keep] == 0).all()
    assert float(log["cost"]) == pytest.approx(float(dlog["cost"]), rel=1e-12)
    cert = ot.check_optimality(a, b, Md, P, dlog["u"], dlog["v"])
    assert cert.primal_residual <= 1e-14
    assert float((P * Md).sum()) == pytest.approx(float(dlog["cost"]), rel=1e-12)
    # Dual feasibility on the listed arcs, tightness on the plan.
    u, v = t64(log["u"]).numpy(), t64(log["v"]).numpy()
    assert (u[rows] + v[cols] - M[rows, cols]).max() <= 1e-12
    assert float(ot.emd2(a, b, S)) == pytest.approx(float(dlog["cost"]), rel=1e-12)
    c2, log2 = ot.emd2(a, b, S, return_matrix=True)
    assert float(c2) == pytest.approx(float(dlog["cost"]), rel=1e-12)


def test_sparse_infeasible():
    # Row 0 has no arc at all: its mass cannot move.
    rows = np.array([1, 1, 2])
    cols = np.array([0, 1, 2])
    S = sp().coo_matrix((np.ones(3), (rows, cols)), shape=(3, 3))
    with pytest.warns(UserWarning, match="infeasible"):
        _, log = ot.emd(None, None, S, log=True)
    assert log["status"] == "infeasible" and log["result_code"] == 0


def test_sparse_torch_gradient_in_weights():
    M, keep = _sparse_case(12, 12, 0.5, seed=8)
    rows, cols = np.nonzero(keep)
    S = torch.sparse_coo_tensor(torch.tensor(np.stack([rows, cols])), torch.tensor(M[rows, cols]), (12, 12))
    a = torch.full((12,), 1 / 12, dtype=F64, requires_grad=True)
    cost, log = ot.emd2(a, None, S, log=True)
    cost.backward()
    torch.testing.assert_close(a.grad, log["u"] - log["u"].mean(), rtol=0, atol=0)


def test_sparse_torch_gradient_in_M_is_the_flow_on_listed_arcs():
    M, keep = _sparse_case(10, 12, 0.4, seed=10)
    rows, cols = np.nonzero(keep)
    S = torch.sparse_coo_tensor(torch.tensor(np.stack([rows, cols])), torch.tensor(M[rows, cols]), (10, 12),
                                requires_grad=True)
    cost = ot.emd2(None, None, S)
    (3.0 * cost).backward()
    plan = ot.emd(None, None, S.detach()).to_dense()
    grad = S.grad.coalesce()
    assert grad.is_sparse and grad.values().numel() == len(rows)
    np.testing.assert_allclose(grad.values().numpy(), 3.0 * plan[rows, cols].numpy(), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# max_iter: a feasible plan


@pytest.mark.parametrize("shape", [(30, 40), (300, 260)])
def test_iteration_limit_plan_meets_marginals(shape):
    a, b, M = random_problem(*shape, seed=9)
    with pytest.warns(ot.IterationLimitWarning):
        plan, log = ot.emd(a, b, M, log=True, max_iter=3)
    assert log["status"] == "iteration_limit"
    P = dense(plan)
    torch.testing.assert_close(P.sum(1), a, rtol=0, atol=1e-14)
    torch.testing.assert_close(P.sum(0), b, rtol=0, atol=1e-14)
    assert float((P < 0).sum()) == 0
    assert log["certificate"].primal_residual <= 1e-14
    assert float(log["cost"]) == pytest.approx(float((P * M).sum()), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Bad input


_M = torch.rand(3, 4, dtype=F64)


def _dup_scipy():
    return sp().coo_matrix((np.ones(3), (np.array([0, 0, 1]), np.array([1, 1, 2]))), shape=(3, 4))


def _dup_torch():
    return torch.sparse_coo_tensor(torch.tensor([[0, 0, 1], [1, 1, 2]]), torch.ones(3, dtype=F64), (3, 4))


def _out_of_range_torch():
    return torch.sparse_coo_tensor(torch.tensor([[0, 5], [1, 2]]), torch.ones(2, dtype=F64), (3, 4),
                                   check_invariants=False)


BAD = [
    ("sparse duplicates scipy", lambda: ot.emd(None, None, _dup_scipy()), ValueError, "duplicate"),
    ("sparse duplicates torch", lambda: ot.emd2(None, None, _dup_torch()), ValueError, "duplicate"),
    ("sparse out of range", lambda: ot.emd(None, None, _out_of_range_torch()), ValueError, "out of range"),
    ("sparse nan cost", lambda: ot.emd(None, None, sp().coo_matrix(
        (np.array([np.nan]), (np.array([0]), np.array([0]))), shape=(3, 4))), ValueError, "M"),
    ("sparse int", lambda: ot.emd(None, None, sp().coo_matrix(np.ones((3, 4), dtype=np.int64))),
     TypeError, "M"),
    ("init wrong shape", lambda: ot.emd(None, None, _M, potentials_init=(torch.zeros(4), torch.zeros(4))),
     ValueError, "potentials_init"),
    ("init nan", lambda: ot.emd2(None, None, _M, potentials_init=(torch.full((3,), float("nan")), torch.zeros(4))),
     ValueError, "potentials_init"),
    ("init not a pair", lambda: ot.emd(None, None, _M, potentials_init=torch.zeros(3)), TypeError, "potentials_init"),
    ("threads zero", lambda: ot.emd(None, None, _M, numThreads=0), ValueError, "numThreads"),
    ("threads string", lambda: ot.emd2(None, None, _M, numThreads="all"), ValueError, "numThreads"),
    ("threads float", lambda: ot.emd2(None, None, _M, numThreads=2.0), ValueError, "numThreads"),
    ("threads bool", lambda: ot.emd(None, None, _M, numThreads=True), ValueError, "numThreads"),
    ("numItermax negative", lambda: ot.emd(None, None, _M, -3), ValueError, "numItermax"),
    ("multi b wrong rows", lambda: ot.emd2(None, np.ones((3, 2)) / 3, _M.numpy()), ValueError, "b"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
