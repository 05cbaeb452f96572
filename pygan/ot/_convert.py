"""Input checks and conversion shared by pygan.ot's entry points (numpy or torch in, float64 CPU
tensors for the core out)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch



def _tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    """(tensor, came_from_numpy); refuses non-floating dtypes with a TypeError naming ``name``."""
    if isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    elif isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floating-point numbers, got numpy dtype {x.dtype}")
        t, was_numpy = torch.from_numpy(np.ascontiguousarray(x)), True
    elif isinstance(x, (list, tuple)):
        t, was_numpy = torch.as_tensor(np.asarray(x, dtype=np.float64)), True
    else:
        raise TypeError(f"{name} must be a torch tensor or a numpy array, got {type(x).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {t.dtype}")
    return t, was_numpy


def _check_finite(t: torch.Tensor, name: str, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: {what} must be finite (found NaN or inf)")


def _weights(w, name: str, size: int, batch: int | None, side: str) -> torch.Tensor:
    """The user's weights as a float64 CPU tensor of shape [size] or [batch, size]; None or an empty
    1-D array (POT's convention) give uniform weights 1/size, of shape [size]."""
    t = None if w is None else _tensor(w, name)[0]
    if t is None or (t.numel() == 0 and t.dim() == 1):
        return torch.full((size,), 1.0 / size, dtype=torch.float64)
    shapes = [(size,)] + ([(batch, size)] if batch is not None else [])
    if tuple(t.shape) not in shapes:
        expected = " or ".join(str(list(s)) for s in shapes)
        raise ValueError(f"{name}: expected shape {expected} ({size} {side}), got {list(t.shape)}")
    t64 = t.detach().to("cpu", torch.float64)
    _check_finite(t64, name, "weights")
    if bool((t64 < 0).any()):
        raise ValueError(f"{name}: weights must be non-negative")
    return t64


def _balanced(a64: torch.Tensor, b64: torch.Tensor, mass_tol: float, rescale: bool) -> None:
    sa, sb = a64.sum(-1), b64.sum(-1)
    if bool((sa <= 0).any()) or bool((sb <= 0).any()):
        raise ValueError("a and b: each side's total weight must be positive")
    rel = (sa - sb).abs() / torch.maximum(sa, sb)
    if not rescale and bool((rel > mass_tol).any()):
        worst = int(rel.argmax())
        raise ValueError(
            f"a and b: total masses differ (sum(a) = {float(sa.reshape(-1)[worst]):.17g}, "
            f"sum(b) = {float(sb.reshape(-1)[worst]):.17g}, relative difference "
            f"{float(rel.reshape(-1)[worst]):.3g} > mass_tol = {mass_tol:g}); pass rescale=True to "
            "rescale b to sum(a), or fix the weights")


def _check_options(max_iter, mass_tol) -> int:
    if not isinstance(mass_tol, numbers.Real) or not math.isfinite(mass_tol) or mass_tol < 0:
        raise ValueError(f"mass_tol must be a finite non-negative number, got {mass_tol!r}")
    if max_iter is None:
        return -1
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be None (no limit) or a non-negative integer, got {max_iter!r}")
    return int(max_iter)


def _weight_tensors(a, b) -> list[torch.Tensor | None]:
    """a and b where they are non-empty torch tensors (they take part in autograd and in the result
    dtype), else None."""
    return [t if isinstance(t, torch.Tensor) and t.numel() > 0 else None for t in (a, b)]


def _result_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    dtype = None
    for t in tensors:
        if t is not None:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return dtype

