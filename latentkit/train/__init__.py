"""The generic trainer: trains any :class:`TrainingTask` — a module and a ``(batch, step, context) → scalars`` step —
and knows no model and no recipe. Its public API (see docs/trainer.md):

* :class:`TrainingTask` (the protocol), :class:`BaseTask` (its defaults), :class:`StepContext` (what a step is handed),
  :class:`VAETask` (a :class:`~latentkit.core.JointLatentVAE` with an objective);
* :class:`TrainConfig` (the trainer's settings), :class:`Trainer` (``Trainer(task, data, config, directory, hooks)``,
  ``resume_from_latest()``, ``fit()``), :class:`Run` (the view of a run that hooks receive);
* :class:`NumericalFault`, :class:`Interrupted` (how a run stops early).

It imports only latentkit's core, plugin hook specifications, data containers, errors and small foundation modules
(tests/test_import_rules.py checks it), never the assembly that builds runs from recipes.
"""

from latentkit.train.config import TrainConfig
from latentkit.train.run import Run
from latentkit.train.task import BaseTask, StepContext, TrainingTask, VAETask
from latentkit.train.trainer import Interrupted, NumericalFault, Trainer

__all__ = [
    "BaseTask",
    "Interrupted",
    "NumericalFault",
    "Run",
    "StepContext",
    "TrainConfig",
    "Trainer",
    "TrainingTask",
    "VAETask",
]
