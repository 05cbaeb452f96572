"""Labelled data for conditional training: the toy sets' labels, toy_sample's keyword-only generator."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pygan.train.data import TOY_CLASSES, TOY_DATASETS, toy_centres, toy_sample


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_labels_leave_the_points_unchanged(name):
    """Asking for labels draws exactly the points a caller without labels gets."""
    plain = toy_sample(name, 500, generator=torch.Generator().manual_seed(3))
    pts, y = toy_sample(name, 500, generator=torch.Generator().manual_seed(3), return_labels=True)
    assert torch.equal(plain, pts)
    assert y.dtype == torch.int64 and y.shape == (500,)
    assert int(y.min()) >= 0 and int(y.max()) < TOY_CLASSES[name]
    assert set(y.tolist()) == set(range(TOY_CLASSES[name]))  # 500 draws hit every class


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_gaussian_labels_are_the_mode_index(name):
    """The label is the Gaussian a point was drawn from: its nearest centre (σ is far below the spacing)."""
    pts, y = toy_sample(name, 2000, generator=torch.Generator().manual_seed(0), return_labels=True)
    centres = toy_centres(name)
    assert centres.shape == (TOY_CLASSES[name], 2)
    nearest = torch.cdist(pts, centres).argmin(dim=1)
    assert torch.equal(nearest, y)


def test_swissroll_labels_are_its_half_turns():
    """Class k: angle t in [1.5π + kπ, 2.5π + kπ); the radius |x|·7.5 ≈ t grows with k (noise 0.25)."""
    pts, y = toy_sample("swissroll", 3000, generator=torch.Generator().manual_seed(1), return_labels=True)
    radius = (pts.double() * 7.5).norm(dim=1)
    for k in range(3):
        r = radius[y == k]
        lo, hi = 1.5 * math.pi + k * math.pi, 2.5 * math.pi + k * math.pi
        assert float(r.min()) > lo - 1.2 and float(r.max()) < hi + 1.2
    assert toy_centres("swissroll") is None


def test_generator_by_position_is_deprecated_but_works():
    with pytest.warns(DeprecationWarning, match="generator"):
        old = toy_sample("8gaussians", 10, torch.Generator().manual_seed(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = toy_sample("8gaussians", 10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(old, new)


def test_generator_is_required_and_checked():
    with pytest.raises(TypeError, match="toy_sample: generator: expected a torch.Generator"):
        toy_sample("8gaussians", 10)
    with pytest.raises(TypeError, match="generator"):
        toy_sample("8gaussians", 10, generator=0)
    with pytest.raises(TypeError, match="both by position and by keyword"):
        toy_sample("8gaussians", 10, torch.Generator(), generator=torch.Generator())


def test_digits_without_scikit_learn_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    from pygan.train import cli
    from train_fixtures import tiny_args

    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn...` now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    for extra in ([], ["--conditional"]):
        rc = cli.main(tiny_args(tmp_path / "out", "--data", "digits", *extra))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "--data digits needs scikit-learn" in err[0]
        assert "pip install scikit-learn" in err[0] and not (tmp_path / "out").exists()


def test_digits_and_npz_without_conditions(tmp_path):
    """digits and an .npz of x, y train an unconditional model too (the labels are left unused)."""
    pytest.importorskip("sklearn")
    import numpy as np

    from pygan.train import run
    from pygan.train.data import digits8
    from train_fixtures import read_metrics, tiny_config

    x, y = digits8()
    assert x.shape == (1797, 1, 8, 8) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert y.shape == (1797,) and set(y.tolist()) == set(range(10))
    trainer = run(tiny_config(tmp_path / "d", data="digits", steps=2, loss="nsgan"))
    assert trainer.condition is None and read_metrics(tmp_path / "d")[-1]["w1_samples"] == 64
    np.savez(tmp_path / "xy.npz", x=np.random.default_rng(0).normal(size=(50, 2)), y=np.arange(50) % 2)
    run(tiny_config(tmp_path / "n", data=str(tmp_path / "xy.npz"), steps=2, loss="nsgan"))
    assert read_metrics(tmp_path / "n")[-1]["w1_samples"] == 10
