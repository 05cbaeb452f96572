"""pygan.train.losses (the objectives against their formulas, the papers' defaults) and the
Trainer against a hand-written plain-PyTorch loop for every loss.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pygan.train import LOSSES, Trainer
from pygan.train import losses as train_losses
from pygan.train.data import ToySampler
from train_fixtures import (RecordedDraws, SeededDraws, assert_params_close, canonical_generator_loss,
                            canonical_train, real_batches, tiny_d, tiny_g, twin_setup)


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


def test_the_penalty_keywords_the_trainer_uses():
    """r1_penalty(return_scores=True) returns the same penalty and the critic's scores of the real
    batch; check_alpha=False skips only the range check (same value for a valid alpha);
    critic_scores refuses more than one score per sample."""
    import pygan
    from pygan.penalties import critic_scores

    torch.manual_seed(0)
    D = tiny_d()
    real, fake, alpha = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    penalty, scores = pygan.r1_penalty(D, real, gamma=3.0, return_scores=True)
    assert torch.equal(penalty, pygan.r1_penalty(D, real, gamma=3.0))
    assert torch.equal(scores, D(real).reshape(-1)) and scores.requires_grad
    for fn in (pygan.gradient_penalty, pygan.fd_penalty):
        checked = fn(D, real, fake, weight=2.0, alpha=alpha)
        assert torch.equal(checked, fn(D, real, fake, weight=2.0, alpha=alpha, check_alpha=False))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            fn(D, real, fake, weight=2.0, alpha=alpha + 1.5)
    with pytest.raises(ValueError, match="one score per sample"):
        critic_scores(nn.Linear(2, 3), real, "the trainer")


@pytest.mark.parametrize("penalty", [None, "gp", "gp-one-sided", "r1", "fd"])
def test_critic_loss_with_an_objective_keeps_the_penalty(penalty):
    """critic_loss(objective=f) is f(D(real), D(fake)) plus the same penalty term as without it."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    alpha = torch.rand(6, dtype=torch.float64)
    objective = lambda r, f: (r - 0.3).pow(2).mean() + 2 * f.mean()  # noqa: E731  (any function of the scores)
    loss, term = train_losses.critic_loss("js", D, real, fake, penalty, weight=0.7, alpha=alpha,
                                          objective=objective)
    plain, plain_term = train_losses.critic_loss("js", D, real, fake, penalty, weight=0.7, alpha=alpha)
    d_real, d_fake = D(real).flatten(), D(fake).flatten()
    torch.testing.assert_close(term, plain_term, rtol=1e-12, atol=0)
    torch.testing.assert_close(loss, objective(d_real, d_fake) + plain_term, rtol=1e-12, atol=1e-15)
    if penalty in (None, "gp", "r1"):  # (a one-sided or fd term may be 0 here: all slopes below 1)
        assert (penalty is None) == (float(term) == 0.0)
