"""bench/emd.py's problem families: DOTmark-style image pairs, single small problems through the
Python API, and batches at two sizes (see bench/emd.py's docstring for the rows and the checks).

**dotmark** (``dotmark <class> RxR``, R = 32, 64; ``--quick``: 16, two classes): pairs of images
of one class, generated from a seed, in the spirit of DOTmark (Schrieber, Schuhmacher, Gottschlich
2017): white noise; Gaussian random fields at three correlation lengths (rough, moderate, smooth:
white noise smoothed by a Gaussian of 1/64, 1/16 and 1/4 of the side, shifted positive); the
exponential (log-GRF) and the logistic (logit-GRF) of a moderate field; mixtures of 2-D Cauchy
densities; and random filled rectangles and discs on an empty (zero) background. Each image is
normalised to total 1; the cost is the squared Euclidean distance between pixel centres on the unit
square. R = 128 (n = 16384, ``DOTMARK_LARGE``; full runs only) runs through ``emd2_points`` on the
pixel centres alone: a dense M would be 2.1 GB and POT's call takes minutes there. Its rows record
the call's peak resident memory growth (``peak_rss_growth_bytes``) beside the time.

**small** (``single 64x64``, ``single 128x128``, and the same with ``random weights``): one problem
of uniform points in the unit square, Euclidean costs, uniform or random positive weights, through
the Python API (what the per-call overhead costs), beside two reference rows that call each
library's compiled solver directly (POT's ``emd_c``, pygan's extension function; both 1 thread):
the difference to the public call is the Python wrapper's share.

**batched** family (``batched 64x256x256`` beside bench/emd.py's ``batched 256x64x64``).

**minibatch** (``minibatch d=16 NxN``, N = 512, 1024; ``--quick``: 384): one minibatch-OT-like
problem, x ~ N(0, I_16) against y ~ N(1, I_16 / 4), uniform weights, squared Euclidean costs (the
default of ``ot.dist``), on 1 thread: sizes where the probe chooses between the assignment solver
and the network simplex (NOTE: [Assignment probe] in csrc/emd/transport.cpp), with a reference row
forced onto the simplex (``numItermax=10**12``, a limit no solve reaches: the assignment solver
takes no iteration limit), to show what the choice gains.

Every pygan row is certified (``certify``) and its cost compared with POT's before timing; pygan's
rows come on 1 and 2 threads (``numThreads``); each case records the pivots of pygan's solve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

DOTMARK_RES = {False: (32, 64), True: (16,)}
DOTMARK_LARGE = 128
DOTMARK_CLASSES = {False: ("white noise", "GRF rough", "GRF moderate", "GRF smooth", "log-GRF", "logit-GRF",
                           "Cauchy mixture", "shapes"), True: ("white noise", "shapes")}
SMALL_N = {False: (64, 128), True: (64,)}
BATCHES = {False: ((64, 256),), True: ((8, 32),)}
MINIBATCH_N = {False: (512, 1024), True: (384,)}
MINIBATCH_DIM = 16
SEED = 0


def _grf(rng: np.random.Generator, res: int, length: float) -> np.ndarray:
    """A stationary Gaussian random field: white noise filtered by a Gaussian of std ``length``
    (a fraction of the side), periodic, standardised."""
    noise = rng.standard_normal((res, res))
    k = np.fft.fftfreq(res)
    kk = k[:, None] ** 2 + k[None, :] ** 2
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (np.pi * length * res) ** 2 * kk)))
    return (field - field.mean()) / (field.std() + 1e-300)


def dotmark_image(kind: str, res: int, seed: int) -> np.ndarray:
    """One DOTmark-style image of class ``kind`` at ``res`` x ``res``, flattened and normalised to 1."""
    rng = np.random.default_rng(seed)
    if kind == "white noise":
        img = rng.uniform(size=(res, res))
    elif kind.startswith("GRF"):
        length = {"GRF rough": 1 / 64, "GRF moderate": 1 / 16, "GRF smooth": 1 / 4}[kind]
        field = _grf(rng, res, length)
        img = field - field.min() + 1e-3  # positive, with some near-zero mass
    elif kind == "log-GRF":
        img = np.exp(_grf(rng, res, 1 / 16))
    elif kind == "logit-GRF":
        img = 1 / (1 + np.exp(-2 * _grf(rng, res, 1 / 16)))
    elif kind == "Cauchy mixture":
        g = (np.arange(res) + 0.5) / res
        X, Y = np.meshgrid(g, g, indexing="ij")
        img = np.zeros((res, res))
        for _ in range(int(rng.integers(3, 8))):
            cx, cy, s = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.02, 0.15)
            img += rng.uniform(0.5, 1.5) / (1 + ((X - cx) ** 2 + (Y - cy) ** 2) / s ** 2) ** 1.5
    elif kind == "shapes":
        g = (np.arange(res) + 0.5) / res
        X, Y = np.meshgrid(g, g, indexing="ij")
        img = np.zeros((res, res))
        for _ in range(int(rng.integers(2, 5))):
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
            if rng.uniform() < 0.5:
                img[(X - cx) ** 2 + (Y - cy) ** 2 <= r ** 2] = 1.0
            else:
                img[(np.abs(X - cx) <= r) & (np.abs(Y - cy) <= 0.6 * r)] = 1.0
        if img.sum() == 0:
            img[res // 2, res // 2] = 1.0
    else:
        raise ValueError(f"kind: expected one of {DOTMARK_CLASSES[False]}, got {kind!r}")
    img = img.reshape(-1)
    return img / img.sum()


def grid_cost(res: int) -> np.ndarray:
    """Squared Euclidean distances between the pixel centres of a res x res grid on the unit square."""
    g = (np.arange(res) + 0.5) / res
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    return ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)


def _threads_candidates(emd, case: str, a: np.ndarray, b: np.ndarray, M: np.ndarray, ot: Any,
                        info: dict) -> list:
    """POT, pygan (torch) on 1 thread and on 2 threads; the pivots of pygan's solve into ``info``."""
    import pygan.ot

    ta, tb, tM = (torch.from_numpy(v) for v in (a, b, M))
    rows = emd.emd_candidates(case, a, b, M, ot, None, numpy_row=False)
    rows = [r for r in rows if r.name != emd.PYGAN_TORCH]

    def setup() -> dict:
        return {"out": None}

    def result(st: dict) -> list[torch.Tensor]:
        return emd._scalar(st["out"])

    for threads in (1, 2):
        def run(st: dict, threads=threads) -> None:
            st["out"] = pygan.ot.emd2(ta, tb, tM, numThreads=threads)

        def verify(st: dict, threads=threads) -> None:
            emd.certify(f"{case} / pygan {threads} threads", ta, tb, tM, st["out"])
            if threads == 1:
                info["pivots"] = pygan.ot.emd2(ta, tb, tM, numThreads=1, log=True)[1]["iterations"]

        rows.append(emd.Candidate(f"pygan.ot.emd2 ({threads} thread{'s' if threads > 1 else ''})", "pygan",
                                  setup, run, result, verify=verify))
    return rows


def part_dotmark(emd, device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    cases = []
    for res in DOTMARK_RES[quick]:
        M = grid_cost(res)
        for k, kind in enumerate(DOTMARK_CLASSES[quick]):
            a = dotmark_image(kind, res, SEED + 100 * k + res)
            b = dotmark_image(kind, res, SEED + 100 * k + res + 1)
            name = f"dotmark {kind} {res}x{res}"
            info: dict = {}
            skipped = [(emd.POT, "baseline", why_ot)] if ot is None else []
            case = emd.measure(name, _threads_candidates(emd, name, a, b, M, ot, info), device, quick,
                               emd.EMD_RTOL, skipped, vs=emd.POT, part="dotmark", n=res * res, m=res * res,
                               image_class=kind, resolution=res, cost="squared Euclidean on the pixel grid")
            case.update(info)
            cases.append(case)
        del M
    cases += part_dotmark_points(emd, device, quick, ot, why_ot)
    return cases


def pixel_centres(res: int) -> np.ndarray:
    """The [res * res, 2] pixel centres of grid_cost, in the same (row-major) order."""
    g = (np.arange(res) + 0.5) / res
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def peak_rss_growth(call) -> tuple[int | None, str]:
    """The peak resident memory growth of ``call()`` in this process, in bytes, and how it was
    measured (freed memory handed back to the system, then VmHWM reset just before the call, as
    bench/_points_memory.py does; None where /proc is missing)."""
    import ctypes
    import ctypes.util
    import gc

    from ._points_memory import reset_peak, status

    # Memory this process freed earlier (the dense matrices of the smaller pairs) stays with the
    # allocator, and a call that reuses it does not raise the peak: hand it back to the system
    # first (glibc's malloc_trim; elsewhere the figure is a lower bound).
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    rss0 = status("VmRSS")
    if not reset_peak(rss0):
        call()
        return None, "not measured (no /proc/self/clear_refs)"
    call()
    hwm = status("VmHWM")
    return ((None if hwm is None else hwm - rss0),
            "VmHWM after - VmRSS before (malloc_trim, then the peak reset via /proc/self/clear_refs)")


def part_dotmark_points(emd, device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    """The DOTmark pairs through ``pygan.ot.emd2_points(centres, centres, a, b, "sqeuclidean")`` (no
    n x n matrix; 1 thread) beside POT's dense ``ot.emd2`` on grid_cost (up to 64 x 64; 128 x 128
    alone, in full runs, with the call's peak memory growth). Every row's certificate is checked
    before timing: on the dense matrix where one is built, else the solver's own (measured on every
    pair)."""
    import pygan.ot

    cases = []
    sizes = list(DOTMARK_RES[quick]) + ([] if quick else [DOTMARK_LARGE])
    for res in sizes:
        centres = pixel_centres(res)
        tc = torch.from_numpy(centres)
        M = grid_cost(res) if res < DOTMARK_LARGE else None
        for k, kind in enumerate(DOTMARK_CLASSES[quick]):
            a = dotmark_image(kind, res, SEED + 100 * k + res)
            b = dotmark_image(kind, res, SEED + 100 * k + res + 1)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            name = f"dotmark points {kind} {res}x{res}"
            info: dict = {}

            def setup() -> dict:
                return {"out": None}

            def result(st: dict) -> list[torch.Tensor]:
                return emd._scalar(st["out"])

            def run(st: dict, ta=ta, tb=tb) -> None:
                with emd._threads(1):
                    st["out"] = pygan.ot.emd2_points(tc, tc, ta, tb, metric="sqeuclidean")

            def verify(st: dict, ta=ta, tb=tb, M=M, name=name, info=info) -> None:
                with emd._threads(1):
                    cost, log = pygan.ot.emd2_points(tc, tc, ta, tb, metric="sqeuclidean", log=True)
                if log["status"] != "optimal":
                    raise AssertionError(f"{name}: emd2_points status {log['status']!r}")
                cert = (pygan.ot.check_optimality(ta, tb, torch.from_numpy(M), log["plan"].to_dense(), log["u"],
                                                  log["v"]) if M is not None else log["certificate"])
                limit = emd.CERT_TOL * 2.0  # max cost: the unit square's squared diagonal
                if not (cert.primal_residual <= emd.CERT_TOL and cert.dual_violation <= limit
                        and cert.duality_gap <= limit):
                    raise AssertionError(f"{name}: certificate {cert} (limit {limit:.3g})")
                emd.H.check_close(f"{name}: log=True cost vs the timed call", emd._scalar(st["out"]),
                                  emd._scalar(cost), emd.EMD_RTOL, 0.0)
                info["pivots"] = log["iterations"]
                if M is None:  # no dense matrix: the memory is the claim (O(n k), not O(n m))
                    with emd._threads(1):
                        info["peak_rss_growth_bytes"], info["memory_method"] = peak_rss_growth(
                            lambda: pygan.ot.emd2_points(tc, tc, ta, tb, metric="sqeuclidean"))

            rows = [emd.Candidate("pygan.ot.emd2_points (1 thread)", "pygan", setup, run, result, verify=verify)]
            skipped = []
            if M is None:
                skipped.append((emd.POT, "baseline", f"not run (needs a {(res * res) ** 2 * 8 / 1e9:.1f} GB dense matrix)"))
            elif ot is None:
                skipped.append((emd.POT, "baseline", why_ot))
            else:
                rows = [r for r in emd.emd_candidates(name, a, b, M, ot, None, numpy_row=False)
                        if r.name == emd.POT] + rows
            case = emd.measure(name, rows, device, quick, emd.EMD_RTOL, skipped, vs=emd.POT, part="dotmark",
                               n=res * res, m=res * res, image_class=kind, resolution=res,
                               cost="squared Euclidean between pixel centres, as points")
            case.update(info)
            cases.append(case)
        del M
    return cases


POT_CORE = "POT emd_c (its compiled core, 1 thread)"
PYGAN_CORE = "pygan core (extension call, 1 thread)"


def _core_candidates(emd, a: np.ndarray, b: np.ndarray, M: np.ndarray, ot: Any) -> list:
    """Reference rows: each library's compiled solver called without its Python wrapper (POT's
    ``emd_c``, pygan's extension function), to show how much of a small call the wrapper is. None
    of them is a baseline (the targets are against the public ``ot.emd2``)."""
    from pygan import _build

    rows = []

    def setup() -> dict:
        return {"out": None}

    def result(st: dict) -> list[torch.Tensor]:
        return emd._scalar(st["out"])

    try:
        from ot.lp.emd_wrap import emd_c  # POT's Cython wrapper of its network simplex
    except ImportError:  # no POT, or a version that moved it: no reference row
        emd_c = None
    if emd_c is not None:
        def pot_core(st: dict) -> None:
            st["out"] = emd_c(a, b, M, 10**9, 1)[1]  # (G, cost, u, v, result code)

        rows.append(emd.Candidate(POT_CORE, "reference", setup, pot_core, result))
    if _build.load():
        ext = _build.module()
        ta, tb, tM = (torch.from_numpy(v) for v in (a, b, M))  # the shapes pygan.ot.emd2 passes
        empty = torch.empty(0, 0, dtype=torch.float64)

        def pygan_core(st: dict) -> None:
            st["out"] = ext.emd_dense(ta, tb, tM, -1, empty, empty, 1)[0][0]  # cost of problem 0, 1 thread

        rows.append(emd.Candidate(PYGAN_CORE, "reference", setup, pygan_core, result))
    return rows


def part_small(emd, device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    cases = []
    for n in SMALL_N[quick]:
        rng = np.random.default_rng(SEED + 11 + n)
        x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2))
        M = emd._euclidean(x, y, ot)
        # Uniform weights (the assignment solver) and random positive ones (the network simplex
        # from the row-minimum basis), on the same points.
        wa, wb = rng.uniform(size=n), rng.uniform(size=n)
        for weights, a, b in (("uniform", np.full(n, 1.0 / n), np.full(n, 1.0 / n)),
                              ("random", wa / wa.sum(), wb / wb.sum())):
            name = f"single {n}x{n}" + (" random weights" if weights == "random" else "")
            info: dict = {}
            skipped = [(emd.POT, "baseline", why_ot)] if ot is None else []
            rows = _threads_candidates(emd, name, a, b, M, ot, info) + _core_candidates(emd, a, b, M, ot)
            case = emd.measure(name, rows, device, quick, emd.EMD_RTOL, skipped, vs=emd.POT, part="small",
                               n=n, m=n, weights=weights)
            case.update(info)
            cases.append(case)
    return cases


def part_minibatch(emd, device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    """Minibatch-OT-like uniform square problems: POT, pygan (the assignment solver) and pygan forced
    onto the network simplex, 1 thread."""
    import pygan.ot

    cases = []
    for n in MINIBATCH_N[quick]:
        rng = np.random.default_rng(SEED + 13 + n)
        x = rng.standard_normal((n, MINIBATCH_DIM))
        y = rng.standard_normal((n, MINIBATCH_DIM)) * 0.5 + 1.0
        M = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        a = np.full(n, 1.0 / n)
        ta, tM = torch.from_numpy(a), torch.from_numpy(M)
        name = f"minibatch d={MINIBATCH_DIM} {n}x{n}"
        rows = [r for r in emd.emd_candidates(name, a, a, M, ot, None, numpy_row=False) if r.name != emd.PYGAN_TORCH]
        skipped = [(emd.POT, "baseline", why_ot)] if ot is None else []

        def setup() -> dict:
            return {"out": None}

        def result(st: dict) -> list[torch.Tensor]:
            return emd._scalar(st["out"])

        for label, limit in (("pygan.ot.emd2 (1 thread)", None),
                             ("pygan simplex path (1 thread)", 10**12)):
            def run(st: dict, limit=limit) -> None:
                st["out"] = pygan.ot.emd2(ta, ta, tM, numItermax=limit, numThreads=1)

            def verify(st: dict, label=label) -> None:
                emd.certify(f"{name} / {label}", ta, ta, tM, st["out"])

            rows.append(emd.Candidate(label, "pygan" if limit is None else "reference", setup, run, result,
                                      verify=verify))
        # The default's iterations: augmenting paths (at most n) when the probe chose the assignment
        # solver, pivots when it chose the simplex.
        info = {"iterations": {
            "default": pygan.ot.emd2(ta, ta, tM, numThreads=1, log=True)[1]["iterations"],
            "simplex path": pygan.ot.emd2(ta, ta, tM, numItermax=10**12, numThreads=1, log=True)[1]["iterations"]}}
        cases.append(emd.measure(name, rows, device, quick, emd.EMD_RTOL, skipped, vs=emd.POT, part="minibatch",
                                 n=n, m=n, weights="uniform", dim=MINIBATCH_DIM, cost="squared Euclidean", **info))
    return cases


def part_batches(emd, device: str, quick: bool, ot: Any, why_ot: str | None) -> list[dict]:
    """B problems of n uniform points: a loop over POT against pygan's batched call on 1 and 2 threads."""
    import pygan.ot

    cases = []
    for B, n in BATCHES[quick]:
        rng = np.random.default_rng(SEED + 5 + n)
        xs, ys = rng.uniform(size=(B, n, 2)), rng.uniform(size=(B, n, 2))
        M = np.stack([emd._euclidean(x, y, ot) for x, y in zip(xs, ys)])
        a = np.full(n, 1.0 / n)
        ta, tM = torch.from_numpy(a), torch.from_numpy(M)
        name = f"batched {B}x{n}x{n}"
        pot_name = f"POT ot.emd2 loop ({B} calls)"

        def setup() -> dict:
            return {"out": None}

        def result(st: dict) -> list[torch.Tensor]:
            return emd._vector(st["out"])

        def pot_loop(st: dict, M=M, a=a) -> None:
            st["out"] = emd._pot_call(st, lambda: [ot.emd2(a, a, Mi, numItermax=emd.POT_MAX_ITER) for Mi in M])

        rows, skipped = [], []
        if ot is not None:
            rows.append(emd.Candidate(pot_name, "baseline", setup, pot_loop, result,
                                      verify=emd._no_pot_warnings(f"{name} / {pot_name}")))
        else:
            skipped.append((pot_name, "baseline", why_ot))
        for threads in (1, 2):
            def run(st: dict, threads=threads, ta=ta, tM=tM) -> None:
                st["out"] = pygan.ot.emd2(ta, ta, tM, numThreads=threads)

            def verify(st: dict, ta=ta, tM=tM, name=name, B=B) -> None:
                for i in range(B):
                    emd.certify(f"{name} / problem {i}", ta, ta, tM[i], st["out"][i])

            rows.append(emd.Candidate(f"pygan.ot.emd2 batched ({threads} thread{'s' if threads > 1 else ''})",
                                      "pygan", setup, run, result, verify=verify if threads == 1 else None))
        cases.append(emd.measure(name, rows, device, quick, emd.EMD_RTOL, skipped, vs=pot_name, part="batched",
                                 batch=B, n=n, m=n, weights="uniform"))
    return cases
