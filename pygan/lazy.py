"""Lazy regularisation: a penalty computed on one call in ``every``, scaled by ``every``.

:class:`LazyRegularizer` wraps any of the penalties of :mod:`pygan.penalties` (where it is also
importable from, and as ``pygan.LazyRegularizer``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan import _validate as check

__all__ = ["LazyRegularizer"]


class LazyRegularizer:
    """Lazy regularisation (StyleGAN2): compute a penalty every ``every`` calls, scaled by ``every``.

    The penalty's expected contribution per step is unchanged while its cost is paid once in
    ``every`` steps. Calls that are not due return 0.0 (a float), so ``loss + lazy(...)`` always
    works; check :attr:`due` to skip preparing the penalty's inputs on the other steps. The count is
    part of ``state_dict()`` so a resumed run keeps the same schedule.

    Example::

        lazy_r1 = pygan.LazyRegularizer(pygan.r1_penalty, every=16)
        loss = d_loss + lazy_r1(critic, real, gamma=10.0)   # 16 * R1 on calls 1, 17, 33, ...

    Args:
        penalty: the penalty function (e.g. ``pygan.r1_penalty``); called with the arguments given
            to this object.
        every: apply it on one call in ``every`` (>= 1; 1 applies it on every call, unscaled).
    """

    def __init__(self, penalty: Callable[..., torch.Tensor], every: int):
        if not callable(penalty):
            raise TypeError(f"LazyRegularizer: penalty must be callable, got {type(penalty).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"LazyRegularizer: every must be an int >= 1, got {every!r}")
        self.penalty = penalty
        self.every = every
        self.calls = 0

    @property
    def due(self) -> bool:
        """Whether the next call computes the penalty."""
        return self.calls % self.every == 0

    def __call__(self, *args, **kwargs) -> torch.Tensor | float:
        due = self.due
        self.calls += 1
        if not due:
            return 0.0
        value = self.penalty(*args, **kwargs)
        return value * self.every if self.every != 1 else value

    def state_dict(self) -> dict:
        return {"calls": self.calls, "every": self.every}

    def load_state_dict(self, state: dict) -> None:
        """Restore the call count saved by :meth:`state_dict`.

        Args:
            state: ``{"calls": int >= 0, "every": int}`` ("every" optional; it must match this one's).

        Raises:
            TypeError / ValueError: state not a dict, "calls" missing or not an int >= 0, or saved with
            another ``every``; nothing is changed.
        """
        where = "LazyRegularizer.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{where}: state must be a dict from state_dict(), got {type(state).__name__}")
        if "calls" not in state:
            raise ValueError(f"{where}: state must have the key 'calls' (an int >= 0, as state_dict() "
                             f"writes), got the keys {sorted(map(str, state))}")
        calls = check.integer(state["calls"], "state['calls']", where, low=0)
        if state.get("every", self.every) != self.every:
            raise ValueError(f"LazyRegularizer: the state was saved with every={state['every']}, "
                             f"this regulariser has every={self.every}")
        self.calls = calls
