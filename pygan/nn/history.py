"""Historical averaging (Salimans et al. 2016, section 3.3): :class:`HistoricalAverage`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from pygan import _validate as _v

__all__ = ["HistoricalAverage"]

_WHERE = "HistoricalAverage"


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
        self.weight = _v.number(weight, "weight", _WHERE, low=0.0)
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
        _v.integer(count, "state['count']", _WHERE, low=1)
        if not isinstance(means, (list, tuple)) or len(means) != len(self.params):
            raise ValueError(f"state['means']: expected {len(self.params)} tensors, got "
                             f"{len(means) if isinstance(means, (list, tuple)) else type(means).__name__}")
        for i, (m, p) in enumerate(zip(means, self.params)):
            if not isinstance(m, torch.Tensor) or m.shape != p.shape:
                raise ValueError(f"state['means'][{i}]: expected a tensor of shape {list(p.shape)}, got "
                                 f"{list(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__}")
        self.count = int(count)
        self.means = [m.detach().to(device=p.device, dtype=p.dtype).clone() for m, p in zip(means, self.params)]
