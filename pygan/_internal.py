"""Helpers shared between pygan's own modules: a documented internal API, not part of the public one.

Each is used by more than one module (so none of them reaches into another module's private names);
they may change between releases without a deprecation period.

* :func:`accumulation_dtype`: what the fused kernels accumulate a reduction in (``pygan.reference``
  and the fake kernels in ``pygan.ops`` follow it).
* :func:`uniform`: U[0, 1) numbers for a device, drawn from a generator that may live elsewhere
  (``pygan.ops.interpolate``'s α and ``pygan.penalties.dragan_penalty``'s noise).
* :func:`increment_steps`: add 1 to optimizer step counters (``pygan.optim.ClippedRMSprop``).
"""

from __future__ import annotations

import torch

from pygan import _build

__all__ = ["accumulation_dtype", "uniform", "increment_steps"]

_REDUCED = (torch.float16, torch.bfloat16)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels accumulate sums of ``dtype`` values in (csrc/penalty.h).

    Args:
        dtype: a floating dtype.

    Returns:
        float32 for float16/bfloat16, float64 otherwise (so float32 norms of elements near 1e20
        stay finite).
    """
    return torch.float32 if dtype in _REDUCED else torch.float64


def uniform(shape, device: torch.device, dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) numbers on ``device``, drawn on the generator's device and moved.

    ``torch.rand(..., generator=g, device=d)`` refuses a generator on another device; drawing on the
    generator's device lets a CPU generator serve CUDA data and reproduce the same numbers.

    Args:
        shape: the result's shape (an int or a sequence of ints).
        device: where the result lives.
        dtype: its floating dtype.
        generator: the torch.Generator to draw from, or None for torch's default one on ``device``.

    Returns:
        A tensor of ``shape`` and ``dtype`` on ``device``.

    Raises:
        ValueError: a CPU generator asked for CUDA data while a CUDA graph is being captured.
    """
    source = generator.device if generator is not None else device
    if torch.device(source).type == "cpu" and torch.device(device).type == "cuda" and (
            torch.cuda.is_current_stream_capturing()):
        # The copy to the GPU would come from pageable host memory: illegal while capturing a graph.
        raise ValueError("generator: a CPU generator cannot draw for CUDA data while a CUDA graph is being "
                         "captured; pass a CUDA generator (torch.Generator('cuda')) or None")
    return torch.rand(shape, generator=generator, device=source, dtype=dtype).to(device, non_blocking=True)


def increment_steps(steps: list[torch.Tensor]) -> None:
    """Add 1 in place to each 0-d step counter (torch.optim keeps one per parameter).

    Plain CPU counters go through the extension's ``increment_`` (one C++ loop instead of one
    dispatch per tensor); without the extension, or under ``torch.compile``, ``torch._foreach_add_``.

    Args:
        steps: the counters, updated in place.
    """
    if not torch.compiler.is_compiling() and _build.module() is not None:
        _build.module().increment_(steps)
    else:
        torch._foreach_add_(steps, 1)
