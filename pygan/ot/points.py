"""``emd2_points``: the exact OT cost between point clouds, with costs computed on the fly."""

from __future__ import annotations

import math
import numbers

import torch

from pygan import _build
from pygan.ot._convert import (_balanced, _check_finite, _check_options, _result_dtype, _tensor,
                               _weight_tensors, _weights)
from pygan.ot._solve import _Envelope, _finish, _log, _solve_dense, _sparse_plan

_METRICS = {"sqeuclidean": 0, "euclidean": 1}


def _pair_costs(x: torch.Tensor, y: torch.Tensor, metric: int, p: float) -> torch.Tensor:
    """c(x_k, y_k) row by row, differentiable, with a zero (sub)gradient where x_k == y_k.

    Distances are computed as s * ||(x - y) / s|| with s the largest coordinate difference (no
    gradient through s), so that finite distances whose squares overflow stay finite."""
    diff = x - y
    if metric == 0:
        return diff.pow(2).sum(-1)
    s = diff.detach().abs().amax(-1)
    positive = s > 0
    safe_s = torch.where(positive, s, torch.ones_like(s))
    t = (diff / safe_s.unsqueeze(-1)).pow(2).sum(-1)  # >= 1 where s > 0
    norm = safe_s * torch.where(positive, t, torch.ones_like(t)).sqrt()  # no 0 under the sqrt: no NaN gradient
    power = 1.0 if metric == 1 else p
    cost = norm if power == 1.0 else norm.pow(power)
    return torch.where(positive, cost, torch.zeros_like(cost))


def emd2_points(x, y, a=None, b=None, metric="euclidean", *, log: bool = False,
                max_iter: int | None = None, mass_tol: float = 1e-6, rescale: bool = False):
    """The exact optimal transport cost between two point clouds, without an n x m cost matrix.

    Costs are computed on the fly from the points (the solver keeps only a sparse set of arcs and
    prices all pairs in passes), so 20000 x 20000 clouds fit in well under 2 GB.

    Args:
        x: [n, d] (or [n]) points; y: [m, d] (or [m]) points with the same d.
        a, b: weights as in :func:`emd` (None: uniform).
        metric: ``"euclidean"`` (cost ``||x - y||``, the W1 of the two clouds), ``"sqeuclidean"``
            (``||x - y||^2``, W2 squared) or a number ``p >= 1`` (``||x - y||^p``, W_p to the p).
        log: also return the :func:`emd` log dict plus ``plan`` (a sparse COO [n, m] tensor).
        max_iter, mass_tol, rescale: as in :func:`emd`.

    Returns:
        The cost (0-d tensor, or a float for numpy input), differentiable with respect to x and y
        (through the fixed optimal plan) and to a and b (the centred duals u - mean(u), v - mean(v)).
    """
    max_iter = _check_options(max_iter, mass_tol)
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"metric must be 'euclidean', 'sqeuclidean' or a number p >= 1, got {metric!r}")
        code, p = _METRICS[metric], 2.0 if metric == "sqeuclidean" else 1.0
    elif isinstance(metric, numbers.Real) and not isinstance(metric, bool):
        p = float(metric)
        if not math.isfinite(p) or p < 1:
            raise ValueError(f"metric: a power p must be finite and >= 1, got {metric!r}")
        code = 1 if p == 1 else 0 if p == 2 else 2
    else:
        raise TypeError(f"metric must be a string or a number, got {type(metric).__name__}")
    xt, x_numpy = _tensor(x, "x")
    yt, y_numpy = _tensor(y, "y")
    xt = xt.unsqueeze(-1) if xt.dim() == 1 else xt
    yt = yt.unsqueeze(-1) if yt.dim() == 1 else yt
    if xt.dim() != 2 or yt.dim() != 2:
        raise ValueError(f"x and y: expected [n, d] and [m, d] points, got {list(xt.shape)} and {list(yt.shape)}")
    if xt.shape[1] != yt.shape[1]:
        raise ValueError(f"x and y: dimensions differ ({xt.shape[1]} and {yt.shape[1]})")
    if xt.numel() == 0 or yt.numel() == 0:
        raise ValueError(f"x and y: need at least one point of dimension >= 1 each, got {list(xt.shape)} and {list(yt.shape)}")
    if xt.device != yt.device:
        raise ValueError(f"x and y: must be on the same device, got {xt.device} and {yt.device}")
    n, m = xt.shape[0], yt.shape[0]
    x64 = xt.detach().to("cpu", torch.float64).contiguous()
    y64 = yt.detach().to("cpu", torch.float64).contiguous()
    _check_finite(x64, "x", "points")
    _check_finite(y64, "y", "points")
    a_full = _weights(a, "a", n, None, "points in x").contiguous()
    b_full = _weights(b, "b", m, None, "points in y").contiguous()
    _balanced(a_full, b_full, mass_tol, rescale)
    if _build.load():
        # The core rescales b to sum(a) itself (emd.h), as it does for emd_dense.
        try:
            solved = _finish(_build.module().emd_points(a_full, b_full, x64, y64, code, p, max_iter))
        except ValueError as e:
            if "finite" not in str(e):
                raise
            raise ValueError(f"x and y: some pair's cost overflows float64 (metric {metric!r}: the "
                             "points are too far apart for it); use metric='euclidean' or rescale "
                             "the points") from None
    else:
        M64 = _pair_costs(x64[:, None, :], y64[None, :, :], code, p)
        if not bool(torch.isfinite(M64).all()):
            raise ValueError(f"x and y: some pair's cost overflows float64 (metric {metric!r}); use "
                             "metric='euclidean' or rescale the points")
        solved = _solve_dense(a_full[None], b_full[None], M64[None].contiguous(), max_iter)
    tensors = _weight_tensors(a, b)
    dtype = _result_dtype(xt, yt, *tensors)
    rows, cols, values = solved.rows, solved.cols, solved.values
    if x_numpy and y_numpy:
        result = float(solved.cost[0])
    else:
        device = xt.device
        idx_r, idx_c = rows.to(device), cols.to(device)
        # Only the plan's entries (at most n + m - 1 pairs) are recomputed, so autograd sees the
        # cost as a function of the points; its value is the solver's cost up to rounding. In
        # float64, cast once at the end: float16 points 200 apart have a squared distance that
        # overflows float16 although the cost itself does not.
        pair = _pair_costs(xt[idx_r].to(torch.float64), yt[idx_c].to(torch.float64), code, p)
        weighted = (values.to(device) * pair).sum().to(dtype)
        result = weighted + _Envelope.apply(tensors[0], tensors[1], None,
                                            torch.zeros((), dtype=dtype, device=device),
                                            solved.u, solved.v, None)
    if not log:
        return result
    out_log = _log(solved, 0, x_numpy and y_numpy, xt.device, dtype)
    out_log["plan"] = _sparse_plan(solved, 0, n, m, dtype, xt.device)
    return result, out_log

