"""One call of ``pygan.ot.emd2_points`` in a fresh interpreter: its time and peak resident memory
growth, then (after the measurement) its optimality certificate, computed in row blocks without a
dense matrix. ``bench/emd.py``'s memory part runs this file as a child process::

    python bench/_points_memory.py '{"n": 2000, "seed": 0, "threads": 1}'

and reads the one JSON line it prints. It imports only torch and pygan, so the memory it measures is
the solver's.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def status(key: str) -> int | None:
    """A size field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak(rss0: int | None) -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; True when that worked (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets VmHWM
        hwm0 = status("VmHWM")
    except OSError:
        return False
    return rss0 is not None and hwm0 is not None and hwm0 <= rss0 + (1 << 20)


def measure(n: int, seed: int, threads: int) -> dict:
    """Time one ``emd2_points`` call on two n-point 2-D Gaussian clouds, then certify its result.

    Args:
        n: points per cloud (the second is shifted by (1, 0)); uniform weights.
        seed: the clouds' seed.
        threads: ``torch.set_num_threads``.

    Returns:
        ``seconds``, ``cost``, ``cost_log`` (the log=True call's), ``status``, the memory fields
        (``peak_rss_growth_bytes`` and how it was measured) and the certificate: ``primal_residual``,
        ``dual_violation``, ``duality_gap`` and ``max_cost`` (their scale).
    """
    import torch

    torch.set_num_threads(threads)
    import pygan._build
    import pygan.ot

    if not pygan._build.load():
        raise RuntimeError("pygan's extension did not load")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 2, generator=gen, dtype=torch.float64) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    pygan.ot.emd2_points(x[:64], y[:64])  # warm-up: the extension, the thread pool
    rss0 = status("VmRSS")
    reset = reset_peak(rss0)
    ru0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    cost = pygan.ot.emd2_points(x, y)
    seconds = time.perf_counter() - start
    hwm = status("VmHWM")
    ru1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if reset and hwm is not None and rss0 is not None:
        growth, method = hwm - rss0, "VmHWM after - VmRSS before (peak reset via /proc/self/clear_refs)"
    else:
        growth, method = ru1 - ru0, "ru_maxrss after - before (a lower bound if the peak was already higher)"

    # The certificate, after the measurement: emd2_points(log=True), costs recomputed in blocks of rows.
    cost2, log = pygan.ot.emd2_points(x, y, log=True)
    plan = log["plan"].coalesce()
    (i, j), p = plan.indices(), plan.values().double()
    u, v = log["u"].double(), log["v"].double()
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    zeros = torch.zeros(n, dtype=torch.float64)
    primal = max(float((zeros.clone().index_add_(0, i, p) - a).abs().max()),
                 float((zeros.clone().index_add_(0, j, p) - a).abs().max()),
                 float((-p).clamp_min(0).max()))
    dist = ((x[i] - y[j]) ** 2).sum(1).sqrt()
    gap = abs(float((p * dist).sum()) - float(a @ u + a @ v))
    violation, scale = 0.0, 0.0
    for s in range(0, n, 1024):
        d = torch.cdist(x[s:s + 1024], y, compute_mode="donot_use_mm_for_euclid_dist")
        scale = max(scale, float(d.max()))
        violation = max(violation, float((u[s:s + 1024, None] + v[None, :] - d).max()))
    return {"seconds": seconds, "cost": float(cost), "cost_log": float(cost2), "status": log["status"],
            "peak_rss_growth_bytes": growth, "rss_before_bytes": rss0, "peak_rss_bytes": hwm,
            "ru_maxrss_bytes": ru1, "memory_method": method, "primal_residual": primal,
            "dual_violation": max(violation, 0.0), "duality_gap": gap, "max_cost": scale}


def main(argv: list[str]) -> int:
    """``argv[0]``: a JSON object with ``n``, ``seed`` and ``threads``; prints one JSON line."""
    args = json.loads(argv[0])
    print(json.dumps(measure(args["n"], args["seed"], args["threads"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
