"""``python -m pygan w1 A B``: the exact Wasserstein distance between two sample sets on disk.

The exact counterpart of the FID command people run on their GAN's samples: A and B are ``.npy`` or
``.pt`` files of N x d points or N x C x H x W images (flattened to N x CHW), optionally with weight
files. Prints the distance and the solver's optimality certificate; exit 0 when the answer is
certified optimal, 1 when the solver could not certify it, 2 on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

_PROG = "python -m pygan w1"


class InputError(Exception):
    """Bad input: reported as one line, exit status 2."""


def _load(path: str, what: str) -> np.ndarray:
    """A float64 array from a .npy or .pt file, refusing pickles (they can run code)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what}: no such file: {path}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif suffix in (".pt", ".pth"):
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(obj, torch.Tensor):
                raise InputError(f"{what}: {path} holds a {type(obj).__name__}, expected one tensor")
            arr = obj.detach().to(torch.float64).numpy()
        else:
            raise InputError(f"{what}: {path}: expected a .npy or .pt file")
    except InputError:
        raise
    except Exception as e:  # numpy's pickle refusal, torch's weights_only refusal, corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{what}: cannot read {path} ({first[:200]}); pickled files are refused, "
                         "save a plain array (np.save / torch.save of a tensor)") from None
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{what}: {path} holds dtype {arr.dtype}, expected numbers")
    return np.asarray(arr, dtype=np.float64)


def _points(arr: np.ndarray, path: str, what: str) -> np.ndarray:
    if arr.ndim not in (2, 4):
        raise InputError(f"{what}: {path} has shape {list(arr.shape)}, expected N x d points or "
                         "N x C x H x W images")
    if arr.shape[0] == 0 or arr[0].size == 0:
        raise InputError(f"{what}: {path} is empty (shape {list(arr.shape)})")
    if not np.isfinite(arr).all():
        raise InputError(f"{what}: {path} contains NaN or inf")
    return arr.reshape(arr.shape[0], -1)


def _weights(path: str | None, n: int, what: str) -> np.ndarray | None:
    if path is None:
        return None
    w = _load(path, what)
    if w.shape != (n,):
        raise InputError(f"{what}: {path} has shape {list(w.shape)}, expected [{n}] (one weight per sample)")
    if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise InputError(f"{what}: {path}: weights must be finite, non-negative, with a positive total")
    return w


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=_PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help=".npy/.pt file: N x d points or N x C x H x W images")
    p.add_argument("b", metavar="B", help="the second sample set, same d (or C x H x W)")
    p.add_argument("--weights-a", metavar="FILE", help="[N] non-negative weights of A (default uniform)")
    p.add_argument("--weights-b", metavar="FILE", help="[M] weights of B (default uniform)")
    p.add_argument("--metric", choices=["euclidean", "sqeuclidean"], default="euclidean",
                   help="ground cost ||x - y|| (W1, default) or ||x - y||^2 (W2 squared)")
    p.add_argument("--p", type=float, default=None, metavar="P",
                   help="ground cost ||x - y||^P, P >= 1 (prints W_P); overrides --metric")
    p.add_argument("--max-samples", type=int, default=None, metavar="K",
                   help="use a random subsample of at most K samples of each set (seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample (default 0)")
    p.add_argument("--plan", metavar="OUT.npz", help="save the optimal plan (rows, cols, values, shape)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan w1``. Returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad options, 0 on --help
        return int(e.code or 0)
    try:
        return _run(args)
    except InputError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import torch

    from pygan import ot

    if args.p is not None and not (math.isfinite(args.p) and args.p >= 1):
        raise InputError(f"--p: expected a finite number >= 1, got {args.p}")
    if args.max_samples is not None and args.max_samples < 1:
        raise InputError(f"--max-samples: expected a positive integer, got {args.max_samples}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads: expected a positive integer, got {args.threads}")
    x = _points(_load(args.a, "A"), args.a, "A")
    y = _points(_load(args.b, "B"), args.b, "B")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"A and B: dimensions differ ({args.a}: {x.shape[1]} per sample, {args.b}: {y.shape[1]})")
    wa = _weights(args.weights_a, x.shape[0], "--weights-a")
    wb = _weights(args.weights_b, y.shape[0], "--weights-b")
    rng = np.random.default_rng(args.seed)
    picked = []
    for pts, w in ((x, wa), (y, wb)):
        if args.max_samples is not None and pts.shape[0] > args.max_samples:
            keep = np.sort(rng.choice(pts.shape[0], args.max_samples, replace=False))
            pts, w = pts[keep], None if w is None else w[keep]
            if w is not None and not w.sum() > 0:
                raise InputError("--max-samples: the subsample's weights are all zero; use more samples")
        picked.append((pts, w))
    (x, wa), (y, wb) = picked
    # Weights are normalised to total 1 each, as for empirical distributions.
    wa = None if wa is None else wa / wa.sum()
    wb = None if wb is None else wb / wb.sum()
    metric, power = (args.p, args.p) if args.p is not None else (args.metric, 2.0 if args.metric == "sqeuclidean" else 1.0)
    n, m = x.shape[0], y.shape[0]
    long_solve = n * m > 4_000_000
    if long_solve and not args.json:
        print(f"solving {n} x {m} samples of dimension {x.shape[1]} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        cost, log = ot.emd2_points(torch.from_numpy(x), torch.from_numpy(y),
                                   None if wa is None else torch.from_numpy(wa),
                                   None if wb is None else torch.from_numpy(wb), metric, log=True)
    except ValueError as e:
        raise InputError(str(e)) from None
    seconds = time.perf_counter() - start
    cost = float(cost)
    distance = cost ** (1.0 / power) if cost >= 0 else float("nan")
    cert = log["certificate"]
    name = "W1" if power == 1 else f"W{power:g}"
    result = {"distance": distance, "cost": cost, "metric": f"||x - y||^{power:g}", "name": name,
              "n": n, "m": m, "dim": int(x.shape[1]), "status": log["status"],
              "primal_residual": cert.primal_residual, "dual_violation": cert.dual_violation,
              "duality_gap": cert.duality_gap, "pivots": log["iterations"], "seconds": seconds}
    if args.plan:
        plan = log["plan"].coalesce()
        idx = plan.indices().numpy()
        try:
            np.savez(args.plan, rows=idx[0], cols=idx[1], values=plan.values().double().numpy(),
                     shape=np.array([n, m]))
        except OSError as e:
            raise InputError(f"--plan: cannot write {args.plan} ({e.strerror})") from None
        result["plan"] = args.plan
    if args.json:
        print(json.dumps(result))
    else:
        if long_solve:
            print(f"solved in {seconds:.1f} s", file=sys.stderr)
        print(f"{name} = {distance:.10g}  (cost {cost:.10g}, {n} x {m} samples, dim {x.shape[1]})")
        print(f"status {log['status']}; certificate: primal residual {cert.primal_residual:.3g}, "
              f"dual violation {cert.dual_violation:.3g}, duality gap {cert.duality_gap:.3g}")
    return 0 if log["status"] == "optimal" else 1
