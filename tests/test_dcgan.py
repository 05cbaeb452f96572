"""pygan.train.dcgan (the DCGAN nets: shapes, the paper's rules, init statistics, norm options,
features) and pygan.train.images (the shipped image sets: determinism, value range, labels)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from pygan.nn import MinibatchDiscrimination, ReferenceBatch, VirtualBatchNorm
from pygan.train.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from pygan.train.images import IMAGE_DATASETS, SHAPE_CLASSES, digits, image_dataset, shapes

F64 = torch.float64


# ---------------------------------------------------------------------------------------------------
# DCGAN

@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("g_norm", ["batch", "none"])
@pytest.mark.parametrize("d_norm", ["batch", "layer", "none"])
def test_shapes(side, channels, g_norm, d_norm):
    G = DCGANGenerator(latent_dim=7, channels=channels, side=side, width=4, norm=g_norm)
    D = DCGANDiscriminator(channels=channels, side=side, width=4, norm=d_norm)
    z = torch.randn(3, 7)
    x = G(z)
    assert x.shape == (3, channels, side, side)
    assert x.abs().max() < 1  # tanh
    assert torch.equal(G(z[:, :, None, None]), x) or g_norm == "batch"  # batch norm: train-mode statistics
    assert D(x).shape == (3, 1)
    assert D.depth == {32: 3, 64: 4}[side]


@pytest.mark.parametrize("side", [32, 64])
def test_the_papers_rules(side):
    G = DCGANGenerator(latent_dim=5, channels=3, side=side, width=4)
    D = DCGANDiscriminator(channels=3, side=side, width=4)
    g_mods, d_mods = list(G.modules()), list(D.modules())
    pools = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    assert not any(isinstance(m, pools) for m in g_mods + d_mods)  # no pooling
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d, nn.Upsample)) for m in g_mods)  # only ConvT in G
    assert [m for m in d_mods if isinstance(m, nn.Linear)] == [D.head]  # no fully connected hidden layer
    assert all(m.stride == (2, 2) for m in d_mods if isinstance(m, nn.Conv2d))  # strided convolutions
    deconvs = [m for m in g_mods if isinstance(m, nn.ConvTranspose2d)]
    assert [m.stride for m in deconvs] == [(1, 1)] + [(2, 2)] * (len(deconvs) - 1)
    # Batch norm after every transposed convolution but the output one; in every D block but the first.
    layers = list(G.net)
    for i, m in enumerate(layers[:-2]):
        if isinstance(m, nn.ConvTranspose2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
    assert isinstance(layers[-2], nn.ConvTranspose2d) and isinstance(layers[-1], nn.Tanh)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.blocks[0])
    assert all(isinstance(block[1], nn.BatchNorm2d) for block in D.blocks[1:])
    leaky = [m for m in d_mods if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == D.depth and all(m.negative_slope == 0.2 for m in leaky)
    assert not any(isinstance(m, (nn.ReLU, nn.Sigmoid)) for m in d_mods)


def test_init_statistics():
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=100, channels=3, side=64, width=64)
    D = DCGANDiscriminator(channels=3, side=64, width=64)
    for net in (G, D):
        weights = torch.cat([m.weight.flatten() for m in net.modules()
                             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
        assert abs(weights.mean().item()) < 1e-3 and abs(weights.std().item() - 0.02) < 5e-4
        scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        assert abs(scales.mean().item() - 1) < 3e-3 and abs(scales.std().item() - 0.02) < 3e-3
        biases = [m.bias for m in net.modules() if getattr(m, "bias", None) is not None]
        assert biases and all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    # Convolutions followed by a normalisation carry no bias (its shift does the job).
    assert all(m.bias is None for m in G.modules() if isinstance(m, nn.ConvTranspose2d) and m.out_channels != 3)
    torch.manual_seed(0)
    D_ln = DCGANDiscriminator(channels=3, side=64, width=64, norm="layer")
    ln = torch.cat([m.weight for m in D_ln.modules() if isinstance(m, nn.GroupNorm)])
    assert abs(ln.mean().item() - 1) < 3e-3 and abs(ln.std().item() - 0.02) < 3e-3


def test_init_dcgan_weights_leaves_other_parameters():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(400, 20, 5)
    before = mbd.weight.detach().clone()
    init_dcgan_weights(nn.Sequential(nn.Linear(3, 3), mbd, VirtualBatchNorm(3)))
    assert torch.equal(mbd.weight, before)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_decoupled_critic_scores_each_sample_alone(norm):
    """What a penalised critic needs: a sample's score does not depend on the rest of its batch."""
    D = DCGANDiscriminator(channels=1, side=32, width=4, norm=norm).double().train()
    x = torch.randn(5, 1, 32, 32, dtype=F64)
    alone = torch.cat([D(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(D(x), alone, rtol=1e-10, atol=1e-10)


def test_batch_norm_critic_couples_samples():
    D = DCGANDiscriminator(channels=1, side=32, width=4, norm="batch").double().train()
    x = torch.randn(5, 1, 32, 32, dtype=F64)
    assert not torch.allclose(D(x)[:2], D(x[:2]))


def test_layer_norm_block_equals_twin():
    """norm="layer": each sample normalised over its C x H x W, then a per-channel scale and shift."""
    D = DCGANDiscriminator(channels=1, side=32, width=3, norm="layer").double()
    conv, gn, act = D.blocks[1]
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    h = torch.randn(2, 3, 16, 16, dtype=F64)
    y = conv(h)
    expected = torch.empty_like(y)
    for i in range(y.shape[0]):
        mean = y[i].mean()
        var = ((y[i] - mean) ** 2).mean()
        for c in range(y.shape[1]):
            expected[i, c] = (y[i, c] - mean) / torch.sqrt(var + gn.eps) * gn.weight[c] + gn.bias[c]
    torch.testing.assert_close(D.blocks[1](h), torch.nn.functional.leaky_relu(expected, 0.2),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("side", [32, 64])
def test_features(side):
    D = DCGANDiscriminator(channels=3, side=side, width=4).double().eval()
    x = torch.randn(2, 3, side, side, dtype=F64)
    for layer in range(1, D.depth + 1):
        f = D.features(x, layer)
        assert f.shape == (2, D.feature_sizes[layer - 1])
        assert f.shape[1] == 4 * 2 ** (layer - 1) * (side // 2 ** layer) ** 2
    assert torch.equal(D.features(x), D.features(x, D.depth))
    torch.testing.assert_close(D(x), D.head(D.features(x)), rtol=0, atol=0)
    for bad in (0, D.depth + 1):
        with pytest.raises(ValueError, match=rf"layer must be an int >= 1 and <= {D.depth}"):
            D.features(x, bad)
    for bad in (1.0, True):
        with pytest.raises(TypeError, match="layer must be an int, got"):
            D.features(x, bad)


def test_minibatch_discrimination_option():
    D = DCGANDiscriminator(channels=1, side=32, width=4, norm="none", minibatch_kernels=6,
                           minibatch_kernel_dim=3).double()
    assert isinstance(D.minibatch, MinibatchDiscrimination)
    assert D.head.in_features == D.feature_sizes[-1] + 6
    x = torch.randn(4, 1, 32, 32, dtype=F64)
    torch.testing.assert_close(D(x), D.head(D.minibatch(D.features(x))), rtol=0, atol=0)
    nn.init.normal_(D.minibatch.weight, 0, 0.05)  # similarities well away from 0
    assert not torch.allclose(D(x)[:2], D(x[:2]))  # the batch now matters, by design


def test_virtual_batchnorm_generator():
    G = DCGANGenerator(latent_dim=6, channels=1, side=32, width=4, norm="virtual")
    assert sum(isinstance(m, VirtualBatchNorm) for m in G.modules()) == 3
    with pytest.raises(RuntimeError, match="no reference statistics"):
        G(torch.randn(2, 6))
    wrapped = ReferenceBatch(G, torch.randn(8, 6))
    z = torch.randn(5, 6)
    x = wrapped(z)
    assert x.shape == (5, 1, 32, 32)
    torch.testing.assert_close(torch.cat([wrapped(z[i:i + 1]) for i in range(5)]), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(side=48), "side: expected one of 32, 64"),
    (dict(side=16), "side: expected one of 32, 64"),
    (dict(channels=2), "channels: expected 1 or 3"),
    (dict(width=0), "width must be an int >= 1"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANGenerator(**kwargs)
    with pytest.raises(ValueError, match=match):
        DCGANDiscriminator(**kwargs)


def test_bad_options_and_input():
    with pytest.raises(ValueError, match="norm must be .batch., .layer. or .none."):
        DCGANDiscriminator(norm="virtual")
    with pytest.raises(ValueError, match="norm must be .batch., .virtual. or .none."):
        DCGANGenerator(norm="layer")
    with pytest.raises(ValueError, match="latent_dim"):
        DCGANGenerator(latent_dim=0)
    with pytest.raises(ValueError, match="minibatch_kernels"):
        DCGANDiscriminator(minibatch_kernels=-1)
    G = DCGANGenerator(latent_dim=5, channels=1, side=32, width=2)
    D = DCGANDiscriminator(channels=1, side=32, width=2)
    with pytest.raises(ValueError, match=r"z: expected shape \[B, 5\]"):
        G(torch.randn(2, 6))
    with pytest.raises(TypeError, match="z: expected a floating-point"):
        G(torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected images \[B, 1, 32, 32\]"):
        D(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"x: expected images"):
        D(torch.randn(2, 1024))


# ---------------------------------------------------------------------------------------------------
# images

@pytest.mark.parametrize("side, channels", [(32, 1), (64, 3)])
def test_shapes_dataset(side, channels):
    x, y = shapes(300, side=side, channels=channels, seed=4)
    assert x.shape == (300, channels, side, side) and x.dtype == torch.float32
    assert y.shape == (300,) and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.5
    assert set(y.tolist()) == set(range(len(SHAPE_CLASSES)))
    x2, y2 = shapes(300, side=side, channels=channels, seed=4)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # deterministic
    x3, _ = shapes(300, side=side, channels=channels, seed=5)
    assert not torch.equal(x, x3)
    # Every shape fits inside its image: a 1-pixel border of pure background.
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    assert torch.equal(border, torch.full_like(border, -1.0))
    if channels == 3:
        assert not torch.equal(x[:, 0], x[:, 1])  # colour, not grey repeated


def test_shapes_classes_have_equal_areas():
    """Discs, squares and triangles of the same size parameter cover the same area (within a pixel's
    anti-aliasing), so the classes differ by shape, not by brightness mass."""
    x, y = shapes(3000, side=32, channels=1, seed=0)
    lit = (x[:, 0] > -1).float().sum((1, 2))
    areas = [lit[y == k].mean().item() for k in range(3)]
    assert max(areas) / min(areas) < 1.1, areas
    # The expected area of a disc of radius r ~ U[0.12, 0.22] * 32: E[pi r^2] (+ the anti-aliased rim)
    r_lo, r_hi = 0.12 * 32, 0.22 * 32
    mean_area = torch.pi * (r_hi ** 3 - r_lo ** 3) / (3 * (r_hi - r_lo))
    assert 0.9 * mean_area < areas[0] < 1.25 * mean_area, (areas[0], mean_area)


def test_shapes_edge_cases_and_bad_input():
    x, y = shapes(0)
    assert x.shape == (0, 1, 32, 32) and y.shape == (0,)
    assert torch.equal(shapes(1, seed=3)[0], shapes(1, seed=3)[0])
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        shapes(-1)
    with pytest.raises(ValueError, match="side: expected one of 32, 64"):
        shapes(4, side=28)
    with pytest.raises(ValueError, match="channels: expected 1 or 3"):
        shapes(4, channels=4)
    with pytest.raises(TypeError, match="seed must be an int"):
        shapes(4, seed=1.5)
    with pytest.raises(ValueError, match="name must be .shapes. or .digits."):
        image_dataset("cifar10")
    assert IMAGE_DATASETS == ("shapes", "digits")
    assert torch.equal(image_dataset("shapes", n=5, seed=2)[0], shapes(5, seed=2)[0])


@pytest.mark.parametrize("side, channels", [(32, 1), (64, 3)])
def test_digits(side, channels):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    x, y = digits(side=side, channels=channels)
    assert x.shape == (1797, channels, side, side) and x.dtype == torch.float32
    assert torch.equal(y, torch.as_tensor(load_digits().target))
    assert x.min() >= -1 and x.max() <= 1
    # Twin for the first images: bilinear sampling of v / 8 - 1 at the pixel centres
    # ((i + 0.5) * 8 / side - 0.5, clamped to the image), written out.
    original = torch.as_tensor(load_digits().images[:2], dtype=torch.float64) / 8 - 1
    scale = 8 / side
    for k in range(2):
        twin = torch.empty(side, side, dtype=torch.float64)
        for i in range(side):
            for j in range(side):
                si, sj = max((i + 0.5) * scale - 0.5, 0.0), max((j + 0.5) * scale - 0.5, 0.0)
                i0, j0 = min(int(si), 7), min(int(sj), 7)
                i1, j1 = min(i0 + 1, 7), min(j0 + 1, 7)
                wi, wj = si - i0, sj - j0
                o = original[k]
                twin[i, j] = ((1 - wi) * ((1 - wj) * o[i0, j0] + wj * o[i0, j1])
                              + wi * ((1 - wj) * o[i1, j0] + wj * o[i1, j1]))
        torch.testing.assert_close(x[k, 0].double(), twin, rtol=0, atol=1e-6)
    if channels == 3:
        assert torch.equal(x[:, 0], x[:, 2])


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        digits()
