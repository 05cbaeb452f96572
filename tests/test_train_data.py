"""pygan.train.data: the toy datasets, the samplers (rank slices, state), the hold-out and
``load_data_file`` (formats, value ranges, every refusal, no pickled code).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pygan.train import TOY_DATASETS, load_data_file, toy_sample
from pygan.train.data import TensorSampler, ToySampler, make_sampler

torch.set_num_threads(1)


# ============================================================================ 1. data


def test_toy_sample_shape_dtype_and_determinism():
    """toy_sample gives float32 [n, 2] and is a pure function of the generator's state."""
    for name in TOY_DATASETS:
        a = toy_sample(name, 37, generator=torch.Generator().manual_seed(4))
        b = toy_sample(name, 37, generator=torch.Generator().manual_seed(4))
        c = toy_sample(name, 37, generator=torch.Generator().manual_seed(5))
        assert a.shape == (37, 2) and a.dtype == torch.float32
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert torch.isfinite(a).all()


def test_toy_sample_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="8gaussians.*25gaussians.*swissroll"):
        toy_sample("moons", 4, generator=torch.Generator())


def _cluster_stats(x, centres):
    d = torch.cdist(x.double(), centres.double())
    nearest = d.argmin(1)
    return nearest, x.double() - centres.double()[nearest]


def test_8gaussians_statistics():
    """8 equally likely clusters at radius 2/1.414 on the compass directions, std 0.02/1.414."""
    n = 8000
    x = toy_sample("8gaussians", n, generator=torch.Generator().manual_seed(0))
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = torch.stack([angles.cos(), angles.sin()], 1) * 2 / 1.414
    nearest, resid = _cluster_stats(x, centres)
    counts = torch.bincount(nearest, minlength=8).double()
    assert ((counts / n) - 1 / 8).abs().max() < 0.02
    std = resid.std(0)
    assert torch.allclose(std, torch.full((2,), 0.02 / 1.414, dtype=torch.float64), rtol=0.06)
    assert resid.abs().max() < 6 * 0.02 / 1.414  # every point is in its cluster
    for k in range(8):
        assert (resid[nearest == k].mean(0).abs() < 0.004).all()


def test_25gaussians_statistics():
    """25 clusters on the grid {-4, -2, 0, 2, 4}² / 2.828, std 0.05/2.828."""
    n = 25000
    x = toy_sample("25gaussians", n, generator=torch.Generator().manual_seed(1))
    grid = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    centres = torch.cartesian_prod(grid, grid) / 2.828
    nearest, resid = _cluster_stats(x, centres)
    counts = torch.bincount(nearest, minlength=25).double()
    assert ((counts / n) - 1 / 25).abs().max() < 0.01
    std = resid.std(0)
    assert torch.allclose(std, torch.full((2,), 0.05 / 2.828, dtype=torch.float64), rtol=0.05)
    assert resid.abs().max() < 6 * 0.05 / 2.828


def test_swissroll_statistics():
    """(t cos t, t sin t) + N(0, 0.25²), t ~ U[1.5π, 4.5π], all / 7.5: radius range and distance to the curve."""
    n = 4000
    x = toy_sample("swissroll", n, generator=torch.Generator().manual_seed(2)).double() * 7.5
    r = x.norm(dim=1)
    lo, hi = 1.5 * math.pi, 4.5 * math.pi
    # The extreme radii are the ends of the roll blurred by the noise (a few σ = 0.25 at most).
    assert lo - 1.5 < r.min() < lo + 0.3 and hi - 0.3 < r.max() < hi + 1.5
    # t is uniform, so the radius is (nearly) uniform on [lo, hi]: its quartiles are there.
    q = torch.quantile(r, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    expected = torch.tensor([lo + (hi - lo) * f for f in (0.25, 0.5, 0.75)], dtype=torch.float64)
    assert (q - expected).abs().max() < 0.4
    # Distance to the noiseless curve: |normal component of N(0, 0.25² I)|, mean 0.25·sqrt(2/π).
    t = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    curve = torch.stack([t * t.cos(), t * t.sin()], 1)
    dist = torch.cdist(x, curve).min(1).values
    assert abs(dist.mean().item() - 0.25 * math.sqrt(2 / math.pi)) < 0.03


@pytest.mark.parametrize("kind", ["toy", "tensor"])
def test_sampler_rank_slices_make_the_global_batch(kind):
    """Rank 0 and rank 1 of world 2 (batch B) together draw exactly world 1's batch 2B, every time."""
    table = torch.randn(50, 3)

    def make(batch, rank, world):
        if kind == "toy":
            return ToySampler("25gaussians", batch, seed=9, rank=rank, world_size=world)
        return TensorSampler(table, batch, seed=9, rank=rank, world_size=world)

    r0, r1, whole = make(8, 0, 2), make(8, 1, 2), make(16, 0, 1)
    for _ in range(3):
        a, b, c = next(r0), next(r1), next(whole)
        assert a.shape[0] == b.shape[0] == 8
        assert torch.equal(torch.cat([a, b]), c)


def test_sampler_state_dict_continues_the_stream():
    s = ToySampler("8gaussians", 8, seed=1)
    next(s)
    state = s.state_dict()
    expected = [next(s) for _ in range(2)]
    t = ToySampler("8gaussians", 8, seed=123)
    t.load_state_dict(state)
    assert all(torch.equal(next(t), e) for e in expected)


def test_sampler_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        ToySampler("8gaussians", 0, seed=0)


def test_file_data_hold_out_is_never_trained_on(tmp_path):
    """make_sampler holds out min(eval_samples, N // 5) rows and trains on exactly the others."""
    x = torch.arange(60, dtype=torch.float32).reshape(30, 2)
    np.save(tmp_path / "pts.npy", x.numpy())
    sampler, held = make_sampler(str(tmp_path / "pts.npy"), 4, seed=0, device="cpu", eval_samples=100)
    assert held.shape == (6, 2)
    rows = sorted(map(tuple, torch.cat([sampler.data, held]).tolist()))
    assert rows == sorted(map(tuple, x.tolist()))
    train_rows = set(map(tuple, sampler.data.tolist()))
    assert not train_rows & set(map(tuple, held.tolist()))
    _, held3 = make_sampler(str(tmp_path / "pts.npy"), 4, seed=0, device="cpu", eval_samples=3)
    assert held3.shape == (3, 2)


# ---------------------------------------------------------------------------- load_data_file


def test_load_points_npy_and_pt(tmp_path):
    """N x d points are returned as float32, values as stored (no mapping)."""
    x = np.random.default_rng(0).normal(size=(12, 3)) * 40
    np.save(tmp_path / "p.npy", x)
    torch.save(torch.from_numpy(x), tmp_path / "p.pt")
    for f in ("p.npy", "p.pt"):
        got = load_data_file(tmp_path / f)
        assert got.dtype == torch.float32 and got.shape == (12, 3)
        torch.testing.assert_close(got, torch.from_numpy(x).float())


def test_load_images_value_ranges(tmp_path):
    """uint8 and float [0, 255] images are mapped by x / 127.5 - 1; [-1, 1] images are untouched."""
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(12, 1, 8, 8), dtype=np.uint8)
    u8.flat[0], u8.flat[1] = 0, 255
    np.save(tmp_path / "u8.npy", u8)
    got = load_data_file(tmp_path / "u8.npy")
    assert got.dtype == torch.float32 and got.shape == (12, 1, 8, 8)
    torch.testing.assert_close(got, torch.from_numpy(u8.astype(np.float64) / 127.5 - 1).float())
    assert got.min() == -1 and got.max() == 1

    f255 = rng.uniform(0, 255, size=(10, 3, 8, 8)).astype(np.float32)
    torch.save(torch.from_numpy(f255), tmp_path / "f255.pt")
    torch.testing.assert_close(load_data_file(tmp_path / "f255.pt"), torch.from_numpy(f255) / 127.5 - 1)

    unit = rng.uniform(-1, 1, size=(10, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "unit.npy", unit)
    assert torch.equal(load_data_file(tmp_path / "unit.npy"), torch.from_numpy(unit))


def _save_npy(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize("case, exc, match", [
    ("missing", ValueError, "does not exist"),
    ("extension", ValueError, "npy"),
    ("3d", ValueError, r"shape \[12, 4, 4\]"),
    ("non-square", ValueError, "H == W"),
    ("two-channels", ValueError, "C in"),
    ("side-not-multiple-of-4", ValueError, "divisible by 4"),
    ("nan", ValueError, "NaN"),
    ("inf", ValueError, "infinite"),
    ("range", ValueError, r"\[-5, 5\]"),
    ("few", ValueError, "at least 10"),
    ("bool-npy", TypeError, "bool"),
    ("bool-pt", TypeError, "bool"),
    ("complex", TypeError, "complex"),
    ("pt-dict", TypeError, "dict"),
    ("pt-list", TypeError, "list"),
])
def test_load_data_file_rejects(tmp_path, case, exc, match):
    """Each bad file is refused with ValueError / TypeError saying what is wrong."""
    rng = np.random.default_rng(2)
    img = rng.uniform(-1, 1, size=(12, 1, 8, 8)).astype(np.float32)
    if case == "missing":
        path = tmp_path / "nope.npy"
    elif case == "extension":
        path = tmp_path / "x.csv"
        path.write_text("1,2\n")
    elif case == "3d":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 4, 4), np.float32))
    elif case == "non-square":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 1, 8, 12), np.float32))
    elif case == "two-channels":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 2, 8, 8), np.float32))
    elif case == "side-not-multiple-of-4":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 1, 10, 10), np.float32))
    elif case in ("nan", "inf"):
        img[3, 0, 2, 2] = np.nan if case == "nan" else np.inf
        path = _save_npy(tmp_path / "x.npy", img)
    elif case == "range":
        img = np.linspace(-5, 5, img.size, dtype=np.float32).reshape(img.shape)
        path = _save_npy(tmp_path / "x.npy", img)
    elif case == "few":
        path = _save_npy(tmp_path / "x.npy", np.zeros((9, 2), np.float32))
    elif case == "bool-npy":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 2), bool))
    elif case == "bool-pt":
        path = tmp_path / "x.pt"
        torch.save(torch.zeros(12, 2, dtype=torch.bool), path)
    elif case == "complex":
        path = _save_npy(tmp_path / "x.npy", np.zeros((12, 2), np.complex64))
    elif case == "pt-dict":
        path = tmp_path / "x.pt"
        torch.save({"x": torch.zeros(12, 2)}, path)
    else:
        path = tmp_path / "x.pt"
        torch.save([torch.zeros(12, 2)], path)
    with pytest.raises(exc, match=match):
        load_data_file(path)


class _Payload:
    """Pickles to a call that would create a marker file if unpickling ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_load_data_file_never_runs_pickled_code(tmp_path):
    """A pickled object in a .pt, or an object array in a .npy, is refused and its code never runs."""
    marker = tmp_path / "code-ran"
    torch.save(_Payload(marker), tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt"):
        load_data_file(tmp_path / "evil.pt")
    np.save(tmp_path / "evil.npy", np.array([_Payload(marker)] * 12, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_data_file(tmp_path / "evil.npy")
    assert not marker.exists()


@pytest.mark.parametrize("case", ["object", "truncated"])
def test_load_data_file_numpy_errors_name_the_file(tmp_path, case):
    """Every load error names the file (as the other data errors do), also numpy's own."""
    path = tmp_path / "mine.npy"
    if case == "object":
        np.save(path, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    else:
        np.save(path, np.zeros((200, 2)))
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="mine.npy"):
        load_data_file(path)


@pytest.mark.parametrize("content, expected", [("1.0,2.0\n3.0,4.0\n", "a text file"), ("", "empty"),
                                               (bytes(range(256)) * 2, "not in numpy's .npy format")])
def test_npy_that_is_not_numpys_format_gets_a_clear_message(tmp_path, content, expected):
    """A text (or empty, or other) file named .npy: what it is and how to save an array, never
    numpy's advice to pass allow_pickle (an option the loader does not offer)."""
    path = tmp_path / "points.npy"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ValueError) as info:
        load_data_file(path)
    message = str(info.value)
    assert "points.npy" in message and expected in message and "numpy.save" in message
    assert "allow_pickle" not in message
