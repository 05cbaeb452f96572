"""Input checks and conversion shared by pygan.ot's entry points (numpy or torch in, float64 CPU
tensors for the core out)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from pygan import _build, _validate



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


def _cpu64(t: torch.Tensor) -> torch.Tensor:
    """t as a float64 CPU tensor outside autograd: t itself when it is one already (the checks cost
    less than the no-op conversions, a microsecond or two per argument of a small solve)."""
    if t.dtype is torch.float64 and t.is_cpu and not t.requires_grad:
        return t
    return t.detach().to("cpu", torch.float64)


def _check_finite(t: torch.Tensor, name: str, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: {what} must be finite (found NaN or inf)")


def _weights(w, name: str, size: int, batch: int | None, side: str, check: bool = True) -> torch.Tensor:
    """The user's weights as a float64 CPU tensor of shape [size] or [batch, size]; None or an empty
    1-D array (POT's convention) give uniform weights 1/size, of shape [size]. check=False leaves
    the values (finite, non-negative) to the caller; the shape is always checked."""
    t = None if w is None else _tensor(w, name)[0]
    if t is None or (t.numel() == 0 and t.dim() == 1):
        return torch.full((size,), 1.0 / size, dtype=torch.float64)
    shapes = [(size,)] + ([(batch, size)] if batch is not None else [])
    if tuple(t.shape) not in shapes:
        expected = " or ".join(str(list(s)) for s in shapes)
        raise ValueError(f"{name}: expected shape {expected} ({size} {side}), got {list(t.shape)}")
    t64 = _cpu64(t)
    if check:
        _check_finite(t64, name, "weights")
        if bool((t64 < 0).any()):
            raise ValueError(f"{name}: weights must be non-negative")
    return t64


def _inputs_ok(a64: torch.Tensor, b64: torch.Tensor, M64: torch.Tensor, mass_tol: float, rescale: bool) -> bool:
    """The compiled one-pass check of a dense problem (a [B, n], b [B, m], M [B or 1, n, m], float64
    contiguous CPU): True when everything :func:`_weights`, :func:`_check_finite` and
    :func:`_balanced` check holds. False (or no extension) means: run those, which word the error.
    About 20x cheaper than the torch checks for a 64 x 64 problem (one pass, no temporaries)."""
    return _build.load() and _build.module().emd_dense_inputs_ok(a64, b64, M64, float(mass_tol), bool(rescale))


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
    if not (type(mass_tol) is float and 0.0 <= mass_tol < math.inf):  # the common case, checked inline
        _validate.number(mass_tol, "mass_tol", low=0)
    if max_iter is None:  # no limit
        return -1
    return _validate.integer(max_iter, "max_iter", low=0)


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



def _check_threads(numThreads) -> int | None:
    """POT's ``numThreads`` (a positive int or "max") as the CPU thread count of the solve; None
    (from "max") keeps torch's own setting (``torch.get_num_threads()``)."""
    if isinstance(numThreads, str):
        if numThreads != "max":
            raise ValueError(f'numThreads: expected a positive integer or "max", got {numThreads!r}')
        return None  # torch's own setting: all the threads it was given
    if isinstance(numThreads, bool) or not isinstance(numThreads, numbers.Integral) or numThreads < 1:
        raise ValueError(f'numThreads: expected a positive integer or "max", got {numThreads!r}')
    return int(numThreads)


def _iter_limit(numItermax, max_iter, mass_tol) -> int:
    """One pivot limit from POT's ``numItermax`` and pygan's ``max_iter`` (either may be None)."""
    if numItermax is not None and max_iter is not None and numItermax != max_iter:
        raise ValueError(f"numItermax and max_iter: give one pivot limit, got {numItermax!r} and {max_iter!r}")
    limit = max_iter if max_iter is not None else numItermax
    try:
        return _check_options(limit, mass_tol)
    except (ValueError, TypeError) as e:
        if numItermax is not None and max_iter is None and "max_iter" in str(e):
            raise type(e)(str(e).replace("max_iter", "numItermax", 1)) from None
        raise


def _warm_start(potentials_init, n: int, m: int, B: int):
    """POT's ``potentials_init=(u, v)``: float64 CPU tensors [B, n], [B, m], or None."""
    if potentials_init is None:
        return None
    if not isinstance(potentials_init, (tuple, list)) or len(potentials_init) != 2:
        raise TypeError(f"potentials_init: expected a pair (u, v) of arrays, got {type(potentials_init).__name__}")
    out = []
    for t, size, name in ((potentials_init[0], n, "potentials_init[0] (u)"), (potentials_init[1], m, "potentials_init[1] (v)")):
        t64 = _cpu64(_tensor(t, name)[0])
        if tuple(t64.shape) not in ((size,), (B, size)):
            raise ValueError(f"{name}: expected shape [{size}]{f' or [{B}, {size}]' if B > 1 else ''}, got {list(t64.shape)}")
        _check_finite(t64, name, "potentials")
        out.append(t64.expand(B, size).contiguous())
    return out[0], out[1]
