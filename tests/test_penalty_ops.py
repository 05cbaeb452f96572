"""pygan.ops.interpolate and pygan.ops.grad_penalty against pygan.reference, on every dtype, shape,
layout and edge case; gradients by gradcheck / gradgradcheck; opcheck and torch.compile."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pygan import ops, reference
from testing import DEVICES, FLOAT_DTYPES

# Batched shapes [B, ...]: 1-D (one scalar per sample), [B, d], images, B = 1, empty batches and
# samples, and samples longer than the CPU kernels' 16384-element pieces.
BATCHED_SHAPES = [(1,), (5,), (1, 3), (7, 2), (3, 5), (4, 3, 8, 8), (2, 40000), (0, 3), (3, 0)]
REDUCED = (torch.float16, torch.bfloat16)


def tol(dtype):
    if dtype in REDUCED:
        return dict(rtol=2e-2, atol=2e-2)
    if dtype == torch.float32:
        return dict(rtol=2e-5, atol=1e-5)
    return dict(rtol=1e-10, atol=1e-12)


def batched_layouts(t):
    """t in the layouts autograd and data pipelines produce, and two the kernels must copy."""
    yield "contiguous", t.clone()
    if t.dim() == 4:
        yield "channels_last", t.clone().contiguous(memory_format=torch.channels_last)
    if t.dim() >= 2:
        yield "transposed", t.clone().transpose(0, 1).contiguous().transpose(0, 1)
        big = torch.zeros(t.shape[0], t.shape[1] * 2, *t.shape[2:], dtype=t.dtype, device=t.device)
        big[:, ::2] = t
        yield "strided", big[:, ::2]


# ---------------------------------------------------------------- interpolate

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", BATCHED_SHAPES)
def test_interpolate_matches_reference_every_layout(backend, device, dtype, shape):
    real = torch.randn(shape, dtype=torch.float64).to(dtype=dtype, device=device)
    fake = (torch.randn(shape, dtype=torch.float64) * 3).to(dtype=dtype, device=device)
    alpha = torch.rand(shape[0], dtype=torch.float64).to(dtype=dtype, device=device)
    wanted = reference.interpolate(real, fake, alpha)
    for (rname, r), (fname, f) in zip(batched_layouts(real), list(batched_layouts(fake))[::-1]):
        for rr, ff in ((r, f), (r, r.clone().copy_(f))):  # mixed layouts, then equal layouts
            out = ops.interpolate(rr, ff, alpha)
            assert out.shape == real.shape and out.dtype == dtype and out.device == real.device
            torch.testing.assert_close(out, wanted, **tol(dtype))


def test_interpolate_keeps_a_shared_layout(backend):
    real = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    fake = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    out = ops.interpolate(real, fake, torch.rand(4))
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_interpolate_endpoints_are_exact(backend, dtype):
    real, fake = torch.randn(6, 37).to(dtype), torch.randn(6, 37).to(dtype)
    alpha = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype)
    out = ops.interpolate(real, fake, alpha)
    torch.testing.assert_close(out[0::2], fake[0::2], rtol=0, atol=0)
    torch.testing.assert_close(out[1::2], real[1::2], rtol=0, atol=0)


def test_interpolate_special_values_propagate(backend):
    real = torch.tensor([[float("nan"), 1.0], [float("inf"), 2.0], [-float("inf"), 0.0]])
    fake = torch.zeros(3, 2)
    alpha = torch.tensor([0.5, 0.25, 0.75])
    out = ops.interpolate(real, fake, alpha)
    torch.testing.assert_close(out, reference.interpolate(real, fake, alpha), equal_nan=True)
    assert math.isnan(out[0, 0]) and out[1, 0] == float("inf") and out[2, 0] == -float("inf")


@pytest.mark.parametrize("shape", [(64, 2), (16, 3, 4, 4)])
def test_interpolate_draws_one_alpha_per_sample(backend, shape):
    # real = 1, fake = 0: every element of sample i equals alpha_i. One alpha for the batch or one
    # per element (the two classic mistakes) would both fail this.
    out = ops.interpolate(torch.ones(shape), torch.zeros(shape))
    per_sample = out.flatten(1)
    assert torch.equal(per_sample, per_sample[:, :1].expand_as(per_sample))
    alphas = per_sample[:, 0]
    assert alphas.unique().numel() == shape[0]
    assert bool(((alphas >= 0) & (alphas < 1)).all())


def test_interpolate_generator_reproduces(backend):
    real, fake = torch.randn(32, 5), torch.randn(32, 5)
    a = ops.interpolate(real, fake, generator=torch.Generator().manual_seed(7))
    b = ops.interpolate(real, fake, generator=torch.Generator().manual_seed(7))
    c = ops.interpolate(real, fake, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_interpolate_accepts_the_canonical_alpha_shape(backend):
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    alpha = torch.rand(4, 1, 1, 1)
    torch.testing.assert_close(ops.interpolate(real, fake, alpha), alpha * real + (1 - alpha) * fake)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 2), (4,)])
def test_interpolate_gradcheck(backend, shape):
    real = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(shape[0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.interpolate, (real, fake, alpha))
    assert torch.autograd.gradgradcheck(ops.interpolate, (real, fake, alpha))


def test_interpolate_gradients_match_reference(backend):
    real, fake = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    alpha = torch.rand(6, requires_grad=True)
    g = torch.randn(6, 4)
    got = torch.autograd.grad(ops.interpolate(real, fake, alpha), (real, fake, alpha), g)
    want = torch.autograd.grad(reference.interpolate(real, fake, alpha), (real, fake, alpha), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("make, error, match", [
    (lambda: (torch.randn(4, 2), torch.randn(4, 3), None), ValueError, "shape"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2).double(), None), TypeError, "dtype"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.rand(())), ValueError, "alpha has shape"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.rand(4, 2)), ValueError, "alpha has shape"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.rand(3)), ValueError, "alpha has shape"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.full((4,), 1.5)), ValueError, r"\[0, 1\]"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.tensor([0.1, -0.1, 0.2, 0.3])), ValueError, r"\[0, 1\]"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.tensor([0.1, float("nan"), 0.2, 0.3])), ValueError, r"\[0, 1\]"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.ones(4, dtype=torch.long)), TypeError, "alpha"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2), 0.5), TypeError, "alpha"),
    (lambda: (torch.ones(4, 2, dtype=torch.long), torch.ones(4, 2, dtype=torch.long), None), TypeError, "real"),
    (lambda: (torch.randn(()), torch.randn(()), None), ValueError, "0-d"),
    (lambda: ([1.0, 2.0], torch.randn(2), None), TypeError, "real"),
    (lambda: (torch.randn(4, 2), torch.randn(4, 2, device="meta"), None), ValueError, "fake is on meta"),
])
def test_interpolate_bad_input(backend, make, error, match):
    real, fake, alpha = make()
    with pytest.raises(error, match=match):
        ops.interpolate(real, fake, alpha)


# ---------------------------------------------------------------- grad_penalty

MODES = [(1.0, False), (1.0, True), (0.0, False), (0.0, True), (2.5, False), (0.3, True)]


def _both(grads, center, one_sided, reduction, grad_out_seed=0):
    """(value, d value / d grads) from the op under test and from the reference."""
    results = []
    for fn in (ops.grad_penalty, lambda g, *a: reference.grad_penalty(g, *a)):
        g = grads.detach().clone().requires_grad_(True)
        value = fn(g, center, one_sided, reduction)
        go = torch.randn(value.shape, generator=torch.Generator().manual_seed(grad_out_seed)).to(value)
        (grad,) = torch.autograd.grad(value, g, go)
        results.append((value, grad))
    return results


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", BATCHED_SHAPES)
def test_grad_penalty_matches_reference_every_layout(backend, device, dtype, shape):
    base = (torch.randn(shape, dtype=torch.float64) * 0.4).to(dtype=dtype, device=device)
    for center, one_sided in MODES:
        for reduction in ("mean", "sum", "none"):
            if shape[0] == 0 and reduction == "mean":
                continue
            for name, g in batched_layouts(base):
                (v, dg), (rv, rdg) = _both(g, center, one_sided, reduction)
                assert v.dtype == dtype and v.shape == rv.shape
                assert dg.shape == g.shape and dg.dtype == dtype
                torch.testing.assert_close(v, rv, **tol(dtype))
                torch.testing.assert_close(dg, rdg, **tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("center, one_sided", MODES)
def test_grad_penalty_zero_gradients_have_a_finite_zero_slope(backend, dtype, center, one_sided):
    g = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    value = ops.grad_penalty(g, center, one_sided, "none")
    expected = 0.0 if (one_sided or center == 0) else center**2
    torch.testing.assert_close(value, torch.full((4,), expected, dtype=dtype), **tol(dtype))
    (grad,) = torch.autograd.grad(value.sum(), g)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_grad_penalty_special_values_stay_per_sample(backend):
    g = torch.tensor([[float("nan"), 1.0], [float("inf"), 0.0], [3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    for one_sided in (False, True):
        value = ops.grad_penalty(g, 1.0, one_sided, "none")
        v = value.detach()
        assert math.isnan(v[0]) and v[1] == float("inf")
        assert v[2] == 16.0  # ||(3, 4)|| = 5
        assert v[3] == (0.0 if one_sided else 1.0)
        (grad,) = torch.autograd.grad(value[2:].sum(), g)
        torch.testing.assert_close(grad[2], torch.tensor([3.0, 4.0]) * 2 * 4 / 5)
        assert torch.equal(grad[3], torch.zeros(2))
        assert math.isnan(ops.grad_penalty(g, 1.0, one_sided, "mean").item())  # NaN is never hidden


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grad_penalty_huge_values_keep_a_finite_norm(backend, dtype):
    # float32 squares overflow at 1.8e19; the accumulation is in float64, as torch's CPU norm does.
    g = torch.full((2, 8), 1e20, dtype=dtype, requires_grad=True)
    value = ops.grad_penalty(g, 1.0, False, "none")
    (grad,) = torch.autograd.grad(value.sum(), g)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, torch.autograd.grad(reference.grad_penalty(g, 1.0, False, "none").sum(), g)[0])
    if dtype == torch.float64:
        torch.testing.assert_close(value, reference.grad_penalty(g, 1.0, False, "none"))


@pytest.mark.parametrize("dtype, tiny", [(torch.float64, 6.6e-211), (torch.float64, 1e-160),
                                         (torch.float32, 1e-40), (torch.bfloat16, 1e-25),
                                         (torch.float16, 6e-8)])
@pytest.mark.parametrize("center, one_sided", [(1.0, False), (1.0, True), (0.5, False)])
def test_grad_penalty_tiny_gradients_keep_their_norm(backend, dtype, tiny, center, one_sided):
    # Squares of elements below sqrt(min normal) of the accumulation type underflow; the norm must
    # not become 0, whose slope 0 would hide the true slope 2(n - c)/n (-2 here, per element sign).
    g = torch.tensor([[tiny], [-tiny], [tiny]], dtype=torch.float64)
    g = torch.cat([g, torch.zeros(3, 4, dtype=torch.float64)], dim=1)
    g[2, 1] = 0.5 * tiny
    g = g.to(dtype)
    assert (g[:, 0] != 0).all(), "the case needs representable tiny values"
    (v, dg), (rv, rdg) = _both(g, center, one_sided, "none")
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(dg, rdg)
    assert dg[0, 0] != 0 or one_sided


@settings(max_examples=80, deadline=None)
@given(
    batch=st.integers(1, 6),
    width=st.integers(0, 40),
    dtype=st.sampled_from(FLOAT_DTYPES),
    center=st.sampled_from([0.0, 1.0, 0.5, 4.0]),
    one_sided=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 1e3, 1e15]),
    data=st.data(),
)
def test_grad_penalty_hypothesis(batch, width, dtype, center, one_sided, reduction, scale, data):
    values = data.draw(st.lists(st.floats(-1, 1), min_size=batch * width, max_size=batch * width))
    g = (torch.tensor(values, dtype=torch.float64).reshape(batch, width) * scale)
    if dtype in REDUCED and scale > 1e3:
        g = g.clamp(-6e4, 6e4) if dtype == torch.float16 else g
    g = g.to(dtype)
    zero_rows = data.draw(st.lists(st.integers(0, batch - 1), max_size=batch))
    g[zero_rows] = 0
    (v, dg), (rv, rdg) = _both(g, center, one_sided, reduction)
    t = tol(dtype)
    torch.testing.assert_close(v, rv, rtol=t["rtol"], atol=t["atol"] * max(1.0, scale) ** 2)
    torch.testing.assert_close(dg, rdg, rtol=t["rtol"], atol=t["atol"] * max(1.0, scale) ** 2)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 2), (4,)])
@pytest.mark.parametrize("center, one_sided", [(1.0, False), (1.0, True), (0.0, False), (0.7, False)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_grad_penalty_gradcheck_and_gradgradcheck(backend, shape, center, one_sided, reduction):
    g = torch.randn(shape, dtype=torch.float64)
    g = (g * 1.5).requires_grad_(True)  # norms spread on both sides of the centre

    def fn(x):
        return ops.grad_penalty(x, center, one_sided, reduction)

    assert torch.autograd.gradcheck(fn, (g,))
    assert torch.autograd.gradgradcheck(fn, (g,))


def test_grad_penalty_is_per_sample_not_per_batch(backend):
    # Rows of norm exactly 1: the per-sample penalty is 0. The common mistakes are not: a norm over the
    # whole batch gives (sqrt(B) - 1)^2, a norm over dim 1 only of an image gradient (channels) gives
    # something else again.
    g = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    g = g / g.flatten(1).norm(dim=1).reshape(8, 1, 1, 1)
    assert ops.grad_penalty(g).item() < 1e-24
    batch_norm_mistake = (g.norm() - 1) ** 2
    channel_norm_mistake = ((g.norm(2, dim=1) - 1) ** 2).mean()
    assert batch_norm_mistake.item() == pytest.approx((math.sqrt(8) - 1) ** 2)
    assert channel_norm_mistake.item() > 0.1


def test_grad_penalty_is_deterministic_across_thread_counts():
    g = torch.randn(3, 100000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.ops.pygan.grad_penalty(g, 1.0, False, "none")
        torch.set_num_threads(max(2, threads))
        many = torch.ops.pygan.grad_penalty(g, 1.0, False, "none")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


def test_grad_penalty_empty_batch(backend):
    g = torch.randn(0, 5, requires_grad=True)
    assert ops.grad_penalty(g, reduction="none").shape == (0,)
    total = ops.grad_penalty(g, reduction="sum")
    assert total.item() == 0.0
    total.backward()
    assert g.grad.shape == (0, 5)
    with pytest.raises(ValueError, match="empty batch"):
        ops.grad_penalty(g, reduction="mean")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(grads=torch.randn(())), ValueError, "0-d"),
    (dict(grads=torch.ones(3, 2, dtype=torch.long)), TypeError, "dtype"),
    (dict(grads=torch.randn(3, 2).to_sparse()), TypeError, "layout"),
    (dict(grads=[[1.0]]), TypeError, "grads"),
    (dict(grads=torch.randn(3, 2), center=-1.0), ValueError, "center"),
    (dict(grads=torch.randn(3, 2), center=float("nan")), ValueError, "center"),
    (dict(grads=torch.randn(3, 2), center=float("inf")), ValueError, "center"),
    (dict(grads=torch.randn(3, 2), center="1"), TypeError, "center"),
    (dict(grads=torch.randn(3, 2), reduction="avg"), ValueError, "reduction"),
    (dict(grads=torch.randn(3, 2), reduction=None), TypeError, "reduction"),
])
def test_grad_penalty_bad_input(backend, kwargs, error, match):
    with pytest.raises(error, match=match):
        ops.grad_penalty(**kwargs)


def test_grad_penalty_backward_op_bad_input():
    g = torch.randn(3, 2)
    _, norms = torch.ops.pygan.grad_penalty(g, 1.0, False, "mean")
    with pytest.raises(ValueError, match="grad_out"):
        torch.ops.pygan.grad_penalty_backward(torch.ones(3), g, norms, 1.0, False, "mean")
    with pytest.raises(ValueError, match="norms"):
        torch.ops.pygan.grad_penalty_backward(torch.tensor(1.0), g, norms[:2], 1.0, False, "mean")
    with pytest.raises(TypeError, match="norms"):
        torch.ops.pygan.grad_penalty_backward(torch.tensor(1.0), g, norms.float(), 1.0, False, "mean")


# ---------------------------------------------------------------- registration

def test_opcheck():
    for shape in [(4, 3), (2, 3, 4, 4), (5,)]:
        real = torch.randn(shape, requires_grad=True)
        fake = torch.randn(shape, requires_grad=True)
        alpha = torch.rand(shape[0], requires_grad=True)
        torch.library.opcheck(torch.ops.pygan.interpolate.default, (real, fake, alpha))
        torch.library.opcheck(torch.ops.pygan.interpolate.default, (real.detach(), fake.detach().t().contiguous().t() if len(shape) == 2 else fake.detach(), alpha.detach()))
        for center, one_sided, reduction in [(1.0, False, "mean"), (0.0, False, "sum"), (1.0, True, "none")]:
            g = torch.randn(shape, dtype=torch.float64, requires_grad=True)
            torch.library.opcheck(torch.ops.pygan.grad_penalty.default, (g, center, one_sided, reduction))
            _, norms = torch.ops.pygan.grad_penalty(g.detach(), center, one_sided, reduction)
            go = torch.randn(shape[0] if reduction == "none" else (), dtype=torch.float64, requires_grad=True)
            torch.library.opcheck(torch.ops.pygan.grad_penalty_backward.default,
                                  (go, g, norms, center, one_sided, reduction))


def test_torch_compile():
    def step(real, fake, alpha, g):
        x = ops.interpolate(real, fake, alpha)
        return x, ops.grad_penalty(g * 2, 1.0, False, "mean")

    compiled = torch.compile(step, fullgraph=True, backend="inductor")
    real, fake, alpha = torch.randn(8, 3), torch.randn(8, 3), torch.rand(8)
    g1 = torch.randn(8, 3, requires_grad=True)
    g2 = g1.detach().clone().requires_grad_(True)
    x1, p1 = step(real, fake, alpha, g1)
    x2, p2 = compiled(real, fake, alpha, g2)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(p1, p2)
    p1.backward()
    p2.backward()
    torch.testing.assert_close(g1.grad, g2.grad)


def test_interpolate_check_alpha_false_skips_only_the_range_check(backend):
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    alpha = torch.full((4,), 1.5)  # out of range on purpose: not read when check_alpha=False
    torch.testing.assert_close(ops.interpolate(real, fake, alpha, check_alpha=False),
                               reference.interpolate(real, fake, alpha))
    torch.testing.assert_close(ops.interpolate(real, fake, alpha, _check_alpha=False),  # the former spelling
                               reference.interpolate(real, fake, alpha))
    with pytest.raises(ValueError, match="alpha has shape"):  # the shape is still checked
        ops.interpolate(real, fake, torch.rand(3), check_alpha=False)


@pytest.mark.parametrize("make_alpha", [
    lambda a, real: a.reshape(-1, 1, 1).expand_as(real),
    lambda a, real: a.reshape(-1, 1, 1).expand_as(real).clone(),
    lambda a, real: pytest.importorskip("numpy").asarray(a.numpy()),
    lambda a, real: pytest.importorskip("numpy").asarray(a.reshape(-1, 1, 1).numpy()),
])
def test_interpolate_per_sample_alpha_forms(backend, make_alpha):
    real, fake = torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(3, 4, 5, dtype=torch.float64)
    alpha = torch.rand(3, dtype=torch.float64)
    # bit-equal to the same op given the [B] alpha: the forms are recognised, not approximated
    torch.testing.assert_close(ops.interpolate(real, fake, make_alpha(alpha, real)),
                               ops.interpolate(real, fake, alpha), rtol=0, atol=0)
