"""The Trainer's schedules: instance noise (annealed), linear learning-rate decay and the
generator's exponential moving average, each against a plain loop.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from pygan.train import Trainer, toy_sample
from train_fixtures import (SeededDraws, assert_params_close, canonical_train, ema_decay, real_batches, twin_setup,
                            w1_pot)


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
    eval_data = toy_sample("8gaussians", 32, generator=torch.Generator().manual_seed(0))
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
