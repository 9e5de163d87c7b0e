"""The objective protocol: one override point per objective (disentanglement_lib's lesson).

An objective maps a batch, the model's output and the global step to a dict of named scalars. The entry ``"loss"`` is
what the optimiser minimises; every other entry is for logging. The step arrives as an argument, never as hidden state,
so the same objective evaluated at the same step gives the same value after a resume.
"""

from __future__ import annotations

import abc

from torch import Tensor

from latentkit.core.model import ModelOutput


class Objective(abc.ABC):
    objective_name = ""

    @abc.abstractmethod
    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        """Named scalars; ``"loss"`` is the value to minimise."""
