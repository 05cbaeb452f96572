"""The dense-matrix path on image pairs (squared Euclidean cost on a pixel grid, as in DOTmark),
large enough to take the restricted-arc path with its sub-sampled start and buffered selection of
the first arcs: white noise, smooth fields, shapes on an empty background (zero-mass pixels, whose
duals come from c-transforms at the end), tied costs and masses, identical and translated images.
Each solve is certified (tests/ot_fixtures.solve) and its cost compared with HiGHS (scipy's
linprog, when installed), POT's ot.emd2 (when installed) and, for the smallest, the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ot_fixtures import F64, solve
from pygan import ot
from pygan.ot import reference

from test_emd_strategies import highs_cost


def grid_cost(res: int) -> torch.Tensor:
    ys, xs = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    p = np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float64) / res
    return torch.from_numpy(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))


def image(kind: str, res: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, res), np.linspace(0, 1, res), indexing="ij")
    if kind == "white noise":
        img = rng.uniform(size=(res, res))
    elif kind == "smooth":
        cy, cx = rng.uniform(0.2, 0.8, size=2)
        img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05) + 1e-3
    elif kind == "shapes":  # a disc and a box on an empty background: most pixels have no mass
        img = np.zeros((res, res))
        cy, cx = rng.uniform(0.3, 0.7, size=2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 0.04] = 1.0
        y0, x0 = rng.integers(0, res // 2, size=2)
        img[y0:y0 + res // 5, x0:x0 + res // 4] = 2.0
    elif kind == "integer":  # tied masses: every pixel carries 1, 2 or 3
        img = rng.integers(1, 4, size=(res, res)).astype(np.float64)
    elif kind == "sparse dots":  # a handful of pixels with mass, the rest empty
        img = np.zeros(res * res)
        img[rng.choice(res * res, size=res, replace=False)] = rng.uniform(0.5, 1.0, size=res)
    else:
        raise AssertionError(kind)
    img = img.ravel()
    return torch.from_numpy(img / img.sum())


KINDS = ["white noise", "smooth", "shapes", "integer", "sparse dots"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("res", [12, 16])
def test_grid_pairs_against_highs(kind, res):
    M = grid_cost(res)
    a, b = image(kind, res, 2 * res), image(kind, res, 2 * res + 1)
    _, log = solve(a, b, M)
    assert float(log["cost"]) == pytest.approx(highs_cost(a, b, M), rel=1e-8, abs=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_grid_pairs_against_pot(kind):
    pot = pytest.importorskip("ot")
    res = 20
    M = grid_cost(res)
    a, b = image(kind, res, 7), image(kind, res, 8)
    _, log = solve(a, b, M)
    expected = pot.emd2(a.numpy(), b.numpy(), M.numpy(), numItermax=10**9)
    assert float(log["cost"]) == pytest.approx(float(expected), rel=1e-9, abs=1e-15)


def test_grid_pair_against_reference():
    res = 12
    M = grid_cost(res)
    a, b = image("shapes", res, 3), image("white noise", res, 4)
    _, log = solve(a, b, M)
    ref_cost = reference.emd(a, b, M)[3]
    assert float(log["cost"]) == pytest.approx(float(ref_cost), rel=1e-9)


def test_identical_images_cost_zero():
    # Every pixel's mass stays put: cost 0, and the duals certify it (ties everywhere at 0).
    res = 16
    M = grid_cost(res)
    a = image("integer", res, 5)
    _, log = solve(a, a.clone(), M)
    assert float(log["cost"]) == pytest.approx(0.0, abs=1e-15)


def test_translated_image():
    # A shape moved by (dy, dx) pixels with nothing else: the optimal plan is the translation, cost
    # (dy^2 + dx^2) / res^2 per unit of mass (squared Euclidean cost is translation-exact).
    res, dy, dx = 16, 3, 5
    img = torch.zeros(res, res, dtype=F64)
    img[2:8, 1:7] = torch.arange(36, dtype=F64).reshape(6, 6) + 1.0
    moved = torch.roll(img, shifts=(dy, dx), dims=(0, 1))
    a, b = img.ravel() / img.sum(), moved.ravel() / moved.sum()
    _, log = solve(a, b, grid_cost(res))
    assert float(log["cost"]) == pytest.approx((dy**2 + dx**2) / res**2, rel=1e-12)


def test_zero_mass_duals_are_feasible_on_every_pair():
    # Rows and columns without mass get c-transformed duals: u_i + v_j <= C_ij on all pairs,
    # including those between two empty pixels, and tight for each empty row's best column.
    res = 16
    M = grid_cost(res)
    a, b = image("shapes", res, 9), image("sparse dots", res, 10)
    _, log = solve(a, b, M)
    u, v = torch.as_tensor(log["u"], dtype=F64), torch.as_tensor(log["v"], dtype=F64)
    slack = M - u[:, None] - v[None, :]
    assert float(slack.min()) >= -1e-12
    empty = a == 0
    assert bool(empty.any())
    assert float(slack[empty].min(dim=1).values.abs().max()) <= 1e-12
    assert bool(torch.isfinite(u).all() and torch.isfinite(v).all())
