"""The generic trainer: trains any (batch, step) → scalars task; knows no model and no recipe."""

from latentkit.train.run import Run
from latentkit.train.task import TrainingTask, VAETask
from latentkit.train.trainer import NumericalFault, Trainer

__all__ = ["NumericalFault", "Run", "Trainer", "TrainingTask", "VAETask"]
