"""The thin trainer: GAN / NS-GAN / WGAN / WGAN-GP (and one-sided, R1, finite-difference) on toy or
user data, with the exact W1 logged, pictures, atomic checkpoints, resume and data parallelism.

* :class:`Trainer`: bring your own generator, critic, optimisers and data iterator.
* :class:`TrainConfig` + :func:`run`: what ``python -m pygan train`` does, from Python.

See docs/train.md.
"""

from pygan.train.cli import TrainConfig, build, run
from pygan.train.data import TOY_DATASETS, load_data_file, toy_sample
from pygan.train.losses import LOSSES
from pygan.train.trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged", "TrainConfig", "build", "run", "LOSSES", "TOY_DATASETS",
           "load_data_file", "toy_sample"]
