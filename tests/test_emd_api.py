"""The EMD API: gradients, batched emd2, numpy/torch types and dtypes, sparse plans, logs, metrics,
max_iter."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import pygan
from ot_fixtures import F64, assert_optimal, cdist, dense, gaussians, random_problem, solve, solve_points
from pygan import ot
from testing import DEVICES


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
    torch.testing.assert_close(ag.grad, log["u"] - log["u"].mean(), rtol=0, atol=0)  # POT's convention
    torch.testing.assert_close(bg.grad, log["v"] - log["v"].mean(), rtol=0, atol=0)
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
    torch.testing.assert_close(ag.grad, log["u"] - log["u"].mean(), rtol=0, atol=0)  # POT's convention
    torch.testing.assert_close(bg.grad, log["v"] - log["v"].mean(), rtol=0, atol=0)
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
        grad_a = grad_a + w[p] * (log["u"] - log["u"].mean())
        grad_b = grad_b + w[p] * (log["v"] - log["v"].mean())
        if a_kind == "batched":
            torch.testing.assert_close(ag.grad[p], w[p] * (log["u"] - log["u"].mean()), rtol=1e-12, atol=1e-14)
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
    assert log["status"] == ["optimal"] * B and log["result_code"] == [1] * B
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
    assert set(log) == {"cost", "u", "v", "status", "result_code", "iterations", "warning", "certificate"}
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
