"""The penalties with extra critic inputs (``critic_args``): a conditional critic D(x, y) is
penalised with respect to x only, each sample at its own y -- checked against hand-written twins."""

from __future__ import annotations

import pytest
import torch

import pygan
from pygan.penalties import fd_penalty
from pygan.train.conditional import conditional_mlp_critic

torch.set_num_threads(1)


def _setup(projection=False, dtype=torch.float64):
    torch.manual_seed(0)
    D = conditional_mlp_critic(2, 4, hidden=16, layers=2, projection=projection).to(dtype)
    real, fake = torch.randn(12, 2, dtype=dtype), torch.randn(12, 2, dtype=dtype)
    y = torch.arange(12) % 4
    alpha = torch.rand(12, dtype=dtype)
    return D, real, fake, y, alpha


def _grad_rows(D, x, y):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x, y).sum(), x, create_graph=True)
    return g


@pytest.mark.parametrize("projection", [False, True])
def test_gradient_penalty_at_the_same_y(projection):
    D, real, fake, y, alpha = _setup(projection)
    got = pygan.gradient_penalty(D, real, fake, weight=10.0, alpha=alpha, critic_args=(y,))
    x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake  # the twin, written out
    want = 10.0 * ((_grad_rows(D, x_hat, y).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(got, want)
    # the same as a closure with y bound
    closure = pygan.gradient_penalty(lambda x: D(x, y), real, fake, weight=10.0, alpha=alpha)
    torch.testing.assert_close(got, closure)
    got.backward()
    if projection:  # ∇_x D = ∇_x psi + e(y)ᵀ ∇_x phi: the penalty trains the embedding (a ReLU body's
        # concatenated embedding only moves the kinks, so its gradient there is 0)
        assert D.embed.weight.grad.abs().sum() > 0


def test_gradient_penalty_one_sided_with_args():
    D, real, fake, y, alpha = _setup()
    got = pygan.gradient_penalty(D, real, fake, weight=2.0, alpha=alpha, one_sided=True, critic_args=(y,))
    x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    want = 2.0 * (torch.relu(_grad_rows(D, x_hat, y).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(got, want)


def test_r1_with_args():
    D, real, _, y, _ = _setup()
    got, scores = pygan.r1_penalty(D, real, gamma=4.0, critic_args=(y,), return_scores=True)
    want = 2.0 * (_grad_rows(D, real, y) ** 2).sum(dim=1).mean()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(scores, D(real, y).reshape(-1))


def test_fd_pairs_are_scored_at_the_same_y():
    D, real, fake, y, alpha = _setup()
    got = fd_penalty(D, real, fake, weight=3.0, alpha=alpha, critic_args=(y,))
    x1 = alpha[:, None] * real + (1 - alpha[:, None]) * fake
    x2 = x1.roll(1, 0)
    slope = (D(x1, y) - D(x2, y)).reshape(-1).abs() / (x1 - x2).norm(dim=1)
    torch.testing.assert_close(got, 3.0 * ((slope.float() - 1) ** 2).mean())  # fd works in float32
    # without critic_args the former pairing (rolled scores) is unchanged
    plain = fd_penalty(lambda x: D(x, y), real, fake, weight=3.0, alpha=alpha)
    rolled = D(x1, y).reshape(-1)
    slope0 = (rolled - rolled.roll(1, 0)).abs() / (x1 - x2).norm(dim=1)
    torch.testing.assert_close(plain, 3.0 * ((slope0.float() - 1) ** 2).mean())


@pytest.mark.parametrize("fn", ["gradient_penalty", "r1_penalty", "fd_penalty"])
def test_critic_args_must_be_a_tuple(fn):
    D, real, fake, y, _ = _setup()
    with pytest.raises(TypeError, match=f"{fn}: critic_args: expected a tuple"):
        if fn == "r1_penalty":
            pygan.r1_penalty(D, real, gamma=1.0, critic_args=y)
        elif fn == "fd_penalty":
            fd_penalty(D, real, fake, weight=1.0, critic_args=[y])
        else:
            pygan.gradient_penalty(D, real, fake, weight=1.0, critic_args=y)
