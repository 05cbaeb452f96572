"""The emd2_points rows of bench/_emd_families.py's DOTmark part: the pixel centres it passes are
grid_cost's, so its emd2_points call solves the same problem as the dense rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pygan import ot

try:
    from pygan.bench import _emd_families as fam
except ImportError:  # a checkout used without installing
    from bench import _emd_families as fam


@pytest.mark.parametrize("res", [1, 3, 16])
def test_pixel_centres_give_grid_cost(res):
    c = fam.pixel_centres(res)
    assert c.shape == (res * res, 2)
    np.testing.assert_allclose(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1), fam.grid_cost(res), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["white noise", "shapes"])
def test_points_row_matches_the_dense_problem(kind):
    """At 24 x 24 (576 pixels: the points path's coarse-to-fine start) the same cost as emd2 on grid_cost."""
    res = 24
    a, b = fam.dotmark_image(kind, res, 1), fam.dotmark_image(kind, res, 2)
    c = torch.from_numpy(fam.pixel_centres(res))
    cost, log = ot.emd2_points(c, c, torch.from_numpy(a), torch.from_numpy(b), metric="sqeuclidean", log=True)
    assert log["status"] == "optimal"
    dense = ot.emd2(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(fam.grid_cost(res)))
    assert float(cost) == pytest.approx(float(dense), rel=1e-9)
