"""The small protocol the trainer trains through."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from latentkit.core import Objective


@runtime_checkable
class TrainingTask(Protocol):
    """A batch and the global step in, a dict of named scalars with ``"loss"`` out.

    ``module`` holds every trainable parameter and is what checkpoints save. ``generator`` is the run's noise source
    (saved in checkpoints, so a resumed run draws the same noise as an uninterrupted one).
    """

    module: nn.Module

    def training_step(self, batch: Tensor, step: int, generator: torch.Generator | None) -> dict[str, Tensor]: ...


class VAETask:
    """Any model returning a :class:`~latentkit.core.ModelOutput`, trained with any :class:`~latentkit.core.Objective`."""

    def __init__(self, model: nn.Module, objective: Objective):
        self.module = model
        self.objective = objective

    def training_step(self, batch: Tensor, step: int, generator: torch.Generator | None) -> dict[str, Tensor]:
        return self.objective(batch, self.module(batch, generator=generator), step)
