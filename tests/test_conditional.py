"""pygan.train.conditional (conditional G and D, concatenation and projection), pygan.train.infogan
(codes, Q head, information loss) and pygan.train.cond_metrics (code accuracy, W1 per class),
each against a plain-PyTorch twin written out here or a brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import pygan
from pygan.train.cond_metrics import best_matching, code_accuracy, confusion_counts, w1_per_class
from pygan.train.conditional import (check_labels, conditional_dcgan_critic, conditional_dcgan_generator,
                                     conditional_mlp_critic, conditional_mlp_generator)
from pygan.train.infogan import InfoGANCodes, InfoGANCritic, LatentCodes, QHead, gaussian_nll, information_loss

torch.set_num_threads(1)
F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


def _linears(seq):
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def _mlp_twin(linears, h, last_relu):
    for i, lin in enumerate(linears):
        h = h @ lin.weight.T + lin.bias
        if i < len(linears) - 1 or last_relu:
            h = torch.relu(h)
    return h


# --------------------------------------------------------------------------------- conditional models

def test_generator_matches_twin():
    torch.manual_seed(0)
    G = conditional_mlp_generator(3, 5, 2, hidden=8, layers=2, embed_dim=4).to(F64)
    z, y = torch.randn(7, 3, dtype=F64), torch.randint(5, (7,))
    want = _mlp_twin(_linears(G.net), torch.cat([z, G.embed.weight[y]], dim=1), last_relu=False)
    torch.testing.assert_close(G(z, y), want, **TOL)
    assert G(z, y).shape == (7, 2)


@pytest.mark.parametrize("projection", [False, True])
def test_mlp_critic_matches_twin(projection):
    torch.manual_seed(1)
    D = conditional_mlp_critic(2, 4, hidden=8, layers=2, embed_dim=3, projection=projection).to(F64)
    x, y = torch.randn(9, 2, dtype=F64), torch.randint(4, (9,))
    e = D.embed.weight[y]
    if projection:  # Miyato & Koyama eq. 3: psi(phi(x)) + <e(y), phi(x)>
        phi = _mlp_twin(_linears(D.body), x, last_relu=True)
        want = phi @ D.head.weight.T + D.head.bias + (e * phi).sum(1, keepdim=True)
        assert e.shape[1] == 8
    else:
        phi = _mlp_twin(_linears(D.body), torch.cat([x, e], 1), last_relu=True)
        want = phi @ D.head.weight.T + D.head.bias
    torch.testing.assert_close(D(x, y), want, **TOL)
    torch.testing.assert_close(D.features(x, y), phi, **TOL)


@pytest.mark.parametrize("projection", [False, True])
def test_image_models(projection):
    torch.manual_seed(2)
    G = conditional_dcgan_generator(6, 3, channels=3, side=16, width=4, embed_dim=2).to(F64)
    D = conditional_dcgan_critic(3, 16, 3, width=4, embed_dim=2, projection=projection).to(F64)
    z, y = torch.randn(5, 6, dtype=F64), torch.tensor([0, 1, 2, 1, 0])
    x = G(z, y)
    assert x.shape == (5, 3, 16, 16) and x.abs().max() < 1
    assert D(x, y).shape == (5, 1) and D.features(x, y).shape == (5, 2 * 4 * 4 * 4)
    # the label reaches the score: other labels, other scores (concatenated maps or projection)
    assert not torch.allclose(D(x, y), D(x, (y + 1) % 3))
    if not projection:  # the label maps are constant, so their first conv equals a per-label bias
        conv = D.body[0]
        maps = D.embed.weight[y][:, :, None, None].expand(-1, -1, 16, 16)
        want = F.conv2d(torch.cat([x, maps], 1), conv.weight, conv.bias, stride=2, padding=1)
        torch.testing.assert_close(D.body[0](torch.cat([x, maps], 1)), want, **TOL)


@pytest.mark.parametrize("projection", [False, True])
def test_gradient_penalty_wrt_x_at_same_y(projection):
    torch.manual_seed(3)
    D = conditional_mlp_critic(2, 3, hidden=8, layers=2, projection=projection).to(F64)
    real, fake = torch.randn(6, 2, dtype=F64), torch.randn(6, 2, dtype=F64)
    y = torch.randint(3, (6,))
    alpha = torch.rand(6, dtype=F64)
    got = pygan.gradient_penalty(lambda x: D(x, y), real, fake, weight=10.0, alpha=alpha)
    params = list(D.parameters())
    g_got = torch.autograd.grad(got, params, allow_unused=True)  # the head's bias never enters a gradient
    x_hat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_(True)
    (gx,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
    want = 10.0 * ((gx.norm(dim=1) - 1) ** 2).mean()
    g_want = torch.autograd.grad(want, params, allow_unused=True)
    torch.testing.assert_close(got, want, **TOL)
    for a, b in zip(g_got, g_want):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **TOL)
    # the penalty depends on y (the gradient is taken at each sample's own label)
    other = pygan.gradient_penalty(lambda x: D(x, (y + 1) % 3), real, fake, weight=10.0, alpha=alpha)
    assert not torch.allclose(got, other)


def test_bad_labels():
    G = conditional_mlp_generator(2, 4, 2, hidden=4, layers=1)
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match="expected 3 labels"):
        G(z, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        G(z, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"in \[0, 4\), got 4"):
        G(z, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="got -1"):
        G(z, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match="1-D"):
        check_labels(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        check_labels(np.array([True, False]))
    assert check_labels([1, 2], 3).dtype == torch.int64
    with pytest.raises(ValueError, match="num_classes"):
        conditional_mlp_critic(2, 0)
    with pytest.raises(ValueError, match="embed_dim"):
        conditional_mlp_generator(2, 3, 2, embed_dim=0)


# --------------------------------------------------------------------------------- InfoGAN

def test_codes_sample_deterministic_and_layout():
    codes = InfoGANCodes(5, categorical=4, continuous=2)
    assert codes.latent_dim == 11
    lat1, c1 = codes.sample(50, generator=torch.Generator().manual_seed(7))
    lat2, c2 = codes.sample(50, generator=torch.Generator().manual_seed(7))
    lat3, _ = codes.sample(50, generator=torch.Generator().manual_seed(8))
    assert torch.equal(lat1, lat2) and not torch.equal(lat1, lat3)
    assert torch.equal(c1.categorical, c2.categorical)
    noise, onehot, cont = lat1.split([5, 4, 2], dim=1)
    assert torch.equal(onehot, F.one_hot(c1.categorical, 4).float())
    assert torch.equal(cont, c1.continuous) and cont.abs().max() <= 1
    back_noise, back = codes.split(lat1)
    assert torch.equal(back_noise, noise) and torch.equal(back.categorical, c1.categorical)
    assert torch.equal(codes.join(noise, c1), lat1)
    only_cat = InfoGANCodes(0, categorical=3)
    lat, c = only_cat.sample(4)
    assert lat.shape == (4, 3) and c.continuous is None


@pytest.mark.parametrize("kw, name", [(dict(categorical=0), "categorical"), (dict(categorical=-2), "categorical"),
                                      (dict(continuous=0), "continuous"), (dict(categorical=3, continuous=-1), "continuous"),
                                      (dict(), "at least one")])
def test_code_sizes_refused(kw, name):
    with pytest.raises(ValueError, match=name):
        InfoGANCodes(4, **kw)
    with pytest.raises(ValueError, match="noise_dim"):
        InfoGANCodes(-1, categorical=2)
    with pytest.raises(TypeError, match="categorical"):
        InfoGANCodes(1, categorical=2.0)


@pytest.mark.parametrize("fixed_std", [True, False])
def test_information_loss_matches_twin(fixed_std):
    torch.manual_seed(4)
    codes = InfoGANCodes(3, categorical=5, continuous=2)
    body = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU())
    D = InfoGANCritic(body, 6, codes, fixed_std=fixed_std).to(F64)
    x = torch.randn(8, 4, dtype=F64)
    _, c = codes.sample(8, dtype=F64, generator=torch.Generator().manual_seed(0))
    score, q = D.score_and_q(x)
    torch.testing.assert_close(score, D(x), **TOL)
    got = information_loss(q, c, lambda_info=0.7)
    # twin: out = Linear(phi); -log softmax at the code; Gaussian NLL written out (sigma = 1 if fixed)
    out = body(x) @ D.q.linear.weight.T + D.q.linear.bias
    logits, mean = out[:, :5], out[:, 5:7]
    log_sigma = torch.zeros_like(mean) if fixed_std else out[:, 7:9]
    ce = -(logits - logits.exp().sum(1, keepdim=True).log())[torch.arange(8), c.categorical].mean()
    var = torch.exp(2 * log_sigma)
    nll = (0.5 * torch.log(2 * math.pi * var) + (c.continuous - mean) ** 2 / (2 * var)).sum(1).mean()
    torch.testing.assert_close(got, 0.7 * (ce + nll), **TOL)
    # Q shares the body: the loss trains the body, and there is no second body
    assert all(g is not None and g.abs().sum() > 0 for g in torch.autograd.grad(got, list(body.parameters())))
    n_params = sum(p.numel() for p in D.parameters())
    assert n_params == sum(p.numel() for p in body.parameters()) + 7 + D.q.linear.weight.numel() + D.q.linear.bias.numel()


def test_information_loss_bad_input():
    q = QHead(4, InfoGANCodes(1, categorical=3))(torch.randn(2, 4))
    with pytest.raises(ValueError, match="lambda_info"):
        information_loss(q, LatentCodes(torch.tensor([0, 1]), None), lambda_info=-1)
    with pytest.raises(ValueError, match="codes.categorical"):
        information_loss(q, LatentCodes(None, None))
    with pytest.raises(ValueError, match="codes"):
        gaussian_nll(torch.zeros(2, 3), torch.zeros(2, 2))


# --------------------------------------------------------------------------------- metrics

def _brute_accuracy(codes, classes, k1, k2):
    counts = np.zeros((k1, k2))
    np.add.at(counts, (codes, classes), 1)
    if k1 <= k2:
        best = max(sum(counts[i, p[i]] for i in range(k1)) for p in itertools.permutations(range(k2), k1))
    else:
        best = max(sum(counts[p[j], j] for j in range(k2)) for p in itertools.permutations(range(k1), k2))
    return best / len(codes)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_code_accuracy_equals_brute_force(data):
    k1 = data.draw(st.integers(1, 6))
    k2 = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(1, 40))
    codes = np.array(data.draw(st.lists(st.integers(0, k1 - 1), min_size=n, max_size=n)))
    classes = np.array(data.draw(st.lists(st.integers(0, k2 - 1), min_size=n, max_size=n)))
    got = code_accuracy(torch.from_numpy(codes), torch.from_numpy(classes), k1, k2)
    assert got == pytest.approx(_brute_accuracy(codes, classes, k1, k2), abs=1e-12)


def test_code_accuracy_cases():
    assert code_accuracy([2, 2, 0, 0, 1], [0, 0, 1, 1, 2]) == 1.0  # a relabelling
    assert code_accuracy([0, 0, 0, 0], [0, 1, 2, 3]) == 0.25  # one code for every class
    perm = best_matching(torch.tensor([[0.0, 5, 1], [3, 0, 0], [0, 1, 4]]))
    assert perm.tolist() == [1, 0, 2]
    counts = confusion_counts([0, 1, 1], [1, 1, 0])
    assert counts.tolist() == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="classes"):
        code_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="codes"):
        code_accuracy([0, 3], [0, 1], num_codes=2)
    with pytest.raises(TypeError, match="codes"):
        code_accuracy(np.array([0.5, 1.0]), [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        code_accuracy([], [])


def test_w1_per_class_equals_brute_force():
    g = torch.Generator().manual_seed(5)
    k, n = 3, 4
    gen, real = torch.randn(k * n, 2, generator=g, dtype=F64), torch.randn(k * n, 2, generator=g, dtype=F64) + 1
    labels = torch.arange(k).repeat_interleave(n)
    perm = torch.randperm(k * n, generator=g)  # shuffled real data: grouping is by label, not position
    got = w1_per_class(gen, labels, real[perm], labels[perm])
    for c in range(k):
        a, b = gen[labels == c], real[labels == c]
        cost = torch.cdist(a, b)
        # equal uniform weights: the optimal plan is a permutation (Birkhoff), W1 = the best mean cost
        want = min(float(cost[torch.arange(n), list(p)].mean()) for p in itertools.permutations(range(n)))
        assert got[c] == pytest.approx(want, rel=1e-9, abs=1e-12)
    images = w1_per_class(gen.view(-1, 1, 2, 1), labels, real.view(-1, 1, 2, 1), labels)
    assert images == pytest.approx(w1_per_class(gen, labels, real, labels), rel=1e-12)


def test_w1_per_class_bad_input():
    x, y = torch.randn(4, 2), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="labels_real: class 2 has no sample"):
        w1_per_class(x, torch.tensor([0, 1, 2, 2]), x, y)
    with pytest.raises(ValueError, match="labels_gen"):
        w1_per_class(x, y[:3], x, y)
    with pytest.raises(ValueError, match="labels_real"):
        w1_per_class(x, y, x, torch.tensor([0, 0, 1, 5]), num_classes=2)
    with pytest.raises(ValueError, match="sample sizes differ"):
        w1_per_class(x, y, torch.randn(4, 3), y)


def test_empty_batch_and_unchecked_labels():
    G = conditional_mlp_generator(2, 3, 2, hidden=4, layers=1)
    D = conditional_mlp_critic(2, 3, hidden=4, layers=1, projection=True)
    empty = G(torch.randn(0, 2), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 2) and D(empty, torch.zeros(0, dtype=torch.long)).shape == (0, 1)
    z, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 1])
    G.validate = False  # the same result without the checks
    unchecked = G(z, y)
    G.validate = True
    torch.testing.assert_close(unchecked, G(z, y), rtol=0, atol=0)
    x_nc = torch.randn(2, 4)[:, ::2]  # non-contiguous samples
    assert D(x_nc, y[:2]).shape == (2, 1)


def test_one_step_of_each_system_trains_every_part():
    """The pieces compose: one optimiser step of a conditional WGAN-GP critic and an InfoGAN generator
    changes every parameter that should learn."""
    torch.manual_seed(6)
    G = conditional_mlp_generator(2, 3, 2, hidden=8, layers=1)
    D = conditional_mlp_critic(2, 3, hidden=8, layers=1)
    y = torch.randint(3, (16,))
    real, fake = torch.randn(16, 2), G(torch.randn(16, 2), y)
    loss_d = D(fake.detach(), y).mean() - D(real, y).mean() \
        + pygan.gradient_penalty(lambda x: D(x, y), real, fake, weight=10.0)
    loss_d.backward()
    # (the head's bias cancels in E[D(fake)] - E[D(real)] and is absent from the penalty)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in D.named_parameters() if n != "head.bias")
    codes = InfoGANCodes(2, categorical=3, continuous=1)
    G2 = torch.nn.Sequential(torch.nn.Linear(codes.latent_dim, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    D2 = InfoGANCritic(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU()), 8, codes)
    latent, c = codes.sample(16, generator=torch.Generator().manual_seed(1))
    score, q = D2.score_and_q(G2(latent))
    (-score.mean() + information_loss(q, c)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G2.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D2.q.parameters())
