"""Which code runs pygan's ops on CUDA tensors: the compiled CUDA kernels or the pure-PyTorch twins.

NOTE: [No unverified CUDA kernel by default]
The CUDA kernels compile in CI, but a kernel is used by default only once a run on a real GPU has
verified it: ``python -m pygan check --device cuda`` and the CUDA tests passing, recorded in the
repository as a results JSON that names the GPU, torch, CUDA and the commit (``bench/gpu_check.sh``
writes it). Until then CUDA tensors go through the op's twin in ``pygan.reference`` (plain torch
calls, which run on any device), after one ``PyganExtensionWarning`` that says so. CPU tensors
always use the compiled CPU kernels.

:data:`VERIFIED` is the table that flips the default, one op at a time: the commit that records a
passing GPU run adds the op with the path of that JSON, and no earlier commit may
(``tests/test_cuda_policy.py`` checks that every entry names a recorded run in which the op passed).

``PYGAN_CUDA_KERNELS`` overrides the table:

* ``1`` / ``all``: every compiled CUDA kernel (what ``bench/gpu_check.sh`` sets to test them);
* ``0`` / ``none``: no CUDA kernel, the twins for every op;
* a comma-separated list of ops (``clip_,rmsprop_step_``): those kernels, the twins for the rest;
* unset or empty: the table.

The variable is read when an op first meets a CUDA tensor; :func:`set_cuda_kernels` is the same
switch from Python, at any time.
"""

from __future__ import annotations

import os
import threading
import warnings

# The ops whose CUDA path this decides (grad_penalty covers its backward, grad_penalty_backward).
OPS = ("clip_", "rmsprop_step_", "interpolate", "grad_penalty")

# op -> the results JSON (a path in the repository) of the GPU run that verified its CUDA kernel.
# Empty: no pygan CUDA kernel has run on a GPU yet.
VERIFIED: dict[str, str] = {}

_ENV = "PYGAN_CUDA_KERNELS"
_lock = threading.Lock()
_override: frozenset[str] | None = None  # set by set_cuda_kernels, else None
_env_cache: tuple[str, frozenset[str] | None] | None = None
_warned: set[str] = set()


def _parse(value: str, source: str) -> frozenset[str] | None:
    """The set of ops a switch value enables, or None for "use the table"."""
    text = value.strip().lower()
    if text == "":
        return None
    if text in ("1", "all", "true", "yes", "on"):
        return frozenset(OPS)
    if text in ("0", "none", "false", "no", "off"):
        return frozenset()
    ops = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(ops - set(OPS))
    if unknown:
        raise ValueError(f"{source}: expected 1, 0, all, none or a comma-separated list of "
                         f"{', '.join(OPS)}; got {value!r} (unknown: {', '.join(unknown)})")
    return ops


def _from_env() -> frozenset[str] | None:
    global _env_cache
    value = os.environ.get(_ENV, "")
    if _env_cache is None or _env_cache[0] != value:
        _env_cache = (value, _parse(value, _ENV))
    return _env_cache[1]


def set_cuda_kernels(ops: bool | str | list[str] | None) -> None:
    """Choose, for this process, which ops run their compiled CUDA kernel on CUDA tensors.

    Args:
        ops: True (all), False (none, the twins), an op name or a list of op names (those), or None
            (back to ``PYGAN_CUDA_KERNELS`` and then the :data:`VERIFIED` table).

    Raises:
        ValueError: an unknown op name.
    """
    global _override
    if ops is None:
        value = None
    elif ops is True or ops is False:
        value = frozenset(OPS) if ops else frozenset()
    else:
        names = [ops] if isinstance(ops, str) else list(ops)
        value = _parse(",".join(names), "set_cuda_kernels") or frozenset()
    with _lock:
        _override = value


def cuda_kernel_enabled(op: str) -> bool:
    """Whether ``op`` runs its compiled CUDA kernel on CUDA tensors (else its twin)."""
    chosen = _override if _override is not None else _from_env()
    if chosen is None:
        return op in VERIFIED
    return op in chosen


def describe(op: str) -> str:
    """One line: which path ``op`` takes on CUDA tensors and why (``python -m pygan info`` prints it)."""
    if _override is not None:
        source = "set_cuda_kernels()"
    elif _from_env() is not None:
        source = f"{_ENV}={os.environ.get(_ENV)}"
    else:
        source = None
    if cuda_kernel_enabled(op):
        if source is None:
            return f"CUDA kernel (verified on a GPU: {VERIFIED[op]})"
        return f"CUDA kernel (opted in by {source})"
    if source is None:
        return f"pure-PyTorch twin (the kernel has not been verified on a GPU; {_ENV}=1 opts in)"
    return f"pure-PyTorch twin (chosen by {source})"


def warn_twin(op: str) -> None:
    """Warn once per op that CUDA tensors are taking the twin rather than the compiled kernel."""
    if op in _warned:
        return
    with _lock:
        if op in _warned:
            return
        _warned.add(op)
    from pygan._build import PyganExtensionWarning

    warnings.warn(
        f"pygan: {op} on CUDA tensors runs its pure-PyTorch twin (pygan.reference.{op}), not the "
        f"compiled CUDA kernel: {describe(op)}. See docs/ops.md, 'CUDA kernels'.",
        PyganExtensionWarning,
        stacklevel=4,
    )
