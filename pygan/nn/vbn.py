"""Virtual batch normalisation (Salimans et al. 2016, section 3.4): :class:`VirtualBatchNorm` and
:class:`ReferenceBatch`, which runs a network with its fixed reference batch."""

from __future__ import annotations

import torch
from torch import nn

from pygan import _validate as _v

__all__ = ["VirtualBatchNorm", "ReferenceBatch"]

_WHERE, _WHERE_REF = "VirtualBatchNorm", "ReferenceBatch"


class VirtualBatchNorm(nn.Module):
    r"""Virtual batch normalisation (Salimans et al. 2016, section 3.4).

    Each example x is normalised by the statistics of the set {reference batch} ∪ {x}: a reference
    batch of n examples chosen once at the start of training, plus x itself, pooled per channel over
    the examples and their spatial positions (each example weighs the same, 1/(n+1)). For channel k,
    with μ_r, σ²_r the reference batch's mean and biased variance and μ_x, σ²_x the example's own over
    its spatial positions (for [N, C] inputs: μ_x = x_k, σ²_x = 0):

    .. math::
        \mu = \tfrac{n}{n+1}\mu_r + \tfrac{1}{n+1}\mu_x, \qquad
        \sigma^2 = \tfrac{n}{n+1}\left(\sigma_r^2 + (\mu_r - \mu)^2\right)
                 + \tfrac{1}{n+1}\left(\sigma_x^2 + (\mu_x - \mu)^2\right),

        y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta .

    (The same pooled statistics as the authors' code, which forms them from means of x and x²; the
    variance is combined here from centred terms, which loses less precision in float32.) The
    reference batch itself is normalised by its own statistics, as in batch norm.

    As in the authors' code, the reference statistics are recomputed at every forward pass with the
    current weights: run the network through :class:`ReferenceBatch`, which prepends the fixed
    reference inputs to every batch (gradients flow through the reference statistics too). Each such
    pass also stores the statistics in the buffers ``reference_mean``, ``reference_var`` and
    ``reference_size`` (so they are in ``state_dict()`` and checkpoints); called outside
    :class:`ReferenceBatch`, the layer normalises with those stored statistics, without gradient
    through them, and raises RuntimeError if no reference pass has run yet.

    An example's output depends only on itself and the reference batch, never on the rest of its
    batch, so data-parallel runs equal one process as long as every process holds the same
    reference batch.

    Args:
        num_features: C, the channels (dimension 1 of the input).
        eps: added to the variance.
        affine: learn γ (init 1) and β (init 0) per channel.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features = _v.integer(num_features, "num_features", _WHERE, low=1)
        self.eps = _v.number(eps, "eps", _WHERE, low=0.0, low_open=True)
        self.affine = bool(affine)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if affine else None
        self.register_buffer("reference_mean", torch.zeros(self.num_features))
        self.register_buffer("reference_var", torch.ones(self.num_features))
        self.register_buffer("reference_size", torch.tensor(0, dtype=torch.long))
        # Set by ReferenceBatch for the length of one forward pass: the first n rows are the reference.
        self.reference_rows: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise.

        Args:
            x: [N, C] or [N, C, *spatial]; inside :class:`ReferenceBatch`, its first rows are the reference.

        Returns:
            The normalised tensor, same shape.
        """
        _v.tensor(x, "x", _WHERE, min_dim=2)
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels in dimension 1, got shape {list(x.shape)}")
        spatial = tuple(range(2, x.dim()))
        view = (1, -1) + (1,) * len(spatial)
        n = self.reference_rows
        parts = []
        if n is None:
            if int(self.reference_size) == 0:
                raise RuntimeError("VirtualBatchNorm has no reference statistics yet: run the network "
                                   "through pygan.nn.ReferenceBatch (or load a state_dict) first")
            n = int(self.reference_size)
            ref_mean, ref_var, examples = self.reference_mean.to(x.dtype), self.reference_var.to(x.dtype), x
        else:
            if x.shape[0] < n:
                raise ValueError(f"x: expected the {n} reference rows first, got shape {list(x.shape)}")
            ref, examples = x[:n], x[n:]
            dims = (0,) + spatial
            ref_mean = ref.mean(dims)
            ref_var = (ref - ref_mean.view(view)).square().mean(dims)
            with torch.no_grad():
                self.reference_mean.copy_(ref_mean)
                self.reference_var.copy_(ref_var)
                self.reference_size.fill_(n)
            parts.append((ref - ref_mean.view(view)) / torch.sqrt(ref_var + self.eps).view(view))
        if examples.shape[0] > 0:
            ex_mean = examples.mean(spatial) if spatial else examples  # [B, C]
            ex_var = ((examples - ex_mean.view(*ex_mean.shape, *(1,) * len(spatial))).square().mean(spatial)
                      if spatial else torch.zeros_like(examples))
            w_new = 1.0 / (n + 1)
            w_ref = n * w_new
            mean = w_ref * ref_mean + w_new * ex_mean
            var = w_ref * (ref_var + (ref_mean - mean).square()) + w_new * (ex_var + (ex_mean - mean).square())
            tail = (1,) * len(spatial)
            parts.append((examples - mean.view(*mean.shape, *tail)) / torch.sqrt(var + self.eps).view(*var.shape, *tail))
        else:
            parts.append(examples)
        y = torch.cat(parts) if len(parts) > 1 else parts[0]
        if self.affine:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, affine={self.affine}"


class ReferenceBatch(nn.Module):
    """Runs a network containing :class:`VirtualBatchNorm` layers with its fixed reference batch.

    ``forward(x)`` evaluates ``module(cat([reference, x]))`` with every VirtualBatchNorm layer told
    that the first n rows are the reference, and returns the rows of x only. The reference inputs
    (for a generator: the reference noise z_ref, drawn once) are a buffer, so they are in
    ``state_dict()`` and checkpoints, and a resumed run uses the same ones. Under data parallelism
    every process must hold the same reference (draw it from the same seed): each process then
    computes the same reference statistics and each example's output equals one process's.

    Args:
        module: the network; it must contain at least one VirtualBatchNorm and keep dimension 0 as
            the batch dimension.
        reference: [n, ...] the reference inputs (n >= 1), same trailing shape as the inputs.
    """

    def __init__(self, module: nn.Module, reference: torch.Tensor):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        if not any(isinstance(m, VirtualBatchNorm) for m in module.modules()):
            raise ValueError("module: expected a network with at least one VirtualBatchNorm layer, found none")
        _v.tensor(reference, "reference", _WHERE_REF, min_dim=1)
        if reference.shape[0] < 1:
            raise ValueError(f"reference: expected at least one reference example, got shape {list(reference.shape)}")
        if not torch.isfinite(reference).all():
            raise ValueError("reference: contains NaN or infinite values")
        self.module = module
        self.register_buffer("reference", reference.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, ...] inputs. Returns: module's output for x's rows (the reference rows dropped)."""
        _v.tensor(x, "x", _WHERE_REF, min_dim=1)
        if x.shape[1:] != self.reference.shape[1:]:
            raise ValueError(f"x: expected inputs of shape [B, {', '.join(map(str, self.reference.shape[1:]))}] "
                             f"like the reference, got {list(x.shape)}")
        n = self.reference.shape[0]
        layers = [m for m in self.module.modules() if isinstance(m, VirtualBatchNorm)]
        for layer in layers:
            layer.reference_rows = n
        try:
            out = self.module(torch.cat([self.reference.to(device=x.device, dtype=x.dtype), x]))
        finally:
            for layer in layers:
                layer.reference_rows = None
        return out[n:]

