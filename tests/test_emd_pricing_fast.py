"""The pricing paths made for speed, each checked against POT (and the certificate on every pair):

- the adaptive first-arc count of the dense path (NOTE: [Adaptive neighbours] in
  csrc/emd/transport.cpp; problems of at least 2^19 active pairs): Euclidean clouds shifted
  apart, whose reduced costs form a cone of nearly tight pairs and get 128 first arcs per row,
  beside clouds that keep 32, with zero masses, tied costs (where the growth cannot be measured),
  extreme cost scales and non-contiguous inputs;
- the vectorised bounded pricing of emd2_points (NOTE: [Bounded pricing] in
  csrc/emd/shielded_pricing.cpp): 1-, 2- and 3-D points, every metric, and coordinates whose
  squared distances overflow float64 (the pairs then fall back to the scaled formula).
"""

from __future__ import annotations

import pytest
import torch

from ot_fixtures import F64, cdist, pot, pot_cost, solve, solve_points  # noqa: F401 (pot: a fixture)
from pygan import ot


def clouds(n: int, m: int, d: int, shift: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=F64, generator=gen)
    y = torch.randn(m, d, dtype=F64, generator=gen)
    y[:, 0] += shift
    if d > 1:
        y[:, 1] += shift / 2
    return x, y


def weights(n: int, seed: int, zeros: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(n, dtype=F64, generator=gen) + 0.1
    if zeros:
        w[::5] = 0.0
    return w / w.sum()


def check_dense(pot, a, b, M):
    _, log = solve(a, b, M)
    scale = float(M.abs().max()) or 1.0
    assert float(log["cost"]) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9, abs=1e-12 * scale)
    return log


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0, 4.0, 16.0])
def test_shifted_clouds_dense(pot, shift):
    # Small shifts keep a bowl of reduced costs (32 first arcs), large ones make a cone (128).
    x, y = clouds(700, 900, 2, shift, 1)
    check_dense(pot, weights(700, 2), weights(900, 3), cdist(x, y))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_shifted_clouds_zero_masses(pot, p):
    x, y = clouds(1000, 900, 2, 3.0, 4)
    a, b = weights(1000, 5, zeros=True), weights(900, 6, zeros=True)
    log = check_dense(pot, a, b, cdist(x, y, p))
    assert torch.isfinite(log["u"]).all() and torch.isfinite(log["v"]).all()


def test_shifted_clouds_non_contiguous(pot):
    x, y = clouds(800, 720, 2, 4.0, 7)
    M = cdist(y, x).T  # a transposed view
    assert not M.is_contiguous()
    check_dense(pot, weights(800, 8), weights(720, 9), M)


@pytest.mark.parametrize("kind", ["equal", "few values", "duplicated points"])
def test_tied_costs(pot, kind):
    # Reduced costs that vanish for many pairs: the growth cannot be measured (k stays 32).
    gen = torch.Generator().manual_seed(10)
    n, m = 760, 720
    if kind == "equal":
        M = torch.ones(n, m, dtype=F64)
    elif kind == "few values":
        M = torch.randint(0, 3, (n, m), generator=gen).to(F64)
    else:
        x = torch.randint(0, 4, (n, 2), generator=gen).to(F64)
        y = torch.randint(0, 4, (m, 2), generator=gen).to(F64) + 5.0
        M = cdist(x, y)
    check_dense(pot, weights(n, 11), weights(m, 12), M)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_shifted_clouds_extreme_scales(pot, scale):
    # Against POT on the unscaled costs (POT's absolute tolerances misjudge costs of 1e-150).
    x, y = clouds(800, 700, 2, 4.0, 13)
    a, b, M = weights(800, 14), weights(700, 15), cdist(x, y)
    _, log = solve(a, b, M * scale)
    assert float(log["cost"]) / scale == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", 1.5])
def test_bounded_pricing_dimensions(pot, d, metric):
    x, y = clouds(900, 800, d, 1.5, 20 + d)
    a, b = weights(900, 16), weights(800, 17)
    cost, _ = solve_points(x, y, a, b, metric)
    p = {"euclidean": 1.0, "sqeuclidean": 2.0}.get(metric, metric)
    M = cdist(x, y, p)
    assert float(cost) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9, abs=1e-12 * float(M.max()))


def test_shapes_zero_mass_rows_get_c_transforms(pot):
    # Zero-mass rows' duals come from the certificate's own pass (NOTE: [Certificate]): an image
    # pair with an empty background, dense and as points, duals feasible on every pair.
    g = (torch.arange(40, dtype=F64) + 0.5) / 40
    P = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    a = ((P - 0.3).norm(dim=1) < 0.2).to(F64) + 1e-3 * (P[:, 0] < 0.1)
    b = ((P - torch.tensor([0.6, 0.7], dtype=F64)).abs().max(dim=1).values < 0.15).to(F64)
    a, b = a / a.sum(), b / b.sum()
    assert (a == 0).any() and (b == 0).any()
    M = cdist(P, P, 2.0)
    log = check_dense(pot, a, b, M)
    assert float(log["u"] @ a) == pytest.approx(float(log["v"] @ b), abs=1e-12)  # centred
    cost, _ = solve_points(P, P, a, b, "sqeuclidean")
    assert float(cost) == pytest.approx(float(log["cost"]), rel=1e-9)


def test_bounded_pricing_zero_masses(pot):
    x, y = clouds(900, 1000, 2, 2.0, 30)
    a, b = weights(900, 31, zeros=True), weights(1000, 32, zeros=True)
    cost, log = solve_points(x, y, a, b)
    M = cdist(x, y)
    assert float(cost) == pytest.approx(pot_cost(pot, a, b, M), rel=1e-9)
    assert torch.isfinite(log["u"]).all() and torch.isfinite(log["v"]).all()


@pytest.mark.parametrize("metric", ["euclidean", 1.5])
def test_bounded_pricing_overflowing_squares(pot, metric):
    # Coordinates of ~2^650 (~5e195): every squared distance overflows float64, the distances do
    # not. Scaling by a power of two is exact, so the cost is exactly scale^p times the cost of
    # the unscaled clouds (up to the solver's rounding).
    x, y = clouds(700, 650, 2, 2.0, 40)
    a, b = weights(700, 41), weights(650, 42)
    scale = 2.0 ** 650
    p = 1.0 if metric == "euclidean" else metric
    cost, log = ot.emd2_points(x * scale, y * scale, a, b, metric, log=True)
    assert log["status"] == "optimal"
    expected = pot_cost(pot, a, b, cdist(x, y, p))
    assert float(cost) / scale ** p == pytest.approx(expected, rel=1e-9)
