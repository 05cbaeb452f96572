"""The compiled 1-D path (csrc/emd/sorted_1d.cpp, taken on CPU when no gradient is tracked) against
its torch-op twin (the path autograd takes), scipy.stats.wasserstein_distance and POT: dtypes,
weights, ties, size 1, non-contiguous inputs, huge values, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pygan import _build
from pygan import ot as pg
from pygan.ot import _native_1d
from pygan.ot.solver_1d import wasserstein_1d

F64 = torch.float64
PS = [1, 1.5, 2, 3]


def twin(x, y, a=None, b=None, **kw):
    """The torch-op path: a tracked input makes wasserstein_1d skip the compiled solver."""
    x = x.detach().clone().requires_grad_()
    return wasserstein_1d(x, y, a, b, **kw).detach()


@pytest.fixture
def calls(monkeypatch):
    """Counts the compiled solver's calls, so a test can tell that it ran."""
    seen = []
    real = _native_1d.costs

    def spy(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_native_1d, "costs", spy)
    return seen


def test_native_path_is_taken(calls):
    assert _build.load()
    x, y = torch.randn(5, dtype=F64), torch.randn(4, dtype=F64)
    wasserstein_1d(x, y)
    assert len(calls) == 1
    twin(x, y)  # tracked: the torch ops
    with torch.no_grad():
        wasserstein_1d(x.clone().requires_grad_(), y)  # tracked but no grad mode: compiled
    assert len(calls) == 2


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
@pytest.mark.parametrize("weighted", ["uniform", "weighted", "zeros", "shared", "one_side"])
def test_against_torch_twin(p, batch, weighted):
    gen = torch.Generator().manual_seed(len(batch) * 31 + int(4 * p))
    n, m = 23, 17
    x, y = torch.randn((n, *batch), generator=gen, dtype=F64), torch.randn((m, *batch), generator=gen, dtype=F64)
    a = b = None
    if weighted == "shared":
        a, b = torch.rand(n, generator=gen, dtype=F64), torch.rand(m, generator=gen, dtype=F64)
    elif weighted != "uniform":
        a = torch.rand((n, *batch), generator=gen, dtype=F64) + 0.05
        b = None if weighted == "one_side" else torch.rand((m, *batch), generator=gen, dtype=F64) + 0.05
        if weighted == "zeros":
            a[::4] = 0.0
            b[1::3] = 0.0
    got = wasserstein_1d(x, y, a, b, p=p)
    assert got.shape == batch and got.dtype == F64
    torch.testing.assert_close(got, twin(x, y, a, b, p=p), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_dtypes(dtype):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 3, generator=gen).to(dtype), torch.randn(30, 3, generator=gen).to(dtype)
    w = torch.rand(40, generator=gen).to(dtype)
    got = wasserstein_1d(x, y, w, p=2)
    assert got.dtype == dtype
    # The compiled path sums in float64 and rounds once: at least as close to the float64 answer
    # as the twin, which computes in float32 for the reduced dtypes.
    exact = wasserstein_1d(x.double(), y.double(), w.double(), p=2)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6, F64: 1e-14}[dtype]
    torch.testing.assert_close(got.double(), exact.to(dtype).double(), rtol=tol, atol=tol)
    torch.testing.assert_close(got.double(), twin(x, y, w, p=2).double(), rtol=4 * tol, atol=4 * tol)


@pytest.mark.parametrize("p", PS)
def test_ties(p):
    gen = torch.Generator().manual_seed(4)
    # Integer values: many ties inside each side and across the sides; equal cumulative weights.
    x = torch.randint(0, 5, (60, 2), generator=gen).to(F64)
    y = torch.randint(0, 5, (40, 2), generator=gen).to(F64)
    torch.testing.assert_close(wasserstein_1d(x, y, p=p), twin(x, y, p=p), rtol=1e-13, atol=1e-15)
    w = torch.randint(0, 3, (60, 2), generator=gen).to(F64) + torch.tensor([0.0, 1.0], dtype=F64)
    w[0] = 1.0  # a positive total in every column
    torch.testing.assert_close(wasserstein_1d(x, y, w, p=p), twin(x, y, w, p=p), rtol=1e-13, atol=1e-15)


def test_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for n, m in [(1, 1), (1, 7), (500, 333), (2000, 2000)]:
        x, y = rng.normal(size=n), rng.standard_cauchy(size=m)
        a, b = rng.random(n), rng.random(m)
        assert float(pg.wasserstein_1d(x, y, p=1)) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-11)
        assert float(pg.wasserstein_1d(x, y, a, b, p=1)) == pytest.approx(
            stats.wasserstein_distance(x, y, a, b), rel=1e-11)
        xr, yr = np.round(x), np.round(y)  # ties
        assert float(pg.wasserstein_1d(xr, yr, a, b, p=1)) == pytest.approx(
            stats.wasserstein_distance(xr, yr, a, b), rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("p", PS)
def test_against_pot_large(p):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(5000, 3)), rng.normal(size=(4000, 3)) * 2 + 1
    a, b = rng.random((5000, 3)), rng.random((4000, 3))
    a, b = a / a.sum(0), b / b.sum(0)
    np.testing.assert_allclose(pg.wasserstein_1d(x, y, a, b, p=p), ot.wasserstein_1d(x, y, a, b, p=p), rtol=1e-10)
    np.testing.assert_allclose(pg.wasserstein_1d(x, y, p=p), ot.wasserstein_1d(x, y, p=p), rtol=1e-10)
    xs, ys = np.sort(np.round(x, 1), 0), np.sort(np.round(y, 1), 0)  # ties, sorted: require_sort=False
    np.testing.assert_allclose(pg.wasserstein_1d(xs, ys, p=p, require_sort=False),
                               ot.wasserstein_1d(xs, ys, p=p, require_sort=False), rtol=1e-10)


def _hard_values(rng, n):
    """Values that a wrong key map or digit pass would misorder: both signs, +-0.0, subnormals,
    magnitudes from 1e-300 to 1e300, exact ties, and a run of values one ulp apart."""
    mags = 10.0 ** rng.uniform(-300, 300, size=n)
    x = np.where(rng.random(n) < 0.5, -mags, mags)
    k = n // 8
    x[:k] = rng.choice([0.0, -0.0, 5e-324, -5e-324, 1.0, -1.0], size=k)  # zeros, subnormals, ties
    x[k:2 * k] = np.nextafter(1.0, 2.0, dtype=np.float64) + np.arange(k) * np.spacing(1.0)
    return rng.permutation(x)


@pytest.mark.parametrize("n", [2047, 2048, 5000])  # the radix sort takes sides of 2048 points and more
@pytest.mark.parametrize("kind", ["uniform", "weighted", "plan"])
def test_large_sides_sort_exactly(n, kind):
    """Sides large enough for the radix sort, each record kind (value; value and weight; value and
    index): the sorted matching exactly as np.sort orders the values."""
    rng = np.random.default_rng(n)
    x, y = _hard_values(rng, n), _hard_values(rng, n)
    sx, sy = np.sort(x), np.sort(y)
    w1 = float(np.mean(np.abs(sx - sy)))  # W1 of equal-size uniform sides: the sorted gaps' mean
    if kind == "uniform":
        assert float(pg.wasserstein_1d(x, y, p=1)) == pytest.approx(w1, rel=1e-12)
    elif kind == "weighted":
        one = np.ones(n)  # equal weights through the weighted path: the sorted gaps again
        assert float(pg.wasserstein_1d(x, y, one, one, p=1)) == pytest.approx(w1, rel=1e-12)
        a, b = rng.random(n), rng.random(n)
        tx, ty, ta, tb = map(torch.tensor, (x, y, a, b))
        torch.testing.assert_close(wasserstein_1d(tx, ty, ta, tb, p=1), twin(tx, ty, ta, tb, p=1), rtol=1e-12,
                                   atol=0)
    else:
        G = pg.emd_1d(x, y, metric="euclidean", dense=False).tocoo()
        assert G.nnz == n and np.allclose(G.data, 1.0 / n, rtol=1e-12, atol=0)  # (i + 1) / n differences
        # The plan joins the i-th smallest x to the i-th smallest y: as a set of value pairs
        # (which index of a run of equal values goes where is free).
        got = np.stack([x[G.row], y[G.col]])
        got = got[:, np.lexsort((got[1], got[0]))]
        np.testing.assert_array_equal(got, np.stack([sx, sy]))


def test_size_one_and_empty_batch():
    x, y = torch.tensor([2.0], dtype=F64), torch.tensor([-1.0, 5.0], dtype=F64)
    assert float(wasserstein_1d(x, y, p=2)) == pytest.approx(0.5 * 9 + 0.5 * 9)
    assert float(wasserstein_1d(x, x, p=3)) == 0.0
    assert wasserstein_1d(torch.randn(3, 0, dtype=F64), torch.randn(5, 0, dtype=F64)).shape == (0,)
    assert wasserstein_1d(torch.randn(3, 2, 0), torch.randn(5, 2, 0), torch.rand(3)).shape == (2, 0)


def test_non_contiguous():
    gen = torch.Generator().manual_seed(7)
    base_x, base_y = torch.randn(3, 50, generator=gen, dtype=F64), torch.randn(4, 40, generator=gen, dtype=F64)
    x, y = base_x.T, base_y.T[::2]  # [50, 3] transposed, [20, 4][:, ::?] strided rows
    y = y[:, 1:4]
    w = torch.rand(100, generator=gen, dtype=F64)[::2]
    assert not x.is_contiguous() and not y.is_contiguous() and not w.is_contiguous()
    got = wasserstein_1d(x, y, w, p=1.5)
    torch.testing.assert_close(got, wasserstein_1d(x.contiguous(), y.contiguous(), w.contiguous(), p=1.5),
                               rtol=0, atol=0)
    torch.testing.assert_close(got, twin(x, y, w, p=1.5), rtol=1e-12, atol=1e-14)


def test_huge_values():
    big = torch.tensor([1e308, -1e308, 3.0], dtype=F64)
    assert float(wasserstein_1d(big, -big)) == 2.0  # sorted: only 3 and -3 differ
    far = torch.tensor([-1e308, -1e308], dtype=F64)
    assert float(wasserstein_1d(big[:2], far)) == float("inf")  # |1e308 - -1e308| overflows
    assert float(wasserstein_1d(big, big, p=2)) == 0.0
    x = torch.tensor([1e154, 0.0], dtype=F64)
    assert float(wasserstein_1d(x, torch.zeros(2, dtype=F64), p=2)) == pytest.approx(0.5e308, rel=1e-14)
    x = torch.tensor([1e300, -1e300], dtype=F64)  # each |gap| is finite, the sum of squares is not
    assert float(wasserstein_1d(x, torch.zeros(1, dtype=F64), p=2)) == float("inf")


def test_nan_and_inf_rejected_before_the_solver(calls):
    x = torch.tensor([0.0, float("nan")], dtype=F64)
    with pytest.raises(ValueError, match="u_values"):
        wasserstein_1d(x, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="v_weights"):
        wasserstein_1d(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), None,
                       torch.tensor([1.0, float("inf")], dtype=F64))
    assert calls == []


def test_threads_give_the_same_answer():
    gen = torch.Generator().manual_seed(8)
    x, y = torch.randn(3000, 16, generator=gen, dtype=F64), torch.randn(2000, 16, generator=gen, dtype=F64)
    w = torch.rand(3000, 16, generator=gen, dtype=F64)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = wasserstein_1d(x, y, w, p=2)
        torch.set_num_threads(2)
        two = wasserstein_1d(x, y, w, p=2)
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(one, two)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "minkowski"])
def test_emd_1d_plan_against_pot_with_ties(metric):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(9)
    x, y = np.round(rng.normal(size=300), 1), np.round(rng.normal(size=200) + 0.5, 1)
    a, b = rng.random(300), rng.random(200)
    a, b = a / a.sum(), b / b.sum()
    kw = {"p": 1.5} if metric == "minkowski" else {}
    G = pg.emd_1d(x, y, a, b, metric=metric, **kw)
    # With ties the optimal plan is not unique: compare marginals and cost, and the cost with POT's.
    np.testing.assert_allclose(G.sum(1), a, atol=1e-15)
    np.testing.assert_allclose(G.sum(0), b, atol=1e-15)
    C = np.abs(x[:, None] - y[None, :]) ** {"sqeuclidean": 2, "euclidean": 1, "minkowski": 1.5}[metric]
    pot = ot.emd2_1d(x, y, a, b, metric=metric, **kw)
    assert float((G * C).sum()) == pytest.approx(pot, rel=1e-12)
    assert float(pg.emd2_1d(x, y, a, b, metric=metric, **kw)) == pytest.approx(pot, rel=1e-12)
    cost, log = pg.emd2_1d(torch.tensor(x), torch.tensor(y), dense=False, log=True, metric=metric, **kw)
    assert log["G"].is_sparse and float((log["G"].to_dense().numpy() * C).sum()) == pytest.approx(float(cost),
                                                                                                 rel=1e-12)


def test_emd_1d_distinct_values_match_pot_plan():
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=50), rng.normal(size=35)
    b = rng.random(35)
    b /= b.sum()
    np.testing.assert_allclose(pg.emd_1d(x, y, None, b), ot.emd_1d(x, y, None, b), atol=1e-15)
    np.testing.assert_allclose(pg.emd_1d(x, y, None, b, dense=False).toarray(),
                               ot.emd_1d(x, y, None, b, dense=False).toarray(), atol=1e-15)


def test_binding_misuse_is_refused():
    mod = _build.module()
    x = torch.randn(1, 4, dtype=F64)
    with pytest.raises(ValueError, match="float64"):
        mod.emd_1d(x.float(), x, torch.empty(0, 0, dtype=F64), torch.empty(0, 0, dtype=F64), 1.0, False, False)
    with pytest.raises(ValueError, match="weight shapes"):
        mod.emd_1d(x, x, torch.ones(1, 3, dtype=F64), torch.empty(0, 0, dtype=F64), 1.0, False, False)
    with pytest.raises(ValueError, match="p must be"):
        mod.emd_1d(x, x, torch.empty(0, 0, dtype=F64), torch.empty(0, 0, dtype=F64), 0.5, False, False)


def test_without_the_extension_the_torch_ops_answer(monkeypatch, calls):
    """No compiled module (PYGAN_DISABLE_EXT=1, a failed build): the torch twin runs, same numbers."""
    gen = torch.Generator().manual_seed(11)
    x, y, w = torch.randn(30, 2, generator=gen, dtype=F64), torch.randn(20, 2, generator=gen, dtype=F64), None
    compiled = wasserstein_1d(x, y, w, p=1.5)
    G = pg.emd_1d(x[:, 0], y[:, 0])
    monkeypatch.setattr(_native_1d._build, "load", lambda: False)
    assert len(calls) == 1
    torch.testing.assert_close(wasserstein_1d(x, y, w, p=1.5), compiled, rtol=1e-12, atol=1e-14)
    assert len(calls) == 1  # not called again
    torch.testing.assert_close(pg.emd_1d(x[:, 0], y[:, 0]), G, rtol=0, atol=1e-15)
