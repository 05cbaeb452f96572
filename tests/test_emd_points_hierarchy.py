"""emd2_points on clouds large enough for its coarse-to-fine start (k-d cells of about four points,
the coarse problem solved between the cells' centroids and prolongated) and its bounded pricing
(blocks of pairs skipped by a distance bound): every answer against POT's dense solve, the dense
pygan path (another strategy) and its certificate on every pair. Clustered, collinear and
duplicated points, 1-D and 3-D points, zero weights, far-apart clouds, every metric."""

from __future__ import annotations

import pytest
import torch

from ot_fixtures import F64, cdist, pot, pot_cost, solve, solve_points  # noqa: F401 (pot: a fixture)
from pygan import ot

METRICS = ["euclidean", "sqeuclidean", 1.5, 3]


def _p(metric) -> float:
    return {"euclidean": 1.0, "sqeuclidean": 2.0}.get(metric, metric)


def check(pot, x, y, a=None, b=None, metric="euclidean"):
    """emd2_points against POT on the dense costs and against the dense pygan solve."""
    cost, log = solve_points(x, y, a, b, metric)
    M = cdist(x, y, _p(metric))
    n, m = M.shape
    ad = torch.full((n,), 1.0 / n, dtype=F64) if a is None else a
    bd = torch.full((m,), 1.0 / m, dtype=F64) if b is None else b
    scale = float(M.abs().max()) or 1.0
    assert float(cost) == pytest.approx(pot_cost(pot, ad, bd, M), rel=1e-9, abs=1e-12 * scale)
    _, dense_log = solve(ad, bd, M)
    assert float(cost) == pytest.approx(float(dense_log["cost"]), rel=1e-9, abs=1e-12 * scale)
    return cost, log


def clusters(n: int, d: int, seed: int, centres: int = 6, spread: float = 0.05):
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, d, dtype=F64, generator=gen) * 3
    pick = torch.randint(0, centres, (n,), generator=gen)
    return c[pick] + spread * torch.randn(n, d, dtype=F64, generator=gen)


def weights(n: int, seed: int, zeros: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(n, dtype=F64, generator=gen) + 0.05
    if zeros:
        w[1::3] = 0.0
    return w / w.sum()


@pytest.mark.parametrize("metric", METRICS)
def test_clustered_clouds_every_metric(pot, metric):
    x, y = clusters(420, 2, 1), clusters(380, 2, 2)
    check(pot, x, y, weights(420, 3), weights(380, 4), metric)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_far_apart_clouds(pot, metric):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(500, 2, dtype=F64, generator=gen)
    y = torch.randn(450, 2, dtype=F64, generator=gen) + torch.tensor([1000.0, -300.0], dtype=F64)
    check(pot, x, y, metric=metric)


def test_collinear_points(pot):
    gen = torch.Generator().manual_seed(6)
    t, s = torch.rand(400, dtype=F64, generator=gen), torch.rand(350, dtype=F64, generator=gen) + 0.3
    direction = torch.tensor([0.6, 0.8], dtype=F64)
    check(pot, t[:, None] * direction, s[:, None] * direction, weights(400, 7), weights(350, 8), "sqeuclidean")


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_duplicate_points(pot, metric):
    gen = torch.Generator().manual_seed(9)
    sites = torch.randn(40, 2, dtype=F64, generator=gen)
    x = sites[torch.randint(0, 40, (450,), generator=gen)]
    y = sites[torch.randint(0, 40, (400,), generator=gen)]
    check(pot, x, y, weights(450, 10), weights(400, 11), metric)
    # The same cloud on both sides: the optimum is zero, every point to itself.
    cost, _ = solve_points(x, x, metric=metric)
    assert float(cost) == pytest.approx(0.0, abs=1e-14)


def test_one_dimensional_points(pot):
    gen = torch.Generator().manual_seed(12)
    x, y = torch.randn(600, dtype=F64, generator=gen), torch.randn(500, dtype=F64, generator=gen) * 2 + 1
    a, b = weights(600, 13), weights(500, 14)
    cost, _ = check(pot, x, y, a, b, "euclidean")
    assert float(cost) == pytest.approx(float(pot.wasserstein_1d(x.numpy(), y.numpy(), a.numpy(), b.numpy(), p=1)),
                                        rel=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", 3])
def test_three_dimensional_points(pot, metric):
    x, y = clusters(400, 3, 15, spread=0.5), clusters(420, 3, 16, spread=0.5)
    check(pot, x, y, metric=metric)


def test_zero_weights(pot):
    x, y = clusters(450, 2, 17, spread=0.3), clusters(400, 2, 18, spread=0.3)
    a, b = weights(450, 19, zeros=True), weights(400, 20)
    b[::5] = 0.0
    b = b / b.sum()
    check(pot, x, y, a, b, "sqeuclidean")
    check(pot, x, y, a, b, "euclidean")


def test_pixel_grid_images(pot):
    """The DOTmark layout: two images on the same 32 x 32 pixel centres, squared Euclidean."""
    res = 32
    c = (torch.arange(res, dtype=F64) + 0.5) / res
    centres = torch.cartesian_prod(c, c)
    gen = torch.Generator().manual_seed(21)
    a = torch.rand(res * res, dtype=F64, generator=gen) ** 3
    b = torch.rand(res * res, dtype=F64, generator=gen) ** 3
    a[:100] = 0.0  # an empty corner, as on the shapes' background
    check(pot, centres, centres, a / a.sum(), b / b.sum(), "sqeuclidean")


@pytest.mark.parametrize("shift", [0.0, 1.0, 4.0])
def test_recursive_levels(pot, shift):
    """1500 x 1300: the coarse problem is itself coarsened (two levels below the fine one)."""
    gen = torch.Generator().manual_seed(22)
    x = torch.randn(1500, 2, dtype=F64, generator=gen)
    y = torch.randn(1300, 2, dtype=F64, generator=gen) + torch.tensor([shift, 0.5 * shift], dtype=F64)
    check(pot, x, y, weights(1500, 23), weights(1300, 24), "euclidean")
    check(pot, x, y, weights(1500, 23), weights(1300, 24), "sqeuclidean")


def test_large_clouds_certificate():
    """3000 x 3000 (three levels): the certificate on every pair, as the plain reference cannot."""
    gen = torch.Generator().manual_seed(25)
    x = torch.rand(3000, 2, dtype=F64, generator=gen)
    y = torch.rand(3000, 2, dtype=F64, generator=gen) * 0.5 + 0.75
    for metric in ("euclidean", "sqeuclidean"):
        solve_points(x, y, metric=metric)


def test_against_highs():
    """HiGHS (scipy's linprog, an independent LP solver) on a clustered 270 x 260 problem."""
    optimize = pytest.importorskip("scipy.optimize")
    sparse = pytest.importorskip("scipy.sparse")

    x, y = clusters(270, 2, 26, spread=0.2), clusters(260, 2, 27, spread=0.2)
    a, b = weights(270, 28), weights(260, 29)
    cost, _ = solve_points(x, y, a, b, "sqeuclidean")
    M = cdist(x, y, 2.0).numpy()
    n, m = M.shape
    rows = sparse.kron(sparse.eye(n), sparse.csr_matrix(torch.ones(1, m).numpy()))
    cols = sparse.kron(sparse.csr_matrix(torch.ones(1, n).numpy()), sparse.eye(m))
    res = optimize.linprog(M.ravel(), A_eq=sparse.vstack([rows, cols]).tocsr(), b_eq=torch.cat([a, b]).numpy(),
                           bounds=(0, None), method="highs")
    assert res.status == 0
    assert float(cost) == pytest.approx(float(res.fun), rel=1e-9)


def test_iteration_limit_is_not_optimal():
    """With a pivot budget far below what the solve needs, the status says so and the plan still
    meets the marginals (the certificate's residual), never 'optimal'."""
    gen = torch.Generator().manual_seed(30)
    x, y = torch.randn(800, 2, dtype=F64, generator=gen), torch.randn(800, 2, dtype=F64, generator=gen) + 2
    with pytest.warns(UserWarning, match="max_iter"):
        _, log = ot.emd2_points(x, y, metric="sqeuclidean", log=True, max_iter=50)
    assert log["status"] == "iteration_limit"
    plan = log["plan"].to_dense()
    assert torch.allclose(plan.sum(1), torch.full((800,), 1 / 800, dtype=F64), atol=1e-12)
    assert torch.allclose(plan.sum(0), torch.full((800,), 1 / 800, dtype=F64), atol=1e-12)
