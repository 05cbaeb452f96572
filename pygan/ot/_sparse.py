"""Sparse cost matrices (scipy.sparse or torch sparse): only the listed entries are arcs, as in POT
0.9.7's sparse ``emd``. Conversion to the core's arc list, and the plan back in the input's kind."""

from __future__ import annotations

import numpy as np
import torch

from pygan.ot._convert import _check_finite


def is_sparse(M) -> bool:
    if isinstance(M, torch.Tensor):
        return M.layout != torch.strided
    return type(M).__module__.startswith("scipy.sparse")


def arcs(M) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int], str]:
    """(rows int64 [k], cols int64 [k], costs float64 [k], (n, m), kind) of a sparse M, kind
    "scipy" or "torch". Duplicate or out-of-range indices are errors (a duplicate would make the
    arc's cost ambiguous; POT keeps the last one silently)."""
    if isinstance(M, torch.Tensor):
        if M.dim() != 2:
            raise ValueError(f"M: a sparse cost matrix must be 2-D, got shape {list(M.shape)}")
        if not M.is_floating_point():
            raise TypeError(f"M must have a floating-point dtype, got {M.dtype}")
        coo = M.detach().to("cpu")
        coo = coo.to_sparse_coo() if coo.layout != torch.sparse_coo else coo
        index, values = coo._indices(), coo._values()
        rows, cols = index[0].to(torch.int64), index[1].to(torch.int64)
        costs, shape, kind = values.to(torch.float64), (int(M.shape[0]), int(M.shape[1])), "torch"
    else:
        if M.ndim != 2:
            raise ValueError(f"M: a sparse cost matrix must be 2-D, got shape {list(M.shape)}")
        if M.dtype.kind != "f":
            raise TypeError(f"M must hold floating-point numbers, got numpy dtype {M.dtype}")
        coo = M.tocoo()
        rows = torch.from_numpy(np.asarray(coo.row, dtype=np.int64))
        cols = torch.from_numpy(np.asarray(coo.col, dtype=np.int64))
        costs = torch.from_numpy(np.asarray(coo.data, dtype=np.float64))
        shape, kind = (int(M.shape[0]), int(M.shape[1])), "scipy"
    n, m = shape
    if n == 0 or m == 0:
        raise ValueError(f"M: empty cost matrix (shape {[n, m]}); n and m must be >= 1")
    if rows.numel():
        if int(rows.min()) < 0 or int(rows.max()) >= n or int(cols.min()) < 0 or int(cols.max()) >= m:
            raise ValueError(f"M: sparse indices out of range for shape {[n, m]}")
        key = rows * m + cols
        if int(torch.unique(key).numel()) != int(key.numel()):
            raise ValueError("M: duplicate sparse entries (the same (row, column) listed twice); "
                             "sum or drop them first (scipy: M.sum_duplicates(), torch: M.coalesce())")
    _check_finite(costs, "M", "listed costs")
    return rows.contiguous(), cols.contiguous(), costs.contiguous(), shape, kind


def plan(rows, cols, values, shape, kind: str, dtype=None, device=None):
    """The plan's entries as a sparse matrix of the input's kind (scipy COO array or torch COO)."""
    if kind == "scipy":
        try:  # POT returns scipy's sparse arrays (element-wise *), where scipy has them
            from scipy.sparse import coo_array as coo
        except ImportError:
            from scipy.sparse import coo_matrix as coo

        return coo((values.numpy(), (rows.numpy(), cols.numpy())), shape=shape)
    out = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, is_coalesced=True,
                                  check_invariants=False)
    return out.to(device=device, dtype=dtype)
