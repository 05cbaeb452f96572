"""Collectives with gradients for the batch-coupled layers (used only when torch.distributed runs
more than one process; see the package docstring for what "the batch" is then)."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["world_size", "AllGatherRows", "AllReduceSum", "check_equal_local_batches"]


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class AllGatherRows(torch.autograd.Function):
    """cat over ranks of each rank's [n, ...] rows; backward: the summed gradients of this rank's rows.

    Every rank's loss depends on every rank's rows, so the gradient of rank s's rows is the sum over
    ranks r of dL_r/d(rows of s): one all_reduce of the whole gradient, then this rank's slice.
    all_reduce is used (not reduce_scatter) because gloo has no reduce_scatter.
    """

    @staticmethod
    def forward(ctx, x):
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        lo, hi = ctx.rows
        return grad[lo:hi]


class AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward: the sum over ranks of the gradients (every rank's loss uses the sum)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def check_equal_local_batches(n: int, device: torch.device) -> None:
    """all_gather needs the same row count on every rank; a mismatch would be an obscure error or a hang."""
    sizes = torch.tensor([n], dtype=torch.long, device=device)
    parts = [torch.empty_like(sizes) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, sizes)
    counts = [int(p) for p in parts]
    if len(set(counts)) > 1:
        raise ValueError(f"x: every process must pass the same batch size to MinibatchDiscrimination "
                         f"with global_batch=True, got {counts}")

