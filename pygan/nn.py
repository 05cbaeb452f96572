"""Reusable GAN layers and loss terms: the training tricks of Salimans et al. 2016.

From *Improved Techniques for Training GANs* (T. Salimans, I. Goodfellow, W. Zaremba, V. Cheung,
A. Radford, X. Chen, NeurIPS 2016, arXiv:1606.03498), section 3:

* :func:`feature_matching_loss`: ``||E f(x) - E f(G(z))||²`` on an intermediate layer f of D;
* :class:`MinibatchDiscrimination`: D sees how close each sample is to the others of its batch;
* :class:`HistoricalAverage`: ``W ||θ - (1/t) Σ_i θ_i||²``;
* :func:`label_smoothing_loss`: one-sided label smoothing of the discriminator's BCE loss;
* :class:`VirtualBatchNorm` (+ :class:`ReferenceBatch`): normalisation by a fixed reference batch.

"The batch" under data parallelism (``torch.distributed`` initialised with more than one process,
each process holding a slice of one global batch, gradients averaged across processes): the layers
and losses that couple the samples of a batch use the *global* batch, so N processes with batch B
compute what one process with batch N·B computes. :class:`MinibatchDiscrimination` gathers every
process's projections ``M`` (equal local batch sizes required, and checked), and
:func:`feature_matching_loss` averages the features over every process's samples; both through
collectives that carry gradients back to the process that owns each sample. Pass
``global_batch=False`` to keep them local. :class:`VirtualBatchNorm` normalises each example by the
reference batch and that example only, so it needs no communication: every process must hold the
same reference batch (draw it from the same seed). See docs/nn.md.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["MinibatchDiscrimination", "VirtualBatchNorm", "ReferenceBatch", "HistoricalAverage",
           "feature_matching_loss", "label_smoothing_loss"]


# ---------------------------------------------------------------------------------------------------
# argument checks ("name: expected ..., got ...")

def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{']' if hi < math.inf else ')'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return v


def _check_float_tensor(name: str, x, min_dim: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name}: expected at least {min_dim} dimension(s) [batch, ...], got shape {list(x.shape)}")
    return x


# ---------------------------------------------------------------------------------------------------
# collectives with gradients (only used when torch.distributed runs more than one process)

def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllGatherRows(torch.autograd.Function):
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


class _AllReduceSum(torch.autograd.Function):
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


def _check_equal_local_batches(n: int, device: torch.device) -> None:
    """all_gather needs the same row count on every rank; a mismatch would be an obscure error or a hang."""
    sizes = torch.tensor([n], dtype=torch.long, device=device)
    parts = [torch.empty_like(sizes) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, sizes)
    counts = [int(p) for p in parts]
    if len(set(counts)) > 1:
        raise ValueError(f"x: every process must pass the same batch size to MinibatchDiscrimination "
                         f"with global_batch=True, got {counts}")


# ---------------------------------------------------------------------------------------------------
# minibatch discrimination

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
        self.in_features = _check_int("in_features", in_features, 1)
        self.num_kernels = _check_int("num_kernels", num_kernels, 1)
        self.kernel_dim = _check_int("kernel_dim", kernel_dim, 1)
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
        _check_float_tensor("x", x, 2)
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} features per sample, got shape {list(x.shape)}")
        m = (x @ self.weight.flatten(1)).view(-1, self.num_kernels, self.kernel_dim)  # [n, B, C]
        others = m
        if self.global_batch and _world_size() > 1:
            _check_equal_local_batches(x.shape[0], x.device)
            others = _AllGatherRows.apply(m)
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


# ---------------------------------------------------------------------------------------------------
# virtual batch norm

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
        self.num_features = _check_int("num_features", num_features, 1)
        self.eps = _check_real("eps", eps, 0.0, lo_open=True)
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
        _check_float_tensor("x", x, 2)
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
        _check_float_tensor("reference", reference, 1)
        if reference.shape[0] < 1:
            raise ValueError(f"reference: expected at least one reference example, got shape {list(reference.shape)}")
        if not torch.isfinite(reference).all():
            raise ValueError("reference: contains NaN or infinite values")
        self.module = module
        self.register_buffer("reference", reference.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, ...] inputs. Returns: module's output for x's rows (the reference rows dropped)."""
        _check_float_tensor("x", x, 1)
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


# ---------------------------------------------------------------------------------------------------
# feature matching, label smoothing

def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor, *,
                          global_batch: bool = True) -> torch.Tensor:
    r"""Feature matching (Salimans et al. 2016, section 3.1): :math:`\lVert E f(x) - E f(G(z)) \rVert_2^2`.

    The expectations are means over the batch (dimension 0); the norm is the squared L2 norm over all
    remaining dimensions (summed, not averaged: the authors' code averages over the features, which
    only divides by their number). f is an intermediate layer of the discriminator, e.g.
    :meth:`pygan.train.dcgan.DCGANDiscriminator.features`. The generator minimises this instead of
    its usual loss. Nothing is detached: compute ``real_features`` under ``torch.no_grad()`` (or
    detach them) when only the generator should receive gradients.

    Under data parallelism with ``global_batch=True`` (the default) both means run over the global
    batch (every process's rows, any local sizes) and every process returns the same value; with
    gradients averaged across processes, the update equals one process's.

    Args:
        real_features: [n, ...] features of real samples (n >= 1).
        fake_features: [m, ...] features of generated samples (m >= 1), same trailing shape.
        global_batch: under torch.distributed with more than one process, average over all processes.

    Returns:
        A 0-d tensor.
    """
    _check_float_tensor("real_features", real_features, 1)
    _check_float_tensor("fake_features", fake_features, 1)
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(f"real_features and fake_features: expected the same per-sample shape, got "
                         f"{list(real_features.shape)} and {list(fake_features.shape)}")
    if real_features.dtype != fake_features.dtype:
        raise TypeError(f"real_features and fake_features: expected the same dtype, got "
                        f"{real_features.dtype} and {fake_features.dtype}")
    means = []
    for name, f in (("real_features", real_features), ("fake_features", fake_features)):
        f = f.flatten(1) if f.dim() > 1 else f.unsqueeze(1)
        total, count = f.sum(0), f.shape[0]
        if global_batch and _world_size() > 1:
            total = _AllReduceSum.apply(total)
            count_t = torch.tensor([count], dtype=torch.long, device=f.device)
            dist.all_reduce(count_t)
            count = int(count_t)
        if count == 0:
            raise ValueError(f"{name}: expected at least one sample, got shape {list(f.shape)}")
        means.append(total / count)
    return (means[0] - means[1]).square().sum()


def label_smoothing_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 0.9) -> torch.Tensor:
    r"""The discriminator's BCE loss with one-sided label smoothing (Salimans et al. 2016, section 3.4).

    Real samples get the target s = ``real_target`` instead of 1; generated samples keep 0 (smoothing
    them too would reward D for ranking generated samples as partly real where the data is absent,
    the paper's reason for one-sided smoothing). With logits :math:`\ell` and ``D = sigmoid(ℓ)``:

    .. math::
        L_D = \operatorname{mean}_i\left[s\,\operatorname{softplus}(-\ell_i^{real})
              + (1-s)\,\operatorname{softplus}(\ell_i^{real})\right]
              + \operatorname{mean}_j \operatorname{softplus}(\ell_j^{fake}),

    i.e. :math:`-[s\log D + (1-s)\log(1-D)]` on real and :math:`-\log(1-D)` on generated samples,
    written with softplus so it is stable for large logits. s = 1 is the plain GAN discriminator loss.
    The generator's loss is unchanged.

    Args:
        d_real: [n] or [n, 1] logits of real samples (n >= 1).
        d_fake: [m] or [m, 1] logits of generated samples (m >= 1).
        real_target: s in (0, 1].

    Returns:
        A 0-d tensor.
    """
    s = _check_real("real_target", real_target, 0.0, 1.0, lo_open=True)
    scores = []
    for name, d in (("d_real", d_real), ("d_fake", d_fake)):
        _check_float_tensor(name, d, 1)
        if d.dim() > 2 or (d.dim() == 2 and d.shape[1] != 1):
            raise ValueError(f"{name}: expected one logit per sample, [n] or [n, 1], got shape {list(d.shape)}")
        if d.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one sample, got shape {list(d.shape)}")
        scores.append(d.reshape(-1))
    real, fake = scores
    real_term = s * F.softplus(-real) + (1.0 - s) * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


# ---------------------------------------------------------------------------------------------------
# historical averaging

class HistoricalAverage:
    r"""Historical averaging (Salimans et al. 2016, section 3.3): :math:`W \lVert \theta - \tfrac1t \sum_{i=1}^t \theta_i \rVert^2`.

    Keeps the running mean of a list of parameters over the t snapshots recorded so far: the values
    at construction (t = 1) and after every :meth:`update` (call it after each optimiser step). The
    running mean is a constant for the penalty (no gradient flows into it), so the penalty's
    gradient is 2W(θ - mean). The squared norm is summed over all the parameters.

    The state (t and the means) is in :meth:`state_dict`, for checkpoints. Under data parallelism
    every process holds the same parameters, hence the same means: nothing to communicate.

    Args:
        params: the parameters (an iterable of tensors, or an nn.Module: its parameters()).
        weight: W >= 0.
    """

    def __init__(self, params, weight: float):
        self.weight = _check_real("weight", weight, 0.0)
        if isinstance(params, nn.Module):
            params = params.parameters()
        if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
            raise TypeError(f"params: expected an iterable of tensors or an nn.Module, got {type(params).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError("params: expected at least one parameter, got an empty list")
        for i, p in enumerate(self.params):
            if not isinstance(p, torch.Tensor) or not p.is_floating_point():
                what = p.dtype if isinstance(p, torch.Tensor) else type(p).__name__
                raise TypeError(f"params[{i}]: expected a floating-point tensor, got {what}")
        self.count = 1
        self.means = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Record the parameters' current values: t += 1 and mean += (θ - mean) / t."""
        self.count += 1
        for mean, p in zip(self.means, self.params):
            mean.lerp_(p.detach(), 1.0 / self.count)

    def penalty(self) -> torch.Tensor:
        """W · Σ_p ||p - mean_p||² (0-d tensor, differentiable with respect to the parameters)."""
        total = sum((p - mean).square().sum() for p, mean in zip(self.params, self.means))
        return self.weight * total

    def state_dict(self) -> dict:
        """``{"count": t, "means": [tensors]}`` (copies)."""
        return {"count": self.count, "means": [m.clone() for m in self.means]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (the same parameter list: count, shapes and dtypes checked)."""
        if not isinstance(state, dict) or set(state) != {"count", "means"}:
            raise ValueError(f"state: expected a dict with keys 'count' and 'means', got {state!r:.80}")
        count, means = state["count"], state["means"]
        _check_int("state['count']", count, 1)
        if not isinstance(means, (list, tuple)) or len(means) != len(self.params):
            raise ValueError(f"state['means']: expected {len(self.params)} tensors, got "
                             f"{len(means) if isinstance(means, (list, tuple)) else type(means).__name__}")
        for i, (m, p) in enumerate(zip(means, self.params)):
            if not isinstance(m, torch.Tensor) or m.shape != p.shape:
                raise ValueError(f"state['means'][{i}]: expected a tensor of shape {list(p.shape)}, got "
                                 f"{list(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__}")
        self.count = int(count)
        self.means = [m.detach().to(device=p.device, dtype=p.dtype).clone() for m, p in zip(means, self.params)]
