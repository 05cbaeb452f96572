"""The optimality certificate of a transport plan and duals."""

from __future__ import annotations

from typing import NamedTuple

import torch

from pygan.ot._convert import _tensor, _weights


class Certificate(NamedTuple):
    """What :func:`check_optimality` measures (all zero for an exact optimum, rounding aside).

    Attributes:
        primal_residual: ``max(|P 1 - a|, |P^T 1 - b|, max(-P, 0))``: how far P is from a plan.
        dual_violation: ``max(0, max_ij u_i + v_j - M_ij)``: how far (u, v) is from dual feasible.
        duality_gap: ``|<P, M> - (a.u + b.v)|``: zero iff both are optimal (given the two above).
    """

    primal_residual: float
    dual_violation: float
    duality_gap: float



def check_optimality(a, b, M, plan, u, v) -> Certificate:
    """The optimality certificate of a transport plan and duals.

    P is optimal and (u, v) dual optimal iff all three numbers are zero: P is a plan, (u, v) is dual
    feasible, and the primal and dual objectives agree (complementary slackness).

    Args:
        a, b: weights (None: uniform), M: [n, m] costs, plan: [n, m] dense or sparse COO,
        u: [n], v: [m]. numpy arrays or torch tensors (any device); computed in float64.

    Returns:
        A :class:`Certificate` of Python floats; NaN anywhere in the inputs gives NaN figures.
    """
    def f64(t, name):
        return _tensor(t, name)[0].detach().to("cpu", torch.float64)

    M64 = f64(M, "M")
    if M64.dim() != 2:
        raise ValueError(f"M: expected [n, m], got {list(M64.shape)}")
    n, m = M64.shape
    P = _tensor(plan, "plan")[0].detach().to("cpu", torch.float64)
    P = P.to_dense() if P.is_sparse else P
    u64, v64 = f64(u, "u").reshape(-1), f64(v, "v").reshape(-1)
    if P.shape != (n, m) or u64.shape != (n,) or v64.shape != (m,):
        raise ValueError(f"plan, u, v: expected shapes [{n}, {m}], [{n}], [{m}]; got "
                         f"{list(P.shape)}, {list(u64.shape)}, {list(v64.shape)}")
    a64 = _weights(a, "a", n, None, "rows of M")
    b64 = _weights(b, "b", m, None, "columns of M")
    # torch's max propagates NaN (Python's max(0.0, nan) would hide it): a NaN anywhere gives NaN.
    primal = float(torch.stack([(P.sum(1) - a64).abs().max(), (P.sum(0) - b64).abs().max(),
                                (-P).clamp_min(0).max()]).max())
    dual = float((u64[:, None] + v64[None, :] - M64).max().clamp_min(0.0))
    gap = abs(float((P * M64).sum()) - float(a64 @ u64 + b64 @ v64))
    return Certificate(primal, dual, gap)
