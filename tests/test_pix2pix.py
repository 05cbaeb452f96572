"""pygan.train.pix2pix (U-Net, patch critic, objective vs plain-PyTorch twins) and pygan.train.paired
(the outlines toy set's determinism, the .npz loaders' errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pygan
from pygan.train.paired import PAIRED_DATASETS, load_labelled_file, load_paired_file, outlines, paired_dataset
from pygan.train.pix2pix import DEFAULT_LAMBDA_L1, PatchCritic, UNetGenerator, critic_loss, generator_loss, l1_loss

torch.set_num_threads(1)
F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------- networks

@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("channels", [(1, 1), (1, 3), (3, 1)])
@pytest.mark.parametrize("norm", ["instance", "none"])
def test_unet_shapes(depth, channels, norm):
    G = UNetGenerator(channels[0], channels[1], width=4, depth=depth, norm=norm)
    out = G(torch.randn(2, channels[0], 32, 32))
    assert out.shape == (2, channels[1], 32, 32) and out.abs().max() < 1


def test_unet_skip_connections():
    # every decoder level but the innermost takes the upsampled features and the encoder's skip
    G = UNetGenerator(1, 1, width=4, depth=3, norm="none")
    widths = [conv[0].out_channels for conv in G.down]
    assert widths == [4, 8, 16]
    assert [up[0].in_channels for up in G.up] == [16, 2 * 8, 2 * 4]
    # with the skips, an output pixel sees its input neighbourhood through the outermost skip alone:
    # zeroing the innermost block's weights must leave the output dependent on the input
    with torch.no_grad():
        for p in G.down[2].parameters():
            p.zero_()
    a = torch.randn(1, 1, 32, 32, requires_grad=True)
    (g,) = torch.autograd.grad(G(a).sum(), a)
    assert g.abs().sum() > 0


def test_unet_bad_input():
    with pytest.raises(ValueError, match="divisible by 16"):
        UNetGenerator(depth=4)(torch.randn(1, 1, 24, 24))
    with pytest.raises(ValueError, match="depth"):
        UNetGenerator(depth=0)
    with pytest.raises(ValueError, match="norm"):
        UNetGenerator(norm="batch")


@pytest.mark.parametrize("layers, side, out", [(1, 32, 14), (2, 32, 6), (1, 64, 30)])
def test_patch_critic_shapes_and_condition(layers, side, out):
    torch.manual_seed(0)
    D = PatchCritic(1, 3, width=4, layers=layers)
    a, b = torch.randn(2, 1, side, side), torch.randn(2, 3, side, side)
    assert D(a, b).shape == (2, 1, out, out)
    torch.testing.assert_close(D.score(a, b), D(a, b).mean(dim=(2, 3)))
    assert not torch.allclose(D(a, b), D(torch.randn_like(a), b))  # conditional on the input a
    first = D.net[0]
    assert first.in_channels == 4  # cat(a, b)
    with pytest.raises(ValueError, match="same B, H, W"):
        D(a, b[:, :, :-1])


def test_patch_critic_gradient_penalty_wrt_b_at_same_a():
    torch.manual_seed(1)
    D = PatchCritic(1, 1, width=4, layers=1).to(F64)
    a = torch.randn(3, 1, 32, 32, dtype=F64)
    real, fake = torch.randn(3, 1, 32, 32, dtype=F64), torch.randn(3, 1, 32, 32, dtype=F64)
    alpha = torch.rand(3, dtype=F64)
    got = pygan.gradient_penalty(lambda b: D.score(a, b), real, fake, weight=10.0, alpha=alpha)
    x_hat = (alpha.view(3, 1, 1, 1) * real + (1 - alpha.view(3, 1, 1, 1)) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(D(a, x_hat).mean(dim=(1, 2, 3)).sum(), x_hat, create_graph=True)
    want = 10.0 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(got, want, **TOL)


# --------------------------------------------------------------------------------- objective

def _log_sigmoid(t):
    return -torch.log1p(torch.exp(-t))


def test_losses_match_twins():
    g = torch.Generator().manual_seed(2)
    d_real, d_fake = torch.randn(4, 1, 6, 6, generator=g, dtype=F64), torch.randn(4, 1, 6, 6, generator=g, dtype=F64)
    fake_b, real_b = torch.randn(4, 3, 8, 8, generator=g, dtype=F64), torch.randn(4, 3, 8, 8, generator=g, dtype=F64)
    l1 = (fake_b - real_b).abs().sum() / fake_b.numel()
    assert DEFAULT_LAMBDA_L1 == 100.0
    torch.testing.assert_close(l1_loss(fake_b, real_b), 100.0 * l1, **TOL)
    torch.testing.assert_close(l1_loss(fake_b, real_b, lambda_l1=2.5), 2.5 * l1, **TOL)
    want_g = -_log_sigmoid(d_fake).mean() + 100.0 * l1
    torch.testing.assert_close(generator_loss(d_fake, fake_b, real_b), want_g, **TOL)
    want_d = 0.5 * (-_log_sigmoid(d_real).mean() - torch.log(1 - torch.sigmoid(d_fake)).mean())
    torch.testing.assert_close(critic_loss(d_real, d_fake), want_d, **TOL)
    with pytest.raises(ValueError, match="lambda_l1"):
        l1_loss(fake_b, real_b, lambda_l1=-1.0)
    with pytest.raises(ValueError, match="lambda_l1"):
        l1_loss(fake_b, real_b, lambda_l1=float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        l1_loss(fake_b, real_b[:, :1])


# --------------------------------------------------------------------------------- paired data

@pytest.mark.parametrize("channels", [1, 3])
def test_outlines_deterministic_and_consistent(channels):
    a1, b1, y1 = outlines(40, channels=channels, seed=3)
    a2, b2, y2 = outlines(40, channels=channels, seed=3)
    a3, _, _ = outlines(40, channels=channels, seed=4)
    assert torch.equal(a1, a2) and torch.equal(b1, b2) and torch.equal(y1, y2) and not torch.equal(a1, a3)
    assert a1.shape == b1.shape == (40, channels, 32, 32) and a1.dtype == torch.float32
    assert a1.min() >= -1 and a1.max() <= 1
    # the outline lies on the shape, and is a strict part of it (the interior is background in a)
    on_a, on_b = a1 > -1 + 1e-6, b1 > -1 + 1e-6
    assert not (on_a & ~on_b).any()
    assert (on_b & ~on_a).flatten(1).any(dim=1).all()
    assert on_a.flatten(1).any(dim=1).all()
    a_small, b_small, _ = outlines(10, channels=channels, seed=3)
    a_named, b_named = paired_dataset("outlines", 10, channels=channels, seed=3)
    assert torch.equal(a_named, a_small) and torch.equal(b_named, b_small) and PAIRED_DATASETS == ("outlines",)
    with pytest.raises(ValueError, match="name"):
        paired_dataset("edges")


def test_load_paired_file(tmp_path):
    a, b, _ = outlines(5)
    good = tmp_path / "pairs.npz"
    np.savez(good, a=a.numpy(), b=np.repeat(b.numpy(), 3, axis=1).astype(np.float64))
    la, lb = load_paired_file(good)
    assert torch.equal(la, a) and lb.shape == (5, 3, 32, 32) and lb.dtype == torch.float32
    cases = {
        "missing.npz": (dict(a=a.numpy()), "missing b"),
        "short.npz": (dict(a=a.numpy(), b=b.numpy()[:4]), "same N, H and W"),
        "size.npz": (dict(a=a.numpy(), b=b.numpy()[:, :, :16]), "same N, H and W"),
        "flat.npz": (dict(a=a.numpy()[:, 0], b=b.numpy()), "N x C x H x W"),
        "nan.npz": (dict(a=np.full_like(a.numpy(), np.nan), b=b.numpy()), "NaN"),
        "empty.npz": (dict(a=a.numpy()[:0], b=b.numpy()[:0]), "at least one"),
        "text.npz": (dict(a=np.array([["x"]]), b=b.numpy()), "real numbers"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / name
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=message) as info:
            load_paired_file(path)
        assert name in str(info.value)
    with pytest.raises(ValueError, match="no such file"):
        load_paired_file(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_paired_file(tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", a.numpy())
    with pytest.raises(ValueError, match="single array"):
        load_paired_file(tmp_path / "one.npy")
    np.savez(tmp_path / "obj.npz", a=np.array([None, 1], dtype=object), b=b.numpy())
    with pytest.raises(ValueError, match="obj.npz"):
        load_paired_file(tmp_path / "obj.npz")


def test_load_labelled_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 2))
    path = tmp_path / "lab.npz"
    np.savez(path, x=x, y=np.array([0, 1, 2, 0, 1, 2], dtype=np.int32))
    lx, ly = load_labelled_file(path)
    assert lx.dtype == torch.float32 and ly.dtype == torch.int64 and ly.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match=r"in \[0, 2\), got 2"):
        load_labelled_file(path, num_classes=2)
    cases = {
        "len.npz": (dict(x=x, y=np.arange(5)), "expected 6 labels"),
        "float.npz": (dict(x=x, y=np.arange(6.0)), "integer"),
        "neg.npz": (dict(x=x, y=np.array([0, 1, -1, 0, 1, 1])), "got -1"),
        "two_d.npz": (dict(x=x, y=np.zeros((6, 1), dtype=int)), "1-D"),
        "nox.npz": (dict(y=np.arange(6)), "missing x"),
        "inf.npz": (dict(x=np.full((6, 2), np.inf), y=np.arange(6)), "NaN or infinity"),
    }
    for name, (arrays, message) in cases.items():
        p = tmp_path / name
        np.savez(p, **arrays)
        with pytest.raises(ValueError, match=message) as info:
            load_labelled_file(p)
        assert name in str(info.value)
    with pytest.raises(ValueError, match="num_classes"):
        load_labelled_file(path, num_classes=0)
