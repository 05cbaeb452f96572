"""The small-problem fast path of pygan.ot.emd/emd2: the compiled one-pass input check (which must
agree with the torch checks that word the errors), the call without the autograd Function when
nothing is tracked, and the batch spread over threads (same answers for any thread count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pygan import _build
from pygan import ot as pg
from pygan.ot._convert import _inputs_ok

F64 = torch.float64


def problem(B=1, n=5, m=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(B, n, generator=gen, dtype=F64) + 0.1
    b = torch.rand(B, m, generator=gen, dtype=F64) + 0.1
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    return a, b, torch.rand(B, n, m, generator=gen, dtype=F64)


@pytest.mark.parametrize("B", [1, 3])
def test_compiled_check_accepts_and_refuses(B):
    assert _build.load()
    a, b, M = problem(B)
    assert _inputs_ok(a, b, M, 1e-6, False)
    assert _inputs_ok(a, b, M[:1].contiguous(), 1e-6, False)  # M shared by the B problems
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = M.clone()
        bad[-1, -1, -1] = value
        assert not _inputs_ok(a, b, bad, 1e-6, False)
    for side in ("a", "b"):
        for value in (-1e-3, float("nan"), float("inf")):
            w = (a if side == "a" else b).clone()
            w[-1, 0] = value
            args = (w, b) if side == "a" else (a, w)
            assert not _inputs_ok(*args, M, 1e-6, False)
    zero = torch.zeros_like(a)
    assert not _inputs_ok(zero, b, M, 1e-6, True)  # a zero total, even with rescale
    assert not _inputs_ok(a * 1.01, b, M, 1e-6, False)
    assert _inputs_ok(a * 1.01, b, M, 1e-6, True)  # rescale accepts any positive totals
    assert _inputs_ok(a * (1 + 1e-8), b, M, 1e-6, False)  # within mass_tol


def test_huge_finite_costs_pass_the_check():
    a, b, M = problem()
    M[0, 0, 0] = 1.7e308
    M[0, 1, 1] = -1.7e308
    assert _inputs_ok(a, b, M, 1e-6, False)


@pytest.mark.parametrize("fault, match", [("nan_M", "M"), ("neg_a", "a"), ("inf_b", "b"), ("unbalanced", "masses")])
def test_errors_keep_their_words(fault, match):
    a, b, M = problem()
    a, b, M = a[0].clone(), b[0].clone(), M[0].clone()
    if fault == "nan_M":
        M[1, 2] = float("nan")
    elif fault == "neg_a":
        a[0] = -a[0]
    elif fault == "inf_b":
        b[1] = float("inf")
    else:
        a = a * 2
    for fn in (pg.emd, pg.emd2):
        with pytest.raises(ValueError, match=rf"\b{match}\b"):
            fn(a, b, M)
        with pytest.raises(ValueError, match=rf"\b{match}\b"):
            fn(a.numpy(), b.numpy(), M.numpy())


def test_untracked_cost_has_no_graph_tracked_cost_has_one():
    a, b, M = problem()
    a, b, M = a[0], b[0], M[0]
    cost = pg.emd2(a, b, M)
    assert cost.grad_fn is None and not cost.requires_grad
    Mg = M.clone().requires_grad_()
    cost_g = pg.emd2(a, b, Mg)
    assert cost_g.requires_grad and float(cost_g) == float(cost)
    cost_g.backward()
    torch.testing.assert_close(Mg.grad, pg.emd(a, b, M))
    with torch.no_grad():
        assert pg.emd2(a, b, Mg).grad_fn is None


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_same_answers_for_any_thread_count(threads):
    a, b, M = problem(B=16, n=24, m=20, seed=3)
    serial = [float(pg.emd2(a[i], b[i], M[i])) for i in range(16)]
    cost, log = pg.emd2(a, b, M, numThreads=threads, log=True)
    assert cost.tolist() == pytest.approx(serial, rel=1e-12, abs=1e-15)
    assert log["status"] == ["optimal"] * 16


def test_thread_count_restored():
    a, b, M = problem(B=4)
    before = torch.get_num_threads()
    pg.emd2(a, b, M, numThreads=1)
    pg.emd(a[0].numpy(), b[0].numpy(), M[0].numpy(), numThreads=2)
    assert torch.get_num_threads() == before


def test_multi_histogram_uses_the_checked_path():
    a, b, M = problem(B=3, n=6, m=5, seed=4)
    costs = pg.emd2(a[0].numpy(), b.T.numpy().copy(), M[0].numpy())
    assert len(costs) == 3
    expected = [float(pg.emd2(a[0], b[i], M[0])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(costs, dtype=float), expected, rtol=1e-12)
    bad = b.T.numpy().copy()
    bad[0, 1] = -1.0
    with pytest.raises(ValueError, match=r"\bb\b"):
        pg.emd2(a[0].numpy(), bad, M[0].numpy())


def test_without_the_extension_the_torch_checks_run(monkeypatch):
    import pygan.ot._convert as convert

    monkeypatch.setattr(convert._build, "load", lambda: False)
    a, b, M = problem()
    assert not _inputs_ok(a, b, M, 1e-6, False)  # "not confirmed": the caller runs the torch checks
    M[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"\bM\b"):
        pg.emd2(a[0], b[0], M[0])
