"""pygan.gradient_penalty, r1_penalty, dragan_penalty, fd_penalty and LazyRegularizer on real critics:
the critic's parameter gradients must equal the canonical plain-PyTorch code's."""

import math

import pytest
import torch
from torch import nn

import pygan


def mlp_critic(d=2, width=32, out_shape="B1", dtype=torch.float32):
    layers = [nn.Linear(d, width), nn.ReLU(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)]
    net = nn.Sequential(*layers).to(dtype)
    if out_shape == "B":
        return lambda x, net=net: net(x).squeeze(1), net
    return net, net


def conv_critic(dtype=torch.float32):
    net = nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1), nn.LayerNorm([16, 2, 2]), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(64, 1),
    ).to(dtype)
    return net, net


def canonical_gp(critic, real, fake, alpha, weight=10.0, center=1.0, one_sided=False):
    """The canonical WGAN-GP snippet (Gulrajani et al.'s code, per-sample norm)."""
    a = alpha.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    out = critic(x_hat)
    grads = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)[0]
    norms = grads.flatten(1).norm(2, dim=1)
    d = norms - center
    return weight * ((torch.relu(d) if one_sided else d) ** 2).mean()


def param_grads(net, loss):
    # The last bias never reaches a gradient penalty (it does not change the input gradient).
    return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True, materialize_grads=True)


def assert_grads_close(a, b, dtype):
    rtol, atol = (1e-4, 1e-6) if dtype == torch.float32 else (1e-10, 1e-12)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["mlp-B1", "mlp-B", "conv"])
@pytest.mark.parametrize("center, one_sided", [(1.0, False), (1.0, True), (0.5, False)])
def test_gradient_penalty_matches_canonical_code(backend, dtype, kind, center, one_sided):
    if kind == "conv":
        critic, net = conv_critic(dtype)
        real, fake = torch.randn(6, 3, 8, 8, dtype=dtype), torch.randn(6, 3, 8, 8, dtype=dtype)
    else:
        critic, net = mlp_critic(out_shape=kind.split("-")[1], dtype=dtype)
        real, fake = torch.randn(16, 2, dtype=dtype), torch.randn(16, 2, dtype=dtype) * 2
    alpha = torch.rand(real.shape[0], dtype=dtype)
    ours = pygan.gradient_penalty(critic, real, fake, weight=10.0, center=center, one_sided=one_sided, alpha=alpha)
    theirs = canonical_gp(critic, real, fake, alpha, 10.0, center, one_sided)
    torch.testing.assert_close(ours, theirs, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)
    assert_grads_close(param_grads(net, ours), param_grads(net, theirs), dtype)


def test_gradient_penalty_full_critic_step_matches(backend):
    # A whole WGAN-GP critic step, canonical vs pygan, from identical weights: identical weights after.
    torch.manual_seed(1)
    critic_a, _ = mlp_critic()
    critic_b, _ = mlp_critic()
    critic_b.load_state_dict(critic_a.state_dict())
    opts = [torch.optim.Adam(c.parameters(), lr=1e-3, betas=(0.5, 0.9)) for c in (critic_a, critic_b)]
    for _ in range(3):
        real, fake, alpha = torch.randn(32, 2), torch.randn(32, 2) + 1, torch.rand(32)
        for critic, opt, gp in ((critic_a, opts[0], canonical_gp),
                                (critic_b, opts[1], lambda *a: pygan.gradient_penalty(*a[:3], weight=10.0, alpha=a[3]))):
            opt.zero_grad()
            loss = critic(fake).mean() - critic(real).mean() + gp(critic, real, fake, alpha)
            loss.backward()
            opt.step()
    for a, b in zip(critic_a.parameters(), critic_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_penalty_draws_from_the_generator(backend):
    critic, _ = mlp_critic()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    a = pygan.gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(3))
    b = pygan.gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(3))
    alpha = torch.rand(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, canonical_gp(critic, real, fake, alpha))


def test_gradient_penalty_of_a_unit_linear_critic_is_zero(backend):
    # D(x) = <v, x> with ||v|| = 1 has gradient norm exactly 1 at every sample: a per-sample penalty is
    # 0, while the classic batch-norm mistake would give (sqrt(B) - 1)^2 per unit weight.
    v = torch.randn(3 * 4 * 4, dtype=torch.float64)
    v /= v.norm()

    def critic(x):
        return x.flatten(1) @ v

    real, fake = torch.randn(9, 3, 4, 4, dtype=torch.float64), torch.randn(9, 3, 4, 4, dtype=torch.float64)
    assert pygan.gradient_penalty(critic, real, fake, weight=10.0).item() < 1e-20
    grads = v.expand(9, -1)
    assert (10 * (grads.norm() - 1) ** 2).item() == pytest.approx(10 * (3 - 1) ** 2)


def test_r1_and_r2_match_canonical_code(backend):
    critic, net = conv_critic()
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    for data in (real, fake):  # R1 on real data, R2 on fake data
        x = data.detach().requires_grad_(True)
        grads = torch.autograd.grad(critic(x).sum(), x, create_graph=True)[0]
        theirs = 10.0 / 2 * grads.pow(2).flatten(1).sum(1).mean()
        ours = pygan.r1_penalty(critic, data, gamma=10.0)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)
        assert_grads_close(param_grads(net, ours), param_grads(net, theirs), torch.float32)


def test_dragan_matches_the_authors_recipe(backend):
    critic, net = mlp_critic()
    real = torch.randn(16, 2)
    ours = pygan.dragan_penalty(critic, real, weight=10.0, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    perturbed = real + 0.5 * real.std() * torch.rand(real.shape, generator=gen)
    alpha = torch.rand(16, generator=gen)
    theirs = canonical_gp(critic, real, perturbed, alpha)
    torch.testing.assert_close(ours, theirs)
    assert_grads_close(param_grads(net, ours), param_grads(net, theirs), torch.float32)


def test_fd_penalty_closed_form_and_gradients(backend):
    # On 1-D data a critic D(x) = s * x has slope |s| between any two points: the penalty is (|s| - 1)^2.
    scale = nn.Parameter(torch.tensor(3.0))

    def critic(x):
        return scale * x[:, 0]

    real, fake = torch.randn(32, 1), torch.randn(32, 1) + 5
    value = pygan.fd_penalty(critic, real, fake, weight=2.0)
    torch.testing.assert_close(value, torch.tensor(2.0 * (3.0 - 1.0) ** 2), rtol=1e-5, atol=0)
    (grad,) = torch.autograd.grad(value, scale)
    torch.testing.assert_close(grad, torch.tensor(2.0 * 2 * (3.0 - 1.0)), rtol=1e-5, atol=0)
    assert pygan.fd_penalty(critic, real, fake, weight=10.0, one_sided=True).item() == pytest.approx(10 * 4.0, rel=1e-5)
    scale.data.fill_(0.5)  # slope below 1: the one-sided penalty ignores it
    assert pygan.fd_penalty(critic, real, fake, weight=10.0, one_sided=True).item() == 0.0


def test_fd_penalty_matches_its_definition(backend):
    critic, net = conv_critic()
    real, fake = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    alpha = torch.rand(6)
    ours = pygan.fd_penalty(critic, real, fake, weight=10.0, alpha=alpha)
    a = alpha.reshape(6, 1, 1, 1)
    x1 = a * real + (1 - a) * fake
    x2 = x1.roll(1, 0)
    slope = (critic(x1) - critic(x2)).abs().squeeze(1) / (x1 - x2).flatten(1).norm(dim=1)
    theirs = 10.0 * ((slope - 1) ** 2).mean()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)
    assert_grads_close(param_grads(net, ours), param_grads(net, theirs), torch.float32)


def test_fd_penalty_skips_pairs_at_distance_zero(backend):
    critic, net = mlp_critic()
    same = torch.ones(4, 2)
    value = pygan.fd_penalty(critic, same, same, weight=10.0)
    assert value.item() == 0.0 and all(torch.isfinite(g).all() for g in param_grads(net, value))
    with pytest.raises(ValueError, match="at least 2"):
        pygan.fd_penalty(critic, torch.randn(1, 2), torch.randn(1, 2), weight=10.0)


def test_lazy_regularizer_schedule_scale_and_resume():
    calls = []

    def penalty(x):
        calls.append(x)
        return torch.tensor(1.5)

    lazy = pygan.LazyRegularizer(penalty, every=4)
    values = [lazy(i) for i in range(9)]
    assert calls == [0, 4, 8]
    assert [float(v) for v in values] == [6.0, 0, 0, 0, 6.0, 0, 0, 0, 6.0]
    state = lazy.state_dict()
    resumed = pygan.LazyRegularizer(penalty, every=4)
    resumed.load_state_dict(state)
    assert not resumed.due and [float(resumed(i)) for i in range(4)] == [0, 0, 0, 6.0]
    with pytest.raises(ValueError, match="every"):
        pygan.LazyRegularizer(penalty, every=0)
    with pytest.raises(ValueError, match="every=4"):
        pygan.LazyRegularizer(penalty, every=2).load_state_dict(state)
    once = pygan.LazyRegularizer(penalty, every=1)
    assert float(once(0)) == 1.5


def test_lazy_r1_in_a_training_loop(backend):
    critic, net = mlp_critic()
    lazy = pygan.LazyRegularizer(pygan.r1_penalty, every=2)
    real = torch.randn(8, 2)
    first = lazy(critic, real, gamma=1.0)
    torch.testing.assert_close(first, 2 * pygan.r1_penalty(critic, real, gamma=1.0))
    assert lazy(critic, real, gamma=1.0) == 0.0


def test_amp_grad_scaler_recipe(backend):
    # Under a GradScaler the penalty's input gradients are taken of the scaled output and unscaled
    # before the norm: the penalty and, after scaler.unscale_, the parameter gradients equal the
    # unscaled computation's.
    critic, net = mlp_critic()
    real, fake, alpha = torch.randn(16, 2), torch.randn(16, 2), torch.rand(16)
    plain = pygan.gradient_penalty(critic, real, fake, weight=10.0, alpha=alpha)
    plain_grads = param_grads(net, plain)

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    opt.zero_grad()
    scaled = pygan.gradient_penalty(critic, real, fake, weight=10.0, alpha=alpha, scaler=scaler)
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=0)
    scaler.scale(scaled).backward()
    scaler.unscale_(opt)
    for p, g in zip(net.parameters(), plain_grads):
        torch.testing.assert_close(p.grad if p.grad is not None else torch.zeros_like(p), g, rtol=1e-4, atol=1e-6)

    # The same recipe under bfloat16 autocast gives a finite penalty close to float32's.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = pygan.gradient_penalty(critic, real, fake, weight=10.0, alpha=alpha, scaler=scaler)
    assert torch.isfinite(mixed) and mixed.item() == pytest.approx(plain.item(), rel=0.1, abs=1e-2)


def test_batchnorm_critic_warns(backend):
    net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.warns(UserWarning, match="BatchNorm1d"):
        pygan.gradient_penalty(net, torch.randn(8, 2), torch.randn(8, 2), weight=10.0)


@pytest.mark.parametrize("make, error, match", [
    (lambda: (lambda x: x.sum(1, keepdim=True).expand(-1, 2), torch.randn(4, 2), torch.randn(4, 2)),
     ValueError, "one score per sample"),
    (lambda: (lambda x: torch.zeros(4, requires_grad=True) * 1, torch.randn(4, 2), torch.randn(4, 2)),
     ValueError, "does not depend on its input"),
    (lambda: (lambda x: torch.zeros(4), torch.randn(4, 2), torch.randn(4, 2)),
     ValueError, "does not depend on its input"),
    (lambda: (lambda x: x.sum(1).tolist(), torch.randn(4, 2), torch.randn(4, 2)), TypeError, "critic returned"),
    (lambda: ("critic", torch.randn(4, 2), torch.randn(4, 2)), TypeError, "callable"),
    (lambda: (lambda x: x.sum(1), torch.randn(4, 2), torch.randn(5, 2)), ValueError, "shape"),
    (lambda: (lambda x: x.sum(1), torch.randn(0, 2), torch.randn(0, 2)), ValueError, "non-empty"),
    (lambda: (lambda x: x.sum(1), torch.ones(4, 2, dtype=torch.long), torch.ones(4, 2, dtype=torch.long)),
     TypeError, "dtype"),
    (lambda: (lambda x: x.sum(1), torch.randn(4, 2), torch.randn(4, 2, device="meta")), ValueError, "meta"),
])
def test_bad_input_is_named(backend, make, error, match):
    critic, real, fake = make()
    with pytest.raises(error, match=match):
        pygan.gradient_penalty(critic, real, fake, weight=10.0)


def test_bad_numbers_are_named():
    critic, _ = mlp_critic()
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="weight"):
        pygan.gradient_penalty(critic, x, x, weight=-1.0)
    with pytest.raises(ValueError, match="center"):
        pygan.gradient_penalty(critic, x, x, weight=10.0, center=math.nan)
    with pytest.raises(TypeError, match="gamma"):
        pygan.r1_penalty(critic, x, gamma="10")
    with pytest.raises(ValueError, match="alpha"):
        pygan.gradient_penalty(critic, x, x, weight=10.0, alpha=torch.full((4,), 2.0))


# ---- Drop-in swaps: no silent 10x, the authors' α, NumPy and tensor weights, clear errors. ----

@pytest.mark.parametrize("call, match", [
    (lambda c, x: pygan.gradient_penalty(c, x, x), r"gradient_penalty: weight is required .*weight=1\.0"),
    (lambda c, x: pygan.dragan_penalty(c, x), r"dragan_penalty: weight is required .*weight=1\.0"),
    (lambda c, x: pygan.fd_penalty(c, x, x), r"fd_penalty: weight is required .*weight=1\.0"),
    (lambda c, x: pygan.r1_penalty(c, x), r"r1_penalty: gamma is required; .*gamma=10\.0"),
])
def test_the_weight_must_be_given(call, match):
    # Before: a default of 10 made `lambda_gp * gradient_penalty(D, real, fake)` silently 10x too large.
    critic, _ = mlp_critic()
    with pytest.raises(TypeError, match=match):
        call(critic, torch.randn(4, 2))


def test_drop_in_swap_where_the_script_applies_lambda(backend):
    critic, net = mlp_critic()
    real, fake, alpha = torch.randn(16, 2), torch.randn(16, 2), torch.rand(16)
    lambda_gp = 10.0
    ours = lambda_gp * pygan.gradient_penalty(critic, real, fake, weight=1.0, alpha=alpha)
    theirs = canonical_gp(critic, real, fake, alpha, weight=lambda_gp)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)


def test_old_positional_arguments_warn_and_still_work(backend):
    critic, _ = mlp_critic()
    real, fake, alpha = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    want = pygan.gradient_penalty(critic, real, fake, weight=10.0, center=0.5, one_sided=True, alpha=alpha)
    with pytest.warns(DeprecationWarning, match=r"gradient_penalty: passing weight, center, one_sided, alpha "
                                                r"by position is deprecated"):
        got = pygan.gradient_penalty(critic, real, fake, 10.0, 0.5, True, alpha)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="fd_penalty: passing weight by position"):
        got = pygan.fd_penalty(critic, real, fake, 10.0, alpha=alpha)
    torch.testing.assert_close(got, pygan.fd_penalty(critic, real, fake, weight=10.0, alpha=alpha), rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="dragan_penalty: passing weight by position"):
        got = pygan.dragan_penalty(critic, real, 10.0, generator=torch.Generator().manual_seed(1))
    want = pygan.dragan_penalty(critic, real, weight=10.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(TypeError, match="both by position and by keyword"):
        pygan.gradient_penalty(critic, real, fake, 10.0, weight=1.0)
    with pytest.raises(TypeError, match="at most 4"):
        pygan.gradient_penalty(critic, real, fake, 10.0, 1.0, False, alpha, "extra")


def test_interpolate_positional_generator_warns():
    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    want = pygan.ops.interpolate(real, fake, generator=torch.Generator().manual_seed(2))
    with pytest.warns(DeprecationWarning, match="interpolate: passing generator by position"):
        got = pygan.ops.interpolate(real, fake, None, torch.Generator().manual_seed(2))
    assert torch.equal(got, want)


def _numpy():
    return pytest.importorskip("numpy")


@pytest.mark.parametrize("make_weight", [
    lambda: torch.tensor(10.0), lambda: torch.tensor([10.0], dtype=torch.float64),
    lambda: _numpy().float32(10.0), lambda: _numpy().float64(10.0), lambda: _numpy().array(10.0), lambda: 10,
])
def test_tensor_and_numpy_weights(backend, make_weight):
    critic, _ = mlp_critic()
    real, fake, alpha = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    want = pygan.gradient_penalty(critic, real, fake, weight=10.0, alpha=alpha)
    got = pygan.gradient_penalty(critic, real, fake, weight=make_weight(), alpha=alpha)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(pygan.r1_penalty(critic, real, gamma=make_weight()),
                               pygan.r1_penalty(critic, real, gamma=10.0), rtol=0, atol=0)


@pytest.mark.parametrize("weight, error", [(True, TypeError), (torch.ones(2), TypeError), ("10", TypeError),
                                           (torch.tensor(-1.0), ValueError), (float("inf"), ValueError)])
def test_bad_weights(weight, error):
    critic, _ = mlp_critic()
    x = torch.randn(4, 2)
    with pytest.raises(error, match="gradient_penalty: weight"):
        pygan.gradient_penalty(critic, x, x, weight=weight)


@pytest.mark.parametrize("make_alpha", [
    lambda a, real: a.reshape(-1, 1, 1, 1).expand_as(real),                 # the authors' toy script
    lambda a, real: a.reshape(-1, 1, 1, 1).expand_as(real).contiguous(),    # the same, materialised
    lambda a, real: a.reshape(-1, 1, 1, 1).expand(-1, 3, 1, 8),             # broadcast over some dims
    lambda a, real: _numpy().asarray(a.numpy()),                            # NumPy, [B]
    lambda a, real: _numpy().asarray(a.reshape(-1, 1, 1, 1).expand_as(real).numpy()),  # NumPy, full shape
])
def test_per_sample_alpha_after_broadcasting(backend, make_alpha):
    critic, net = conv_critic()
    real, fake, alpha = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8), torch.rand(5)
    want = canonical_gp(critic, real, fake, alpha)
    got = pygan.gradient_penalty(critic, real, fake, weight=10.0, alpha=make_alpha(alpha, real))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_alpha_that_differs_within_a_sample_is_still_refused(backend):
    critic, _ = conv_critic()
    real = torch.randn(5, 3, 8, 8)
    with pytest.raises(ValueError, match="alpha has shape .* different values within a sample"):
        pygan.gradient_penalty(critic, real, real, weight=10.0, alpha=torch.rand(5, 3, 8, 8))
    with pytest.raises(ValueError, match="alpha has shape"):
        pygan.gradient_penalty(critic, real, real, weight=10.0, alpha=torch.rand(5, 2, 1, 1))


@pytest.mark.parametrize("call, match", [
    (lambda c, x: pygan.gradient_penalty(c, x, x, weight=1.0, generator=5),
     "gradient_penalty: generator must be a torch.Generator or None, got int"),
    (lambda c, x: pygan.dragan_penalty(c, x, weight=1.0, generator=5), "dragan_penalty: generator must be"),
    (lambda c, x: pygan.fd_penalty(c, x, x, weight=1.0, generator=5), "fd_penalty: generator must be"),
    (lambda c, x: pygan.ops.interpolate(x, x, generator=5), "interpolate: generator must be"),
    (lambda c, x: pygan.gradient_penalty(c, x, x, weight=1.0, scaler="x"),
     "gradient_penalty: scaler must be a torch.amp.GradScaler or None, got str"),
    (lambda c, x: pygan.r1_penalty(c, x, gamma=1.0, scaler="x"), "r1_penalty: scaler must be"),
])
def test_bad_generator_and_scaler_are_named(call, match):
    # Before: AttributeError from deep inside ('int' object has no attribute 'device' / 'is_enabled').
    critic, _ = mlp_critic()
    with pytest.raises(TypeError, match=match):
        call(critic, torch.randn(4, 2))


@pytest.mark.parametrize("state, error, match", [
    ({"x": 1}, ValueError, r"state must have the key 'calls'.*got the keys \['x'\]"),
    ({"calls": -1}, ValueError, r"state\['calls'\] must be an int >= 0"),
    ({"calls": "3"}, TypeError, r"state\['calls'\] must be an int"),
    ({"calls": 2.0}, TypeError, r"state\['calls'\] must be an int"),
    ([("calls", 1)], TypeError, "state must be a dict"),
])
def test_lazy_regularizer_bad_state(state, error, match):
    lazy = pygan.LazyRegularizer(lambda: torch.tensor(1.0), every=4)
    lazy.calls = 3
    with pytest.raises(error, match="LazyRegularizer.load_state_dict: " + match):
        lazy.load_state_dict(state)
    assert lazy.calls == 3
