"""CUDA graphs for the trainer step (``Trainer(cuda_graphs=True)``, ``pygan train --cuda-graphs``).

A CUDA graph records a sequence of kernel launches once and replays it with one launch, which removes
the CPU's launch cost: for the small toy models a step is hundreds of tiny kernels, so that cost is
most of the step on a GPU. The trainer records two graphs after a few eager warm-up steps: one critic
update (the noise and α draws, G's forward, the critic's forward and double backward, the penalty,
the optimiser step) and one generator update. A replay computes exactly what the eager update
computes: the same kernels on the same inputs, and the draws come from the trainer's own
``torch.Generator`` registered with the graphs (graph-safe RNG), which replays advance as the eager
draws would. The real batch is copied into a static buffer before each critic replay; the EMA, the
learning rates, the divergence check and everything on the host stay eager.

What a graph cannot hold is refused up front, with the reason (:func:`unsupported`): anything but a
CUDA device; Python numbers that change between steps (``lr_decay``, instance noise's σ, lazy
regularisation's schedule); collectives across processes; optimisers that are not capturable (pass
``torch.optim.Adam(..., capturable=True)``; ``pygan train`` does); batches whose shape changes.

Nothing here has run on a GPU yet: this project's machines have none (docs/train.md says so).
"""

from __future__ import annotations

import torch

__all__ = ["WARMUP_STEPS", "unsupported", "StepGraphs"]

WARMUP_STEPS = 3  # eager steps before capture: optimiser state, cuBLAS handles, autograd's streams


def unsupported(device: torch.device, *, world: int = 1, lr_decay: str = "none", instance_noise: float = 0.0,
                lazy_every: int = 1, optimizers=()) -> list[str]:
    """Why the trainer step cannot be captured in CUDA graphs here (an empty list: it can).

    Args:
        device: the models' device.
        world: the number of processes.
        lr_decay, instance_noise, lazy_every: the trainer's schedules (constant ones only).
        optimizers: the generator's and the critic's optimisers.
    """
    reasons = []
    if device.type != "cuda":
        reasons.append(f"they need a CUDA device; the models are on {device}")
    elif not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        reasons.append(f"this torch ({torch.__version__}) cannot replay draws from a torch.Generator in a graph")
    if world > 1:
        reasons.append("data parallelism is not supported with them (the all-reduce stays eager)")
    if lr_decay != "none":
        reasons.append("lr_decay changes the learning rate every step")
    if instance_noise:
        reasons.append("instance noise's σ changes every step")
    if lazy_every != 1:
        reasons.append("lazy regularisation changes the critic update from one update to the next")
    for opt in optimizers:
        if not all(group.get("capturable", False) for group in opt.param_groups):
            reasons.append(f"{type(opt).__name__} is not capturable (create it with capturable=True, e.g. "
                           "torch.optim.Adam(..., capturable=True))")
    return reasons


class StepGraphs:
    """The captured critic and generator updates of one trainer, and their replays.

    Args:
        generator: the trainer's torch.Generator (registered with both graphs).
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.eager_steps = 0
        self.captured = False
        self.static_real: torch.Tensor | None = None
        self.critic_graph: torch.cuda.CUDAGraph | None = None
        self.generator_graph: torch.cuda.CUDAGraph | None = None
        self.critic_out: tuple[torch.Tensor, torch.Tensor] | None = None
        self.generator_out: torch.Tensor | None = None
        self._side = None

    def warmup_stream(self):
        """The side stream the eager warm-up steps run on (as torch's capture recipe asks)."""
        if self._side is None:
            self._side = torch.cuda.Stream()
        self._side.wait_stream(torch.cuda.current_stream())
        return torch.cuda.stream(self._side)

    def end_warmup_step(self) -> None:
        torch.cuda.current_stream().wait_stream(self._side)
        self.eager_steps += 1

    def capture(self, critic_step, generator_step, real: torch.Tensor, batch: int) -> None:
        """Record the two updates. Capturing runs nothing, and the generator's state is restored, so
        the first replay computes what the next eager update would have.

        Args:
            critic_step: ``critic_step(real)`` does one critic update on ``real`` and returns
                (loss, penalty).
            generator_step: ``generator_step(batch)`` does one generator update; returns its loss.
            real: a real batch of the shape every later batch must have.
            batch: the generator update's batch size.
        """
        self.static_real = real.detach().clone()
        state = self.generator.get_state()
        torch.cuda.synchronize()
        self.critic_graph, self.generator_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        for graph in (self.critic_graph, self.generator_graph):
            graph.register_generator_state(self.generator)
        with torch.cuda.graph(self.critic_graph):
            self.critic_out = critic_step(self.static_real)
        with torch.cuda.graph(self.generator_graph):
            self.generator_out = generator_step(batch)
        torch.cuda.synchronize()
        self.generator.set_state(state)
        self.captured = True

    def critic(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay the critic update on ``real``; returns its (loss, penalty), overwritten by the next replay."""
        if real.shape != self.static_real.shape or real.dtype != self.static_real.dtype:
            raise ValueError(f"cuda_graphs: a real batch of shape {list(real.shape)} ({real.dtype}); the graphs "
                             f"were captured for {list(self.static_real.shape)} ({self.static_real.dtype}): "
                             "every batch must have the same shape (drop the last incomplete batch)")
        self.static_real.copy_(real, non_blocking=True)
        self.critic_graph.replay()
        return self.critic_out

    def generator_update(self) -> torch.Tensor:
        """Replay the generator update; returns its loss (overwritten by the next replay)."""
        self.generator_graph.replay()
        return self.generator_out
