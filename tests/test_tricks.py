"""The training tricks in the trainer (pygan.train.tricks): a Trainer step with each trick equals a
hand-written plain-PyTorch step (float64, 1e-10), the CLI's nets carry the layers, the tricks are
refused where they do not apply, and the checkpoint holds their state (resume: test_tricks_resume.py).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from pygan.nn import MinibatchDiscrimination, ReferenceBatch, VirtualBatchNorm
from pygan.train import Trainer, TrainConfig, cli
from pygan.train.models import build_models
from pygan.train.tricks import EvalCritic, feature_extractor

F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
B, LATENT, DIM, HIDDEN = 6, 3, 2, 5


def mlp(d_in, d_out, hidden=HIDDEN, layers=2):
    mods, w = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(w, hidden), nn.ReLU()]
        w = hidden
    return nn.Sequential(*mods, nn.Linear(w, d_out)).to(F64)


def batches(n, seed=11, dim=DIM):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, dim, generator=g, dtype=F64) for _ in range(n)]


def sgd(module, lr):
    return torch.optim.SGD(module.parameters(), lr=lr)


def make_trainer(G, D, data, lr=0.05, **kw):
    kw.setdefault("loss", "nsgan")
    return Trainer(G, D, sgd(G, lr), sgd(D, lr), iter(data), latent_shape=LATENT, n_critic=1, ema=0.0,
                   plots=False, progress=False, seed=4, **kw)


# ---------------------------------------------------------------------------------------------------
# written-out twins

def layer_features(D, x, k):
    """The k-th ReLU's output of an MLP Sequential, written out: relu(h Wᵀ + b) layer by layer."""
    h = x
    linears = [m for m in D if isinstance(m, nn.Linear)]
    for lin in linears[:k]:
        h = torch.clamp(h @ lin.weight.T + lin.bias, min=0.0)
    return h


def ha_term(params, means, w):
    return w * sum(((p - m) ** 2).sum() for p, m in zip(params, means))


def bce_smoothed(lr, lf, s):
    sig_r, sig_f = torch.sigmoid(lr), torch.sigmoid(lf)
    return (-(s * torch.log(sig_r) + (1 - s) * torch.log(1 - sig_r))).mean() + (-torch.log(1 - sig_f)).mean()


def twin_train(G, D, data, steps, lr, *, s=1.0, w=0.0, fm_layer=None, loss="nsgan", seed=4):
    """The trainer's nsgan/gan step written out: z from torch.Generator(seed) (critic, then
    generator), SGD, historical averages recorded after every update, feature matching on the
    step's real batch."""
    g = torch.Generator().manual_seed(seed)
    mean_g = [p.detach().clone() for p in G.parameters()]
    mean_d = [p.detach().clone() for p in D.parameters()]
    t_g = t_d = 1
    for i in range(steps):
        real = data[i]
        fake = G(torch.randn(B, LATENT, generator=g, dtype=F64)).detach()
        loss_d = bce_smoothed(D(real).flatten(), D(fake).flatten(), s) + ha_term(D.parameters(), mean_d, w)
        grads = torch.autograd.grad(loss_d, list(D.parameters()))
        with torch.no_grad():
            for p, gr in zip(D.parameters(), grads):
                p -= lr * gr
            t_d += 1
            mean_d = [m + (p - m) / t_d for m, p in zip(mean_d, D.parameters())]
        fake = G(torch.randn(B, LATENT, generator=g, dtype=F64))
        if fm_layer is not None:
            fr = layer_features(D, real, fm_layer).detach()
            loss_g = ((fr.mean(0) - layer_features(D, fake, fm_layer).mean(0)) ** 2).sum()
        elif loss == "gan":
            loss_g = torch.log(1 - torch.sigmoid(D(fake).flatten())).mean()
        else:
            loss_g = -torch.log(torch.sigmoid(D(fake).flatten())).mean()
        loss_g = loss_g + ha_term(G.parameters(), mean_g, w)
        grads = torch.autograd.grad(loss_g, list(G.parameters()))
        with torch.no_grad():
            for p, gr in zip(G.parameters(), grads):
                p -= lr * gr
            t_g += 1
            mean_g = [m + (p - m) / t_g for m, p in zip(mean_g, G.parameters())]
    return mean_g, mean_d


@pytest.mark.parametrize("kw", [
    dict(label_smoothing=0.9),
    dict(historical_averaging=0.7),
    dict(feature_matching=True),
    dict(feature_matching=True, feature_layer=1),
    dict(loss="gan", label_smoothing=0.8, historical_averaging=0.3, feature_matching=True, feature_layer=2),
    dict(loss="gan"),
])
def test_trainer_step_equals_written_out_twin(kw):
    torch.manual_seed(0)
    G, D = mlp(LATENT, DIM), mlp(DIM, 1)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    data, steps, lr = batches(4), 4, 0.05
    trainer = make_trainer(G, D, data, lr, **kw)
    for _ in range(steps):
        trainer.train_step()
    fm_layer = (kw.get("feature_layer") or 2) if kw.get("feature_matching") else None
    mean_g, mean_d = twin_train(G2, D2, data, steps, lr, s=kw.get("label_smoothing", 1.0),
                                w=kw.get("historical_averaging", 0.0), fm_layer=fm_layer, loss=kw.get("loss", "nsgan"))
    for a, b in zip(list(G.parameters()) + list(D.parameters()), list(G2.parameters()) + list(D2.parameters())):
        torch.testing.assert_close(a, b, **TOL)
    if kw.get("historical_averaging"):
        for a, b in zip(trainer.tricks.ha_g.means + trainer.tricks.ha_d.means, mean_g + mean_d):
            torch.testing.assert_close(a, b, **TOL)
        assert trainer.tricks.ha_g.count == trainer.tricks.ha_d.count == steps + 1


def test_label_smoothing_with_r1_equals_twin():
    """nsgan-r1 + smoothing: the smoothed BCE plus γ/2·E||∇D(x)||² at the real batch."""
    torch.manual_seed(1)
    G, D = mlp(LATENT, DIM), mlp(DIM, 1)
    trainer = make_trainer(G, D, batches(1), loss="nsgan-r1", label_smoothing=0.85, penalty_weight=2.0)
    real = batches(1, seed=5)[0].requires_grad_(True)
    fake = batches(1, seed=6)[0]
    loss, term = trainer.tricks.critic_loss("js", D, real, fake, "r1", weight=2.0)
    lr = D(real).flatten()
    (grad,) = torch.autograd.grad(lr.sum(), real, create_graph=True)
    r1 = 2.0 / 2 * (grad ** 2).sum(1).mean()
    torch.testing.assert_close(term, r1, **TOL)
    torch.testing.assert_close(loss, bce_smoothed(lr, D(fake).flatten(), 0.85) + r1, **TOL)


def mbd_twin(h, T, bias):
    n, (A, Bk, C) = h.shape[0], T.shape
    M = (h @ T.reshape(A, Bk * C)).reshape(n, Bk, C)
    o = torch.zeros(n, Bk, dtype=h.dtype)
    for i in range(n):
        for j in range(n):
            if i != j:
                o[i] += torch.exp(-(M[i] - M[j]).abs().sum(-1))
    return torch.cat([h, o + bias], 1)


def vbn_twin(ref, x, layer):
    """Each row of x normalised by the mean / biased variance of cat(ref, that row)."""
    out = []
    for i in range(x.shape[0]):
        pooled = torch.cat([ref, x[i:i + 1]])
        mean, var = pooled.mean(0), pooled.var(0, unbiased=False)
        out.append((x[i] - mean) / torch.sqrt(var + layer.eps) * layer.weight + layer.bias)
    return torch.stack(out)


def _cfg(**kw):
    base = dict(loss="nsgan", hidden=HIDDEN, layers=2, latent_dim=LATENT, batch_size=4, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_cli_nets_carry_minibatch_discrimination_equal_to_twin():
    torch.manual_seed(0)
    _, D, _ = build_models(_cfg(minibatch_discrimination=True, minibatch_kernels=3), "points", (DIM,))
    D = D.to(F64)
    mbd = [m for m in D if isinstance(m, MinibatchDiscrimination)]
    assert len(mbd) == 1 and isinstance(D[-1], nn.Linear) and D[-1].in_features == HIDDEN + 3
    x = torch.randn(5, DIM, dtype=F64)
    h = layer_features(D, x, 2)
    want = mbd_twin(h, mbd[0].weight, mbd[0].bias) @ D[-1].weight.T + D[-1].bias
    torch.testing.assert_close(D(x), want, **TOL)


def test_cli_nets_carry_virtual_batchnorm_equal_to_twin():
    torch.manual_seed(0)
    G, _, _ = build_models(_cfg(virtual_batchnorm=True, layers=1), "points", (DIM,), world=2)
    G = G.to(F64)
    assert isinstance(G, ReferenceBatch) and G.reference.shape == (8, LATENT)  # the global batch 4 x 2
    want_ref = torch.randn(8, LATENT, generator=torch.Generator().manual_seed(15_485_863), dtype=torch.float32)
    torch.testing.assert_close(G.reference, want_ref.to(F64), rtol=0, atol=0)
    lin, vbn, _, out = G.module
    with torch.no_grad():
        vbn.weight.uniform_(0.5, 1.5)
        vbn.bias.uniform_(-0.5, 0.5)
    z = torch.randn(3, LATENT, dtype=F64)
    assert lin.bias is None  # a normalisation follows: no bias (its gradient would be rounding noise)
    h = vbn_twin(G.reference @ lin.weight.T, z @ lin.weight.T, vbn)
    torch.testing.assert_close(G(z), torch.relu(h) @ out.weight.T + out.bias, **TOL)
    # each sample depends on itself and the reference only
    torch.testing.assert_close(G(z)[:1], G(z[:1]), **TOL)


def test_trainer_with_minibatch_and_vbn_step_equals_twin():
    """One nsgan step through nets with both layers, against the same arithmetic done by hand."""
    torch.manual_seed(2)
    cfg = _cfg(minibatch_discrimination=True, minibatch_kernels=2, virtual_batchnorm=True, layers=1, batch_size=B)
    G, D, _ = build_models(cfg, "points", (DIM,))
    G, D = G.to(F64), D.to(F64)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    data, lr = batches(1), 0.05
    trainer = make_trainer(G, D, data, lr, minibatch_discrimination=True, virtual_batchnorm=True)
    trainer.train_step()

    def d_twin(x):
        lin, _, mbd, head = D2
        h = torch.relu(x @ lin.weight.T + lin.bias)
        return (mbd_twin(h, mbd.weight, mbd.bias) @ head.weight.T + head.bias).flatten()

    def g_twin(z):
        lin, vbn, _, out = G2.module
        h = vbn_twin(G2.reference @ lin.weight.T, z @ lin.weight.T, vbn)
        return torch.relu(h) @ out.weight.T + out.bias

    g = torch.Generator().manual_seed(4)
    fake = g_twin(torch.randn(B, LATENT, generator=g, dtype=F64)).detach()
    loss_d = bce_smoothed(d_twin(data[0]), d_twin(fake), 1.0)
    with torch.no_grad():
        for p, gr in zip(D2.parameters(), torch.autograd.grad(loss_d, list(D2.parameters()))):
            p -= lr * gr
    loss_g = -torch.log(torch.sigmoid(d_twin(g_twin(torch.randn(B, LATENT, generator=g, dtype=F64))))).mean()
    with torch.no_grad():
        for p, gr in zip(G2.parameters(), torch.autograd.grad(loss_g, list(G2.parameters()))):
            p -= lr * gr
    for a, b in zip(list(G.parameters()) + list(D.parameters()), list(G2.parameters()) + list(D2.parameters())):
        torch.testing.assert_close(a, b, **TOL)


def test_evaluation_runs_minibatch_d_on_chunks_of_the_batch():
    torch.manual_seed(0)
    _, D, _ = build_models(_cfg(minibatch_discrimination=True, minibatch_kernels=3), "points", (DIM,))
    x = torch.randn(10, DIM)
    ev = EvalCritic(D, 4)
    torch.testing.assert_close(ev(x), torch.cat([D(x[:4]), D(x[4:8]), D(x[8:])]), rtol=0, atol=0)
    assert [m.global_batch for m in D.modules() if isinstance(m, MinibatchDiscrimination)] == [True]


def test_feature_extractor_layers_and_errors():
    D = mlp(DIM, 1, layers=3)
    x = torch.randn(4, DIM, dtype=F64)
    for k in (1, 2, 3):
        f, depth = feature_extractor(D, k)
        assert depth == 3
        torch.testing.assert_close(f(x), layer_features(D, x, k), **TOL)
    f, _ = feature_extractor(D, None)
    torch.testing.assert_close(f(x), layer_features(D, x, 3), **TOL)
    with pytest.raises(ValueError, match=r"feature_layer must be one of the critic's 3 feature layers \(1..3\), got 4"):
        feature_extractor(D, 4)
    with pytest.raises(ValueError, match="feature_layer must be an int >= 1"):
        feature_extractor(D, 0)
    with pytest.raises(ValueError, match="features\\(x, layer\\) method"):
        feature_extractor(lambda x: x, None)
    with pytest.raises(ValueError, match="no intermediate layer"):
        feature_extractor(nn.Sequential(nn.Linear(2, 1)), None)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(loss="wgan-gp", label_smoothing=0.9), ValueError, "label_smoothing 0.9 applies to the JS losses only"),
    (dict(minibatch_discrimination=True), ValueError, "minibatch_discrimination: the critic holds no"),
    (dict(virtual_batchnorm=True), ValueError, "virtual_batchnorm: the generator must be a pygan.nn.ReferenceBatch"),
    (dict(feature_matching=True, feature_layer=5), ValueError, "feature_layer must be one of the critic's 2"),
    (dict(feature_layer=1), ValueError, "feature_layer: only used with feature_matching"),
    (dict(historical_averaging=-1.0), ValueError, "historical_averaging must be a finite number >= 0"),
    (dict(historical_averaging=math.nan), ValueError, "historical_averaging must be a finite number"),
    (dict(label_smoothing=0.0), ValueError, "label_smoothing must be a finite number > 0 and <= 1"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing must be a finite number > 0 and <= 1"),
    (dict(feature_matching=1), TypeError, "feature_matching must be True or False"),
])
def test_trainer_refuses_bad_tricks(kw, exc, match):
    G, D = mlp(LATENT, DIM), mlp(DIM, 1)
    with pytest.raises(exc, match=match):
        make_trainer(G, D, batches(1), **kw)


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp", "nsgan-r1", "wgan-fd"])
def test_trainer_refuses_minibatch_discrimination_in_a_penalised_or_w_critic(loss):
    _, D, _ = build_models(_cfg(minibatch_discrimination=True), "points", (DIM,))
    with pytest.raises(ValueError, match="minibatch_discrimination applies to gan and nsgan only"):
        make_trainer(mlp(LATENT, DIM).float(), D, batches(1), loss=loss)


def test_checkpoint_holds_historical_averages_and_vbn_state(tmp_path):
    from train_fixtures import load_ckpt, tiny_config
    from pygan.train import run

    trainer = run(tiny_config(tmp_path / "r", loss="nsgan", historical_averaging=0.5, virtual_batchnorm=True,
                              steps=3, ckpt_every=3))
    state = load_ckpt(tmp_path / "r" / "checkpoint.pt")
    ha = state["tricks"]["historical_average"]
    assert ha["generator"]["count"] == 4 and ha["critic"]["count"] == 4
    for a, b in zip(ha["critic"]["means"], trainer.tricks.ha_d.means):
        assert torch.equal(a, b)
    assert torch.equal(state["generator"]["reference"], trainer.G.reference)
    vbn = [k for k in state["generator"] if k.endswith("reference_mean")]
    assert vbn and all(int(state["generator"][k.replace("mean", "size")]) == 16 for k in vbn)


def test_checkpoint_without_historical_averages_is_refused(tmp_path):
    from pygan.train import run

    out = tmp_path / "r"
    from train_fixtures import tiny_config

    run(tiny_config(out, loss="nsgan", steps=2, ckpt_every=2))
    trainer = make_trainer(*[m.float() for m in build_models(_cfg(hidden=16, layers=1, latent_dim=2), "points",
                                                              (DIM,))[:2]], batches(1), historical_averaging=0.5)
    with pytest.raises(ValueError, match="the checkpoint has no historical averages"):
        trainer.load_checkpoint(out / "checkpoint.pt")


def test_cli_dcgan_note_and_normalisation(tmp_path, capsys):
    from train_fixtures import tiny_args

    argv = tiny_args(tmp_path / "r", "--arch", "dcgan", "--data", "shapes", "--dcgan-width", "4", "--loss", "wgan-gp",
                     "--steps", "1", "--batch-size", "4", "--n-critic", "1")
    assert cli.main(argv) == 0
    assert "the critic uses layer norm, not batch norm" in capsys.readouterr().err
    G, D, notes = build_models(_cfg(arch="dcgan", dcgan_width=4, latent_dim=8), "images", (1, 32, 32))
    assert not notes and any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())
    _, D, notes = build_models(_cfg(arch="dcgan", dcgan_width=4, latent_dim=8, loss="nsgan-r1"), "images", (1, 32, 32))
    assert notes and not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in D.modules())
    G, _, _ = build_models(_cfg(arch="dcgan", dcgan_width=4, latent_dim=8, virtual_batchnorm=True), "images",
                           (1, 32, 32))
    assert isinstance(G, ReferenceBatch) and any(isinstance(m, VirtualBatchNorm) for m in G.modules())
    conv = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert abs(torch.cat([c.weight.flatten() for c in conv]).std().item() - 0.02) < 0.005  # N(0, 0.02)


def test_untouched_defaults_build_todays_nets():
    """--arch small without tricks: exactly the nets of pygan.train.models (same draws)."""
    from pygan.train.models import mlp_critic, mlp_generator

    torch.manual_seed(3)
    G, D, _ = build_models(_cfg(), "points", (DIM,))
    torch.manual_seed(3)
    G0, D0 = mlp_generator(LATENT, DIM, HIDDEN, 2), mlp_critic(DIM, HIDDEN, 2)
    for a, b in zip(list(G.state_dict().values()) + list(D.state_dict().values()),
                    list(G0.state_dict().values()) + list(D0.state_dict().values())):
        assert torch.equal(a, b)
