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

The layers live in one module per family (:mod:`pygan.nn.minibatch`, :mod:`pygan.nn.vbn`,
:mod:`pygan.nn.losses`, :mod:`pygan.nn.history`); import them from ``pygan.nn``.
"""

from __future__ import annotations

from pygan.nn.history import HistoricalAverage
from pygan.nn.losses import feature_matching_loss, label_smoothing_loss
from pygan.nn.minibatch import MinibatchDiscrimination
from pygan.nn.vbn import ReferenceBatch, VirtualBatchNorm

__all__ = ["MinibatchDiscrimination", "VirtualBatchNorm", "ReferenceBatch", "HistoricalAverage",
           "feature_matching_loss", "label_smoothing_loss"]
