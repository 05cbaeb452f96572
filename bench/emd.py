"""Benchmark pygan's exact optimal transport (``pygan.ot``) against POT and scipy.

Eight parts, all in ``emd_<device>.json`` (each case has a ``part`` field); the DOTmark-style,
small and second batched families are described in bench/_emd_families.py. Every cost is float64.
POT (``ot``) and scipy are optional extras (``pip install "pygan-torch[bench]"``): each is imported lazily,
and a missing one turns its rows into *skipped* rows (with the reason) instead of failing the run.

**square** (cases ``uniform NxN``, N = 256 ... 4096; ``--quick``: 64, 256): two 2-D Gaussian clouds
(the second shifted by (1, 0)), uniform weights, ``M = ot.dist(x, y, metric="euclidean")``.
    POT ot.emd2                      ``ot.emd2(a, b, M, numItermax=10**9)`` (baseline). POT's default
                                     ``numItermax=100000`` stops early from about N = 4096 on (a warning
                                     and a cost that is not optimal), so it is raised: the run is exact.
    scipy linear_sum_assignment      ``r, c = linear_sum_assignment(M); M[r, c].mean()`` (baseline): with
                                     uniform weights and n = m an optimal assignment is an optimal plan.
    pygan.ot.emd2 (torch)            ``pygan.ot.emd2(a, b, M)`` on float64 CPU tensors (pygan)
    pygan.ot.emd2 (numpy)            the same call on the numpy arrays (pygan)

**rectangular** (``non-uniform 1000x1500 shift s``, ``non-uniform 3000x2000 shift s``, s = 0.5, 1, 2,
4; ``--quick``: 100x150, 300x200 at s = 2): the second cloud moved by (s, s / 2) (far apart for large
s), random positive weights normalised to 1 on each side. Rows: POT ot.emd2 (baseline) and
pygan.ot.emd2 (torch, numpy). Target: >= 2x POT.

**1d** (``1-D n=1e5``, ``1e6``, ``1e7``; ``--quick``: 1e4): u ~ N(0, 1), v ~ N(0.5, 1.5^2), n values
each, uniform weights, p = 1. Rows: POT ``ot.wasserstein_1d(u, v, p=1)`` on numpy arrays (baseline;
on CUDA on the device's torch tensors), ``scipy.stats.wasserstein_distance(u, v)`` at the smallest n
only (baseline), ``pygan.ot.wasserstein_1d(u, v, p=1)`` on torch tensors (pygan), and
``(sort(u) - sort(v)).abs().mean()`` in torch, the closed form for equal sizes and weights (reference:
the floor for a method built on torch's sort; pygan's compiled path sorts faster, by radix). pygan
runs on 1 thread and on 2 (``pygan.ot.wasserstein_1d (2 threads)``: the two sides sorted in
parallel). Target: >= 2x POT on 1 thread.

**batched** (``batched 256x64x64``): 256 problems of 64 points uniform in the unit square, uniform
weights, Euclidean costs M [256, 64, 64].
    POT ot.emd2 loop (256 calls)     ``[ot.emd2(a, b, M[i], numItermax=10**9) for i in range(256)]`` (baseline)
    pygan.ot.emd2 batched            ``pygan.ot.emd2(a, b, M)`` on the [256, 64, 64] tensor (pygan)
    pygan.ot.emd2 loop (256 calls)   the same Python loop over pygan (pygan): what batching itself gains
Target: >= 15x the POT loop (on the run's threads; ``--threads 2`` for the published figure).

**points** (``points NxN``, N = 4096; ``--quick``: 512): the square part's clouds given as points.
    POT ot.dist + ot.emd2            the dense matrix built, then solved (baseline)
    torch.cdist + pygan.ot.emd2      the dense path in pygan (pygan)
    pygan.ot.emd2_points             ``pygan.ot.emd2_points(x, y)``: no dense matrix (pygan)
and **memory** (``points 20000x20000``; ``--quick``: 2000): ``pygan.ot.emd2_points(x, y)`` alone, one
call in a fresh subprocess, timed, with its peak resident memory growth (``VmHWM`` after the call
minus ``VmRSS`` before it, the high-water mark being reset just before the call; ``ru_maxrss`` where
/proc is missing). POT is not run there: it would need the dense 20000 x 20000 float64 matrix (3.2 GB).

Correctness before timing: every row runs once and its cost is compared with the first checked row
(POT when installed) to a relative 1e-9 (1-D: 1e-8 against the closed form computed in numpy: POT's
cumulative sums drift by ~4e-10 at n = 1e7). pygan's rows must also prove optimality on their own,
with or without POT: ``pygan.ot.emd(..., log=True)`` on the same inputs, then
``pygan.ot.check_optimality`` on its plan and duals: marginal residual <= 1e-9, dual violation and
duality gap <= 1e-9 * max|M|, status ``optimal``, and its cost equal to the timed call's. POT's rows
fail on any POT warning (such as ``numItermax reached before optimality``).

Timing: cases whose slowest row takes under 0.2 s are timed by the harness (warm-up, interleaved
samples of >= 1 ms, medians). Slower cases are sampled round-robin with one call per sample and
3-30 samples per row (about 6 s per row, 1 s with ``--quick``), the correctness call serving as
warm-up; a row whose single call takes over 10 s (scipy's assignment at 4096, POT's 1-D at 1e7) is
reported from its correctness call alone (``samples`` = 1, ``timing`` = ``single call``).

Usage: ``python bench/emd.py [--device cpu|cuda|all] [--out DIR] [--quick] [--threads N]``
(or ``python -m pygan bench --only emd``). The exact solvers run on the CPU: on CUDA only the 1-D part
(torch ops on the device) runs.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

if not __package__:  # `python bench/emd.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import _harness as H, tables  # noqa: E402

import numpy as np
import torch

EMD_RTOL = 1e-9  # costs of the exact solvers: relative agreement between rows
CERT_TOL = 1e-9  # certificates: marginal residual <= CERT_TOL; dual violation, gap <= CERT_TOL * max|M|
W1D_RTOL = 1e-8  # 1-D costs against the closed form (POT's cumulative sums drift ~4e-10 at n = 1e7)
POT_MAX_ITER = 10**9  # POT's default 100000 pivots stop early at n = 4096 (not optimal, a warning)
SLOW_S = 0.2  # a case whose slowest correctness call takes longer is timed one call per sample
VERY_SLOW_S = 10.0  # a row whose correctness call takes longer is reported from that call alone
SLOW_BUDGET_S = {False: 6.0, True: 1.0}  # timed seconds per row in slow cases (full, --quick)
SEED = 0

SQUARE_N = {False: (256, 512, 1024, 2048, 4096), True: (64, 256)}
TARGET_SQUARE_N, TARGET_SQUARE_SPEEDUP, TARGET_SQUARE_MIN = 4096, 4.0, 2.0
RECT = {False: ((1000, 1500), (3000, 2000)), True: ((100, 150), (300, 200))}
RECT_SHIFTS = {False: (0.5, 1.0, 2.0, 4.0), True: (2.0,)}  # the second cloud moved by (s, s / 2)
W1D_N = {False: (10**5, 10**6, 10**7), True: (10**4,)}
BATCH, BATCH_N, TARGET_BATCH_SPEEDUP = 256, 64, 15.0
TARGET_RECT_SPEEDUP, TARGET_1D_SPEEDUP, TARGET_SMALL_SPEEDUP = 2.0, 2.0, 3.0
TARGET_DOTMARK_MIN, TARGET_DOTMARK_GEOMEAN = 2.0, 6.0
TARGET_DOTMARK_LARGE_S = 5.0  # seconds per 128 x 128 pair, pygan alone (1 thread)
TARGET_BATCHES = {"batched 64x256x256": 5.0}  # the 2-thread rows of _emd_families' batches
POINTS_DENSE_N = {False: 4096, True: 512}
POINTS_MEMORY_N = {False: 20000, True: 2000}
TARGET_MEMORY_N, TARGET_MEMORY_GB, TARGET_MEMORY_S = 20000, 1.0, 15.0
POINTS_TIMEOUT_S = 3600

POT = "POT ot.emd2"
SCIPY_LSA = "scipy linear_sum_assignment"
PYGAN_TORCH, PYGAN_NUMPY = "pygan.ot.emd2 (torch)", "pygan.ot.emd2 (numpy)"
POT_LOOP, PYGAN_BATCHED, PYGAN_LOOP = (f"POT ot.emd2 loop ({BATCH} calls)", "pygan.ot.emd2 batched",
                                       f"pygan.ot.emd2 loop ({BATCH} calls)")
POT_1D, SCIPY_1D, PYGAN_1D, SORT_1D = ("POT ot.wasserstein_1d", "scipy.stats.wasserstein_distance",
                                       "pygan.ot.wasserstein_1d", "torch sort closed form (ref)")
PYGAN_1D_2 = "pygan.ot.wasserstein_1d (2 threads)"
POT_POINTS, CDIST_PYGAN, PYGAN_POINTS = ("POT ot.dist + ot.emd2", "torch.cdist + pygan.ot.emd2",
                                         "pygan.ot.emd2_points")


# ---- optional extras, candidates, measuring ----------------------------------------------------------

def optional(name: str) -> tuple[Any, str | None]:
    """Import an optional extra: (module, None), or (None, why it is missing)."""
    try:
        return importlib.import_module(name), None
    except ImportError as e:
        top = name.split(".")[0]
        extra = "POT" if top == "ot" else top
        return None, f"{extra} is not installed ({e}); pip install {extra}"


Candidate = H.Candidate  # with ``verify``: pygan's optimality certificate, POT's warnings


def _scalar(x: Any) -> list[torch.Tensor]:
    """A cost (float, numpy 0-d, tensor on any device) as the harness's list of one float64 tensor."""
    if isinstance(x, torch.Tensor):
        return [x.detach().to("cpu", torch.float64).reshape(())]
    return [torch.tensor(float(np.asarray(x)), dtype=torch.float64)]


def _vector(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x.detach().to("cpu", torch.float64)]
    return [torch.as_tensor(np.asarray(x, dtype=np.float64))]


def _time_slow(fns: list[Callable[[], None]], first_s: list[float], device: str,
               quick: bool) -> tuple[list[H.Timing], list[str]]:
    """Time slow rows: round-robin samples of ``inner`` calls (1 for anything over 1 ms).

    The correctness call was the warm-up (rows under 1 s get one more, with their fresh state); a row
    whose correctness call took over ``VERY_SLOW_S`` is reported from that call alone.
    """
    counts, inners = [], []
    for fn, t in zip(fns, first_s):
        if t >= VERY_SLOW_S:
            counts.append(0)
            inners.append(1)
            continue
        if t < 1.0:
            fn()
        inner = max(1, math.ceil(1e-3 / max(t, 1e-9)))
        counts.append(int(min(30, max(3, SLOW_BUDGET_S[quick] // (t * inner)))))
        inners.append(inner)
    samples = H.round_robin(fns, device, inners, counts)
    timings, modes = [], []
    for n, inner, t, times in zip(counts, inners, first_s, samples):
        if n == 0:
            timings.append(H.Timing(t * 1e6, t * 1e6, t * 1e6, 1, 1))
            modes.append("single call")
            continue
        timings.append(H.summarize(times, inner))
        modes.append("slow")
    return timings, modes


def measure(case: str, candidates: list[Candidate], device: str, quick: bool, rtol: float,
            skipped: list[tuple[str, str, str]] = (), expected: list[torch.Tensor] | None = None,
            vs: str | None = None, **info: Any) -> dict:
    """Check every candidate, then time them; the harness's case layout plus skipped rows.

    Args:
        case: the row group label.
        candidates: the rows that can run; the results of those with ``check`` are compared with
            ``expected`` if given, else with the first checked row's.
        device: ``"cpu"`` or ``"cuda"``.
        quick: shorter timing.
        rtol: relative tolerance of the comparison (atol 0).
        skipped: (name, role, reason) of rows that cannot run here (a missing extra, too big).
        expected: an independent reference result (the 1-D closed form).
        vs: the row that ``speedup_vs_pot`` is against (POT's), when there is one.
        info: extra fields for the case (part, sizes, ...).

    Returns:
        ``{"case", "fastest_baseline", "bytes_per_call", "rows", **info}``; rows as the harness's,
        plus ``timing``, ``first_call_us``, ``speedup_vs_pot``; skipped rows have ``skipped`` (the
        reason) and no times. ``fastest_baseline`` is None when no baseline could run.
    """
    print(f"emd [{device}] {case}", file=sys.stderr, flush=True)
    # Phase 1: correctness of everything, before timing anything.
    first_s = H.check_candidates(case, candidates, device, rtol, 0.0, expected, "the closed form")
    rows = []
    if candidates:  # phase 2: timing
        states = [cand.setup() for cand in candidates]
        fns = [lambda st=st, c=cand: c.run(st) for cand, st in zip(candidates, states)]
        if max(first_s) < SLOW_S:
            timings, modes = H.time_interleaved(fns, device, quick), ["interleaved"] * len(fns)
        else:
            timings, modes = _time_slow(fns, first_s, device, quick)
        del states, fns
        for cand, t, mode, t0 in zip(candidates, timings, modes, first_s):
            rows.append(H.timing_row(cand.name, cand.role, t, timing=mode, first_call_us=t0 * 1e6))
            print(f"  {case:<24} {cand.name:<34} {t.median_us / 1e3:>12.3f} ms  ({mode})",
                  file=sys.stderr, flush=True)
    for name, role, reason in skipped:
        rows.append({"name": name, "role": role, "median_us": None, "skipped": reason})
        print(f"  {case:<24} {name:<34} skipped: {reason}", file=sys.stderr, flush=True)
    return finish_case({"case": case, "fastest_baseline": None, "bytes_per_call": None, "rows": rows,
                        **info}, vs)


def finish_case(case: dict, vs: str | None) -> dict:
    """The harness's ratios, plus ``speedup_vs_pot`` against row ``vs`` (POT's)."""
    return H.finish_case(case, vs, "speedup_vs_pot")


def speedup(case: dict | None, base: str, name: str) -> float | None:
    """``base``'s median / ``name``'s median in ``case`` (None when either did not run)."""
    if case is None:
        return None
    times = {r["name"]: r.get("median_us") for r in case["rows"]}
    a, b = times.get(base), times.get(name)
    return None if a is None or b is None else a / b


class _threads:
    """torch's intra-op thread count set to ``n`` for a block (pygan's compiled paths use ATen's pool)."""

    def __init__(self, n: int):
        self.n, self.saved = n, None

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


# ---- data ----------------------------------------------------------------------------------------

def _euclidean(x: np.ndarray, y: np.ndarray, ot: Any) -> np.ndarray:
    """The cost matrix: ``ot.dist(x, y, metric="euclidean")``, or the direct formula without POT."""
    if ot is not None:
        return ot.dist(x, y, metric="euclidean")
    return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


def clouds(n: int, m: int, shift: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D standard Gaussian clouds of n and m points, the second shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), rng.standard_normal((m, 2)) + np.asarray(shift)


# ---- correctness of pygan's rows and POT's -----------------------------------------------------------

def certify(name: str, a: Any, b: Any, M: Any, cost: Any) -> None:
    """Prove pygan's optimality: ``emd(log=True)`` + ``check_optimality``, and the same cost as ``cost``.

    Raises:
        AssertionError: naming ``name``, on a status other than optimal, a certificate above the
            tolerances (marginals CERT_TOL; dual violation and gap CERT_TOL * max|M|), or a cost
            that differs from ``cost`` (the timed call's) beyond EMD_RTOL.
    """
    import pygan.ot

    plan, log = pygan.ot.emd(a, b, M, log=True)
    if log["status"] != "optimal":
        raise AssertionError(f"{name}: pygan.ot.emd status {log['status']!r} ({log.get('warning')})")
    cert = pygan.ot.check_optimality(a, b, M, plan, log["u"], log["v"])
    scale = float(abs(M).max()) if isinstance(M, np.ndarray) else float(M.abs().max())
    limits = {"primal_residual": CERT_TOL, "dual_violation": CERT_TOL * scale, "duality_gap": CERT_TOL * scale}
    bad = {k: getattr(cert, k) for k, lim in limits.items() if not getattr(cert, k) <= lim}
    if bad:
        raise AssertionError(f"{name}: optimality certificate {cert} exceeds {limits} in {sorted(bad)}")
    H.check_close(f"{name}: emd(log=True)['cost'] vs the timed emd2", _scalar(cost), _scalar(log["cost"]),
                  EMD_RTOL, 0.0)


def _no_pot_warnings(name: str) -> Callable[[dict], None]:
    def verify(st: dict) -> None:
        if st.get("warnings"):
            raise AssertionError(f"{name}: POT warned during the correctness run: {st['warnings']}")
    return verify


def _pot_call(st: dict, fn: Callable[[], Any]) -> Any:
    """Call POT, recording its warnings in ``st`` (numItermax reached, marginals, ...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    if caught:
        st.setdefault("warnings", []).extend(str(w.message) for w in caught)
    return out


# ---- parts ---------------------------------------------------------------------------------------

def emd_candidates(case: str, a: np.ndarray, b: np.ndarray, M: np.ndarray, ot: Any, lsa: Any,
                   numpy_row: bool = True) -> list[Candidate]:
    """The rows of one dense problem: POT (if installed), scipy's assignment (if given), pygan."""
    import pygan.ot

    ta, tb, tM = (torch.from_numpy(v) for v in (a, b, M))

    def setup() -> dict:
        return {"out": None}

    def result(st: dict) -> list[torch.Tensor]:
        return _scalar(st["out"])

    def pot(st: dict) -> None:
        st["out"] = _pot_call(st, lambda: ot.emd2(a, b, M, numItermax=POT_MAX_ITER))

    def assignment(st: dict) -> None:
        r, c = lsa(M)
        st["out"] = M[r, c].mean()

    def pygan_torch(st: dict) -> None:
        st["out"] = pygan.ot.emd2(ta, tb, tM)

    def pygan_numpy(st: dict) -> None:
        st["out"] = pygan.ot.emd2(a, b, M)

    rows = []
    if ot is not None:
        rows.append(Candidate(POT, "baseline", setup, pot, result, verify=_no_pot_warnings(f"{case} / {POT}")))
    if lsa is not None:
        rows.append(Candidate(SCIPY_LSA, "baseline", setup, assignment, result))
    rows.append(Candidate(PYGAN_TORCH, "pygan", setup, pygan_torch, result,
                          verify=lambda st: certify(f"{case} / {PYGAN_TORCH}", ta, tb, tM, st["out"])))
    if numpy_row:
        rows.append(Candidate(PYGAN_NUMPY, "pygan", setup, pygan_numpy, result,
                              verify=lambda st: certify(f"{case} / {PYGAN_NUMPY}", a, b, M, st["out"])))
    return rows


def part_square(device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    lsa_mod, why_scipy = optional("scipy.optimize")
    lsa = lsa_mod.linear_sum_assignment if lsa_mod is not None else None
    cases = []
    for n in SQUARE_N[quick]:
        x, y = clouds(n, n, (1.0, 0.0), SEED + n)
        M = _euclidean(x, y, ot)
        a = b = np.full(n, 1.0 / n)
        skipped = [(POT, "baseline", why_ot)] if ot is None else []
        skipped += [(SCIPY_LSA, "baseline", why_scipy)] if lsa is None else []
        name = f"uniform {n}x{n}"
        cases.append(measure(name, emd_candidates(name, a, b, M, ot, lsa), device, quick, EMD_RTOL, skipped,
                             vs=POT, part="square", n=n, m=n, weights="uniform", max_abs_cost=float(M.max())))
        del M
    return cases


def part_rectangular(device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    cases = []
    for n, m in RECT[quick]:
        for shift in RECT_SHIFTS[quick]:
            x, y = clouds(n, m, (shift, shift / 2), SEED + n + m)
            rng = np.random.default_rng(SEED + 1)
            a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
            a, b = a / a.sum(), b / b.sum()
            M = _euclidean(x, y, ot)
            name = f"non-uniform {n}x{m} shift {shift:g}"
            skipped = [(POT, "baseline", why_ot)] if ot is None else []
            cases.append(measure(name, emd_candidates(name, a, b, M, ot, None), device, quick, EMD_RTOL, skipped,
                                 vs=POT, part="rectangular", n=n, m=m, shift=[shift, shift / 2],
                                 weights="random, normalised", max_abs_cost=float(M.max())))
            del M
    return cases


def part_1d(device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    import pygan.ot

    stats, why_scipy = optional("scipy.stats")
    cases = []
    sizes = W1D_N[quick]
    for n in sizes:
        rng = np.random.default_rng(SEED + 7)
        u, v = rng.standard_normal(n), 1.5 * rng.standard_normal(n) + 0.5
        expected = _scalar(np.abs(np.sort(u) - np.sort(v)).mean())  # exact for equal sizes and weights
        tu, tv = torch.from_numpy(u).to(device), torch.from_numpy(v).to(device)
        pot_u, pot_v = (u, v) if device == "cpu" else (tu, tv)  # POT on CUDA: its torch backend

        def setup() -> dict:
            return {"out": None}

        def result(st: dict) -> list[torch.Tensor]:
            return _scalar(st["out"])

        def pot(st: dict, pu=pot_u, pv=pot_v) -> None:
            st["out"] = _pot_call(st, lambda: ot.wasserstein_1d(pu, pv, p=1))

        def scipy_w(st: dict, u=u, v=v) -> None:
            st["out"] = stats.wasserstein_distance(u, v)

        def pygan_w(st: dict, tu=tu, tv=tv) -> None:
            with _threads(1):
                st["out"] = pygan.ot.wasserstein_1d(tu, tv, p=1)

        def pygan_w2(st: dict, tu=tu, tv=tv) -> None:
            with _threads(2):  # the compiled path sorts the two sides on two threads
                st["out"] = pygan.ot.wasserstein_1d(tu, tv, p=1)

        def closed(st: dict, tu=tu, tv=tv) -> None:
            st["out"] = (torch.sort(tu)[0] - torch.sort(tv)[0]).abs().mean()

        name = f"1-D n=1e{round(math.log10(n))}"
        rows, skipped = [], []
        if ot is not None:
            rows.append(Candidate(POT_1D, "baseline", setup, pot, result,
                                  verify=_no_pot_warnings(f"{name} / {POT_1D}")))
        else:
            skipped.append((POT_1D, "baseline", why_ot))
        if n == sizes[0] and device == "cpu":
            if stats is not None:
                rows.append(Candidate(SCIPY_1D, "baseline", setup, scipy_w, result))
            else:
                skipped.append((SCIPY_1D, "baseline", why_scipy))
        rows += [Candidate(PYGAN_1D, "pygan", setup, pygan_w, result),
                 Candidate(PYGAN_1D_2, "pygan", setup, pygan_w2, result),
                 Candidate(SORT_1D, "reference", setup, closed, result)]
        cases.append(measure(name, rows, device, quick, W1D_RTOL, skipped, expected=expected, vs=POT_1D,
                             part="1d", n=n, m=n, p=1, weights="uniform"))
        del u, v, tu, tv, pot_u, pot_v
    return cases


def part_batched(device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    import pygan.ot

    rng = np.random.default_rng(SEED + 3)
    xs, ys = rng.uniform(size=(BATCH, BATCH_N, 2)), rng.uniform(size=(BATCH, BATCH_N, 2))
    M = np.stack([_euclidean(x, y, ot) for x, y in zip(xs, ys)])
    a = b = np.full(BATCH_N, 1.0 / BATCH_N)
    ta, tb, tM = (torch.from_numpy(v) for v in (a, b, M))
    name = f"batched {BATCH}x{BATCH_N}x{BATCH_N}"

    def setup() -> dict:
        return {"out": None}

    def result(st: dict) -> list[torch.Tensor]:
        return _vector(st["out"])

    def pot_loop(st: dict) -> None:
        st["out"] = _pot_call(st, lambda: [ot.emd2(a, b, Mi, numItermax=POT_MAX_ITER) for Mi in M])

    def batched(st: dict) -> None:
        st["out"] = pygan.ot.emd2(ta, tb, tM)

    def loop(st: dict) -> None:
        st["out"] = torch.stack([pygan.ot.emd2(ta, tb, Mi) for Mi in tM])

    def verify_batched(st: dict) -> None:
        """Dual feasibility and zero gap of the batched duals, per problem; and each problem's own certificate."""
        cost, log = pygan.ot.emd2(ta, tb, tM, log=True)
        status = list(log["status"])
        if status != ["optimal"] * BATCH:
            raise AssertionError(f"{name} / {PYGAN_BATCHED}: statuses {sorted(set(status))}")
        u, v = log["u"].double(), log["v"].double()
        scale = float(tM.abs().max())
        violation = float((u[:, :, None] + v[:, None, :] - tM).clamp_min(0).max())
        gap = float((cost.double() - (u @ ta + v @ tb)).abs().max())
        if not (violation <= CERT_TOL * scale and gap <= CERT_TOL * scale):
            raise AssertionError(f"{name} / {PYGAN_BATCHED}: batched duals: violation {violation:.3g}, "
                                 f"gap {gap:.3g} (limit {CERT_TOL * scale:.3g})")
        H.check_close(f"{name} / {PYGAN_BATCHED}: log=True cost vs the timed call", _vector(st["out"]),
                      _vector(cost), EMD_RTOL, 0.0)
        for i in range(BATCH):
            certify(f"{name} / problem {i}", ta, tb, tM[i], st["out"][i])

    rows, skipped = [], []
    if ot is not None:
        rows.append(Candidate(POT_LOOP, "baseline", setup, pot_loop, result,
                              verify=_no_pot_warnings(f"{name} / {POT_LOOP}")))
    else:
        skipped.append((POT_LOOP, "baseline", why_ot))
    rows += [Candidate(PYGAN_BATCHED, "pygan", setup, batched, result, verify=verify_batched),
             Candidate(PYGAN_LOOP, "pygan", setup, loop, result)]
    return [measure(name, rows, device, quick, EMD_RTOL, skipped, vs=POT_LOOP, part="batched", batch=BATCH,
                    n=BATCH_N, m=BATCH_N, weights="uniform")]


def part_points_dense(device: str, quick: bool, ot: Any, why_ot: str | None) -> dict:
    """emd2_points against building the dense matrix (POT's ot.dist + ot.emd2, torch.cdist + pygan)."""
    import pygan.ot

    n = POINTS_DENSE_N[quick]
    x, y = clouds(n, n, (1.0, 0.0), SEED + n)
    a = b = np.full(n, 1.0 / n)
    tx, ty, ta, tb = (torch.from_numpy(v) for v in (x, y, a, b))
    name = f"points {n}x{n}"

    def setup() -> dict:
        return {"out": None}

    def result(st: dict) -> list[torch.Tensor]:
        return _scalar(st["out"])

    def pot(st: dict) -> None:
        st["out"] = _pot_call(st, lambda: ot.emd2(a, b, ot.dist(x, y, metric="euclidean"),
                                                  numItermax=POT_MAX_ITER))

    def dense(st: dict) -> None:
        st["out"] = pygan.ot.emd2(ta, tb, torch.cdist(tx, ty))

    def points(st: dict) -> None:
        st["out"] = pygan.ot.emd2_points(tx, ty)

    def verify_points(st: dict) -> None:
        cost, log = pygan.ot.emd2_points(tx, ty, log=True)
        if log["status"] != "optimal":
            raise AssertionError(f"{name} / {PYGAN_POINTS}: status {log['status']!r}")
        M = torch.cdist(tx, ty, compute_mode="donot_use_mm_for_euclid_dist")  # exact distances
        cert = pygan.ot.check_optimality(ta, tb, M, log["plan"], log["u"], log["v"])
        scale = float(M.max())
        if not (cert.primal_residual <= CERT_TOL and cert.dual_violation <= CERT_TOL * scale
                and cert.duality_gap <= CERT_TOL * scale):
            raise AssertionError(f"{name} / {PYGAN_POINTS}: certificate {cert} (limit {CERT_TOL * scale:.3g})")
        H.check_close(f"{name} / {PYGAN_POINTS}: log=True cost vs the timed call", _scalar(st["out"]),
                      _scalar(cost), EMD_RTOL, 0.0)

    rows, skipped = [], []
    if ot is not None:
        rows.append(Candidate(POT_POINTS, "baseline", setup, pot, result,
                              verify=_no_pot_warnings(f"{name} / {POT_POINTS}")))
    else:
        skipped.append((POT_POINTS, "baseline", why_ot))
    rows += [Candidate(CDIST_PYGAN, "pygan", setup, dense, result),
             Candidate(PYGAN_POINTS, "pygan", setup, points, result, verify=verify_points)]
    return measure(name, rows, device, quick, EMD_RTOL, skipped, vs=POT_POINTS, part="points", n=n, m=n,
                   metric="euclidean", weights="uniform")


def part_points_memory(device: str, quick: bool, why_ot: str | None) -> dict:
    """emd2_points at n = 20000 (``--quick``: 2000) in a fresh subprocess: time and peak memory."""
    import pygan

    n = POINTS_MEMORY_N[quick]
    name = f"points {n}x{n}"
    print(f"emd [{device}] {name}: one emd2_points call in a fresh subprocess", file=sys.stderr, flush=True)
    root = str(Path(pygan.__file__).resolve().parent.parent)  # the same pygan as this process
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    args = {"n": n, "seed": SEED + n, "threads": torch.get_num_threads()}
    dense_gb = n * n * 8 / 1e9
    pot_reason = (f"not run (needs a {dense_gb:.1f} GB dense matrix)" if not quick else
                  f"not run (the full run shows n={TARGET_MEMORY_N}, where it would need a "
                  f"{TARGET_MEMORY_N ** 2 * 8 / 1e9:.1f} GB dense matrix)")
    rows: list[dict] = []
    try:
        # By path, not -m: the child imports nothing of bench/ (its memory is emd2_points' alone).
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("_points_memory.py")),
                               json.dumps(args)], capture_output=True, text=True, env=env,
                              timeout=POINTS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        rows.append({"name": PYGAN_POINTS, "role": "pygan", "median_us": None,
                     "skipped": f"timed out after {POINTS_TIMEOUT_S} s"})
    else:
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: the emd2_points subprocess failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        limit = CERT_TOL * res["max_cost"]
        if res["status"] != "optimal" or not (res["primal_residual"] <= CERT_TOL and res["dual_violation"] <= limit
                                              and res["duality_gap"] <= limit):
            raise AssertionError(f"{name} / {PYGAN_POINTS}: not proven optimal: {res}")
        if abs(res["cost"] - res["cost_log"]) > EMD_RTOL * abs(res["cost"]):
            raise AssertionError(f"{name} / {PYGAN_POINTS}: log=True cost {res['cost_log']} != {res['cost']}")
        us = res["seconds"] * 1e6
        rows.append({"name": PYGAN_POINTS, "role": "pygan", "median_us": us, "q1_us": us, "q3_us": us,
                     "samples": 1, "inner": 1, "iqr_us": 0.0, "timing": "single call (fresh process)",
                     "first_call_us": us, **{k: res[k] for k in (
                         "peak_rss_growth_bytes", "rss_before_bytes", "peak_rss_bytes", "ru_maxrss_bytes",
                         "memory_method", "cost", "primal_residual", "dual_violation", "duality_gap")}})
        print(f"  {name:<24} {PYGAN_POINTS:<34} {us / 1e3:>12.3f} ms  peak RSS growth "
              f"{res['peak_rss_growth_bytes'] / 1e9:.3f} GB", file=sys.stderr, flush=True)
    rows.append({"name": POT_POINTS, "role": "baseline", "median_us": None, "skipped": why_ot or pot_reason})
    return finish_case({"case": name, "fastest_baseline": None, "bytes_per_call": None, "rows": rows,
                        "part": "memory", "n": n, "m": n, "metric": "euclidean", "weights": "uniform",
                        "dense_matrix_bytes": n * n * 8}, None)


# ---- the run ---------------------------------------------------------------------------------------

def targets(cases: dict[str, dict], device: str) -> list[dict]:
    """The speed targets on this run (reported, never asserted); None where a case did not run."""
    if device != "cpu":
        return []
    from . import _emd_families as families

    tg = []
    big = f"uniform {TARGET_SQUARE_N}x{TARGET_SQUARE_N}"
    tg.append(H.target(f"pygan.ot.emd2 speedup vs POT ot.emd2, {big}", speedup(cases.get(big), POT, PYGAN_TORCH),
                       ">=", TARGET_SQUARE_SPEEDUP))
    dotmark: dict[str, list] = {}
    for name, case in cases.items():
        if case["part"] == "square":
            tg.append(H.target(f"pygan.ot.emd2 speedup vs POT ot.emd2, {name}",
                               speedup(case, POT, PYGAN_TORCH), ">=", TARGET_SQUARE_MIN))
        elif case["part"] == "rectangular":
            tg.append(H.target(f"pygan.ot.emd2 speedup vs POT ot.emd2, {name}", speedup(case, POT, PYGAN_TORCH),
                               ">=", TARGET_RECT_SPEEDUP))
        elif case["part"] == "dotmark":
            # The dense-matrix rows (pygan.ot.emd2) and the pixel-centre rows (pygan.ot.emd2_points)
            # each against POT's dense call; one geometric mean per kind.
            names = {r["name"] for r in case["rows"]}
            row = "pygan.ot.emd2_points (1 thread)" if "pygan.ot.emd2_points (1 thread)" in names \
                else "pygan.ot.emd2 (1 thread)"
            if case.get("resolution") == families.DOTMARK_LARGE:
                # 128 x 128 runs pygan alone: its time is the result.
                r = next((r for r in case["rows"] if r["name"] == row), None)
                us = r.get("median_us") if r else None
                tg.append(H.target(f"{row.removesuffix(' (1 thread)')} seconds, {name}, 1 thread",
                                   None if us is None else us / 1e6, "<=", TARGET_DOTMARK_LARGE_S))
                continue
            ratio = speedup(case, POT, row)
            dotmark.setdefault(row, []).append(ratio)
            tg.append(H.target(f"{row.removesuffix(' (1 thread)')} speedup vs POT ot.emd2, {name}, 1 thread", ratio,
                               ">=", TARGET_DOTMARK_MIN))
        elif case["part"] == "small":
            tg.append(H.target(f"pygan.ot.emd2 speedup vs POT ot.emd2, {name}, 1 thread",
                               speedup(case, POT, "pygan.ot.emd2 (1 thread)"), ">=", TARGET_SMALL_SPEEDUP))
        elif case["part"] == "1d":
            tg.append(H.target(f"pygan.ot.wasserstein_1d speedup vs POT ot.wasserstein_1d, {name}, 1 thread",
                               speedup(case, POT_1D, PYGAN_1D), ">=", TARGET_1D_SPEEDUP))
        elif case["part"] == "batched" and case["case"] in TARGET_BATCHES:
            tg.append(H.target(f"pygan.ot.emd2 batched (2 threads) speedup vs a loop over POT ot.emd2, "
                               f"{case['case']}", speedup(case, f"POT ot.emd2 loop ({case['batch']} calls)",
                                                         "pygan.ot.emd2 batched (2 threads)"),
                               ">=", TARGET_BATCHES[case["case"]]))
    for row, ratios in dotmark.items():
        known = [r for r in ratios if r is not None]
        geo = math.exp(sum(math.log(r) for r in known) / len(known)) if known and len(known) == len(ratios) else None
        tg.append(H.target(f"{row.removesuffix(' (1 thread)')} speedup vs POT ot.emd2, dotmark geometric mean, "
                           "1 thread", geo, ">=", TARGET_DOTMARK_GEOMEAN))
    batched = f"batched {BATCH}x{BATCH_N}x{BATCH_N}"
    tg.append(H.target(f"pygan.ot.emd2 batched speedup vs a loop over POT ot.emd2, {batched}",
                       speedup(cases.get(batched), POT_LOOP, PYGAN_BATCHED), ">=", TARGET_BATCH_SPEEDUP))
    mem = cases.get(f"points {TARGET_MEMORY_N}x{TARGET_MEMORY_N}")
    row = next((r for r in mem["rows"] if r["name"] == PYGAN_POINTS), None) if mem else None
    growth = row.get("peak_rss_growth_bytes") if row else None
    tg.append(H.target(f"pygan.ot.emd2_points peak RSS growth in GB, points {TARGET_MEMORY_N}x{TARGET_MEMORY_N}",
                       None if growth is None else growth / 1e9, "<", TARGET_MEMORY_GB))
    us = row.get("median_us") if row else None
    tg.append(H.target(f"pygan.ot.emd2_points seconds, points {TARGET_MEMORY_N}x{TARGET_MEMORY_N}, the run's threads",
                       None if us is None else us / 1e6, "<=", TARGET_MEMORY_S))
    return tg


def note(case: dict, r: dict) -> str:
    """A row's remarks on screen: the docs table's (tables.emd_row_notes), and the fastest baseline."""
    parts = ["fastest baseline"] if r["name"] == case.get("fastest_baseline") else []
    return ", ".join(parts + tables.emd_row_notes(r))


def print_table(title: str, cases: list[dict]) -> None:
    """The emd table: milliseconds, samples, both ratios, and each row's note."""
    def iqr(c: dict, r: dict) -> str:  # no spread from a single call
        return tables.ms(r.get("iqr_us") if (r.get("samples") or 0) > 1 else None)

    H.print_rows(title, cases, [
        H.Column("case", 24, lambda c, r: c["case"], "<"),
        H.Column("candidate", 34, lambda c, r: r["name"], "<"),
        H.Column("median ms", 12, lambda c, r: tables.ms(r.get("median_us"))),
        H.Column("IQR ms", 10, iqr),
        H.Column("smp", 3, lambda c, r: str(r.get("samples") or "")),
        H.Column("vs best", 8, lambda c, r: tables.ratio(r.get("speedup_vs_fastest_baseline"))),
        H.Column("vs POT", 8, lambda c, r: tables.ratio(r.get("speedup_vs_pot"))),
    ], note)


def run(device: str, out_dir: Path, quick: bool) -> dict:
    """Run the parts on ``device``; print the table and targets; write ``emd_<device>.json``.

    Args:
        device: ``"cpu"`` (every part) or ``"cuda"`` (the 1-D part only: the exact solvers are CPU code).
        out_dir: where the JSON goes.
        quick: short timing and small sizes.

    Returns:
        The JSON payload (cases, targets, skipped parts, extras' versions, settings).
    """
    import pygan.ot  # noqa: F401  (fail here, not mid-run, if the module is missing or broken)

    from . import _emd_families as families

    H.require_extension(device)
    ot, why_ot = optional("ot")
    scipy, _ = optional("scipy")
    load = H.load_check()
    cases: list[dict] = []
    skipped: list[str] = []
    if why_ot:
        skipped.append(f"POT rows: {why_ot}")
    if device == "cpu":
        cases += part_square(device, quick, ot, why_ot)
        cases += part_rectangular(device, quick, ot, why_ot)
        cases += families.part_dotmark(sys.modules[__name__], device, quick, ot, why_ot)
        cases += families.part_small(sys.modules[__name__], device, quick, ot, why_ot)
        cases += families.part_minibatch(sys.modules[__name__], device, quick, ot, why_ot)
    else:
        skipped.append("square, rectangular, batched and points parts: the exact solvers run on the CPU "
                       "(see emd_cpu.json)")
    cases += part_1d(device, quick, ot, why_ot)
    if device == "cpu":
        cases += part_batched(device, quick, ot, why_ot)
        cases += families.part_batches(sys.modules[__name__], device, quick, ot, why_ot)
        cases.append(part_points_dense(device, quick, ot, why_ot))
        cases.append(part_points_memory(device, quick, why_ot))
    tg = targets({c["case"]: c for c in cases}, device)
    label, threads = H.device_label(device), torch.get_num_threads()
    versions = {"pot": getattr(ot, "__version__", None), "scipy": getattr(scipy, "__version__", None),
                "numpy": np.__version__}
    print_table(f"exact optimal transport, {label}, {threads} torch threads, float64, POT "
                f"{versions['pot'] or 'missing'} (numItermax={POT_MAX_ITER:.0e}, 1 thread), scipy "
                f"{versions['scipy'] or 'missing'} (vs best = fastest baseline time / this time; "
                "vs POT = POT's time / this time)", cases)
    H.print_targets(tg)
    if skipped:
        print("skipped: " + "; ".join(skipped))
    payload = {"case_header": "case", "quick": quick, "cpu_busy_before": load, "threads": threads,
               "extras": versions,
               "settings": {"pot_numItermax": POT_MAX_ITER, "pot_threads": 1, "emd_rtol": EMD_RTOL,
                            "certificate_tol": CERT_TOL, "w1d_rtol": W1D_RTOL, "slow_case_s": SLOW_S,
                            "single_call_s": VERY_SLOW_S, "slow_budget_s": SLOW_BUDGET_S[quick],
                            "seed": SEED},
               "cases": cases, "skipped": skipped, "targets": tg}
    H.write_json(out_dir, "emd", device, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    """``python bench/emd.py``: the same options as ``python -m pygan bench`` minus ``--only``."""
    return H.script_main(run, argv, "bench/emd.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
