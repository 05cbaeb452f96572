"""The EMD API on bad input, and the fallback (the reference solver behind the same API)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ot_fixtures import F64, dense, random_problem, solve, solve_points
from pygan import ot


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


@pytest.mark.parametrize("zeros", [False, True])
def test_fallback_matches_extension(zeros, request):
    a, b, M = random_problem(9, 12, seed=71, zeros=zeros)
    x, y = torch.randn(9, 2, dtype=F64), torch.randn(12, 2, dtype=F64)
    Ms = torch.randn(3, 9, 12, dtype=F64)
    ext = (ot.emd2(a, b, M), ot.emd2_points(x, y, a, b, "sqeuclidean"), ot.emd2(a, b, Ms), ot.emd(a, b, M))
    request.getfixturevalue("no_extension")  # from here on, the reference solver behind the same API
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
    torch.testing.assert_close(ag.grad, lg["u"] - lg["u"].mean(), rtol=0, atol=0)


def test_fallback_rescale_and_numpy(no_extension):
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
