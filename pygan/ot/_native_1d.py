"""The compiled path of the 1-D solvers (csrc/emd/sorted_1d.cpp): one sort per side and a linear
merge in float64, the columns of a batch spread over CPU threads.

pygan.ot.solver_1d takes it for CPU tensors when no gradient is asked for; CUDA tensors, and values
or weights that autograd tracks, keep the torch-op path (the twin these results are tested against).
"""

from __future__ import annotations

import torch

from pygan import _build

_EMPTY = torch.empty(0, 0, dtype=torch.float64)


def usable(*tensors: torch.Tensor | None) -> bool:
    """Whether the compiled 1-D solver can stand in for the torch ops on these inputs: all on CPU,
    none needing a gradient, and the extension loaded."""
    grad = torch.is_grad_enabled()
    for t in tensors:
        if t is not None and (t.device.type != "cpu" or (grad and t.requires_grad)):
            return False
    return _build.load()


def _rows(t: torch.Tensor) -> torch.Tensor:
    # [k, cols] (or [k]) -> [cols, k] float64 contiguous: each column's points adjacent in memory.
    t = t.detach().to(torch.float64)
    return (t.reshape(-1, 1) if t.dim() == 1 else t).T.contiguous()


def _weight_rows(w: torch.Tensor | None, shared: bool) -> torch.Tensor:
    if w is None:
        return _EMPTY
    return w.detach().to(torch.float64).reshape(1, -1).contiguous() if shared else _rows(w)


def costs(x: torch.Tensor, y: torch.Tensor, wx: torch.Tensor | None, wy: torch.Tensor | None, p: float,
          require_sort: bool = True) -> torch.Tensor:
    """The OT loss of each column, weights normalised to total 1.

    Args:
        x: [n, cols] values, y: [m, cols] (finite; checked by the caller).
        wx: None (uniform), [n] shared by every column, or [n, cols]; wy likewise.
        p: the exponent of |x - y|^p (>= 1).
        require_sort: False when the values are ascending along dim 0 already.

    Returns:
        A float64 [cols] tensor.
    """
    cols = x.shape[1] if x.dim() == 2 else 1
    shared_x = wx is not None and wx.dim() == 1 and x.dim() == 2 and cols > 0
    shared_y = wy is not None and wy.dim() == 1 and y.dim() == 2 and cols > 0
    if cols == 0:
        return torch.empty(0, dtype=torch.float64)
    out = _build.module().emd_1d(_rows(x), _rows(y), _weight_rows(wx, shared_x), _weight_rows(wy, shared_y),
                                 float(p), not require_sort, False)
    return out[0]


def matching(x: torch.Tensor, y: torch.Tensor, wx: torch.Tensor | None, wy: torch.Tensor | None, p: float,
             want_plan: bool) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sorted matching of one pair of 1-D samples x [n], y [m] (weights [n], [m] or None).

    Returns:
        (cost, masses, rows, cols): the loss with masses normalised to total 1, and the plan's
        pieces of positive mass (float64, int64, int64; empty when ``want_plan`` is false).
    """
    cost, _, rows, cols, masses = _build.module().emd_1d(
        _rows(x), _rows(y), _weight_rows(wx, True), _weight_rows(wy, True), float(p), False, want_plan)
    return float(cost[0]), masses, rows, cols
