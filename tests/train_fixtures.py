"""Shared helpers of the tests/test_train_*.py files: tiny configurations and networks, the
hand-written plain-PyTorch GAN loop the Trainer is checked against, and checkpoint comparisons.

Everything runs on CPU with tiny models and one thread.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pygan.optim import ClippedRMSprop
from pygan.train import TrainConfig, cli
from pygan.train import losses as train_losses

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


def run_cli(argv, capsys):
    """``python -m pygan train ARGV`` in this process: (exit code, stderr)."""
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


def uint8_images(path, n=40, seed=0):
    """Save n random uint8 1 x 8 x 8 images to path (.npy) and return them."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    np.save(path, images)
    return images


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
    """L_D + penalty written from the GAN, WGAN and WGAN-GP papers (BCE with logits for the JS family)."""
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
