"""pygan.train: the data, the losses, the Trainer against a hand-written plain-PyTorch loop, instance
noise, EMA, checkpoints / resume / interruption / divergence, the metrics (exact W1 recomputed
independently), the pictures and the ``python -m pygan train`` command line.

Everything runs on CPU with tiny models and one thread; the file takes well under a minute.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pygan import ot as pygan_ot
from pygan.optim import ClippedRMSprop
from pygan.train import (LOSSES, TOY_DATASETS, TrainConfig, Trainer, TrainingDiverged, build, load_data_file, run,
                         toy_sample)
from pygan.train import cli
from pygan.train import losses as train_losses
from pygan.train import plots as train_plots
from pygan.train.data import TensorSampler, ToySampler, make_sampler

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {"step", "w1", "w1_samples", "w1_space", "critic_estimate", "loss_d", "loss_g", "penalty", "step_time", "sigma",
               "elapsed"}
TIMING_KEYS = ("step_time", "elapsed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ============================================================================ helpers


def tiny_config(out, **overrides) -> TrainConfig:
    """The smallest CLI-path configuration: 8 gaussians, one hidden layer of 16, batch 16."""
    kw = dict(data="8gaussians", out=str(out), hidden=16, layers=1, batch_size=16, eval_samples=64, eval_every=2,
              ckpt_every=3, steps=6, plots=False, progress=False, device="cpu")
    kw.update(overrides)
    return TrainConfig(**kw)


def tiny_args(out, *extra: str) -> list[str]:
    """The command-line twin of :func:`tiny_config` (nsgan: one critic update per step, fast)."""
    return ["--out", str(out), "--hidden", "16", "--layers", "1", "--batch-size", "16", "--eval-samples", "32",
            "--eval-every", "2", "--ckpt-every", "3", "--steps", "4", "--no-plots", "--no-progress",
            "--device", "cpu", *extra]


def read_metrics(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def load_ckpt(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_state(a, b, path="", ignore=("out", "resume")):
    """Recursive torch.equal over a checkpoint (config keys that name the run itself are ignored)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        same = torch.equal(a, b)
        assert same, f"{path}: max |difference| {(a.double() - b.double()).abs().max().item():.3g}"
    elif isinstance(a, dict):
        keys = set(a) | set(b)
        if path.endswith("config"):
            keys -= set(ignore)
        for k in keys:
            assert k in a and k in b, f"{path}/{k}"
            assert_same_state(a[k], b[k], f"{path}/{k}", ignore)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]", ignore)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def all_finite(state_dict: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())


def subprocess_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYGAN_REQUIRE_EXT=os.environ.get("PYGAN_REQUIRE_EXT", "1"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def w1_pot(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W1 between two uniform point clouds with POT (independent of pygan's solver)."""
    ot = pytest.importorskip("ot")
    xs, ys = x.flatten(1).double().numpy(), y.flatten(1).double().numpy()
    a, b = np.full(len(xs), 1 / len(xs)), np.full(len(ys), 1 / len(ys))
    return float(ot.emd2(a, b, ot.dist(xs, ys, metric="euclidean")))


# ---------------------------------------------------------------------------- tiny networks


def tiny_g(latent=2, dim=2, dtype=torch.float32):
    return nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, dim)).to(dtype)


def tiny_d(dim=2, dtype=torch.float32):
    # Tanh makes the input gradient depend on x, so the double backward of the penalties is non-trivial.
    # No output bias: a W critic's loss and penalties do not depend on it, so its gradient is exactly
    # zero up to rounding (~1e-9, different in each loop), which Adam would turn into ±lr steps.
    return nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 1, bias=False)).to(dtype)


def real_batches(n=4, batch=16, dim=2, dtype=torch.float32, seed=5):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, dim, generator=g) * 0.5 + 1).to(dtype) for _ in range(n)]


def optimisers(loss, G, D, lr, clip=None):
    """The optimisers the trainer is given (ClippedRMSprop critic for wgan, Adam otherwise)."""
    s = train_losses.spec(loss)
    if loss == "wgan":
        return torch.optim.RMSprop(G.parameters(), lr=lr), ClippedRMSprop(D.parameters(), lr=lr, clip=clip)
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=s.betas),
            torch.optim.Adam(D.parameters(), lr=lr, betas=s.betas))


def canonical_optimisers(loss, G, D, lr):
    """The plain-PyTorch optimisers of the canonical loop (torch RMSprop + clamp for wgan)."""
    s = train_losses.spec(loss)
    if loss == "wgan":
        return torch.optim.RMSprop(G.parameters(), lr=lr), torch.optim.RMSprop(D.parameters(), lr=lr)
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=s.betas),
            torch.optim.Adam(D.parameters(), lr=lr, betas=s.betas))


# ---------------------------------------------------------------------------- the canonical loop


class SeededDraws:
    """The trainer's documented randomness: one CPU torch.Generator seeded with ``seed``."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, shape):
        return torch.randn(shape, generator=self.g)

    def rand(self, shape):
        return torch.rand(shape, generator=self.g)


class RecordedDraws:
    """Replays the draws a trainer actually made (in order), for tests of the maths alone."""

    def __init__(self, recorded):
        self.it = iter(recorded)

    def randn(self, shape):
        x = next(self.it)
        assert tuple(x.shape) == tuple(shape)
        return x

    rand = randn


def ema_decay(ema, t):
    """The documented EMA decay of generator update t (0-based): min(ema, (1 + t) / (10 + t)) (warm-up)."""
    return min(ema, (1 + t) / (10 + t))


def canonical_gp(D, real, fake, alpha, weight, one_sided=False):
    """The canonical WGAN-GP penalty: per-sample alpha and per-sample gradient norm."""
    a = alpha.to(real.dtype).reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    out = D(x_hat)
    (grads,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    excess = grads.flatten(1).norm(2, dim=1) - 1
    return weight * ((torch.relu(excess) if one_sided else excess) ** 2).mean()


def canonical_critic_loss(loss, D, real, fake, weight, due, draws):
    """L_D + penalty written from the papers (BCE with logits for the JS family)."""
    d_real, d_fake = D(real).reshape(-1), D(fake).reshape(-1)
    if loss.startswith("wgan"):
        objective = d_fake.mean() - d_real.mean()
    else:
        objective = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                     + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    penalty = torch.zeros((), dtype=real.dtype)
    if due and loss in ("wgan-gp", "wgan-gp-one-sided"):
        alpha = draws.rand((real.shape[0],))
        penalty = canonical_gp(D, real, fake, alpha, weight, one_sided=loss == "wgan-gp-one-sided")
    elif due and loss == "nsgan-r1":
        x = real.detach().requires_grad_(True)
        (grads,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        penalty = weight / 2 * grads.pow(2).flatten(1).sum(1).mean()
    elif due and loss == "wgan-fd":
        a = draws.rand((real.shape[0],)).to(real.dtype).reshape(-1, *([1] * (real.dim() - 1)))
        x_hat = (a * real + (1 - a) * fake).detach()
        s = D(x_hat).reshape(-1)
        slope = (s - s.roll(1, 0)).abs() / (x_hat - x_hat.roll(1, 0)).flatten(1).norm(dim=1)
        penalty = weight * ((slope - 1) ** 2).mean()
    return objective + penalty, penalty


def canonical_generator_loss(loss, d_fake):
    if loss == "gan":  # minimax: minimise E log(1 - D(G(z))) = -BCE(D(G(z)), 0)
        return -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    if loss in ("nsgan", "nsgan-r1"):  # -log D(G(z)) = BCE(D(G(z)), 1)
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return -d_fake.mean()


def canonical_train(G, D, g_opt, d_opt, batches, *, loss, steps, n_critic, weight, draws, latent=(2,),
                    lazy_every=1, sigma=lambda step: 0.0, clip=None, ema=None):
    """A plain-PyTorch GAN loop with the trainer's documented order of draws.

    Per critic update: the real batch, z, (instance noise on real, then on fake), then alpha when the
    penalty is due (update k % lazy_every == 0, weight scaled by lazy_every). Per generator update: z,
    then instance noise on the fake batch. Returns the penalty of every critic update.
    """
    data = itertools.cycle(batches)
    penalties, k = [], 0
    ema_params = [p.detach().clone() for p in ema.parameters()] if ema is not None else None
    has_penalty = train_losses.spec(loss).penalty is not None
    for step in range(steps):
        s = sigma(step)
        for _ in range(n_critic):
            real = next(data)
            B = real.shape[0]
            z = draws.randn((B, *latent)).to(real.dtype)
            with torch.no_grad():
                fake = G(z)
            if s:
                real = real + s * draws.randn(real.shape).to(real.dtype)
                fake = fake + s * draws.randn(fake.shape).to(fake.dtype)
            due = has_penalty and k % lazy_every == 0 and weight > 0
            total, penalty = canonical_critic_loss(loss, D, real, fake, weight * lazy_every, due, draws)
            d_opt.zero_grad()
            total.backward()
            d_opt.step()
            if clip is not None:
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-clip, clip)
            penalties.append(float(penalty.detach()))
            k += 1
        z = draws.randn((B, *latent)).to(real.dtype)
        fake = G(z)
        if s:
            fake = fake + s * draws.randn(fake.shape).to(fake.dtype)
        g_loss = canonical_generator_loss(loss, D(fake).reshape(-1))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        if ema_params is not None:
            with torch.no_grad():
                decay = ema_decay(ema.decay, step)
                for e, p in zip(ema_params, G.parameters()):
                    e.mul_(decay).add_(p, alpha=1 - decay)
    if ema_params is not None:
        ema.result = ema_params
    return penalties


def assert_params_close(a: nn.Module, b: nn.Module, dtype=torch.float32):
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(x, y, **tol, msg=lambda m, name=name: f"{name}: {m}")


def twin_setup(loss, *, dtype=torch.float32, lr=1e-3, clip=None, seed=3):
    """Identical G, D for the trainer and for the canonical loop (deepcopy), and their optimisers."""
    torch.manual_seed(seed)
    G, D = tiny_g(dtype=dtype), tiny_d(dtype=dtype)
    if clip is not None:
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-clip, clip)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    g_opt, d_opt = optimisers(loss, G, D, lr, clip)
    g_opt2, d_opt2 = canonical_optimisers(loss, G2, D2, lr)
    return (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2)


# ============================================================================ 1. data


def test_toy_sample_shape_dtype_and_determinism():
    """toy_sample gives float32 [n, 2] and is a pure function of the generator's state."""
    for name in TOY_DATASETS:
        a = toy_sample(name, 37, torch.Generator().manual_seed(4))
        b = toy_sample(name, 37, torch.Generator().manual_seed(4))
        c = toy_sample(name, 37, torch.Generator().manual_seed(5))
        assert a.shape == (37, 2) and a.dtype == torch.float32
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert torch.isfinite(a).all()


def test_toy_sample_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="8gaussians.*25gaussians.*swissroll"):
        toy_sample("moons", 4, torch.Generator())


def _cluster_stats(x, centres):
    d = torch.cdist(x.double(), centres.double())
    nearest = d.argmin(1)
    return nearest, x.double() - centres.double()[nearest]


def test_8gaussians_statistics():
    """8 equally likely clusters at radius 2/1.414 on the compass directions, std 0.02/1.414."""
    n = 8000
    x = toy_sample("8gaussians", n, torch.Generator().manual_seed(0))
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
    x = toy_sample("25gaussians", n, torch.Generator().manual_seed(1))
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
    x = toy_sample("swissroll", n, torch.Generator().manual_seed(2)).double() * 7.5
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


# ============================================================================ 2. losses

scores = st.lists(st.floats(-30, 30, allow_nan=False, allow_infinity=False), min_size=1, max_size=16)


@settings(max_examples=60, deadline=None)
@given(real=scores, fake=scores)
def test_critic_objective_matches_the_formulas(real, fake):
    """JS family: BCE(D(x), 1) + BCE(D(G(z)), 0); W family: E D(G(z)) - E D(x)."""
    r, f = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    bce = (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
           + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
    # (softplus is linear above 20: an absolute error of at most log1p(e^-20) ~ 2e-9 there)
    torch.testing.assert_close(train_losses.critic_objective("js", r, f), bce, rtol=1e-10, atol=5e-9)
    torch.testing.assert_close(train_losses.critic_objective("w", r, f), f.mean() - r.mean(), rtol=1e-12,
                               atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(fake=scores)
def test_generator_objective_matches_the_formulas(fake):
    """gan: E log(1 - D) (minimax); nsgan, nsgan-r1: -E log D; W losses: -E D(G(z))."""
    f = torch.tensor(fake, dtype=torch.float64)
    for name in LOSSES:
        got = train_losses.generator_objective(name, f)
        torch.testing.assert_close(got, canonical_generator_loss(name, f), rtol=1e-10, atol=5e-9)
    # The minimax loss written with the sigmoid itself, where it is representable.
    small = f.clamp(-10, 10)
    torch.testing.assert_close(train_losses.generator_objective("gan", small),
                               torch.log1p(-torch.sigmoid(small)).mean(), rtol=1e-9, atol=1e-9)


def test_loss_specs_follow_the_papers():
    """The papers' defaults: WGAN RMSprop 5e-5 n_critic 5; WGAN-GP Adam 1e-4 (0.5, 0.9) n_critic 5."""
    assert set(LOSSES) == {"gan", "nsgan", "wgan", "wgan-gp", "wgan-gp-one-sided", "nsgan-r1", "wgan-fd"}
    for name in LOSSES:
        s = train_losses.spec(name)
        assert s.family == ("w" if name.startswith("wgan") else "js")
    w = train_losses.spec("wgan")
    assert (w.optimizer, w.lr, w.n_critic, w.penalty) == ("clipped-rmsprop", 5e-5, 5, None)
    gp = train_losses.spec("wgan-gp")
    assert (gp.optimizer, gp.lr, gp.betas, gp.n_critic, gp.penalty) == ("adam", 1e-4, (0.5, 0.9), 5, "gp")
    assert train_losses.spec("nsgan-r1").penalty == "r1"


def test_spec_error_lists_valid_names():
    with pytest.raises(ValueError) as info:
        train_losses.spec("lsgan")
    assert "'lsgan'" in str(info.value)
    for name in LOSSES:
        assert name in str(info.value)


# ============================================================================ 3. the Trainer vs plain PyTorch


CASES = [  # loss, n_critic, weight, lr
    ("wgan-gp", 2, 10.0, 1e-3),
    ("wgan-gp-one-sided", 2, 10.0, 1e-3),
    ("wgan-fd", 2, 10.0, 1e-3),
    ("nsgan-r1", 1, 10.0, 1e-3),
    ("nsgan", 1, 0.0, 1e-3),
    ("gan", 2, 0.0, 1e-3),
]


@pytest.mark.parametrize("loss, n_critic, weight, lr", CASES)
def test_trainer_matches_plain_pytorch_loop(loss, n_critic, weight, lr):
    """3 train_steps leave the same G and D as the canonical loop with the documented draws."""
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup(loss, lr=lr)
    batches = real_batches()
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss=loss, latent_shape=2, n_critic=n_critic,
                penalty_weight=weight, seed=11, plots=False, progress=False)
    before = [p.detach().clone() for p in D.parameters()]
    for _ in range(3):
        stats = t.train_step()
        assert set(stats) == {"loss_d", "loss_g", "penalty"} and all(math.isfinite(v) for v in stats.values())
    canonical_train(G2, D2, g_opt2, d_opt2, batches, loss=loss, steps=3, n_critic=n_critic, weight=weight,
                    draws=SeededDraws(11))
    assert t.step == 3 and t.critic_steps == 3 * n_critic
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))  # it did train
    assert_params_close(G, G2)
    assert_params_close(D, D2)


def test_trainer_gan_and_nsgan_generators_differ():
    """gan (minimax) and nsgan share the critic step but not the generator step (SGD: Adam's first
    step only sees the gradient's sign, which the two losses share)."""
    results = {}
    for loss in ("gan", "nsgan"):
        (G, D, _, _), _ = twin_setup(loss)
        g_opt, d_opt = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
        t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss=loss, seed=1, progress=False,
                    plots=False)
        t.train_step()
        results[loss] = (G, D)
    assert_params_close(results["gan"][1], results["nsgan"][1])
    assert any(not torch.allclose(a, b) for a, b in zip(results["gan"][0].parameters(),
                                                         results["nsgan"][0].parameters()))


def test_trainer_wgan_clipping_matches_rmsprop_and_clamp():
    """wgan: ClippedRMSprop critic == torch RMSprop + clamp; weights stay in [-c, c] and reach ±c."""
    c = 0.05
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup("wgan", lr=5e-3, clip=c)
    batches = real_batches()
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss="wgan", n_critic=3, seed=2, progress=False,
                plots=False)
    for _ in range(3):
        t.train_step()
    canonical_train(G2, D2, g_opt2, d_opt2, batches, loss="wgan", steps=3, n_critic=3, weight=0.0,
                    draws=SeededDraws(2), clip=c)
    assert_params_close(G, G2)
    assert_params_close(D, D2)
    flat = torch.cat([p.detach().flatten() for p in D.parameters()])
    assert flat.abs().max() <= c
    assert (flat.abs() == c).float().mean() > 0.1  # the clamp is active, not vacuous


def test_lazy_regularisation_every_other_critic_update():
    """lazy_every=2: 2λ·penalty on critic updates 0, 2, 4, ... and none on the odd ones (across steps)."""
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup("wgan-gp")
    batches = real_batches()
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss="wgan-gp", n_critic=3, penalty_weight=10.0,
                lazy_every=2, seed=4, progress=False, plots=False)
    seen = []
    update = t._critic_update

    def spy(sigma):
        loss, penalty = update(sigma)
        seen.append(float(penalty))
        return loss, penalty

    t._critic_update = spy
    last = [t.train_step()["penalty"] for _ in range(3)]
    expected = canonical_train(G2, D2, g_opt2, d_opt2, batches, loss="wgan-gp", steps=3, n_critic=3, weight=10.0,
                               lazy_every=2, draws=SeededDraws(4))
    assert [e > 0 for e in expected] == [k % 2 == 0 for k in range(9)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5, atol=1e-7)
    assert last == pytest.approx([seen[2], seen[5], seen[8]], rel=1e-6)
    assert last[1] == 0.0
    assert_params_close(G, G2)
    assert_params_close(D, D2)


def test_trainer_float64_models_match_to_1e_10():
    """float64 G and D train, and the maths equals the canonical loop to 1e-10 (replaying the draws made)."""
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup("wgan-gp", dtype=torch.float64)
    batches = real_batches(dtype=torch.float64)
    eval_data = torch.randn(16, 2, dtype=torch.float64)
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss="wgan-gp", n_critic=2, seed=0,
                eval_data=eval_data, progress=False, plots=False)
    recorded, draw = [], t._draw

    def record(*args, **kwargs):
        x = draw(*args, **kwargs)
        recorded.append(x.clone())
        return x

    t._draw = record
    for _ in range(3):
        t.train_step()
    canonical_train(G2, D2, g_opt2, d_opt2, batches, loss="wgan-gp", steps=3, n_critic=2, weight=10.0,
                    draws=RecordedDraws(recorded))
    assert_params_close(G, G2, torch.float64)
    assert_params_close(D, D2, torch.float64)
    assert t.sample(z=t.eval_z).dtype == torch.float64 and t.evaluate()["w1"] is not None


def test_trainer_restarts_finite_data_and_drops_labels():
    """A finite iterable of (x, label) pairs is re-iterated and the labels ignored."""
    batches = real_batches(n=2)
    runs = []
    for data in (itertools.cycle(batches), [(b, torch.zeros(len(b))) for b in batches]):
        (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
        t = Trainer(G, D, g_opt, d_opt, data, loss="wgan-gp", n_critic=3, seed=0, progress=False, plots=False)
        for _ in range(2):
            t.train_step()
        runs.append((G, D))
    for a, b in zip(runs[0], runs[1]):
        for x, y in zip(a.parameters(), b.parameters()):
            assert torch.equal(x, y)


def test_trainer_data_parallel_draws_are_slices_of_the_global_draw():
    """Rank r of world W keeps rows [r·B, (r+1)·B) of the global draw of W·B (noise, alpha alike)."""
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    t = Trainer(G, D, g_opt, d_opt, [], seed=21, progress=False, plots=False)
    t.rank, t.world = 1, 2
    g = torch.Generator().manual_seed(21)
    assert torch.equal(t._noise(5), torch.randn((10, 2), generator=g)[5:])
    assert torch.equal(t._draw(torch.rand, (), 5), torch.rand((10,), generator=g)[5:])


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="lsgan"), "wgan-gp"),
    (dict(n_critic=0), "n_critic"),
    (dict(lazy_every=0), "lazy_every"),
    (dict(penalty_weight=-1.0), "penalty_weight"),
    (dict(penalty_weight=float("nan")), "penalty_weight"),
    (dict(instance_noise=-0.1), "instance_noise"),
    (dict(ema=1.0), "ema"),
    (dict(lr_decay="cosine"), "lr_decay"),
    (dict(eval_every=0), "eval_every"),
    (dict(ckpt_every=0), "ckpt_every"),
])
def test_trainer_rejects_bad_options(kwargs, match):
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    with pytest.raises(ValueError, match=match):
        Trainer(G, D, g_opt, d_opt, [], **kwargs)


def test_trainer_rejects_a_critic_with_more_than_one_score_per_sample():
    (G, _, g_opt, _), _ = twin_setup("wgan-gp")
    D = nn.Linear(2, 3)
    t = Trainer(G, D, g_opt, torch.optim.Adam(D.parameters()), itertools.cycle(real_batches()), progress=False,
                plots=False)
    with pytest.raises(ValueError, match="one score per sample"):
        t.train_step()


# ============================================================================ 4. instance noise


def test_sigma_anneals_linearly_to_zero():
    """σ(step) = σ0·max(0, 1 - step / noise_anneal_steps); without noise_anneal_steps, over fit's steps."""
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    t = Trainer(G, D, g_opt, d_opt, [], loss="nsgan", instance_noise=0.4, noise_anneal_steps=8)
    for step in (0, 1, 4, 7, 8, 12):
        t.step = step
        assert t.sigma() == pytest.approx(0.4 * max(0.0, 1 - step / 8))
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", instance_noise=0.3, eval_every=1,
                progress=False, plots=False)
    t.fit(5)
    assert [r["step"] for r in t.history] == list(range(6))
    assert [r["sigma"] for r in t.history] == pytest.approx([0.3 * (1 - s / 5) for s in range(6)])


def test_instance_noise_matches_a_loop_that_adds_noise():
    """With σ0 > 0 the trainer equals the canonical loop that adds σ·N(0, 1) to the critic's real and fake inputs."""
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup("wgan-gp")
    batches = real_batches()
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss="wgan-gp", n_critic=2, instance_noise=0.5,
                noise_anneal_steps=4, seed=8, progress=False, plots=False)
    for _ in range(3):
        t.train_step()
    canonical_train(G2, D2, g_opt2, d_opt2, batches, loss="wgan-gp", steps=3, n_critic=2, weight=10.0,
                    sigma=lambda s: 0.5 * max(0.0, 1 - s / 4), draws=SeededDraws(8))
    assert_params_close(G, G2)
    assert_params_close(D, D2)


@pytest.mark.parametrize("sigma0", [0.0, 0.5])
def test_critic_sees_noisy_real_inputs(sigma0):
    """The critic's real inputs differ from the batch by N(0, σ²) noise (exactly equal when σ0 = 0)."""
    seen = []

    class Spy(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.net(x)

    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    batch = torch.randn(512, 2)
    t = Trainer(G, Spy(D), g_opt, d_opt, itertools.cycle([batch]), loss="nsgan", instance_noise=sigma0,
                noise_anneal_steps=10, progress=False, plots=False)
    t.train_step()
    diff = seen[0] - batch  # the critic update's first forward is the real batch
    if sigma0 == 0:
        assert torch.equal(diff, torch.zeros_like(diff))
    else:
        assert abs(diff.std().item() - sigma0) < 0.05 * sigma0
        assert abs(diff.mean().item()) < 0.1 * sigma0


def test_linear_lr_decay():
    """lr_decay="linear": both learning rates are base·(1 - step / steps) at generator step `step` of fit(steps)."""
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp", lr=1e-3)
    d_opt.param_groups[0]["lr"] = 4e-3
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="wgan-gp", n_critic=2, lr_decay="linear",
                progress=False, plots=False)
    seen = {"g": [], "d": []}
    for key, opt in (("g", g_opt), ("d", d_opt)):
        step = opt.step

        def spy(*args, key=key, opt=opt, step=step, **kwargs):
            seen[key].append(opt.param_groups[0]["lr"])
            return step(*args, **kwargs)

        opt.step = spy
    t.fit(4)
    assert seen["g"] == pytest.approx([1e-3 * (1 - s / 4) for s in range(4)], rel=1e-12)
    assert seen["d"] == pytest.approx([4e-3 * (1 - s / 4) for s in range(4) for _ in range(2)], rel=1e-12)


# ============================================================================ 5. EMA


def test_ema_generator_is_the_moving_average_and_evaluation_uses_it():
    """G_ema = d_t·G_ema + (1 - d_t)·G after generator update t, d_t = min(0.9, (1 + t) / (10 + t));
    sample() and evaluate() use G_ema."""
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan", lr=1e-2)
    eval_data = toy_sample("8gaussians", 32, torch.Generator().manual_seed(0))
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", ema=0.9, eval_data=eval_data,
                progress=False, plots=False)
    ema = [p.detach().clone() for p in G.parameters()]
    for step in range(4):
        t.train_step()
        decay = ema_decay(0.9, step)
        for e, p in zip(ema, G.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for e, p in zip(ema, t.G_ema.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    assert not all(torch.allclose(a, b) for a, b in zip(G.parameters(), t.G_ema.parameters()))
    with torch.no_grad():
        fake_ema, fake_g = t.G_ema(t.eval_z), G(t.eval_z)
    assert torch.equal(t.sample(z=t.eval_z), fake_ema)
    record = t.evaluate()
    assert record["w1"] == pytest.approx(w1_pot(fake_ema, eval_data), rel=1e-9)
    assert record["w1"] != pytest.approx(w1_pot(fake_g, eval_data), rel=1e-6)


def test_ema_matches_canonical_loop():
    """EMA on top of the canonical loop's parameters (the trainer's G itself is unchanged by EMA)."""
    (G, D, g_opt, d_opt), (G2, D2, g_opt2, d_opt2) = twin_setup("wgan-gp")
    batches = real_batches()
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(batches), loss="wgan-gp", n_critic=2, ema=0.5, seed=6,
                progress=False, plots=False)
    for _ in range(3):
        t.train_step()

    class Ema:
        decay = 0.5
        parameters = G2.parameters

    e = Ema()
    canonical_train(G2, D2, g_opt2, d_opt2, batches, loss="wgan-gp", steps=3, n_critic=2, weight=10.0,
                    draws=SeededDraws(6), ema=e)
    assert_params_close(G, G2)
    for x, y in zip(t.G_ema.parameters(), e.result):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


# ============================================================================ 6. resume


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9, "loss": "wgan-gp-one-sided"}])
def test_resume_is_bit_exact(tmp_path, extra):
    """6 steps straight == 3 steps + --resume to 6: identical checkpoint tensors; metrics agree."""
    run(tiny_config(tmp_path / "A", **extra))
    run(tiny_config(tmp_path / "B", steps=3, **extra))
    assert load_ckpt(tmp_path / "B" / "checkpoint.pt")["step"] == 3
    trainer = run(tiny_config(tmp_path / "B", resume=True, **extra))
    assert trainer.step == 6
    a, b = load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt")
    assert a["step"] == 6
    assert_same_state(a, b)

    ma = {r["step"]: r for r in read_metrics(tmp_path / "A")}
    mb = {r["step"]: r for r in read_metrics(tmp_path / "B")}
    assert sorted(ma) == [0, 2, 4, 6]
    assert sorted(mb) == [0, 2, 3, 4, 6]  # + the end of the 3-step run
    for step in (0, 2, 6):
        assert without_timing(ma[step]) == without_timing(mb[step])
    for key in ("w1", "w1_samples", "critic_estimate", "sigma"):
        assert ma[4][key] == mb[4][key]
    # Loss fields are means since the previous evaluation: A's step 4 covers steps 3-4, B split them.
    for key in ("loss_d", "loss_g", "penalty"):
        assert ma[4][key] == pytest.approx((mb[3][key] + mb[4][key]) / 2, rel=1e-6, abs=1e-9)


def test_resume_drops_metrics_after_the_checkpoint(tmp_path):
    """Lines past the checkpoint's step (and a line cut by a crash) are dropped on resume, not duplicated."""
    out = tmp_path / "run"
    run(tiny_config(out, steps=3))
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 99, "w1": 0.0}) + "\n")
        f.write('{"step": 4, "w1": 0.')  # half a line
    run(tiny_config(out, resume=True))
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == [0, 2, 3, 4, 6]
    assert not list(out.glob(".*tmp*"))


def _request_stop_at(trainer, at_step):
    step = trainer.train_step

    def wrapped():
        stats = step()
        if trainer.step == at_step:
            trainer.request_stop()
        return stats

    trainer.train_step = wrapped


@pytest.mark.parametrize("extra", [{}, {"instance_noise": 0.2, "ema": 0.9, "lr_decay": "linear"}])
def test_interrupted_run_resumes_bit_exact(tmp_path, capsys, extra):
    """request_stop() at step 4 → "interrupted" with a checkpoint at 4; --resume then equals a straight run."""
    run(tiny_config(tmp_path / "A", **extra))
    trainer = build(tiny_config(tmp_path / "B", **extra))
    _request_stop_at(trainer, 4)
    assert trainer.fit(6) == "interrupted"
    assert "--resume" in capsys.readouterr().err
    assert load_ckpt(tmp_path / "B" / "checkpoint.pt")["step"] == 4
    assert trainer.fit(6) == "done"  # the stop request does not stick
    assert_same_state(load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt"))


def test_interrupted_run_resumes_with_identical_metrics(tmp_path):
    """Ctrl-C at step 3 (between evaluations at 2 and 4) + --resume: metrics.jsonl equals the straight run's."""
    run(tiny_config(tmp_path / "A"))
    trainer = build(tiny_config(tmp_path / "B"))
    _request_stop_at(trainer, 3)
    assert trainer.fit(6) == "interrupted"
    run(tiny_config(tmp_path / "B", resume=True))
    a = [without_timing(r) for r in read_metrics(tmp_path / "A")]
    b = [without_timing(r) for r in read_metrics(tmp_path / "B")]
    assert a == b


@pytest.mark.parametrize("extra", [{"instance_noise": 0.2}, {"lr_decay": "linear"}])
def test_resume_with_more_steps_never_silently_changes_a_schedule(tmp_path, extra):
    """3 steps + --resume --steps 6 either equals the straight 6-step run or is refused naming --steps."""
    run(tiny_config(tmp_path / "A", **extra))
    run(tiny_config(tmp_path / "B", steps=3, **extra))
    try:
        run(tiny_config(tmp_path / "B", resume=True, **extra))
    except ValueError as exc:
        assert "steps" in str(exc)
        return
    assert_same_state(load_ckpt(tmp_path / "A" / "checkpoint.pt"), load_ckpt(tmp_path / "B" / "checkpoint.pt"))


# ============================================================================ 7. never lose work


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A torch.save failing mid-write leaves the previous checkpoint intact and no temporary file."""
    out = tmp_path / "run"
    trainer = run(tiny_config(out, steps=3))
    good = (out / "checkpoint.pt").read_bytes()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    trainer.step = 99
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == good
    assert load_ckpt(out / "checkpoint.pt")["step"] == 3
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_request_stop_saves_and_returns_interrupted(tmp_path, capsys):
    """fit() returns "interrupted" after request_stop(), with a checkpoint at that very step."""
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", out=tmp_path / "run",
                ckpt_every=100, eval_every=100, progress=False, plots=False)
    _request_stop_at(t, 2)
    assert t.fit(50) == "interrupted"
    assert t.step == 2
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    for k, v in G.state_dict().items():
        assert torch.equal(state["generator"][k], v)
    err = capsys.readouterr().err
    assert "interrupted at step 2" in err and "--resume" in err


def test_sigint_stops_the_command_with_a_checkpoint(tmp_path):
    """A real Ctrl-C to `python -m pygan train`: exit code 130, a checkpoint, a --resume hint; resumable."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pygan", "train", *tiny_args(out, "--loss", "nsgan")]
    args[args.index("--steps") + 1] = "1000000"
    args[args.index("--ckpt-every") + 1] = "1000000"
    args[args.index("--eval-every") + 1] = "1"
    proc = subprocess.Popen(args, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training progress within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = load_ckpt(out / "checkpoint.pt")
    assert 2 <= state["step"] < 1000000
    assert f"interrupted at step {state['step']}" in err
    assert all(r["step"] <= state["step"] for r in read_metrics(out))


def test_second_ctrl_c_stops_at_once(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt out of fit (the second Ctrl-C): exit code 130 naming the last checkpoint."""
    out = tmp_path / "run"
    assert cli.main(tiny_args(out, "--loss", "nsgan", "--steps", "3")) == 0

    def interrupted(self, steps):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    capsys.readouterr()
    assert cli.main(tiny_args(out, "--loss", "nsgan", "--steps", "6", "--resume")) == 130
    err = capsys.readouterr().err
    assert "without saving" in err and "checkpoint.pt (step 3)" in err
    assert load_ckpt(out / "checkpoint.pt")["step"] == 3


class NaNSwitch(nn.Module):
    """Identity until ``on`` is set, then NaN scores."""

    def __init__(self):
        super().__init__()
        self.on = False

    def forward(self, x):
        return x * float("nan") if self.on else x


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    """A critic that returns NaN from step 4 on: TrainingDiverged naming step 4 and the step-3 checkpoint."""
    switch = NaNSwitch()
    (G, D, g_opt, d_opt), _ = twin_setup("wgan-gp")
    D = nn.Sequential(D, switch)
    eval_data = toy_sample("8gaussians", 32, torch.Generator().manual_seed(0))
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="wgan-gp", n_critic=2, eval_data=eval_data,
                out=tmp_path / "run", eval_every=1, ckpt_every=1, progress=False, plots=False)
    step = t.train_step

    def wrapped():
        switch.on = t.step + 1 >= 4
        return step()

    t.train_step = wrapped
    with pytest.raises(TrainingDiverged) as info:
        t.fit(10)
    message = str(info.value)
    assert "step 4" in message and "checkpoint.pt" in message and "(step 3)" in message
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 3
    assert all_finite(state["generator"]) and all_finite(state["critic"])
    assert max(r["step"] for r in read_metrics(tmp_path / "run")) == 3


def test_cli_divergence_exit_code_1(tmp_path, capsys):
    """Huge learning rates: exit code 1, a message naming the step and the last good checkpoint (finite)."""
    rc = cli.main(tiny_args(tmp_path / "run", "--loss", "nsgan", "--lr-g", "1e30", "--lr-d", "1e30", "--steps",
                            "50", "--ckpt-every", "1"))
    err = capsys.readouterr().err
    assert rc == 1, err
    failing = int(re.search(r"diverged at step (\d+)", err).group(1))
    saved = int(re.search(r"checkpoint\.pt \(step (\d+)\)", err).group(1))
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == saved < failing
    assert all_finite(state["generator"]) and all_finite(state["critic"])


class NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradSwitch(nn.Module):
    """Identity with a finite output; once ``on``, its backward returns NaN (a finite loss, a NaN update)."""

    def __init__(self):
        super().__init__()
        self.on = False

    def forward(self, x):
        return NaNGrad.apply(x) if self.on else x


def _nan_gradient_trainer(tmp_path, eval_every):
    switch = NaNGradSwitch()
    (G, D, g_opt, d_opt), _ = twin_setup("nsgan")
    G = nn.Sequential(G, switch)
    eval_data = toy_sample("8gaussians", 32, torch.Generator().manual_seed(0))
    t = Trainer(G, D, g_opt, d_opt, itertools.cycle(real_batches()), loss="nsgan", eval_data=eval_data,
                out=tmp_path / "run", eval_every=eval_every, ckpt_every=1, progress=False, plots=False)
    step = t.train_step

    def wrapped():
        switch.on = t.step == 2  # the generator update of step 3 has a finite loss and NaN gradients
        return step()

    t.train_step = wrapped
    return t


def test_checkpoint_never_holds_non_finite_weights(tmp_path):
    """A step whose update makes the weights NaN (finite loss) is a divergence, never a checkpoint."""
    t = _nan_gradient_trainer(tmp_path, eval_every=100)
    with pytest.raises(TrainingDiverged, match=r"step 3\b") as info:
        t.fit(10)
    assert "checkpoint.pt (step 2)" in str(info.value)
    state = load_ckpt(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    assert all_finite(state["generator"]) and all_finite(state["critic"])


def test_non_finite_generator_is_reported_as_divergence(tmp_path):
    """NaN weights after a finite-loss step are a TrainingDiverged, not a ValueError from the W1 solver."""
    t = _nan_gradient_trainer(tmp_path, eval_every=1)
    with pytest.raises(TrainingDiverged):
        t.fit(10)


# ============================================================================ 8. bad input before training


def _run_cli(argv, capsys):
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


BAD_OPTIONS = [
    (["--loss", "lsgan"], "gan, nsgan, wgan, wgan-gp, wgan-gp-one-sided, nsgan-r1, wgan-fd"),
    (["--data", "moons"], "8gaussians, 25gaussians, swissroll"),
    (["--steps=-1"], "--steps"),
    (["--eval-every", "0"], "--eval-every"),
    (["--ckpt-every", "0"], "--ckpt-every"),
    (["--eval-samples", "0"], "--eval-samples"),
    (["--lazy-every", "0"], "--lazy-every"),
    (["--hidden", "0"], "--hidden"),
    (["--layers", "0"], "--layers"),
    (["--batch-size", "0"], "--batch-size"),
    (["--n-critic", "0"], "--n-critic"),
    (["--latent-dim", "0"], "--latent-dim"),
    (["--lr-g=-1e-4"], "--lr-g"),
    (["--lr-d", "nan"], "--lr-d"),
    (["--penalty-weight", "inf"], "--penalty-weight"),
    (["--clip=-0.01"], "--clip"),
    (["--instance-noise=-0.1"], "--instance-noise"),
    (["--ema", "1"], "--ema"),
    (["--ema=-0.5"], "--ema"),
    (["--device", "tpu:7"], "--device"),
    (["--lr-decay", "cosine"], "--lr-decay"),
]


@pytest.mark.parametrize("extra, expected", BAD_OPTIONS)
def test_bad_options_fail_before_training(tmp_path, capsys, extra, expected):
    """CLI: exit code 2 and a message naming the option; build(): ValueError; nothing written."""
    out = tmp_path / "run"
    rc, err = _run_cli(tiny_args(out, *extra), capsys)
    assert rc == 2
    assert "error" in err and expected in err
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.pt").exists()
    cfg = cli.TrainConfig(**vars(cli.parser().parse_args(tiny_args(out, *extra))))
    with pytest.raises(ValueError, match=re.escape(expected)):
        build(cfg)
    assert not (out / "metrics.jsonl").exists()


def test_wrong_shape_data_file_fails_before_training(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 5), np.float32))
    rc, err = _run_cli(tiny_args(tmp_path / "run", "--data", str(tmp_path / "bad.npy")), capsys)
    assert rc == 2 and "bad.npy" in err and "shape" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_existing_run_needs_resume_or_force(tmp_path, capsys):
    """A run in --out is never overwritten silently; --force removes only the files a run writes."""
    out = tmp_path / "run"
    assert _run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    ckpt = (out / "checkpoint.pt").read_bytes()
    metrics = (out / "metrics.jsonl").read_text()
    (out / "notes.txt").write_text("my notes")

    rc, err = _run_cli(tiny_args(out, "--loss", "nsgan", "--seed", "1"), capsys)
    assert rc == 2 and "--resume" in err and "--force" in err
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "metrics.jsonl").read_text() == metrics
    with pytest.raises(ValueError, match="already holds a run"):
        build(tiny_config(out))

    rc, _ = _run_cli(tiny_args(out, "--loss", "nsgan", "--seed", "1", "--force", "--steps", "2"), capsys)
    assert rc == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert [r["step"] for r in read_metrics(out)] == [0, 2]  # the old run's records are gone
    assert load_ckpt(out / "checkpoint.pt")["config"]["seed"] == 1
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_force_with_bad_data_keeps_the_old_run(tmp_path, capsys):
    """--force with a --data that fails to load refuses before deleting the previous run."""
    out = tmp_path / "run"
    assert _run_cli(tiny_args(out, "--loss", "nsgan"), capsys)[0] == 0
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 5), np.float32))
    rc, _ = _run_cli(tiny_args(out, "--loss", "nsgan", "--force", "--data", str(tmp_path / "bad.npy")), capsys)
    assert rc == 2
    assert (out / "checkpoint.pt").exists() and (out / "metrics.jsonl").exists()


def test_resume_without_checkpoint(tmp_path, capsys):
    """--resume on an empty --out: exit code 2, a message about the missing checkpoint, nothing written."""
    rc, err = _run_cli(tiny_args(tmp_path / "run", "--resume"), capsys)
    assert rc == 2 and "checkpoint" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("change, key", [(["--loss", "wgan-gp"], "loss"), (["--hidden", "32"], "hidden"),
                                         (["--seed", "3"], "seed"), (["--lr-d", "0.5"], "lr_d")])
def test_resume_with_another_configuration_names_the_keys(tmp_path, capsys, change, key):
    """--resume refuses a different configuration, says which keys differ, and touches nothing."""
    out = tmp_path / "run"
    assert _run_cli(tiny_args(out, "--loss", "nsgan", "--steps", "3"), capsys)[0] == 0
    ckpt, metrics = (out / "checkpoint.pt").read_bytes(), (out / "metrics.jsonl").read_text()
    argv = tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6", *change)
    rc, err = _run_cli(argv, capsys)
    assert rc == 2 and f"{key}:" in err
    assert (out / "checkpoint.pt").read_bytes() == ckpt and (out / "metrics.jsonl").read_text() == metrics
    # Options that do not change what is trained may change.
    rc, _ = _run_cli(tiny_args(out, "--loss", "nsgan", "--resume", "--steps", "6", "--eval-every", "1"), capsys)
    assert rc == 0 and load_ckpt(out / "checkpoint.pt")["step"] == 6


# ============================================================================ 9. metrics


def test_metrics_records_and_exact_w1(tmp_path):
    """One JSON object per line with the documented keys; w1 recomputed with emd2_points and POT."""
    trainer = build(tiny_config(tmp_path / "run", eval_samples=48, steps=4))
    assert trainer.eval_data.shape == (48, 2)
    w1_start = w1_pot(trainer.sample(z=trainer.eval_z), trainer.eval_data)
    trainer.fit(4)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and set(r) == METRIC_KEYS for r in records)
    assert [r["step"] for r in records] == [0, 2, 4]
    assert records[0]["loss_d"] is None and records[0]["w1"] == pytest.approx(w1_start, rel=1e-9)
    assert all(r["w1_space"] == "points" for r in records)
    assert records == trainer.history

    last = records[-1]
    fake, real = trainer.sample(z=trainer.eval_z), trainer.eval_data
    expected = float(pygan_ot.emd2_points(fake.double(), real.double(), metric="euclidean"))
    assert last["w1"] == pytest.approx(expected, rel=1e-12)
    assert last["w1"] == pytest.approx(w1_pot(fake, real), rel=1e-9)
    assert last["w1_samples"] == 48
    with torch.no_grad():
        estimate = (trainer.D(real).mean() - trainer.D(fake).mean()).item()
    assert last["critic_estimate"] == pytest.approx(estimate, rel=1e-5, abs=1e-7)
    assert last["sigma"] == 0.0 and last["step_time"] > 0 and last["elapsed"] >= records[1]["elapsed"]
    assert all(math.isfinite(last[k]) for k in ("loss_d", "loss_g", "penalty"))


def test_metrics_losses_are_means_since_the_last_evaluation(tmp_path):
    """loss_d / loss_g / penalty of a record average the train_step values since the previous record."""
    trainer = build(tiny_config(tmp_path / "run", eval_every=3, steps=6))
    values, step = [], trainer.train_step

    def wrapped():
        stats = step()
        values.append(stats)
        return stats

    trainer.train_step = wrapped
    trainer.fit(6)
    by_step = {r["step"]: r for r in read_metrics(tmp_path / "run")}
    for end in (3, 6):
        for key in ("loss_d", "loss_g", "penalty"):
            mean = sum(v[key] for v in values[end - 3:end]) / 3
            assert by_step[end][key] == pytest.approx(mean, rel=1e-9, abs=1e-12)


# ============================================================================ 10. pictures


def _assert_png(path):
    image = pytest.importorskip("matplotlib.image")
    assert path.read_bytes()[:8] == PNG_MAGIC
    arr = image.imread(path)
    assert arr.ndim == 3 and arr.shape[0] > 50 and arr.shape[1] > 50


def test_pictures_for_points(tmp_path, capsys):
    """samples.png (with the critic's contour) and w1.png are valid PNGs; no pyplot figure left open."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--loss", "nsgan") if a != "--no-plots"]
    assert _run_cli(argv, capsys)[0] == 0
    for name in ("samples.png", "w1.png"):
        _assert_png(out / name)
    assert plt.get_fignums() == open_before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_no_pictures_without_matplotlib(tmp_path, capsys, monkeypatch):
    """Without matplotlib the run trains, says once how to get pictures, and draws nothing."""
    monkeypatch.setattr(train_plots, "available", lambda: False)
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--loss", "nsgan", "--ckpt-every", "1") if a != "--no-plots"]
    rc, err = _run_cli(argv, capsys)
    assert rc == 0 and err.count("matplotlib is not installed") == 1
    assert not list(out.glob("*.png"))


def _uint8_images(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    np.save(path, images)
    return images


def test_pictures_for_images(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    data = tmp_path / "imgs.npy"
    _uint8_images(data)
    out = tmp_path / "run"
    argv = [a for a in tiny_args(out, "--data", str(data), "--loss", "nsgan", "--batch-size", "8", "--steps", "1")
            if a != "--no-plots"]
    open_before = plt.get_fignums()
    assert _run_cli(argv, capsys)[0] == 0
    for name in ("samples.png", "w1.png"):
        _assert_png(out / name)
    assert plt.get_fignums() == open_before


# ============================================================================ 11. command line


def test_cli_help_documents_every_option():
    """`python -m pygan train --help` has a flag for every TrainConfig field; `python -m pygan --help` lists train."""
    proc = subprocess.run([sys.executable, "-m", "pygan", "train", "--help"], env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for f in dataclasses.fields(TrainConfig):
        flag = f.name.replace("_", "-")
        assert re.search(rf"--(no-)?{flag}\b", proc.stdout), flag
    proc = subprocess.run([sys.executable, "-m", "pygan", "--help"], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and re.search(r"^\s+train\s", proc.stdout, re.M)


def test_cli_parser_defaults_and_types_match_train_config():
    """Parsing no flags gives TrainConfig(); flags parse to the field's type."""
    assert cli.TrainConfig(**vars(cli.parser().parse_args([]))) == TrainConfig()
    args = cli.parser().parse_args(["--lr-g", "0.5", "--batch-size", "8", "--no-plots", "--no-progress", "--resume",
                                    "--force", "--loss", "wgan", "--ema", "0.25"])
    assert (args.lr_g, args.batch_size, args.plots, args.progress, args.resume, args.force, args.loss, args.ema) == \
        (0.5, 8, False, False, True, True, "wgan", 0.25)
    assert isinstance(args.lr_g, float) and isinstance(args.batch_size, int)


def test_cli_wgan_clips_the_critic_and_uses_rmsprop(tmp_path, capsys):
    """--loss wgan: critic weights within [-clip, clip] (from the start), RMSprop state in both optimisers."""
    out = tmp_path / "run"
    argv = tiny_args(out, "--loss", "wgan", "--clip", "0.02", "--lr-d", "0.01", "--n-critic", "2", "--steps", "3")
    assert _run_cli(argv, capsys)[0] == 0
    state = load_ckpt(out / "checkpoint.pt")
    flat = torch.cat([v.flatten() for v in state["critic"].values()])
    assert flat.abs().max() <= 0.02 and (flat.abs() == 0.02).any()
    for opt in ("g_optimizer", "d_optimizer"):
        assert all("square_avg" in s and "exp_avg" not in s for s in state[opt]["state"].values())
    assert state["config"]["penalty_weight"] == 0.1 and state["config"]["latent_dim"] == 2  # point defaults


# ============================================================================ 12. image data end to end


@pytest.mark.parametrize("eval_samples", [64, 5])
def test_image_data_end_to_end(tmp_path, capsys, eval_samples):
    """uint8 N x 1 x 8 x 8 trains 2 wgan-gp steps with the DCGAN models; w1 over min(eval_samples, N // 5)."""
    data = tmp_path / "imgs.npy"
    images = _uint8_images(data, n=40)
    out = tmp_path / "run"
    argv = tiny_args(out, "--data", str(data), "--loss", "wgan-gp", "--n-critic", "1", "--batch-size", "8",
                     "--steps", "2", "--eval-every", "1", "--eval-samples", str(eval_samples))
    assert _run_cli(argv, capsys)[0] == 0
    records = read_metrics(out)
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(r["w1_space"] == "flattened pixels" for r in records)
    assert all(r["w1"] is not None and r["w1"] > 0 and r["w1_samples"] == min(eval_samples, 40 // 5)
               for r in records)
    state = load_ckpt(out / "checkpoint.pt")
    assert state["step"] == 2 and state["config"]["latent_dim"] == 100
    assert state["config"]["penalty_weight"] == 10.0 and state["config"]["batch_size"] == 8
    # The held-out images are rows of the file, mapped to [-1, 1].
    trainer = build(tiny_config(out, data=str(data), loss="wgan-gp", n_critic=1, batch_size=8, steps=2,
                                eval_every=1, eval_samples=eval_samples, resume=True))
    mapped = torch.from_numpy(images).float() / 127.5 - 1
    held = trainer.eval_data
    assert held.shape == (min(eval_samples, 8), 1, 8, 8)
    assert all((mapped == h).flatten(1).all(1).any() for h in held)
    fake = trainer.sample(z=trainer.eval_z)
    assert fake.shape == held.shape and fake.abs().max() <= 1
    assert records[-1]["w1"] == pytest.approx(w1_pot(fake, held), rel=1e-9)


# ============================================================================ GPU only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_on_cuda(tmp_path):
    """Resuming on a GPU: the checkpoint's RNG states must reach Generator.set_state as CPU tensors."""
    run(tiny_config(tmp_path / "run", steps=3, device="cuda"))
    assert run(tiny_config(tmp_path / "run", resume=True, device="cuda")).step == 6


def test_generator_update_keeps_a_users_frozen_critic_parameters_frozen():
    """The generator update switches the critic's weight gradients off and back on: only those that
    were trainable are switched back (a parameter the user froze stays frozen)."""
    torch.manual_seed(0)
    G, D = tiny_g(), tiny_d()
    frozen = next(D.parameters())
    frozen.requires_grad_(False)
    trainable = [p for p in D.parameters() if p.requires_grad]
    t = Trainer(G, D, torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(trainable, 1e-3),
                ToySampler("8gaussians", 8, 0), loss="wgan-gp", n_critic=1, penalty_weight=0.1,
                plots=False, progress=False)
    before = frozen.detach().clone()
    t.train_step()
    assert not frozen.requires_grad
    assert all(p.requires_grad for p in trainable)
    assert torch.equal(frozen.detach(), before)
