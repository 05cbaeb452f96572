"""pygan.nn: every layer and loss term against a written-out plain-PyTorch twin (explicit loops,
float64, 1e-10), gradients (gradcheck), state_dict round trips, bad input, and the data-parallel
contract (2 gloo processes with batch n each equal one process with batch 2n)."""

from __future__ import annotations

import io
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

from pygan.nn import (HistoricalAverage, MinibatchDiscrimination, ReferenceBatch, VirtualBatchNorm,
                      feature_matching_loss, label_smoothing_loss)

TOL = dict(rtol=1e-10, atol=1e-10)
F64 = torch.float64


# ---------------------------------------------------------------------------------------------------
# twins, written as loops over samples, kernels and features

def minibatch_twin(x, T, bias, include_self):
    n, A = x.shape
    _, B, C = T.shape
    M = torch.zeros(n, B, C, dtype=x.dtype)
    for i in range(n):
        for b in range(B):
            for c in range(C):
                M[i, b, c] = sum(x[i, a] * T[a, b, c] for a in range(A))
    o = torch.zeros(n, B, dtype=x.dtype)
    for i in range(n):
        for b in range(B):
            for j in range(n):
                if j == i and not include_self:
                    continue
                o[i, b] = o[i, b] + torch.exp(-sum(abs(M[i, b, c] - M[j, b, c]) for c in range(C)))
            if bias is not None:
                o[i, b] = o[i, b] + bias[b]
    return torch.cat([x, o], dim=1)


def vbn_twin(ref, x, weight, bias, eps):
    """Each example normalised by the pooled statistics of cat(reference, that example); the
    reference rows by the reference's own statistics."""
    out_ref = torch.zeros_like(ref)
    out = torch.zeros_like(x)
    C = x.shape[1]
    for k in range(C):
        vals = ref[:, k].flatten()
        mean = vals.sum() / vals.numel()
        var = ((vals - mean) ** 2).sum() / vals.numel()
        out_ref[:, k] = (ref[:, k] - mean) / torch.sqrt(var + eps) * weight[k] + bias[k]
    for i in range(x.shape[0]):
        pooled = torch.cat([ref, x[i:i + 1]])
        for k in range(C):
            vals = pooled[:, k].flatten()
            mean = vals.sum() / vals.numel()
            var = ((vals - mean) ** 2).sum() / vals.numel()
            out[i, k] = (x[i, k] - mean) / torch.sqrt(var + eps) * weight[k] + bias[k]
    return out_ref, out


def feature_matching_twin(real, fake):
    real, fake = real.flatten(1), fake.flatten(1)
    total = 0.0
    for f in range(real.shape[1]):
        m_real = sum(real[i, f] for i in range(real.shape[0])) / real.shape[0]
        m_fake = sum(fake[i, f] for i in range(fake.shape[0])) / fake.shape[0]
        total = total + (m_real - m_fake) ** 2
    return total


def label_smoothing_twin(d_real, d_fake, s):
    real = sum(-(s * torch.log(torch.sigmoid(v)) + (1 - s) * torch.log(1 - torch.sigmoid(v))) for v in d_real)
    fake = sum(-torch.log(1 - torch.sigmoid(v)) for v in d_fake)
    return real / len(d_real) + fake / len(d_fake)


# ---------------------------------------------------------------------------------------------------
# minibatch discrimination

@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n", [1, 2, 6])
def test_minibatch_discrimination_equals_twin(include_self, bias, n):
    layer = MinibatchDiscrimination(4, 3, 2, include_self=include_self, bias=bias).double()
    if bias:
        nn.init.normal_(layer.bias)
    x = torch.randn(n, 4, dtype=F64)
    expected = minibatch_twin(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach(),
                              include_self)
    torch.testing.assert_close(layer(x), expected, **TOL)


def test_minibatch_discrimination_flattens_and_handles_empty():
    layer = MinibatchDiscrimination(12, 5, 3).double()
    x = torch.randn(4, 3, 2, 2, dtype=F64)
    torch.testing.assert_close(layer(x), layer(x.flatten(1)), rtol=0, atol=0)
    assert layer(x).shape == (4, 12 + 5)
    assert layer(torch.zeros(0, 12, dtype=F64)).shape == (0, 17)
    # A single sample has no others: o is the bias alone (0 at init).
    assert torch.equal(layer(torch.randn(1, 12, dtype=F64))[:, 12:], torch.zeros(1, 5, dtype=F64))


def test_minibatch_discrimination_self_term_is_one():
    a = MinibatchDiscrimination(6, 4, 3, include_self=False).double()
    b = MinibatchDiscrimination(6, 4, 3, include_self=True).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 6, dtype=F64)
    torch.testing.assert_close(b(x)[:, 6:] - a(x)[:, 6:], torch.ones(5, 4, dtype=F64), **TOL)


def test_minibatch_discrimination_init_scale():
    layer = MinibatchDiscrimination(400, 50, 5)
    col_norms = layer.weight.flatten(1).norm(dim=0)  # every T[:, b, c]
    assert abs(col_norms.mean().item() - 1.0) < 0.05


def test_minibatch_discrimination_gradcheck():
    layer = MinibatchDiscrimination(3, 2, 2, include_self=False).double()
    nn.init.normal_(layer.weight, 0, 0.3)  # similarities away from 0 so every term has a gradient
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)

    def f(x, w):
        return torch.func.functional_call(layer, {"weight": w, "bias": layer.bias}, (x,))

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def test_minibatch_discrimination_state_dict_round_trip():
    a = MinibatchDiscrimination(5, 3, 2)
    b = MinibatchDiscrimination(5, 3, 2)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 5)
    assert torch.equal(a(x), b(x))
    assert set(a.state_dict()) == {"weight", "bias"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_features=0, num_kernels=3, kernel_dim=2), (ValueError, "in_features must be an int >= 1, got 0")),
    (dict(in_features=4, num_kernels=-1, kernel_dim=2), (ValueError, "num_kernels must be an int >= 1")),
    (dict(in_features=4, num_kernels=3, kernel_dim=2.0), (TypeError, "kernel_dim must be an int, got float")),
    (dict(in_features=True, num_kernels=3, kernel_dim=2), (TypeError, "in_features must be an int, got bool")),
])
def test_minibatch_discrimination_bad_arguments(kwargs, match):
    kind, match = match
    with pytest.raises(kind, match="MinibatchDiscrimination: " + match):
        MinibatchDiscrimination(**kwargs)


def test_minibatch_discrimination_bad_input():
    layer = MinibatchDiscrimination(4, 3, 2)
    with pytest.raises(ValueError, match=r"x: expected 4 features"):
        layer(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"x has 1 dims; expected at least 2"):
        layer(torch.randn(4))
    with pytest.raises(TypeError, match=r"x has dtype torch.int64; expected float16"):
        layer(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got list"):
        layer([[1.0] * 4])


# ---------------------------------------------------------------------------------------------------
# virtual batch norm

@pytest.mark.parametrize("shape", [(3,), (3, 4, 5), (2, 3, 3, 3)])
@pytest.mark.parametrize("n_ref, n", [(1, 1), (4, 3), (5, 0)])
def test_virtual_batchnorm_equals_twin(shape, n_ref, n):
    C = shape[0]
    layer = VirtualBatchNorm(C, eps=1e-3).double()
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    ref = torch.randn(n_ref, *shape, dtype=F64) * 2 + 1
    x = torch.randn(n, *shape, dtype=F64) * 3 - 1
    layer.reference_rows = n_ref
    y = layer(torch.cat([ref, x]))
    layer.reference_rows = None
    exp_ref, exp = vbn_twin(ref, x, layer.weight.detach(), layer.bias.detach(), 1e-3)
    torch.testing.assert_close(y[:n_ref], exp_ref, **TOL)
    torch.testing.assert_close(y[n_ref:], exp, **TOL)
    # The pass stored the reference statistics; outside ReferenceBatch they are used as they are.
    assert int(layer.reference_size) == n_ref
    torch.testing.assert_close(layer(x), exp, **TOL)


def test_virtual_batchnorm_example_ignores_the_rest_of_its_batch():
    """What makes data-parallel runs equal one process: row i depends on the reference and row i only."""
    layer = VirtualBatchNorm(3).double()
    ref, x = torch.randn(4, 3, 5, 5, dtype=F64), torch.randn(6, 3, 5, 5, dtype=F64)
    layer.reference_rows = 4
    whole = layer(torch.cat([ref, x]))[4:]
    alone = torch.cat([layer(torch.cat([ref, x[i:i + 1]]))[4:] for i in range(6)])
    torch.testing.assert_close(whole, alone, **TOL)


def test_virtual_batchnorm_gradcheck_through_reference_statistics():
    layer = VirtualBatchNorm(2, eps=1e-2).double()

    def f(ref, x, weight, bias):
        layer.reference_rows = ref.shape[0]
        try:
            return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (torch.cat([ref, x]),))
        finally:
            layer.reference_rows = None

    args = (torch.randn(3, 2, 2, 2, dtype=F64, requires_grad=True), torch.randn(2, 2, 2, 2, dtype=F64, requires_grad=True),
            torch.randn(2, dtype=F64, requires_grad=True), torch.randn(2, dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(f, args)


def _vbn_generator():
    return nn.Sequential(nn.Linear(3, 8), VirtualBatchNorm(8), nn.ReLU(), nn.Unflatten(1, (2, 2, 2)),
                         nn.ConvTranspose2d(2, 3, 2, 2), VirtualBatchNorm(3), nn.Tanh())


def test_reference_batch_runs_the_twin_layer_by_layer():
    torch.manual_seed(1)
    net = _vbn_generator().double()
    z_ref, z = torch.randn(5, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    out = ReferenceBatch(net, z_ref)(z)
    # By hand: the reference rows go through the net normalised by their own statistics.
    lin, vbn1, relu, unflat, deconv, vbn2, tanh = net
    r1, x1 = vbn_twin(lin(z_ref), lin(z), vbn1.weight, vbn1.bias, vbn1.eps)
    r2, x2 = vbn_twin(deconv(unflat(relu(r1))), deconv(unflat(relu(x1))), vbn2.weight, vbn2.bias, vbn2.eps)
    torch.testing.assert_close(out, tanh(x2), **TOL)
    assert all(layer.reference_rows is None for layer in (vbn1, vbn2))


def test_reference_batch_state_dict_round_trip():
    torch.manual_seed(2)
    a = ReferenceBatch(_vbn_generator(), torch.randn(6, 3))
    z = torch.randn(4, 3)
    out_a = a(z)
    state = a.state_dict()
    assert {"reference", "module.1.reference_mean", "module.1.reference_var", "module.1.reference_size",
            "module.5.reference_mean"} <= set(state)
    b = ReferenceBatch(_vbn_generator(), torch.zeros(6, 3))
    b.load_state_dict(state)
    assert torch.equal(b.reference, a.reference)
    assert torch.equal(b(z), out_a)
    # The bare network of b normalises with the statistics stored by a's last reference pass.
    c = _vbn_generator()
    c.load_state_dict(a.module.state_dict())
    torch.testing.assert_close(c(z), out_a, rtol=1e-5, atol=1e-6)


def test_virtual_batchnorm_bad_input():
    with pytest.raises(RuntimeError, match="no reference statistics"):
        VirtualBatchNorm(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="x: expected 3 channels"):
        VirtualBatchNorm(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="num_features"):
        VirtualBatchNorm(0)
    with pytest.raises(ValueError, match="eps"):
        VirtualBatchNorm(3, eps=-1.0)
    with pytest.raises(ValueError, match="module: expected a network with at least one VirtualBatchNorm"):
        ReferenceBatch(nn.Linear(3, 3), torch.randn(2, 3))
    with pytest.raises(TypeError, match="module"):
        ReferenceBatch(lambda z: z, torch.randn(2, 3))
    with pytest.raises(ValueError, match="reference: expected at least one"):
        ReferenceBatch(_vbn_generator(), torch.randn(0, 3))
    with pytest.raises(ValueError, match="reference: contains NaN"):
        ReferenceBatch(_vbn_generator(), torch.full((2, 3), math.nan))
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \[B, 3\]"):
        ReferenceBatch(_vbn_generator(), torch.randn(2, 3))(torch.randn(2, 4))


# ---------------------------------------------------------------------------------------------------
# feature matching, label smoothing

@pytest.mark.parametrize("real_shape, fake_shape", [((5, 4), (3, 4)), ((1, 2, 3), (4, 2, 3)), ((3,), (2,))])
def test_feature_matching_equals_twin(real_shape, fake_shape):
    real, fake = torch.randn(real_shape, dtype=F64), torch.randn(fake_shape, dtype=F64)
    got = feature_matching_loss(real, fake)
    assert got.dim() == 0
    torch.testing.assert_close(got, feature_matching_twin(real.reshape(real.shape[0], -1),
                                                          fake.reshape(fake.shape[0], -1)), **TOL)
    assert feature_matching_loss(real, real).item() == 0.0


def test_feature_matching_gradcheck():
    args = (torch.randn(4, 3, dtype=F64, requires_grad=True), torch.randn(2, 3, dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(feature_matching_loss, args)


def test_feature_matching_bad_input():
    with pytest.raises(ValueError, match="real_features and fake_features: expected the same per-sample shape"):
        feature_matching_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="fake_features: expected at least one sample"):
        feature_matching_loss(torch.randn(3, 4), torch.randn(0, 4))
    with pytest.raises(TypeError, match="feature_matching_loss: real_features has dtype torch.int64; expected float"):
        feature_matching_loss(torch.ones(3, 4, dtype=torch.long), torch.randn(3, 4))
    with pytest.raises(TypeError, match="same dtype"):
        feature_matching_loss(torch.randn(3, 4), torch.randn(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="real_features is 0-d; expected a batch"):
        feature_matching_loss(torch.tensor(1.0), torch.randn(3))


@pytest.mark.parametrize("s", [0.9, 1.0, 0.5, 1e-3])
@pytest.mark.parametrize("column", [False, True])
def test_label_smoothing_equals_twin(s, column):
    d_real, d_fake = torch.randn(6, dtype=F64) * 3, torch.randn(4, dtype=F64) * 3
    got = label_smoothing_loss(d_real[:, None] if column else d_real, d_fake[:, None] if column else d_fake, s)
    torch.testing.assert_close(got, label_smoothing_twin(d_real, d_fake, s), **TOL)


def test_label_smoothing_is_stable_and_differentiable():
    d_real = torch.tensor([-800.0, 800.0, 0.0], dtype=F64)
    d_fake = torch.tensor([800.0, -800.0], dtype=F64)
    loss = label_smoothing_loss(d_real, d_fake, 0.9)
    # softplus(800) = 800; real: 0.9*800 + 0.1*800 (-800: 0.9*800), 0.1*800 (800), log 2 (0); fake: 800, 0
    expected = (0.9 * 800 + 0.1 * 800 + math.log(2)) / 3 + 800 / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)
    args = (torch.randn(5, dtype=F64, requires_grad=True), torch.randn(3, dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(lambda r, f: label_smoothing_loss(r, f, 0.9), args)


@pytest.mark.parametrize("s", [0.0, -0.1, 1.1, math.nan, math.inf])
def test_label_smoothing_bad_target(s):
    with pytest.raises(ValueError, match=r"label_smoothing_loss: real_target must be a finite number > 0 and <= 1"):
        label_smoothing_loss(torch.randn(3), torch.randn(3), s)


def test_label_smoothing_bad_input():
    with pytest.raises(TypeError, match="real_target"):
        label_smoothing_loss(torch.randn(3), torch.randn(3), "0.9")
    with pytest.raises(ValueError, match=r"d_real: expected one logit per sample"):
        label_smoothing_loss(torch.randn(3, 2), torch.randn(3))
    with pytest.raises(ValueError, match="d_fake: expected at least one sample"):
        label_smoothing_loss(torch.randn(3), torch.randn(0))


# ---------------------------------------------------------------------------------------------------
# historical averaging

def test_historical_average_equals_twin_over_steps():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).double()
    avg = HistoricalAverage(net, weight=0.7)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    snapshots = [[p.detach().clone() for p in net.parameters()]]
    for _ in range(5):
        opt.zero_grad()
        (net(torch.randn(8, 3, dtype=F64)).square().mean() + avg.penalty()).backward()
        opt.step()
        avg.update()
        snapshots.append([p.detach().clone() for p in net.parameters()])
        # Twin: the mean of every snapshot so far, element by element.
        total = 0.0
        for k, p in enumerate(net.parameters()):
            flat = p.detach().flatten()
            for e in range(flat.numel()):
                mean_e = sum(s[k].flatten()[e] for s in snapshots) / len(snapshots)
                total = total + (flat[e] - mean_e) ** 2
        torch.testing.assert_close(avg.penalty().detach(), 0.7 * total, **TOL)
    assert avg.count == 6


def test_historical_average_gradient_treats_the_mean_as_constant():
    p = torch.randn(5, dtype=F64, requires_grad=True)
    avg = HistoricalAverage([p], weight=2.0)
    with torch.no_grad():
        p.add_(1.0)
    avg.update()
    avg.penalty().backward()
    torch.testing.assert_close(p.grad, 2 * 2.0 * (p.detach() - avg.means[0]), **TOL)
    assert HistoricalAverage([p], weight=0).penalty().item() == 0.0


def test_historical_average_state_dict_round_trip():
    p = torch.randn(4, 3, requires_grad=True)
    a = HistoricalAverage([p], 0.5)
    for _ in range(3):
        with torch.no_grad():
            p.mul_(0.9).add_(0.1)
        a.update()
    state = a.state_dict()
    b = HistoricalAverage([p], 0.5)
    b.load_state_dict(state)
    assert b.count == a.count == 4
    assert torch.equal(b.means[0], a.means[0]) and torch.equal(b.penalty(), a.penalty())
    state["means"][0].zero_()  # the state dict holds copies
    assert not torch.equal(a.means[0], state["means"][0])
    f = io.BytesIO()
    torch.save(a.state_dict(), f)
    f.seek(0)
    c = HistoricalAverage([p], 0.5)
    c.load_state_dict(torch.load(f, weights_only=True))
    assert torch.equal(c.means[0], a.means[0]) and c.count == 4


def test_historical_average_bad_input():
    p = torch.randn(3, requires_grad=True)
    for w in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="HistoricalAverage: weight must be a finite number >= 0"):
            HistoricalAverage([p], w)
    with pytest.raises(TypeError, match="weight"):
        HistoricalAverage([p], None)
    with pytest.raises(ValueError, match="params: expected at least one"):
        HistoricalAverage([], 1.0)
    with pytest.raises(TypeError, match="params: expected an iterable"):
        HistoricalAverage(p, 1.0)
    with pytest.raises(TypeError, match=r"params\[0\]: expected a floating-point"):
        HistoricalAverage([torch.ones(3, dtype=torch.long)], 1.0)
    avg = HistoricalAverage([p], 1.0)
    with pytest.raises(ValueError, match="state: expected a dict"):
        avg.load_state_dict({"count": 1})
    with pytest.raises(ValueError, match=r"state\['means'\]\[0\]: expected a tensor of shape \[3\]"):
        avg.load_state_dict({"count": 2, "means": [torch.zeros(4)]})
    with pytest.raises(ValueError, match=r"state\['count'\]"):
        avg.load_state_dict({"count": 0, "means": [torch.zeros(3)]})


# ---------------------------------------------------------------------------------------------------
# data parallelism: 2 gloo processes, batch N each, against one process with batch 2N

WORLD, N = 2, 3


def _global_inputs():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(WORLD * N, 6, dtype=F64, generator=g)
    real = torch.randn(8, 4, dtype=F64, generator=g)
    fake = torch.randn(WORLD * N, 4, dtype=F64, generator=g)
    return x, real, fake


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    import datetime

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    try:
        torch.manual_seed(5)
        layer = MinibatchDiscrimination(6, 4, 3).double()
        x, real, fake = _global_inputs()
        xl = x[rank * N:(rank + 1) * N].clone().requires_grad_(True)
        out = layer(xl)
        out.square().sum(1).mean().backward()  # this rank's share: the mean over its rows
        # Unequal local real batches (3 and 5 rows) for feature matching; equal for the fakes.
        rl = (real[:3] if rank == 0 else real[3:]).clone().requires_grad_(True)
        fl = fake[rank * N:(rank + 1) * N].clone().requires_grad_(True)
        fm = feature_matching_loss(rl, fl)
        fm.backward()
        try:
            layer(x[:N - rank])
            mismatch = ""
        except ValueError as exc:
            mismatch = str(exc)
        layer.global_batch = False
        local = layer(xl).detach()
        torch.save({"out": out.detach(), "local": local, "x_grad": xl.grad, "w_grad": layer.weight.grad, "fm": fm.detach(),
                    "real_grad": rl.grad, "fake_grad": fl.grad, "mismatch": mismatch},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="no gloo backend")
def test_data_parallel_equals_one_process(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False,
                             start_method="spawn")
    try:
        while not ctx.join(timeout=120):
            pass
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    torch.manual_seed(5)
    layer = MinibatchDiscrimination(6, 4, 3).double()
    x, real, fake = _global_inputs()
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.square().sum(1).mean().backward()  # the global batch's mean
    for r, got in enumerate(ranks):
        torch.testing.assert_close(got["out"], out.detach()[r * N:(r + 1) * N], **TOL)
        # Each rank's input gradient is that of the sum of the ranks' losses: WORLD x the global mean's.
        torch.testing.assert_close(got["x_grad"], WORLD * x.grad[r * N:(r + 1) * N], **TOL)
        assert "every process must pass the same batch size" in got["mismatch"]
        torch.testing.assert_close(got["local"], layer(x[r * N:(r + 1) * N]).detach(), **TOL)  # global_batch=False
    # Averaged over ranks (what the trainer's all-reduce does), the weight gradient is one process's.
    torch.testing.assert_close(sum(g["w_grad"] for g in ranks) / WORLD, layer.weight.grad, **TOL)

    real, fake = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    fm = feature_matching_loss(real, fake)
    fm.backward()
    for r, got in enumerate(ranks):
        torch.testing.assert_close(got["fm"], fm.detach(), **TOL)
        torch.testing.assert_close(got["real_grad"], WORLD * (real.grad[:3] if r == 0 else real.grad[3:]), **TOL)
        torch.testing.assert_close(got["fake_grad"], WORLD * fake.grad[r * N:(r + 1) * N], **TOL)


def test_layers_accept_non_contiguous_inputs():
    layer = MinibatchDiscrimination(5, 3, 2).double()
    x = torch.randn(5, 4, dtype=F64)
    xt = x.t()  # [4, 5], not contiguous
    assert not xt.is_contiguous()
    torch.testing.assert_close(layer(xt), layer(xt.contiguous()), rtol=0, atol=0)
    vbn = VirtualBatchNorm(3).double()
    h = torch.randn(6, 3, 4, 4, dtype=F64)
    vbn.reference_rows = 2
    cl = h.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(vbn(cl), vbn(h), **TOL)
    vbn.reference_rows = None
    real = torch.randn(4, 6, dtype=F64)[:, ::2]
    torch.testing.assert_close(feature_matching_loss(real, real.flip(0)[:2]),
                               feature_matching_loss(real.contiguous(), real.flip(0)[:2].contiguous()), **TOL)


def test_virtual_batchnorm_float32_with_a_large_mean():
    """The centred combination of the statistics keeps float32 accurate where mean(x²) - mean(x)² would
    cancel (mean 1e3, standard deviation 1: that form loses about 6 of float32's 7 digits)."""
    layer = VirtualBatchNorm(2)
    ref, x = torch.randn(8, 2, 6, 6) + 1e3, torch.randn(3, 2, 6, 6) + 1e3
    layer.reference_rows = 8
    got = layer(torch.cat([ref, x]))[8:]
    _, exp = vbn_twin(ref.double(), x.double(), torch.ones(2, dtype=F64), torch.zeros(2, dtype=F64), layer.eps)
    torch.testing.assert_close(got.double(), exp, rtol=0, atol=2e-3)
