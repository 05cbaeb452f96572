"""Evaluation of conditional runs: the metrics in ``metrics.jsonl`` and the classifier behind
``class_accuracy``.

* Class labels: ``w1`` (exact, all generated vs all held-out samples), ``w1_per_class`` (the exact
  W1 of each class: the samples generated with label k against the held-out real ones of class k,
  ``pygan.ot.emd2_points``; None for a class with no held-out sample), and on images
  ``class_accuracy``: the share of generated samples that a classifier fit on the real training
  split labels with the class they were generated for.
* InfoGAN: ``w1`` and ``code_accuracy``: the categorical code each evaluation sample was generated
  with against its true class (the nearest mode of a toy set, or the classifier's label of an
  image), after the best one-to-one matching of codes to classes
  (:func:`pygan.train.cond_metrics.code_accuracy`, exact).
* pix2pix: ``l1`` = E|b - G(a)| on the held-out pairs (without λ) and ``w1`` between G(a) and b.

Every evaluation uses fixed inputs (the trainer's evaluation noise, the held-out labels), so the
numbers of two runs, or of a run and its resumption, are comparable step by step.
"""

from __future__ import annotations

import math

import torch

from pygan import ot
from pygan.train.losses import critic_objective

__all__ = ["Classifier", "evaluate_labels", "evaluate_infogan", "evaluate_pix2pix", "nearest_centre"]

_CHUNK = 512  # samples generated at once at evaluation


class Classifier:
    """Multinomial logistic regression on standardised flattened samples, fit by full-batch L-BFGS.

    Deterministic: the weights start at zero and the objective (mean cross-entropy + ``l2``·||W||²)
    is convex, so the fit depends on the data alone (no random draw; the global RNG is untouched).

    Args:
        x: training samples [N, ...]; y: their classes [N] in [0, num_classes).
        num_classes: K.
        steps: L-BFGS iterations.
        l2: the weight decay.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, *, steps: int = 200, l2: float = 1e-3):
        feats = x.detach().reshape(x.shape[0], -1).double().cpu()
        self.mean = feats.mean(0)
        self.std = feats.std(0).clamp_min(1e-3) if feats.shape[0] > 1 else torch.ones_like(self.mean)
        f = (feats - self.mean) / self.std
        y = y.cpu()
        self.W = torch.zeros(f.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
        self.b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([self.W, self.b], lr=1.0, max_iter=steps, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(f @ self.W + self.b, y) + l2 * (self.W ** 2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.W, self.b = self.W.detach(), self.b.detach()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The most likely class of each sample [N] (int64, on the CPU)."""
        f = (x.detach().reshape(x.shape[0], -1).double().cpu() - self.mean) / self.std
        return (f @ self.W + self.b).argmax(dim=1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The share of samples it labels correctly."""
        return float((self.predict(x) == y.cpu()).double().mean()) if x.shape[0] else math.nan


def nearest_centre(centres: torch.Tensor):
    """A labelling of points by their nearest centre [K, d] (the true class of a toy mode)."""
    def label(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x.detach().double().cpu(), centres.double()).argmin(dim=1)
    return label


def _generate(fn, *inputs) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(*parts) for parts in zip(*(t.split(_CHUNK) for t in inputs))])


def _w1(fake: torch.Tensor, real: torch.Tensor) -> float:
    return float(ot.emd2_points(fake.flatten(1).double(), real.flatten(1).double(), metric="euclidean"))


def _space(real: torch.Tensor) -> str:
    return "flattened pixels" if real.dim() > 2 else "points"


def evaluate_labels(trainer, cond) -> dict:
    """The metrics of a class-conditional run (module docstring); rank 0, eval_data present."""
    G = cond.generator_for_eval(trainer)
    real, y = trainer.eval_data, cond.eval_labels.to(trainer.device)
    fake = _generate(G, trainer.eval_z, y)
    per_class = []
    for k in range(cond.num_classes):
        mask = y == k
        per_class.append(_w1(fake[mask], real[mask]) if bool(mask.any()) else None)
    with torch.no_grad():
        estimate = -float(critic_objective(trainer.spec.family, _generate(trainer.D, real, y).reshape(-1),
                                           _generate(trainer.D, fake, y).reshape(-1)))
    record = {"w1": _w1(fake, real), "w1_samples": int(real.shape[0]), "w1_space": _space(real),
              "critic_estimate": estimate, "w1_per_class": per_class}
    if cond.classifier is not None:
        record["class_accuracy"] = cond.classifier.accuracy(fake, y)
    return record


def infogan_eval_latents(trainer, codes):
    """The fixed evaluation latents of an InfoGAN run, from the trainer's evaluation noise: z' its
    first columns, categorical codes i mod K (balanced), continuous codes erf(z/√2) in (-1, 1)
    (uniform) of its last columns."""
    from pygan.train.infogan import LatentCodes

    z = trainer.eval_z
    n = z.shape[0]
    cat = torch.arange(n, device=z.device) % codes.categorical if codes.categorical else None
    cont = torch.erf(z[:, codes.latent_dim - codes.continuous:] / math.sqrt(2)) if codes.continuous else None
    c = LatentCodes(cat, cont)
    return codes.join(z[:, :codes.noise_dim], c), c


def evaluate_infogan(trainer, cond) -> dict:
    """The metrics of an InfoGAN run (module docstring)."""
    from pygan.train.cond_metrics import code_accuracy

    G = cond.generator_for_eval(trainer)
    latent, c = infogan_eval_latents(trainer, cond.codes)
    fake = _generate(G, latent)
    real = trainer.eval_data
    with torch.no_grad():
        estimate = -float(critic_objective(trainer.spec.family, _generate(trainer.D, real).reshape(-1),
                                           _generate(trainer.D, fake).reshape(-1)))
    record = {"w1": _w1(fake, real), "w1_samples": int(real.shape[0]), "w1_space": _space(real),
              "critic_estimate": estimate, "code_accuracy": None}
    if cond.eval_classes is not None and c.categorical is not None:
        classes = cond.eval_classes(fake)
        record["code_accuracy"] = code_accuracy(c.categorical.cpu(), classes, cond.codes.categorical,
                                                cond.num_classes)
    return record


def evaluate_pix2pix(trainer, cond) -> dict:
    """The metrics of a pix2pix run (module docstring)."""
    G = cond.generator_for_eval(trainer)
    a, b = cond.eval_inputs, trainer.eval_data
    fake = _generate(G, a)
    with torch.no_grad():
        estimate = -float(critic_objective(trainer.spec.family, _generate(trainer.D.score, a, b).reshape(-1),
                                           _generate(trainer.D.score, a, fake).reshape(-1)))
    return {"w1": _w1(fake, b), "w1_samples": int(b.shape[0]), "w1_space": _space(b), "critic_estimate": estimate,
            "l1": float((fake - b).abs().mean())}
