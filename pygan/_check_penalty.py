"""The cases of ``python -m pygan check`` for interpolate, grad_penalty and grad_penalty_backward (the
penalty kernels); the helpers and the other ops' cases are in pygan/_check_cases.py.

Internal API (used by pygan/check.py): ``interpolate_cases``, ``grad_penalty_cases``,
``grad_penalty_backward_cases``."""

from __future__ import annotations

import itertools
import math

import torch

from pygan._check_cases import DTYPES, RTOL, SHORT, Checker, layout_variants, with_specials


# ---------------------------------------------------------------------------------------------
# interpolate
# ---------------------------------------------------------------------------------------------

def interpolate_cases(c: Checker):
    from pygan import reference

    def check(real, fake, alpha):
        out = torch.ops.pygan.interpolate.default(real, fake, alpha)
        ref = reference.interpolate(real, fake, alpha)
        a = alpha.double().reshape(-1, *([1] * (real.dim() - 1)))
        scale = (a * real.double()).abs() + ((1 - a) * fake.double()).abs()
        c.compare("out", out, ref, RTOL[real.dtype], scale=scale)

    per_sample = [1, 2, 3, 5, 7, 8, 9, 16, 31, 33, 1000, 4097]
    batches = [1, 3, 64]
    for dtype in DTYPES:
        def shapes(dtype=dtype):
            for b, k in itertools.product(batches, per_sample):
                real, fake = c.randn((b, k), dtype), c.randn((b, k), dtype)
                alpha = c.rand((b,), dtype)
                alpha[0] = 0.0
                if b > 1:
                    alpha[-1] = 1.0
                check(real, fake, alpha)
        yield f"{SHORT[dtype]} [B, K] for B in {batches}, K in {per_sample[0]}..{per_sample[-1]}", shapes

        def layouts(dtype=dtype):
            for shape in ((6, 3, 5, 7), (16, 37), (2, 4, 8, 8)):
                real_v, fake_v = with_specials(c.randn(shape, dtype)), c.randn(shape, dtype)
                alpha = c.rand((shape[0],), dtype)
                for (name_r, real), (name_f, fake) in itertools.product(layout_variants(real_v), layout_variants(fake_v)):
                    c.case = f"{SHORT[dtype]} {list(shape)} real {name_r}, fake {name_f}"
                    check(real, fake, alpha)
        yield f"{SHORT[dtype]} layout pairs (same and different misalignment) with NaN/inf", layouts

    def large():  # past one grid of the per-sample map (a grid-stride loop)
        n = 1 << 18 if c.quick else 3_000_011
        for k in (3, 1024):
            real = c.randn((n // k, k), torch.float32)
            check(real, c.randn(real.shape, torch.float32), c.rand((real.shape[0],), torch.float32))
    yield "large batches (grid-stride)", large


# ---------------------------------------------------------------------------------------------
# grad_penalty and grad_penalty_backward
# ---------------------------------------------------------------------------------------------

def _penalty_shapes(c: Checker) -> list[tuple[int, ...]]:
    # Sample sizes around the lane-group limit (256 vectors of 8/4/2 elements), the chunking of
    # large samples in small batches, a batch past the 2048-block grid, and the CPU's 16384-element
    # pieces.
    shapes = [(1, 1), (3, 2), (5, 3), (7, 4), (2, 5), (64, 2), (4, 31), (4, 32), (4, 33),
              (3, 255), (3, 511), (3, 512), (3, 513), (2, 1023), (2, 1024), (2, 1025),
              (2, 2047), (2, 2048), (2, 2049), (2, 16383), (2, 16385), (1, 100_003), (3, 4, 5, 6)]
    if not c.quick:
        shapes += [(600_001, 1), (3000, 2000), (1, 2_000_003), (2, 3, 64, 64)]
    return shapes


# Gradients whose squares underflow the accumulation dtype (float64 for float32 too): the kernels
# must rescale those samples, not report norm 0.
_TINY = [(torch.float64, 1e-160), (torch.float64, 1e-310), (torch.float32, 1e-40)]


def grad_penalty_cases(c: Checker):
    from pygan import reference

    modes = [(1.0, False, "mean"), (1.0, True, "sum"), (0.0, False, "none"), (2.0, False, "none"),
             (1.0, True, "none"), (0.0, False, "mean")]

    def check(grads, center, one_sided, reduction):
        penalty, norms = torch.ops.pygan.grad_penalty.default(grads, center, one_sided, reduction)
        ref = reference.grad_penalty(grads, center, one_sided, reduction)
        dims = tuple(range(1, grads.dim()))
        g64 = grads.double()
        if dims:
            # Scaled by each sample's largest element, so squares below the smallest normal float64
            # (samples of 1e-160) keep their digits: torch's own vector_norm loses them.
            m = g64.abs().amax(dim=dims, keepdim=True) if g64.numel() else g64.abs()
            m = torch.where((m > 0) & torch.isfinite(m), m, torch.ones_like(m))
            n64 = torch.linalg.vector_norm(g64 / m, dim=dims) * m.reshape(-1)
        else:
            n64 = g64.abs()
        acc = torch.float32 if grads.dtype in (torch.float16, torch.bfloat16) else torch.float64
        c.compare("norms", norms, n64.to(acc), 1e-4 if acc == torch.float32 else 1e-12)
        terms = (n64 + center) ** 2
        scale = terms if reduction == "none" else (terms.mean() if reduction == "mean" else terms.sum())
        c.compare("penalty", penalty, ref, RTOL[grads.dtype], scale=scale)

    for dtype in DTYPES:
        def shapes(dtype=dtype):
            for shape in _penalty_shapes(c):
                grads = c.randn(shape, dtype)
                for mode in modes:
                    c.case = f"{SHORT[dtype]} {list(shape)} center={mode[0]} one_sided={mode[1]} {mode[2]}"
                    check(grads, *mode)
        yield f"{SHORT[dtype]} sample sizes x modes", shapes

        def layouts(dtype=dtype):
            for shape in ((6, 3, 5, 7), (16, 37), (5, 4, 8, 8)):
                values = c.randn(shape, dtype)
                for name, grads in layout_variants(values):
                    c.case = f"{SHORT[dtype]} {list(shape)} {name}"
                    check(grads, 1.0, False, "none")
                    check(grads, 0.0, False, "sum")
        yield f"{SHORT[dtype]} layouts", layouts

        def specials(dtype=dtype):
            grads = c.randn((8, 40), dtype)
            grads[1, 3], grads[2, 0], grads[3] = math.nan, math.inf, 0.0  # NaN, inf and a zero sample
            for mode in modes:
                check(grads, *mode)
        yield f"{SHORT[dtype]} NaN, inf and zero samples", specials

    def tiny():  # squares that underflow the accumulation type: the rescaled sum (tiny norms)
        for dtype, scale in _TINY:
            for shape in ((4, 7), (2, 3000), (3, 100_003)):
                grads = c.randn(shape, dtype) * scale
                grads[-1] *= 1e30 if dtype == torch.float64 else 1e10  # a normal sample beside them
                for mode in modes:
                    c.case = f"{SHORT[dtype]} {list(shape)} x {scale:g} center={mode[0]} {mode[2]}"
                    check(grads, *mode)
    yield "tiny norms (squares below the smallest normal)", tiny

    def empty():
        for reduction in ("none", "sum"):
            check(c.randn((0, 5), torch.float32), 1.0, False, reduction)
    yield "empty batch", empty


def grad_penalty_backward_cases(c: Checker):
    from pygan import reference

    modes = [(1.0, False, "mean"), (1.0, True, "sum"), (0.0, False, "none"), (2.0, True, "none")]

    def check(grads, center, one_sided, reduction):
        _, norms = torch.ops.pygan.grad_penalty.default(grads, center, one_sided, reduction)
        batch = grads.shape[0]
        grad_out = c.randn((batch,) if reduction == "none" else (), grads.dtype)
        out = torch.ops.pygan.grad_penalty_backward.default(grad_out, grads, norms, center, one_sided, reduction)
        g64 = grads.detach().double().requires_grad_(True)
        p = reference.grad_penalty(g64, center, one_sided, reduction)
        (ref,) = torch.autograd.grad(p, g64, grad_out.double())
        ref = ref.to(grads.dtype)
        c.compare("grad_grads", out, ref, RTOL[grads.dtype], scale=ref.double().abs())

    for dtype in DTYPES:
        def shapes(dtype=dtype):
            for shape in _penalty_shapes(c):
                grads = c.randn(shape, dtype)
                for mode in modes:
                    c.case = f"{SHORT[dtype]} {list(shape)} center={mode[0]} one_sided={mode[1]} {mode[2]}"
                    check(grads, *mode)
        yield f"{SHORT[dtype]} sample sizes x modes", shapes

        def layouts(dtype=dtype):
            for shape in ((6, 3, 5, 7), (16, 37)):
                values = c.randn(shape, dtype)
                values[2] = 0.0  # a zero sample: the subgradient 0
                for name, grads in layout_variants(values):
                    c.case = f"{SHORT[dtype]} {list(shape)} {name}"
                    check(grads, 1.0, False, "mean")
                    check(grads, 0.0, False, "none")
        yield f"{SHORT[dtype]} layouts and a zero sample", layouts

    def tiny():  # a slope beyond float32's range (denormal norms) is applied in the accumulation type
        # (not 1e-310 in float64: there the true slope 2/n itself overflows float64)
        for dtype, scale in [t for t in _TINY if t[1] > 1e-300]:
            grads = c.randn((4, 33), dtype) * scale
            for mode in modes:
                c.case = f"{SHORT[dtype]} [4, 33] x {scale:g} center={mode[0]} {mode[2]}"
                check(grads, *mode)
    yield "tiny norms (slopes beyond float32)", tiny
