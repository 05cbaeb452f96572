"""pygan's fast 1-D OT loss (pygan.ot.solver_1d.wasserstein_1d, re-exported by pygan.ot): against the plain
definition (reference emd on |x - y|^p), against POT, closed forms, gradients, dtypes and input errors."""

from __future__ import annotations

import pytest
import torch

from pygan.ot import reference
from pygan.ot.solver_1d import wasserstein_1d
from testing import DEVICES

F64 = torch.float64
PS = [1, 1.5, 2, 3]


def sample(shape, gen, dtype=F64):
    return torch.randn(shape, dtype=dtype, generator=gen)


def weights(shape, gen, zeros=False):
    w = torch.rand(shape, dtype=F64, generator=gen) + 0.1
    if zeros:
        w[1::3] = 0.0  # zero-weight points inside the support
    return w


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
@pytest.mark.parametrize("weighted", ["uniform", "weighted", "zeros", "shared"])
def test_against_reference(p, batch, weighted):
    gen = torch.Generator().manual_seed(len(batch) * 7 + int(2 * p))
    n, m = 7, 5
    x, y = sample((n, *batch), gen), sample((m, *batch), gen)
    if weighted == "uniform":
        a = b = None
    elif weighted == "shared":  # 1-D weights used by every batch column
        a, b = weights((n,), gen), weights((m,), gen)
    else:
        a, b = weights((n, *batch), gen, weighted == "zeros"), weights((m, *batch), gen, weighted == "zeros")
    got = wasserstein_1d(x, y, a, b, p=p)
    assert got.shape == batch and got.dtype == F64
    torch.testing.assert_close(got, reference.wasserstein_1d(x, y, a, b, p=p), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("p", PS)
def test_against_pot(p):
    ot = pytest.importorskip("ot")
    gen = torch.Generator().manual_seed(11)
    x, y = sample((9, 4), gen), sample((6, 4), gen)
    a, b = weights((9, 4), gen), weights((6, 4), gen)
    a, b = a / a.sum(0), b / b.sum(0)
    torch.testing.assert_close(wasserstein_1d(x, y, a, b, p=p), ot.wasserstein_1d(x, y, a, b, p=p),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(wasserstein_1d(x, y, p=p), ot.wasserstein_1d(x, y, p=p), rtol=1e-12, atol=1e-14)
    # POT integrates unnormalised weights over [0, s]: s times pygan's value for equal totals s.
    torch.testing.assert_close(3.0 * wasserstein_1d(x, y, a, b, p=p), ot.wasserstein_1d(x, y, 3 * a, 3 * b, p=p),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("p", PS)
def test_sorted_matching_closed_form(p):
    gen = torch.Generator().manual_seed(12)
    x, y = sample((10, 3), gen), sample((10, 3), gen)
    expected = ((x.sort(0).values - y.sort(0).values).abs() ** p).mean(0)
    torch.testing.assert_close(wasserstein_1d(x, y, p=p), expected, rtol=1e-12, atol=1e-14)


def test_translation_and_identity():
    gen = torch.Generator().manual_seed(13)
    x, a = sample((8,), gen), weights((8,), gen)
    for p in PS:
        assert float(wasserstein_1d(x, x + 0.5, a, a, p=p)) == pytest.approx(0.5**p, rel=1e-12)
        assert float(wasserstein_1d(x, x.flip(0), a, a.flip(0), p=p)) == pytest.approx(0.0, abs=1e-15)
    # Weights are normalised: only their ratios matter.
    torch.testing.assert_close(wasserstein_1d(x, x + 1, 5 * a, a / 7, p=2), wasserstein_1d(x, x + 1, a, a, p=2))


def test_single_points_and_duplicates():
    x = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=F64)  # duplicates
    y = torch.tensor([0.5], dtype=F64)
    assert float(wasserstein_1d(x, y, p=2)) == pytest.approx(0.25, rel=1e-14)
    assert float(wasserstein_1d(y, y + 2, p=3)) == pytest.approx(8.0, rel=1e-14)


@pytest.mark.parametrize("p", PS)
def test_gradcheck(p):
    gen = torch.Generator().manual_seed(14)
    # Distinct, well separated values and generic weights: away from the kinks (ties) of the loss.
    x = (torch.randperm(12, generator=gen)[:6].to(F64) + 0.3 * torch.rand(6, dtype=F64, generator=gen))
    y = (torch.randperm(12, generator=gen)[:5].to(F64) + 0.1 + 0.3 * torch.rand(5, dtype=F64, generator=gen))
    x, y = x.reshape(3, 2).requires_grad_(), y[:4].reshape(2, 2).requires_grad_()
    a, b = weights((3, 2), gen).requires_grad_(), weights((2, 2), gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda *t: wasserstein_1d(*t, p=p), (x, y, a, b))


def test_gradient_is_plan_times_cost_derivative():
    # dW/dx_i = sum_j P_ij * p * |x_i - y_j|^(p-1) * sign(x_i - y_j) with P the sorted matching.
    gen = torch.Generator().manual_seed(15)
    x, y = sample((6,), gen).requires_grad_(), sample((6,), gen)
    wasserstein_1d(x, y, p=2).backward()
    matched = y.sort().values[x.detach().argsort().argsort()]
    torch.testing.assert_close(x.grad, 2 * (x.detach() - matched) / 6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_dtypes_and_devices(dtype, device):
    gen = torch.Generator().manual_seed(16)
    x, y = sample((7, 2), gen), sample((4, 2), gen)
    expected = wasserstein_1d(x, y, p=2)
    got = wasserstein_1d(x.to(device, dtype), y.to(device, dtype), p=2)
    assert got.dtype == dtype and got.device.type == device
    tol = {torch.float16: 1e-2, torch.bfloat16: 3e-2, torch.float32: 1e-5, F64: 1e-12}[dtype]
    torch.testing.assert_close(got.cpu().to(F64), expected, rtol=tol, atol=tol)
    # Mixed dtypes promote.
    assert wasserstein_1d(x.float(), y, torch.ones(7, dtype=torch.float32)).dtype == F64


def test_empty_batch():
    got = wasserstein_1d(torch.randn(3, 0, 2), torch.randn(4, 0, 2))
    assert got.shape == (0, 2)


def _bad_inputs():
    x, y = torch.randn(4, 2, dtype=F64), torch.randn(3, 2, dtype=F64)
    wa, wb = torch.rand(4, 2, dtype=F64), torch.rand(3, 2, dtype=F64)
    nan = x.clone()
    nan[0, 0] = float("nan")
    return [
        ((nan, y), {}, ValueError, "u_values"),
        ((x, y.clone().fill_(float("inf"))), {}, ValueError, "v_values"),
        ((x, y, -wa), {}, ValueError, "u_weights"),
        ((x, y, wa, wb * float("nan")), {}, ValueError, "v_weights"),
        ((x, y, torch.zeros(4, 2, dtype=F64)), {}, ValueError, "u_weights"),
        ((x, y, wa, torch.cat([wb[:, :1], 0 * wb[:, 1:]], 1)), {}, ValueError, "v_weights"),
        ((x, y, wa[:3]), {}, ValueError, "u_weights"),
        ((x, y, wa, wb[:, :1]), {}, ValueError, "v_weights"),
        ((x, y[:, :1]), {}, ValueError, "v_values"),
        ((x[:0], y), {}, ValueError, "u_values"),
        ((x, y[:0]), {}, ValueError, "v_values"),
        ((torch.tensor(1.0), y), {}, ValueError, "u_values"),
        ((x, y), {"p": 0.5}, ValueError, "p"),
        ((x, y), {"p": float("inf")}, ValueError, "p"),
        ((x, y), {"p": float("nan")}, ValueError, "p"),
        ((x, y), {"p": "2"}, TypeError, "p"),
        ((x, y), {"p": True}, TypeError, "p"),
        ((x.long(), y), {}, TypeError, "u_values"),
        ((x, y > 0), {}, TypeError, "v_values"),
        ((x, y.to(torch.complex128)), {}, TypeError, "v_values"),
        ((x, y, wa.int()), {}, TypeError, "u_weights"),
        ((x.numpy(), y), {}, TypeError, "u_values"),
        ((x, y, [1.0, 2.0, 3.0, 4.0]), {}, TypeError, "u_weights"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs())))
def test_bad_inputs(case):
    args, kwargs, exc, name = _bad_inputs()[case]
    with pytest.raises(exc, match=rf"\b{name}\b"):
        wasserstein_1d(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# POT's 1-D API: numpy in / numpy out, require_sort, return_plans, emd_1d / emd2_1d, inf


def test_numpy_in_numpy_out():
    import numpy as np

    from pygan import ot

    gen = np.random.default_rng(0)
    x, y = gen.normal(size=20), gen.normal(size=15) + 1
    got = ot.wasserstein_1d(x, y, p=2)
    assert isinstance(got, np.floating)
    assert float(got) == pytest.approx(float(wasserstein_1d(torch.tensor(x), torch.tensor(y), p=2)), rel=1e-14)
    batched = ot.wasserstein_1d(gen.normal(size=(9, 3)), gen.normal(size=(7, 3)))
    assert isinstance(batched, np.ndarray) and batched.shape == (3,)


def test_require_sort_false_on_sorted_values():
    gen = torch.Generator().manual_seed(1)
    x, y = sample(12, gen).sort().values, sample(9, gen).sort().values
    a, b = weights(12, gen), weights(9, gen)
    assert float(wasserstein_1d(x, y, a, b, p=1.5, require_sort=False)) == pytest.approx(
        float(wasserstein_1d(x, y, a, b, p=1.5)), rel=1e-14)


@pytest.mark.parametrize("kind", [True, "coo_tuple"])
def test_return_plans(kind):
    import numpy as np

    gen = torch.Generator().manual_seed(2)
    x, y = sample((10, 2), gen), sample((8, 2), gen)
    a = weights(10, gen)
    cost, plans = wasserstein_1d(x, y, a, None, p=2, return_plans=kind)
    assert len(plans) == 2
    for k, plan in enumerate(plans):
        if kind is True:
            P = plan.to_dense()
        else:
            P = torch.zeros(10, 8, dtype=F64).index_put_((plan.rows, plan.cols), plan.data, accumulate=True)
        torch.testing.assert_close(P.sum(1), a / a.sum(), rtol=0, atol=1e-14)
        torch.testing.assert_close(P.sum(0), torch.full((8,), 1 / 8, dtype=F64), rtol=0, atol=1e-14)
        C = (x[:, k, None] - y[None, :, k]) ** 2
        assert float((P * C).sum()) == pytest.approx(float(cost[k]), rel=1e-12)
    pytest.importorskip("scipy")  # numpy plans are scipy sparse matrices
    _, np_plans = wasserstein_1d(x.numpy(), y.numpy(), return_plans=True)
    assert np_plans[0].shape == (10, 8) and np.isclose(np_plans[0].toarray().sum(), 1.0)


def test_huge_values_give_inf_not_nan():
    # The true answers overflow float64; zero-length pieces (0 * inf) must not turn them into NaN.
    assert float(wasserstein_1d(torch.tensor([-1e308], dtype=F64), torch.tensor([1e308], dtype=F64))) == float("inf")
    x = torch.tensor([-1e308, 0.0], dtype=F64)  # finite: 0.5 * 1e308 twice
    assert float(wasserstein_1d(x, torch.tensor([1e308, 0.0], dtype=F64))) == 1e308
    assert float(wasserstein_1d(torch.tensor([1e200], dtype=F64), torch.tensor([-1e200], dtype=F64), p=2)) == float("inf")


@pytest.mark.parametrize("metric, p", [("sqeuclidean", 2.0), ("minkowski", 3.0), ("euclidean", 1.0), ("cityblock", 1.0)])
def test_emd_1d_and_emd2_1d_against_pot(metric, p):
    import numpy as np

    from pygan import ot as pg

    pot = pytest.importorskip("ot")
    gen = np.random.default_rng(3)
    x, y = gen.normal(size=11), gen.normal(size=7) * 2
    a = gen.random(11)
    a /= a.sum()
    kw = {"p": p} if metric == "minkowski" else {}
    G = pg.emd_1d(x, y, a, None, metric=metric, **kw)
    np.testing.assert_allclose(G, pot.emd_1d(x, y, a, None, metric=metric, **kw), atol=1e-14)
    assert pg.emd2_1d(x, y, a, None, metric=metric, **kw) == pytest.approx(
        pot.emd2_1d(x, y, a, None, metric=metric, **kw), rel=1e-12)
    Gs, log = pg.emd_1d(torch.tensor(x), torch.tensor(y), dense=False, log=True, metric=metric, **kw)
    assert Gs.is_sparse and float(log["cost"]) == pytest.approx(pot.emd2_1d(x, y, metric=metric, **kw), rel=1e-12)


def test_emd_1d_bad_input():
    from pygan import ot as pg

    with pytest.raises(ValueError, match="metric"):
        pg.emd_1d(torch.rand(3), torch.rand(4), metric="hamming")
    with pytest.raises(ValueError, match="x_a"):
        pg.emd_1d(torch.rand(3, 2), torch.rand(4))
    with pytest.raises(ValueError, match="masses differ"):
        pg.emd_1d(torch.rand(3), torch.rand(4), torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="return_plans"):
        wasserstein_1d(torch.rand(3), torch.rand(4), return_plans="csr")
