"""bench/_emd_families.py's generators: DOTmark-style images (positive where they should be,
normalised, reproducible from the seed, distinct per class) and the pixel-grid cost."""

from __future__ import annotations

import numpy as np
import pytest

try:
    from pygan.bench import _emd_families as fam
except ImportError:  # a checkout used without installing
    from bench import _emd_families as fam


@pytest.mark.parametrize("kind", fam.DOTMARK_CLASSES[False])
def test_dotmark_images(kind):
    img = fam.dotmark_image(kind, 16, seed=3)
    assert img.shape == (256,) and np.isfinite(img).all() and (img >= 0).all()
    assert img.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(img, fam.dotmark_image(kind, 16, seed=3))
    assert not np.array_equal(img, fam.dotmark_image(kind, 16, seed=4))
    if kind == "shapes":
        assert (img == 0).any()  # an empty background
    else:
        assert (img > 0).all()


def test_dotmark_classes_differ_and_bad_kind():
    images = [fam.dotmark_image(k, 16, seed=0) for k in fam.DOTMARK_CLASSES[False]]
    assert len({im.tobytes() for im in images}) == len(images)
    with pytest.raises(ValueError, match="kind"):
        fam.dotmark_image("stripes", 16, seed=0)


def test_grf_correlation_lengths_order_the_roughness():
    rough = [np.abs(np.diff(fam.dotmark_image(k, 32, seed=1).reshape(32, 32), axis=0)).mean()
             / fam.dotmark_image(k, 32, seed=1).std() for k in ("GRF rough", "GRF moderate", "GRF smooth")]
    assert rough[0] > rough[1] > rough[2]


def test_grid_cost():
    M = fam.grid_cost(3)
    assert M.shape == (9, 9) and np.allclose(M, M.T) and (np.diag(M) == 0).all()
    assert M[0, 8] == pytest.approx(2 * (2 / 3) ** 2)


def test_peak_rss_growth_sees_an_allocation():
    import torch

    growth, method = fam.peak_rss_growth(lambda: torch.ones(64 << 17, dtype=torch.float64).sum())  # 64 MiB
    if growth is None:
        pytest.skip(method)
    assert growth >= 60 << 20 and "VmHWM" in method


def test_targets_compare_with_their_operator():
    try:
        from pygan.bench import _harness as H
    except ImportError:
        from bench import _harness as H
    assert H.target("t", 0.5, "<", 1.0)["met"] is True and H.target("t", 1.0, "<", 1.0)["met"] is False
    assert H.target("t", 1.0, "<=", 1.0)["met"] is True and H.target("t", 1.0, ">", 1.0)["met"] is False
    assert H.target("t", 2.0, ">=", 2.0)["met"] is True and H.target("t", None, ">=", 2.0)["met"] is None
    with pytest.raises(ValueError, match="op"):
        H.target("t", 1.0, "==", 1.0)
