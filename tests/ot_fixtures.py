"""Shared helpers of the EMD tests (tests/test_emd_*.py): float64 conversion, the certificate check
every solve goes through, problem generators and the oracles' costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pygan import ot

F64 = torch.float64


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
    """The certificate of a solve, scale-relative: the plan is a plan (to 1e-12 of
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


def assert_core_certificate(log, cert, M):
    """The certificate the C++ core measured and reported with its status agrees with the one
    measured here (both float64, so up to rounding at the problem's scale)."""
    core = log["certificate"]
    assert isinstance(core, ot.Certificate)
    scale = float(t64(M).abs().max()) or 1.0
    # The marginal residual is on the masses' scale, the other two on the costs'.
    for mine, theirs, tol in zip(cert, core, (1e-12, 1e-9 * scale, 1e-9 * scale)):
        assert abs(mine - theirs) <= tol, (cert, core)


def solve(a, b, M, **kwargs):
    """emd with log, asserting an optimal status and the certificate; returns (plan, log)."""
    plan, log = ot.emd(a, b, M, log=True, **kwargs)
    assert log["status"] == "optimal" and log["result_code"] == 1 and log["warning"] is None
    cert = assert_optimal(a, b, M, plan, log["u"], log["v"])
    assert_core_certificate(log, cert, M)
    cost = float(log["cost"])
    assert cost == pytest.approx(float((dense(plan) * t64(M)).sum()), rel=1e-12, abs=1e-15)
    return plan, log


def solve_points(x, y, a=None, b=None, metric="euclidean", **kwargs):
    """emd2_points with log, checked by the certificate against the dense costs; returns (cost, log)."""
    cost, log = ot.emd2_points(x, y, a, b, metric, log=True, **kwargs)
    assert log["status"] == "optimal"
    p = {"euclidean": 1.0, "sqeuclidean": 2.0}.get(metric, metric)
    M = cdist(x, y, p)
    assert_core_certificate(log, assert_optimal(a, b, M, log["plan"], log["u"], log["v"]), M)
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
    return ot.reference.emd(a, b * (a.sum() / b.sum()), M)[3]


@pytest.fixture(scope="module")
def pot():
    return pytest.importorskip("ot")


def pot_cost(pot, a, b, M) -> float:
    n, m = M.shape
    a, b = weights_or_uniform(a, n), weights_or_uniform(b, m)
    return float(pot.emd2(a.numpy(), (b * (a.sum() / b.sum())).numpy(), t64(M).numpy(), numItermax=10**8))
