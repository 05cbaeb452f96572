"""The fused ops' fake (meta) kernels, for ``torch.compile``, FakeTensor and ``opcheck`` (a part of
:mod:`pygan.ops`, which registers the kernels of :data:`FAKES` once the compiled library has defined
the ops, through the loader's ``on_load`` hook).

Internal API (used by ``pygan.ops`` only).
"""

from __future__ import annotations

import torch

from pygan import _internal
from pygan import _ops_checks as op_args
from pygan import _validate as check

__all__ = ["FAKES", "sample_blocked"]

# clip_ and rmsprop_step_ only mutate their inputs in place and return nothing.
# They also run, as the meta kernels, when a meta tensor is among real ones in eager mode: the
# dispatcher then skips the real kernels, so that mix is refused here (pygan._validate.same_device).

def clip_fake(tensors, min, max):
    check.same_device(op_args.named([tensors], ["tensors"]), "clip_")


def rmsprop_step_fake(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
                      weight_decay, momentum, centered, maximize, clip_min, clip_max):
    lists = [params, grads, square_avgs, momentum_buffers, grad_avgs]
    check.same_device(op_args.named(lists, op_args.RMSPROP_LISTS), "rmsprop_step_")


# The fake kernels mirror the layouts the real kernels return (csrc/cpu/penalty_cpu.cpp): the
# input's strides when it is sample-blocked, contiguous otherwise.

def interpolate_fake(real, fake, alpha):
    if sample_blocked(real):
        return torch.empty_like(real)
    if sample_blocked(fake):
        return torch.empty_like(fake)
    return real.new_empty(real.shape)


def grad_penalty_fake(grads, center, one_sided, reduction):
    batch = grads.shape[0]
    penalty = grads.new_empty((batch,) if reduction == "none" else ())
    norms = grads.new_empty((batch,), dtype=_internal.accumulation_dtype(grads.dtype))
    return penalty, norms


def grad_penalty_backward_fake(grad_out, grads, norms, center, one_sided, reduction):
    return torch.empty_like(grads) if sample_blocked(grads) else grads.new_empty(grads.shape)


# Operator -> its fake kernel. pygan.ops registers them (torch requires the registration to come from
# the module csrc/pygan.cpp names in m.set_python_module, "pygan.ops").
FAKES = {
    "pygan::clip_": clip_fake,
    "pygan::rmsprop_step_": rmsprop_step_fake,
    "pygan::interpolate": interpolate_fake,
    "pygan::grad_penalty": grad_penalty_fake,
    "pygan::grad_penalty_backward": grad_penalty_backward_fake,
}


def sample_blocked(t: torch.Tensor) -> bool:
    """Whether ``t`` is laid out sample by sample (the Python twin of pygan::is_sample_blocked,
    csrc/penalty.cpp): the real kernels then return the input's strides, the fakes must too."""
    from torch._prims_common import is_non_overlapping_and_dense_or_false as is_non_overlapping_and_dense

    if not is_non_overlapping_and_dense(t):
        return False
    if t.dim() == 0 or t.shape[0] <= 1 or t.numel() == 0:
        return True
    return t.stride(0) == t.numel() // t.shape[0]
