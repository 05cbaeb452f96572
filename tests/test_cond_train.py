"""Conditional training from Python: the Trainer with a class-conditional GAN, InfoGAN and pix2pix,
checked against plain-PyTorch twins of each objective written out here, and the metrics against
independent computations."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pygan.train import Trainer
from pygan.train.cond_eval import Classifier
from pygan.train.cond_step import InfoGANCondition, LabelCondition, Pix2PixCondition
from pygan.train.conditional import conditional_mlp_critic, conditional_mlp_generator
from pygan.train.infogan import InfoGANCodes, InfoGANCritic
from pygan.train.pix2pix import PatchCritic, UNetGenerator
from train_fixtures import w1_pot

torch.set_num_threads(1)
B, K = 8, 4


def labelled_batches(n=12, seed=3, dim=2):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, dim, generator=g, dtype=torch.float64), torch.randint(K, (B,), generator=g))
            for _ in range(n)]


def adam(loss, params):
    betas = {"wgan-gp": (0.5, 0.9), "wgan-gp-one-sided": (0.5, 0.9), "wgan-fd": (0.5, 0.9)}.get(loss, (0.5, 0.999))
    return torch.optim.Adam(params, lr=1e-3, betas=betas)


def twin_gp(D, real, fake, alpha, critic_args, weight, one_sided=False):
    a = alpha.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(D(x_hat, *critic_args).sum(), x_hat, create_graph=True)
    excess = grads.flatten(1).norm(dim=1) - 1
    return weight * ((torch.relu(excess) if one_sided else excess) ** 2).mean()


def twin_r1(D, real, critic_args, gamma):
    x = real.detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(D(x, *critic_args).sum(), x, create_graph=True)
    return gamma / 2 * (grads.flatten(1) ** 2).sum(dim=1).mean()


def twin_objectives(loss, d_real, d_fake):
    """(L_D without penalty, L_G's function of D(fake)) of the plain losses, written out."""
    if loss in ("gan", "nsgan", "nsgan-r1"):
        ld = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    else:
        ld = d_fake.mean() - d_real.mean()
    return ld


def twin_gen(loss, d_fake):
    if loss == "gan":
        return -F.softplus(d_fake).mean()
    if loss in ("nsgan", "nsgan-r1"):
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()


def _assert_same_models(trainer, G, D, rtol=1e-9, atol=1e-11):
    for a, b in zip(list(trainer.G.parameters()) + list(trainer.D.parameters()),
                    list(G.parameters()) + list(D.parameters())):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("loss,projection", [("wgan-gp", False), ("wgan-gp", True), ("nsgan", False),
                                             ("nsgan-r1", True), ("gan", False), ("wgan-gp-one-sided", False),
                                             ("wgan", False), ("wgan-fd", True)])
def test_label_condition_matches_its_twin(loss, projection):
    """Three steps of the conditional trainer == the conditional GAN written out: fake with the real
    batch's labels, the penalty w.r.t. x at the same y, the generator on the last batch's labels."""
    torch.manual_seed(0)
    G = conditional_mlp_generator(2, K, 2, hidden=16, layers=1).double()
    D = conditional_mlp_critic(2, K, hidden=16, layers=2, projection=projection).double()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    data = labelled_batches()
    n_critic, weight = 2, 0.5
    cond = LabelCondition(K, torch.arange(16) % K)
    trainer = Trainer(G, D, adam(loss, G.parameters()), adam(loss, D.parameters()), iter(data), loss=loss,
                      latent_shape=2, n_critic=n_critic, penalty_weight=weight, seed=11, condition=cond,
                      eval_data=data[0][0].repeat(2, 1), plots=False, progress=False)
    for _ in range(3):
        trainer.train_step()

    g_opt, d_opt = adam(loss, G2.parameters()), adam(loss, D2.parameters())
    gen = torch.Generator().manual_seed(11)
    it = iter(data)
    for _ in range(3):
        for _ in range(n_critic):
            x, y = next(it)
            with torch.no_grad():
                fake = G2(torch.randn(B, 2, generator=gen, dtype=torch.float64), y)
            ld = twin_objectives(loss, D2(x, y).reshape(-1), D2(fake, y).reshape(-1))
            if loss in ("wgan-gp", "wgan-gp-one-sided"):
                alpha = torch.rand(B, generator=gen, dtype=torch.float64)
                ld = ld + twin_gp(D2, x, fake, alpha, (y,), weight, one_sided=loss.endswith("one-sided"))
            elif loss == "nsgan-r1":
                ld = ld + twin_r1(D2, x, (y,), weight)
            elif loss == "wgan-fd":  # pairs (x̂_i, x̂_{i-1}), both scored at y_i
                alpha = torch.rand(B, generator=gen, dtype=torch.float64)[:, None]
                x1 = alpha * x + (1 - alpha) * fake
                x2 = x1.roll(1, 0)
                slope = (D2(x1, y) - D2(x2, y)).reshape(-1).abs() / (x1 - x2).norm(dim=1)
                ld = ld + weight * ((slope - 1) ** 2).mean()
            d_opt.zero_grad()
            ld.backward()
            d_opt.step()
        lg = twin_gen(loss, D2(G2(torch.randn(B, 2, generator=gen, dtype=torch.float64), y), y).reshape(-1))
        g_opt.zero_grad()
        lg.backward()
        g_opt.step()
    # wgan-fd computes the slopes in float32 (pygan.fd_penalty), the twin in float64
    _assert_same_models(trainer, G2, D2, *((1e-5, 1e-7) if loss == "wgan-fd" else (1e-9, 1e-11)))


@pytest.mark.parametrize("loss", ["nsgan", "wgan-gp"])
def test_infogan_condition_matches_its_twin(loss):
    """InfoGAN written out: L_D + λ(CE + ½||c - μ||² + ½log 2π) on the fake batch; L_G + the same term."""
    torch.manual_seed(1)
    codes = InfoGANCodes(2, categorical=3, continuous=2)
    G = torch.nn.Sequential(torch.nn.Linear(codes.latent_dim, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    D = InfoGANCritic(torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh()), 16, codes).double()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    data = [x for x, _ in labelled_batches()]
    lam, weight = 0.7, 0.3
    trainer = Trainer(G, D, adam(loss, G.parameters()), adam(loss, D.parameters()), iter(data), loss=loss,
                      latent_shape=99, n_critic=1, penalty_weight=weight, seed=5, plots=False, progress=False,
                      condition=InfoGANCondition(codes, lam))
    assert trainer.latent_shape == (codes.latent_dim,)
    for _ in range(3):
        trainer.train_step()

    def draw(gen):
        z = torch.randn(B, 2, generator=gen, dtype=torch.float64)
        cat = torch.randint(3, (B,), generator=gen)
        cont = torch.rand(B, 2, generator=gen, dtype=torch.float64) * 2 - 1
        return torch.cat([z, F.one_hot(cat, 3).double(), cont], 1), cat, cont

    def info(x, cat, cont):
        out = D2.q.linear(D2.body(x))
        nll = (0.5 * (cont - out[:, 3:]) ** 2 + 0.5 * math.log(2 * math.pi)).sum(1).mean()
        return lam * (F.cross_entropy(out[:, :3], cat) + nll)

    g_opt, d_opt = adam(loss, G2.parameters()), adam(loss, D2.parameters())
    gen = torch.Generator().manual_seed(5)
    for x in data[:3]:
        latent, cat, cont = draw(gen)
        with torch.no_grad():
            fake = G2(latent)
        ld = twin_objectives(loss, D2(x).reshape(-1), D2(fake).reshape(-1))
        if loss == "wgan-gp":
            alpha = torch.rand(B, generator=gen, dtype=torch.float64)
            ld = ld + twin_gp(lambda v: D2(v), x, fake, alpha, (), weight)
        ld = ld + info(fake, cat, cont)
        d_opt.zero_grad()
        ld.backward()
        d_opt.step()
        latent, cat, cont = draw(gen)
        fake = G2(latent)
        lg = twin_gen(loss, D2(fake).reshape(-1)) + info(fake, cat, cont)
        g_opt.zero_grad()
        lg.backward()
        g_opt.step()
    _assert_same_models(trainer, G2, D2)


@pytest.mark.parametrize("loss", ["nsgan", "wgan-gp"])
def test_pix2pix_condition_matches_its_twin(loss):
    """pix2pix written out: JS losses over the patch scores, W losses and the penalty on the mean
    patch score w.r.t. b at the same a; G's loss + λ_L1·mean|G(a) - b|."""
    torch.manual_seed(2)
    G, D = UNetGenerator(1, 1, width=4, depth=2).double(), PatchCritic(1, 1, width=4, layers=1).double()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1,
             torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1) for _ in range(4)]
    lam, weight = 10.0, 2.0
    trainer = Trainer(G, D, adam(loss, G.parameters()), adam(loss, D.parameters()), iter(data), loss=loss,
                      latent_shape=1, n_critic=1, penalty_weight=weight, seed=7, plots=False, progress=False,
                      condition=Pix2PixCondition(data[0][0], lambda_l1=lam), eval_data=data[0][1])
    for _ in range(3):
        trainer.train_step()
    g_opt, d_opt = adam(loss, G2.parameters()), adam(loss, D2.parameters())
    gen = torch.Generator().manual_seed(7)
    score = lambda b, a: D2(a, b).flatten(1).mean(1)  # noqa: E731
    for a, b in data[:3]:
        with torch.no_grad():
            fake = G2(a)
        if loss == "nsgan":
            ld = F.softplus(-D2(a, b)).mean() + F.softplus(D2(a, fake)).mean()
        else:
            ld = score(fake, a).mean() - score(b, a).mean()
            ld = ld + twin_gp(score, b, fake, torch.rand(4, generator=gen, dtype=torch.float64), (a,), weight)
        d_opt.zero_grad()
        ld.backward()
        d_opt.step()
        out = G2(a)
        adv = F.softplus(-D2(a, out)).mean() if loss == "nsgan" else -score(out, a).mean()
        lg = adv + lam * (out - b).abs().mean()
        g_opt.zero_grad()
        lg.backward()
        g_opt.step()
    # (a W critic's loss ignores the last convolution's bias: its gradient is 0 up to rounding, which
    # Adam turns into steps of either sign; the rest agrees to float64 rounding)
    _assert_same_models(trainer, G2, D2, rtol=1e-6, atol=1e-8)
    rec = trainer.evaluate()
    with torch.no_grad():
        want = (trainer.G(data[0][0]) - data[0][1]).abs().mean()
    assert rec["l1"] == pytest.approx(float(want), rel=1e-9)
    assert rec["w1"] == pytest.approx(w1_pot(trainer.G(data[0][0]).detach(), data[0][1]), rel=1e-6)


def test_w1_per_class_and_w1_match_pot():
    """The logged w1_per_class is the exact W1 of each class (checked with POT), w1 of all samples."""
    torch.manual_seed(0)
    G = conditional_mlp_generator(2, K, 2, hidden=16, layers=1)
    D = conditional_mlp_critic(2, K, hidden=16, layers=1)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(40, 2, generator=g)
    y = torch.arange(40) % K
    trainer = Trainer(G, D, adam("nsgan", G.parameters()), adam("nsgan", D.parameters()),
                      iter([(real[:B], y[:B])]), loss="nsgan", condition=LabelCondition(K, y), eval_data=real,
                      plots=False, progress=False)
    rec = trainer.evaluate()
    with torch.no_grad():
        fake = G(trainer.eval_z, y)
    assert rec["w1"] == pytest.approx(w1_pot(fake, real), rel=1e-6)
    assert len(rec["w1_per_class"]) == K
    for k in range(K):
        assert rec["w1_per_class"][k] == pytest.approx(w1_pot(fake[y == k], real[y == k]), rel=1e-6)
    assert "class_accuracy" not in rec  # points: no classifier


def test_classifier_is_deterministic_and_learns():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 1, 4, 4, generator=g) * 3
    y = torch.arange(300) % 3
    x = centres[y] + torch.randn(300, 1, 4, 4, generator=g)
    state = torch.get_rng_state()
    c1, c2 = Classifier(x, y, 3), Classifier(x, y, 3)
    assert torch.equal(torch.get_rng_state(), state)  # the run's own draws are untouched
    assert torch.equal(c1.W, c2.W)
    assert c1.accuracy(x, y) > 0.95
    assert c1.accuracy(x, (y + 1) % 3) < 0.05


def test_condition_rejects_what_it_cannot_train():
    G = conditional_mlp_generator(2, K, 2, hidden=8, layers=1)
    D = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError, match="InfoGANCondition: the critic must have score_and_q"):
        Trainer(G, D, adam("nsgan", G.parameters()), adam("nsgan", D.parameters()), iter([]), loss="nsgan",
                condition=InfoGANCondition(InfoGANCodes(2, categorical=2)), plots=False, progress=False)
    with pytest.raises(ValueError, match="lambda_info"):
        InfoGANCondition(None, lambda_info=-1.0)
    with pytest.raises(ValueError, match="lambda_l1"):
        Pix2PixCondition(torch.zeros(1, 1, 8, 8), lambda_l1=float("nan"))
    with pytest.raises(ValueError, match="eval_labels"):
        LabelCondition(2, torch.tensor([0, 2]))


def test_conditional_trainer_restarts_finite_data():
    """A finite list of (x, y) batches is started again when it runs out, exactly as the plain
    trainer does: training on the list equals training on an endless cycle of it."""
    import itertools

    data = labelled_batches(n=2)
    runs = []
    for source in (data, itertools.cycle(data)):
        torch.manual_seed(0)
        G = conditional_mlp_generator(2, K, 2, hidden=8, layers=1).double()
        D = conditional_mlp_critic(2, K, hidden=8, layers=1).double()
        trainer = Trainer(G, D, adam("wgan-gp", G.parameters()), adam("wgan-gp", D.parameters()), source,
                          loss="wgan-gp", latent_shape=2, n_critic=3, seed=5,
                          condition=LabelCondition(K, torch.arange(8) % K), eval_data=data[0][0],
                          plots=False, progress=False)
        for _ in range(2):  # 6 critic batches from a list of 2
            trainer.train_step()
        runs.append((G, D))
    for a, b in zip(runs[0], runs[1]):
        for x, y in zip(a.parameters(), b.parameters()):
            assert torch.equal(x, y)
