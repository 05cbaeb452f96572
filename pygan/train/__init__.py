"""The thin trainer: GAN / NS-GAN / WGAN / WGAN-GP (and one-sided, R1, finite-difference) on toy or
user data, with the exact W1 logged, pictures, atomic checkpoints, resume and data parallelism.

* :class:`Trainer`: bring your own generator, critic, optimisers and data iterator.
* :class:`TrainConfig` + :func:`run`: what ``python -m pygan train`` does, from Python.

Modules: ``config`` (the options), ``assemble`` (a run from a config), ``step`` (one training step),
``trainer`` (the run around it), ``checkpoint`` (checkpoint and metrics files), ``rundir`` (the run
directory's lock), ``data``, ``models``, ``losses``, ``graphs`` (CUDA graphs), ``distributed``,
``plots``, ``progress``, ``cpu`` (threads), ``cli`` (the command line). Conditional models (a class-
conditional GAN, InfoGAN, pix2pix): ``cond_setup``, ``cond_step``, ``cond_data``, ``cond_eval``,
``cond_plots`` on ``conditional``, ``infogan``, ``pix2pix``, ``paired``, ``cond_metrics``
(docs/conditional.md). See docs/train.md.
"""

from pygan.train.assemble import build, make_optimizers, run
from pygan.train.config import TrainConfig
from pygan.train.data import TOY_DATASETS, load_data_file, toy_sample
from pygan.train.losses import LOSSES
from pygan.train.trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged", "TrainConfig", "build", "run", "make_optimizers", "LOSSES",
           "TOY_DATASETS", "load_data_file", "toy_sample"]
