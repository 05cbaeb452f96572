"""interpolate's CPU kernel rounds exactly as fma(alpha, real, (1 - alpha) * fake), the expression the
CUDA kernel evaluates too, whatever the compiler's contraction: checked bit for bit against exact
rational arithmetic."""

from fractions import Fraction

import numpy as np
import pytest
import torch


def _round_f32(x: Fraction) -> np.float32:
    # float(x) is correctly rounded to float64; the float32 nearest to x is it or a neighbour.
    guess = np.float32(float(x))
    candidates = [guess, np.nextafter(guess, np.float32(np.inf)), np.nextafter(guess, np.float32(-np.inf))]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - x), int(np.float32(c).view(np.int32)) & 1))
    return np.float32(best)


def _fma_reference(real, fake, alpha):
    """fma(a, r, (1 - a) * f) per element with one rounding for the fma, in the op-math type."""
    op = torch.float64 if real.dtype == torch.float64 else torch.float32
    r = real.to(op).reshape(real.shape[0], -1).numpy()
    f = fake.to(op).reshape(real.shape[0], -1).numpy()
    a = alpha.to(op).numpy()
    out = np.empty_like(r)
    for i in range(r.shape[0]):
        ai = a[i]
        bi = (ai.dtype.type(1) - ai)  # rounded, as in the kernels
        for k in range(r.shape[1]):
            bf = bi * f[i, k]  # rounded
            exact = Fraction(float(ai)) * Fraction(float(r[i, k])) + Fraction(float(bf))
            out[i, k] = float(exact) if op == torch.float64 else _round_f32(exact)
    return torch.from_numpy(out).reshape(real.shape).to(real.dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cpu_interpolate_is_the_fma_expression_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(3)
    # 103 elements per sample: vector bodies and scalar tails of every ISA's vector width.
    real = (torch.randn(6, 103, generator=gen, dtype=torch.float64) * 3).to(dtype)
    fake = (torch.randn(6, 103, generator=gen, dtype=torch.float64) * 3).to(dtype)
    alpha = torch.rand(6, generator=gen, dtype=torch.float64).to(dtype)
    out = torch.ops.pygan.interpolate(real, fake, alpha)
    want = _fma_reference(real, fake, alpha)
    assert torch.equal(out.view(torch.int16 if dtype.itemsize == 2 else torch.int32 if dtype.itemsize == 4
                                else torch.int64),
                       want.view(torch.int16 if dtype.itemsize == 2 else torch.int32 if dtype.itemsize == 4
                                 else torch.int64))
