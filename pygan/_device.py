"""``--device`` parsing shared by ``python -m pygan train`` and ``python -m pygan experiment``."""

from __future__ import annotations

import os

import torch

__all__ = ["parse_device"]


def parse_device(name: str, error: type[ValueError] = ValueError) -> torch.device:
    """Turn a ``--device`` value into a ``torch.device``, refusing one this machine cannot use.

    Args:
        name: ``auto`` (CUDA when available, else the CPU) or anything ``torch.device`` accepts
            (``cpu``, ``cuda``, ``cuda:1``). Under torchrun ``auto`` picks ``cuda:LOCAL_RANK``, so
            each rank gets its own GPU; without torchrun that is ``cuda:0``.
        error: the ValueError subclass to raise (each CLI maps its own to exit code 2).

    Returns:
        The device.

    Raises:
        error: ``name`` is not a device, or names CUDA on a machine / torch build without it.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise error(f"--device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"--device {name!r}: CUDA is not available in this torch build / machine")
    return dev
