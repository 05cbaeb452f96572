"""The cases of ``python -m pygan check`` (pygan/check.py runs them): per op, inputs that reach every
path of its kernels, and the comparison against its twin in pygan.reference.

The sizes come from the kernels' constants: csrc/cuda/multi_tensor_apply.cuh (65536-element chunks,
320 chunks per launch, 110/64/48/36/30 tensors per launch for 1-5 lists, 16-byte vectors: 8/4/2
elements for 16/32/64-bit types), csrc/cuda/penalty_cuda.cu (256-thread blocks, lane groups up to
256 vectors per sample, chunked samples below 2048 units, grids of at most 2048 blocks, per-sample
maps with a grid-stride loop), and the CPU grains (clip 65536 elements, RMSprop 8192, penalty pieces
of 16384 and 32768 elements per thread, AVX512/AVX2 vectors of 8 to 32 elements).

Internal API (pygan/check.py, pygan/_check_penalty.py): every name without a leading underscore.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator

import torch

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SHORT = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32", torch.float64: "f64"}
# Relative tolerances against the twin, a few units in the last place of each dtype (the kernels and
# the twins compute in the same precision but may round intermediate steps differently).
RTOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-6, torch.float64: 1e-12}
_RTOL_RMSPROP = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-5, torch.float64: 1e-12}

# Kernel constants the sizes are built around (see the module docstring).
_CHUNK = 65536
_BLOCKS_PER_LAUNCH = 320
_TENSORS_PER_LAUNCH = {1: 110, 2: 64, 3: 48, 4: 36, 5: 30}


class Failure(Exception):
    """A case whose result is wrong (not an exception of the op itself)."""


class Checker:
    """Runs the cases of one op on one backend and keeps the worst result."""

    def __init__(self, row, device: str, quick: bool, seed: int = 0):
        self.row, self.device, self.quick = row, torch.device(device), quick
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.case = ""

    # -- inputs --

    def randn(self, shape, dtype, scale: float = 1.0, device=None) -> torch.Tensor:
        device = self.device if device is None else torch.device(device)
        gen = self.gen if device == self.device else torch.Generator(device=device).manual_seed(1)
        return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * scale).to(dtype)

    def rand(self, shape, dtype, device=None) -> torch.Tensor:
        device = self.device if device is None else torch.device(device)
        gen = self.gen if device == self.device else torch.Generator(device=device).manual_seed(1)
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)

    # -- comparison --

    def compare(self, what: str, out: torch.Tensor, ref: torch.Tensor, rtol: float = 0.0,
                scale: torch.Tensor | float | None = None) -> None:
        """out must equal ref (rtol 0) or lie within rtol * (|ref| + scale) of it; NaN where ref is NaN,
        the same infinities. Raises Failure otherwise."""
        if out.shape != ref.shape:
            raise Failure(f"{what}: shape {list(out.shape)}, expected {list(ref.shape)}")
        if out.dtype != ref.dtype:
            raise Failure(f"{what}: dtype {out.dtype}, expected {ref.dtype}")
        o = out.detach().to("cpu", torch.float64)
        r = ref.detach().to("cpu", torch.float64)
        nan_o, nan_r = o.isnan(), r.isnan()
        if not torch.equal(nan_o, nan_r):
            bad = int((nan_o != nan_r).sum())
            self._record(math.inf, math.inf)
            raise Failure(f"{what}: NaN in {bad} element(s) where the twin has {'none' if nan_o.any() else 'NaN'}")
        inf_o, inf_r = o.isinf(), r.isinf()
        if not torch.equal(inf_o, inf_r) or not torch.equal(o[inf_o], r[inf_r]):
            self._record(math.inf, math.inf)
            raise Failure(f"{what}: infinities differ from the twin's")
        finite = ~(nan_r | inf_r)
        if not bool(finite.any()):
            self._record(0.0, 0.0)
            return
        diff = (o - r).abs()[finite]
        if rtol == 0.0:
            worst = float(diff.max())
            self._record(worst, math.inf if worst > 0 else 0.0)
            if worst > 0:
                raise Failure(f"{what}: differs from the twin by {worst:.3g} (must be bit-exact)")
            return
        s = 0.0 if scale is None else scale
        if isinstance(s, torch.Tensor):
            s = s.detach().to("cpu", torch.float64).expand_as(r)[finite]
        allowed = rtol * (r.abs()[finite] + s) + torch.finfo(out.dtype).tiny
        ratio = float((diff / allowed).max())
        self._record(float(diff.max()), ratio)
        if ratio > 1.0:
            raise Failure(f"{what}: differs from the twin by {float(diff.max()):.3g} "
                           f"({ratio:.3g}x the tolerance {rtol:g} relative)")

    def _record(self, diff: float, ratio: float) -> None:
        if ratio >= self.row.worst:
            self.row.worst, self.row.worst_diff, self.row.worst_case = ratio, diff, self.case

    def run(self, cases: Iterator[tuple[str, Callable[[], None]]]) -> None:
        """Run every case, keep going after a failure, and fill the row."""
        failures = []
        start = time.perf_counter()
        for name, fn in cases:
            self.case = name
            self.row.cases += 1
            try:
                fn()
            except Failure as exc:
                failures.append(f"{name}: {exc}")
            except Exception as exc:  # the op raised: a failure of this case, the others still run
                failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                if self.device.type == "cuda" and not _cuda_alive():
                    failures.append("the CUDA context is unusable after this error; the remaining cases "
                                    "of this op were not run")
                    break
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.row.seconds = time.perf_counter() - start
        if failures:
            self.row.status = "fail"
            self.row.detail = failures[0] + (f" (and {len(failures) - 1} more failing case(s))"
                                             if len(failures) > 1 else "")


def _cuda_alive() -> bool:
    try:
        torch.cuda.synchronize()
        torch.zeros(1, device="cuda").add_(1).item()
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Layouts: the same values held in memory the kernels must handle.
# ---------------------------------------------------------------------------------------------

def layout_variants(values: torch.Tensor, with_strided: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor with `values`) for contiguous, transposed, channels_last, strided, and storage
    offsets of 1 element (never 16-byte aligned) and of 16 bytes (aligned, but offset)."""
    yield "contiguous", values.clone()
    if values.dim() >= 2 and values.shape[0] > 1 and values.shape[1] > 1:
        yield "transposed", values.transpose(0, 1).contiguous().transpose(0, 1)
    if values.dim() == 4:
        yield "channels_last", values.contiguous(memory_format=torch.channels_last)
    if with_strided and values.dim() >= 1 and values.numel() > 1:
        big = torch.empty(values.shape[0] * 2, *values.shape[1:], dtype=values.dtype, device=values.device)
        view = big[::2]
        view.copy_(values)
        yield "strided", view
    for offset_elements, label in ((1, "offset 1 element"), (16 // values.element_size(), "offset 16 bytes")):
        buf = torch.empty(values.numel() + offset_elements, dtype=values.dtype, device=values.device)
        view = buf[offset_elements:].view(values.shape)
        view.copy_(values)
        yield label, view


def with_specials(t: torch.Tensor) -> torch.Tensor:
    """t with NaN, +-inf, -0.0, the dtype's extremes and a tiny value written at a few places."""
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return t
    finfo = torch.finfo(t.dtype)
    specials = [math.nan, math.inf, -math.inf, -0.0, finfo.max, -finfo.max, finfo.tiny]
    idx = torch.linspace(0, flat.numel() - 1, steps=min(len(specials), flat.numel())).long().tolist()
    for i, value in zip(idx, specials):
        flat[i] = value
    return t


# ---------------------------------------------------------------------------------------------
# clip_
# ---------------------------------------------------------------------------------------------

def clip_cases(c: Checker):
    from pygan import reference

    sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 65, 8191, 8192, 8193,
             _CHUNK - 1, _CHUNK, _CHUNK + 1, 2 * _CHUNK + 3]
    if not c.quick:
        sizes += [_BLOCKS_PER_LAUNCH * _CHUNK + 1]  # more chunks than one launch holds
    bounds = [(-0.5, 0.5), (None, 0.25), (-0.25, None), (-1e6, 1e6), (0.3, 0.3)]

    def check(tensors, lo, hi):
        wanted = [t.clone() for t in tensors]
        reference.clip_(wanted, lo, hi)
        torch.ops.pygan.clip_.default(tensors, lo, hi)
        for i, (t, w) in enumerate(zip(tensors, wanted)):
            c.compare(f"tensors[{i}]", t, w)

    for dtype in DTYPES:
        def sizes_case(dtype=dtype):
            tensors = [with_specials(c.randn((n,), dtype)) for n in sizes]
            check(tensors, -0.5, 0.5)
        yield f"{SHORT[dtype]} sizes {sizes[0]}..{sizes[-1]} with NaN/inf", sizes_case

        def layouts_case(dtype=dtype):
            shapes = [(3, 5), (64, 33), (2, 3, 4, 5), (4, 8, 9, 7), (1, 1), (5, 1, 3, 1)]
            tensors = [t for s in shapes for _, t in layout_variants(with_specials(c.randn(s, dtype)))]
            for lo, hi in bounds:  # each call clamps what the previous one left (the twin too)
                check(tensors, lo, hi)
        yield f"{SHORT[dtype]} layouts x bounds", layouts_case

    def many_tensors():  # more tensors than one launch takes, for every dtype in one call
        tensors = [c.randn((n % 37 + 1,), dtype) for n in range(_TENSORS_PER_LAUNCH[1] + 7)
                   for dtype in DTYPES]
        check(tensors, -0.1, 0.1)
    yield f"{_TENSORS_PER_LAUNCH[1] + 7} tensors x 4 dtypes in one call", many_tensors

    def carry_over():  # a tensor whose chunks straddle two launches
        count = 3 if c.quick else 120
        tensors = [c.randn((2 * _CHUNK + 1,), torch.float32) for _ in range(count)]
        check(tensors, -0.2, 0.2)
    yield "3-chunk tensors across launch boundaries", carry_over

    if c.device.type == "cuda":
        def mixed():
            tensors = [c.randn((100,), torch.float32, device="cpu"), c.randn((100,), torch.float32),
                       c.randn((5, 5), torch.float16), c.randn((7,), torch.float64, device="cpu"),
                       c.randn((_CHUNK + 1,), torch.bfloat16)]
            check(tensors, -0.5, 0.5)
        yield "mixed CPU/CUDA list", mixed

        def untouched_on_error():
            good = [c.randn((10,), torch.float32, device="cpu"), c.randn((10,), torch.float32)]
            before = [t.clone() for t in good]
            bad = torch.zeros(3, dtype=torch.int32, device=c.device)
            try:
                torch.ops.pygan.clip_.default([*good, bad], -0.1, 0.1)
            except (TypeError, RuntimeError):
                pass
            else:
                raise Failure("an int32 tensor in the list was accepted")
            for i, (t, b) in enumerate(zip(good, before)):
                c.compare(f"tensors[{i}] after the error", t, b)
        yield "nothing modified when one tensor is refused", untouched_on_error

        if not c.quick:
            def hundred_million():
                tensors = [c.randn((25_000_000,), torch.float32) for _ in range(4)]
                check(tensors, -0.5, 0.5)
            yield "the 100M-element list", hundred_million


# ---------------------------------------------------------------------------------------------
# rmsprop_step_
# ---------------------------------------------------------------------------------------------

def rmsprop_cases(c: Checker):
    from pygan import reference

    combos = list(itertools.product((0.0, 0.9), (False, True), (0.0, 0.01), (False, True),
                                    (None, (-0.05, 0.05))))
    if c.quick:
        combos = combos[::5]

    def run(shapes_layouts, dtype, momentum, centered, wd, maximize, clip, state_layout=None):
        params, grads, sqs, bufs, gas = [], [], [], [], []
        for shape, layout in shapes_layouts:
            values = [c.randn(shape, dtype, 0.1), c.randn(shape, dtype), c.rand(shape, dtype),
                      c.randn(shape, dtype), c.randn(shape, dtype, 0.01)]
            made = []
            for k, v in enumerate(values):
                kind = layout if (state_layout is None or k == 0) else state_layout
                made.append(dict(layout_variants(v)).get(kind, v.clone()))
            p, g, sq, b, ga = made
            if centered:  # keep square_avg - grad_avg^2 > 0, as a real run does
                sq = sq.add_(ga.float().square().to(dtype))
            params.append(p)
            grads.append(g)
            sqs.append(sq)
            bufs.append(b)
            gas.append(ga)
        bufs = bufs if momentum > 0 else []
        gas = gas if centered else []
        lo, hi = clip if clip is not None else (None, None)
        want = [[t.clone() for t in lst] for lst in (params, sqs, bufs, gas)]
        reference.rmsprop_step_(want[0], grads, want[1], want[2], want[3], 0.01, 0.99, 1e-8, wd,
                                momentum, centered, maximize, lo, hi)
        torch.ops.pygan.rmsprop_step_.default(params, grads, sqs, bufs, gas, 0.01, 0.99, 1e-8, wd,
                                              momentum, centered, maximize, lo, hi)
        rtol = _RTOL_RMSPROP[dtype]
        for name, got, wanted in zip(("params", "square_avgs", "momentum_buffers", "grad_avgs"),
                                     (params, sqs, bufs, gas), want):
            for i, (t, w) in enumerate(zip(got, wanted)):
                # Errors are relative to the step's terms, not to a parameter that nearly cancels.
                c.compare(f"{name}[{i}]", t, w, rtol, scale=float(w.float().abs().max()) if w.numel() else 0.0)

    sizes = [1, 7, 8, 9, 17, 33, 8191, 8193, _CHUNK + 1] if c.quick else \
        [1, 7, 8, 9, 17, 33, 8191, 8192, 8193, _CHUNK - 1, _CHUNK + 1]
    for dtype in DTYPES:
        for momentum, centered, wd, maximize, clip in combos:
            label = (f"{SHORT[dtype]} momentum={momentum} centered={centered} wd={wd} "
                     f"maximize={maximize} clip={clip}")

            def flat(dtype=dtype, momentum=momentum, centered=centered, wd=wd, maximize=maximize, clip=clip):
                run([((n,), "contiguous") for n in sizes], dtype, momentum, centered, wd, maximize, clip)
            yield label + " sizes", flat

        def layouts(dtype=dtype):
            shapes = [((4, 6), "transposed"), ((3, 4, 5, 6), "channels_last"), ((9, 5), "strided"),
                      ((33,), "offset 1 element"), ((40,), "offset 16 bytes"), ((5, 7), "contiguous")]
            run(shapes, dtype, 0.9, True, 0.01, False, (-0.05, 0.05))
            # State in another layout than its parameter: the contiguous-temporary copy-back path.
            run([((6, 10), "contiguous"), ((3, 4, 5, 6), "contiguous")], dtype, 0.9, True, 0.0, False,
                None, state_layout="transposed")
        yield f"{SHORT[dtype]} layouts and copy-back", layouts

    def many():  # more tensors than one launch takes at each depth (3, 4 and 5 lists)
        shapes = [((n % 13 + 1,), "contiguous") for n in range(_TENSORS_PER_LAUNCH[3] + 5)]
        for momentum, centered in ((0.0, False), (0.9, False), (0.9, True)):
            run(shapes, torch.float32, momentum, centered, 0.0, False, (-0.05, 0.05))
    yield f"{_TENSORS_PER_LAUNCH[3] + 5} tensors at depths 3, 4 and 5", many

    def carry_over():
        count = 2 if c.quick else 110
        run([((2 * _CHUNK + 1,), "contiguous")] * count, torch.float32, 0.0, False, 0.0, False, (-0.05, 0.05))
    yield "3-chunk tensors across launch boundaries", carry_over

    if c.device.type == "cuda":
        def mixed():
            ps = [c.randn((50,), torch.float32, 0.1, device="cpu"), c.randn((50,), torch.float32, 0.1),
                  c.randn((20,), torch.float16, 0.1)]
            gs = [c.randn(p.shape, p.dtype, device=p.device) for p in ps]
            sqs = [c.rand(p.shape, p.dtype, device=p.device) for p in ps]
            want = [p.clone() for p in ps]
            want_sq = [s.clone() for s in sqs]
            reference.rmsprop_step_(want, gs, want_sq, [], [], 0.01, 0.99, 1e-8, 0.0, 0.0, False, False,
                                    -0.05, 0.05)
            torch.ops.pygan.rmsprop_step_.default(ps, gs, sqs, [], [], 0.01, 0.99, 1e-8, 0.0, 0.0, False,
                                                  False, -0.05, 0.05)
            for i in range(len(ps)):
                c.compare(f"params[{i}]", ps[i], want[i], _RTOL_RMSPROP[ps[i].dtype], scale=0.05)
                c.compare(f"square_avgs[{i}]", sqs[i], want_sq[i], _RTOL_RMSPROP[ps[i].dtype])
        yield "mixed CPU/CUDA parameters", mixed


# ---------------------------------------------------------------------------------------------
# emd: the exact solver against its certificate (the solver runs on the CPU; on "cuda" the inputs
# and outputs are CUDA tensors).
# ---------------------------------------------------------------------------------------------

def emd_cases(c: Checker):
    from pygan import ot

    sizes = [(1, 1), (1, 5), (5, 1), (3, 4), (10, 10), (17, 23), (50, 40)]
    if not c.quick:
        sizes += [(200, 150), (400, 400)]

    def check(a, b, M):
        plan, log = ot.emd(a, b, M, log=True)
        if log["status"] != "optimal":
            raise Failure(f"status {log['status']!r}")
        if plan.device != M.device:
            raise Failure(f"the plan is on {plan.device}, M on {M.device}")
        cert = ot.check_optimality(a, b, M, plan, log["u"], log["v"])
        scale = float(M.abs().max()) + 1.0
        worst = max(cert) / scale
        c._record(max(cert), worst / 1e-9)
        if worst > 1e-9:
            raise Failure(f"certificate {tuple(round(x, 12) for x in cert)} (scale {scale:.3g})")
        cost = ot.emd2(a, b, M)
        c.compare("emd2", cost.reshape(1), (plan * M).sum().reshape(1), 1e-9,
                  scale=float((plan.abs() * M.abs()).sum()))

    def random_problems():
        for n, m in sizes:
            a = c.rand((n,), torch.float64) + 0.1
            b = c.rand((m,), torch.float64) + 0.1
            a, b = a / a.sum(), b / b.sum()
            c.case = f"random {n}x{m}"
            check(a, b, c.rand((n, m), torch.float64))
    yield "random problems", random_problems

    def degenerate():
        for n in (4, 12, 30):
            a = torch.full((n,), 1.0 / n, dtype=torch.float64, device=c.device)
            c.case = f"uniform {n}x{n}, integer costs (ties)"
            M = torch.randint(0, 3, (n, n), generator=c.gen, device=c.device).double()
            check(a, a.clone(), M)
            c.case = f"uniform {n}x{n}, all costs equal"
            check(a, a.clone(), torch.ones(n, n, dtype=torch.float64, device=c.device))
    yield "degenerate problems (ties)", degenerate

    def float32_inputs():
        a = torch.full((20,), 0.05, device=c.device)
        M = c.rand((20, 20), torch.float32)
        plan, log = ot.emd(a, a.clone(), M, log=True)
        cert = ot.check_optimality(a, a, M, plan, log["u"], log["v"])
        worst = max(cert)
        c._record(worst, worst / 1e-5)
        if worst > 1e-5:
            raise Failure(f"certificate {cert}")
    yield "float32 inputs", float32_inputs
