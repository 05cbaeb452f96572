"""Metrics for conditional models: InfoGAN's code accuracy and the exact W1 per class.

* :func:`code_accuracy`: InfoGAN learns its categorical codes without labels, so code k need not
  mean class k. The accuracy is taken after the best one-to-one matching of codes to classes:
  ``max_pi (1/n) sum_i [pi(code_i) = class_i]`` over bijections pi. The matching is a K x K
  assignment problem, solved exactly by pygan's own transport solver: with uniform marginals 1/K
  and cost ``-counts`` the transport polytope is the Birkhoff polytope (scaled by 1/K), whose
  vertices are the permutation matrices, and the network simplex returns a vertex.
* :func:`w1_per_class`: for each class k, the exact W1 (``pygan.ot.emd2_points``, Euclidean cost,
  uniform weights) between the samples generated with label k and the real samples of class k.
"""

from __future__ import annotations

import numbers

import torch

from pygan.train.conditional import check_labels

__all__ = ["confusion_counts", "best_matching", "code_accuracy", "w1_per_class"]


def confusion_counts(codes, classes, num_codes: int | None = None, num_classes: int | None = None) -> torch.Tensor:
    """counts[k, j] = the number of samples with code k and class j, as float64 [K, J].

    K and J default to 1 + the largest value seen.
    """
    codes = check_labels(codes, num_codes, name="codes", where="code_accuracy").cpu()
    classes = check_labels(classes, num_classes, codes.shape[0], name="classes", where="code_accuracy").cpu()
    if codes.numel() == 0:
        raise ValueError("code_accuracy: codes: expected at least one sample, got 0")
    k = num_codes if num_codes is not None else int(codes.max()) + 1
    j = num_classes if num_classes is not None else int(classes.max()) + 1
    counts = torch.zeros(k * j, dtype=torch.float64)
    counts.index_add_(0, codes * j + classes, torch.ones(codes.shape[0], dtype=torch.float64))
    return counts.view(k, j)


def best_matching(counts: torch.Tensor) -> torch.Tensor:
    """The permutation pi maximising ``sum_k counts[k, pi[k]]`` of a square [K, K] matrix, exactly.

    Solved as the transport problem ``emd(1/K, 1/K, -counts)``; its optimal vertex is a permutation
    matrix divided by K (checked here, so a non-vertex plan would raise rather than mislead).

    Returns:
        pi as int64 [K].
    """
    from pygan import ot
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"best_matching: counts: expected a non-empty square matrix, got shape {list(counts.shape)}")
    k = counts.shape[0]
    uniform = torch.full((k,), 1.0 / k, dtype=torch.float64)
    plan = ot.emd(uniform, uniform, -counts.to(torch.float64))
    perm = plan.argmax(dim=1)
    # NOTE: a vertex of the scaled Birkhoff polytope has exactly one 1/K per row and column.
    if not (torch.sort(perm).values.equal(torch.arange(k)) and torch.allclose(plan.max(dim=1).values, uniform)):
        raise RuntimeError("best_matching: the transport solver returned a plan that is not a permutation")
    return perm


def code_accuracy(codes, classes, num_codes: int | None = None, num_classes: int | None = None) -> float:
    """The share of samples whose code maps to their class under the best one-to-one matching.

    Args:
        codes: [n] integer codes (InfoGAN's categorical code of each sample, e.g. Q's argmax, or the
            code a sample was generated with).
        classes: [n] integer true classes (e.g. the toy set's mode nearest to each sample).
        num_codes, num_classes: the ranges (default: 1 + the largest value). With K != J the
            smaller side is padded, so every class can be matched to at most one code and vice versa.

    Returns:
        A float in [0, 1].
    """
    counts = confusion_counts(codes, classes, num_codes, num_classes)
    k, j = counts.shape
    size = max(k, j)
    square = torch.zeros(size, size, dtype=torch.float64)
    square[:k, :j] = counts
    perm = best_matching(square)
    return float(square[torch.arange(size), perm].sum() / counts.sum())


def w1_per_class(generated: torch.Tensor, labels_gen, real: torch.Tensor, labels_real,
                 num_classes: int | None = None) -> list[float]:
    """The exact W1 between generated and real samples of each class.

    Args:
        generated: [n, ...] samples (flattened to vectors per sample); labels_gen: [n] their labels.
        real: [m, ...] held-out real samples; labels_real: [m] their classes.
        num_classes: K (default: 1 + the largest label in either).

    Returns:
        ``[W1_0, ..., W1_{K-1}]`` as floats.

    Raises:
        ValueError: a class with no generated or no real sample (its W1 is undefined).
    """
    from pygan import ot
    where = "w1_per_class"
    if not isinstance(generated, torch.Tensor) or not isinstance(real, torch.Tensor):
        raise TypeError(f"{where}: generated and real: expected tensors, got {type(generated).__name__} "
                        f"and {type(real).__name__}")
    if generated.dim() < 1 or real.dim() < 1:
        raise ValueError(f"{where}: generated and real: expected batches [n, ...], got 0-d")
    lg = check_labels(labels_gen, num_classes, generated.shape[0], name="labels_gen", where=where).cpu()
    lr = check_labels(labels_real, num_classes, real.shape[0], name="labels_real", where=where).cpu()
    if num_classes is None:
        if lg.numel() == 0 and lr.numel() == 0:
            raise ValueError(f"{where}: labels_gen and labels_real: expected samples, got none")
        num_classes = 1 + max(int(lg.max()) if lg.numel() else -1, int(lr.max()) if lr.numel() else -1)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"{where}: num_classes: expected an int >= 1, got {num_classes!r}")
    gen = generated.detach().reshape(generated.shape[0], -1).cpu().to(torch.float64)
    ref = real.detach().reshape(real.shape[0], -1).cpu().to(torch.float64)
    if gen.shape[1] != ref.shape[1]:
        raise ValueError(f"{where}: generated and real: sample sizes differ ({gen.shape[1]} and {ref.shape[1]})")
    out = []
    for k in range(num_classes):
        g, r = gen[lg == k], ref[lr == k]
        if g.shape[0] == 0 or r.shape[0] == 0:
            which = "labels_gen" if g.shape[0] == 0 else "labels_real"
            raise ValueError(f"{where}: {which}: class {k} has no sample")
        out.append(float(ot.emd2_points(g, r)))
    return out
