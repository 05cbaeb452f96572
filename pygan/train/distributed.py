"""Data parallelism without DDP's wrapper: explicit, flattened gradient all-reduce.

``torch.nn.parallel.DistributedDataParallel`` hooks the autograd graph to overlap communication with
backward; the double backward of a gradient penalty runs those hooks on a graph DDP did not plan for
(its documentation marks double backward unsupported). The trainer instead calls
:func:`all_reduce_gradients` after ``backward()``: every gradient is copied into one flat buffer,
summed across ranks with one ``all_reduce``, divided by the world size and copied back. One
collective per update, whatever the model's shape.

Launch with ``torchrun --nproc_per_node=N -m pygan train ...``: torchrun sets RANK / WORLD_SIZE /
MASTER_ADDR; :func:`init_from_env` starts gloo on CPU and nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = ["init_from_env", "rank", "world_size", "all_reduce_gradients", "all_reduce_mean",
           "broadcast_parameters", "any_flag", "barrier", "shutdown"]


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1); return (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        _import_before_init()
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _import_before_init() -> None:
    """Import the modules that would otherwise pin the default process group for good.

    ``torch.distributed.nn.functional`` declares its collectives with ``group=group.WORLD`` as a
    default argument, evaluated at import. torch imports it lazily: building the first optimiser
    imports ``torch._dynamo``, which imports FSDP, which imports it. Imported after
    ``init_process_group``, those ten defaults hold the default group, so ``destroy_process_group``
    cannot free it and join gloo's worker threads; at interpreter exit a worker still releasing the
    last collective's tensors then needs the GIL of a finalising interpreter and the process aborts
    ("terminate called without an active exception", SIGABRT, about 1 torchrun run in 8 on a 2-core
    machine). Imported first, the defaults are None and the group dies with ``shutdown()``.
    """
    import torch._dynamo  # noqa: F401  (imports torch.distributed.nn.functional through FSDP)
    import torch.distributed.nn.functional  # noqa: F401  (in case that chain changes)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over all ranks in one flattened all-reduce (no-op alone).

    A parameter without a gradient on this rank contributes zeros (and gets the average), so ranks
    never disagree on the buffer's layout.
    """
    if world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world_size())
    for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of a small tensor over ranks (a copy; no-op alone). A NaN on any rank gives NaN."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t.div_(world_size())


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op alone)."""
    if world_size() == 1:
        return
    tensors = [t.data for t in module.parameters()] + [b for b in module.buffers()]
    if not tensors:
        return
    flat = _flatten_dense_tensors(tensors)
    dist.broadcast(flat, 0)
    for t, v in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
        t.copy_(v)


def any_flag(flags: torch.Tensor) -> torch.Tensor:
    """Element-wise max of a small int tensor over ranks: one rank's stop request stops all of them."""
    if world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Destroy the default process group, joining gloo's worker threads (no-op alone).

    No barrier first: every collective is entered by every rank, so a rank that got past the last
    one leaves no peer waiting; and a rank leaving on an error or a second Ctrl-C must not wait for
    peers that may never come. See :func:`_import_before_init` for why the group must really die
    here and not at interpreter exit.
    """
    if world_size() > 1:
        dist.destroy_process_group()
