"""Minibatch discrimination (Salimans et al. 2016, section 3.2): :class:`MinibatchDiscrimination`."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from pygan import _validate as _v
from pygan.nn import _dist

__all__ = ["MinibatchDiscrimination"]

_WHERE = "MinibatchDiscrimination"


class MinibatchDiscrimination(nn.Module):
    r"""Minibatch discrimination (Salimans et al. 2016, section 3.2).

    For features :math:`f(x_i) \in \mathbb{R}^A` of the n samples of a batch and a learned tensor
    :math:`T \in \mathbb{R}^{A \times B \times C}` (``weight``):

    .. math::
        M_i = f(x_i)\,T \in \mathbb{R}^{B \times C}, \qquad
        c_b(x_i, x_j) = \exp(-\lVert M_{i,b} - M_{j,b} \rVert_1), \qquad
        o(x_i)_b = \sum_{j \ne i} c_b(x_i, x_j) + \text{bias}_b

    and the output is :math:`[f(x_i), o(x_i)] \in \mathbb{R}^{A + B}`. The sum excludes j = i, as the
    authors' released code does (it adds 1e6 to the diagonal distances before the exp); with
    ``include_self=True`` it includes it, which adds the constant exp(0) = 1 to every o(x_i)_b (the
    paper's formula read literally, and the authors' later TensorFlow code). The per-kernel ``bias``
    is the released code's (initialised there from data; here to 0).

    Initialisation: T ~ N(0, 1/A), so each column T[:, b, c] has norm ≈ 1, the scale the authors'
    weight-normalised T starts from.

    The batch is the tensor passed to :meth:`forward` (D is usually called on the real and on the
    generated batch separately; each is its own minibatch). Under data parallelism with
    ``global_batch=True`` (the default) the sum runs over the global batch, every process's rows: see
    the module docstring. The layer couples the samples of a batch, so a per-sample gradient penalty
    of a critic using it is no longer per sample.

    Args:
        in_features: A, the number of features of f(x) (inputs of more than 2 dimensions are
            flattened to [n, A] first, as in the authors' code).
        num_kernels: B, the number of similarity features appended.
        kernel_dim: C, the dimension of each kernel's projection.
        include_self: include the j = i term (a constant 1) in the sum.
        bias: learn a per-kernel bias added to o (initialised to 0).
        global_batch: under torch.distributed with more than one process, sum over all processes' rows.
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5, *,
                 include_self: bool = False, bias: bool = True, global_batch: bool = True):
        super().__init__()
        self.in_features = _v.integer(in_features, "in_features", _WHERE, low=1)
        self.num_kernels = _v.integer(num_kernels, "num_kernels", _WHERE, low=1)
        self.kernel_dim = _v.integer(kernel_dim, "kernel_dim", _WHERE, low=1)
        self.include_self, self.global_batch = bool(include_self), bool(global_batch)
        self.weight = nn.Parameter(torch.empty(self.in_features, self.num_kernels, self.kernel_dim))
        self.bias = nn.Parameter(torch.zeros(self.num_kernels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """T ~ N(0, 1/A); bias 0."""
        nn.init.normal_(self.weight, 0.0, 1.0 / math.sqrt(self.in_features))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Append the minibatch features.

        Args:
            x: [n, A] features (or [n, ...] with A values per sample, flattened).

        Returns:
            [n, A + B]: the flattened features followed by o(x_i).
        """
        _v.tensor(x, "x", _WHERE, min_dim=2)
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} features per sample, got shape {list(x.shape)}")
        m = (x @ self.weight.flatten(1)).view(-1, self.num_kernels, self.kernel_dim)  # [n, B, C]
        others = m
        if self.global_batch and _dist.world_size() > 1:
            _dist.check_equal_local_batches(x.shape[0], x.device)
            others = _dist.AllGatherRows.apply(m)
        dist_l1 = (m.unsqueeze(1) - others.unsqueeze(0)).abs().sum(-1)  # [n, N, B]
        c = torch.exp(-dist_l1)
        if not self.include_self:
            # This rank's rows sit at offset rank*n in the gathered batch; mask c, not the distances,
            # so the gradient of the masked terms is exactly 0.
            n = x.shape[0]
            offset = dist.get_rank() * n if others is not m else 0
            eye = torch.zeros(n, others.shape[0], dtype=torch.bool, device=x.device)
            idx = torch.arange(n, device=x.device)
            eye[idx, idx + offset] = True
            c = c.masked_fill(eye.unsqueeze(-1), 0.0)
        o = c.sum(1)  # [n, B]
        if self.bias is not None:
            o = o + self.bias
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}, "
                f"include_self={self.include_self}, bias={self.bias is not None}, global_batch={self.global_batch}")

