"""The small protocol the trainer trains through."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from latentkit.core import Objective, StatisticsObjective


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

    def splits(self) -> bool:
        """Whether a batch can be computed in parts (the objective is a function of batch means)."""
        return isinstance(self.objective, StatisticsObjective)

    def training_step_in_parts(
        self,
        batch: Tensor,
        step: int,
        generator: torch.Generator | None,
        parts: int,
        map_fn: Callable[[Callable[[int], Any], Iterable[int]], Iterator[Any]] = map,
    ) -> dict[str, Tensor]:
        """Forward and backward of ``batch`` in ``parts`` slices (run by ``map_fn``, e.g. a thread pool's ``map``);
        returns the scalars, with the gradients of the whole batch's loss accumulated in the parameters.

        Each part's batch means are combined, weighted by size, into the batch's; the objective runs once on those, and
        each part back-propagates its share of d loss / d statistics — the gradient of one pass over the batch (up to
        float rounding), with non-linear terms such as ``|KL − C|`` applied to the whole batch. Each part draws its
        noise from its own generator, seeded from ``generator`` in a fixed order, so a run is reproducible and resumes
        exactly.
        """
        chunks = [c for c in batch.tensor_split(min(parts, batch.shape[0])) if c.shape[0]]
        seeds = torch.randint(0, 2**62, (len(chunks),), generator=generator, device=batch.device).tolist()
        weights = [c.shape[0] / batch.shape[0] for c in chunks]

        def forward(i: int) -> dict[str, Tensor]:
            part_gen = torch.Generator(device=batch.device).manual_seed(int(seeds[i]))
            return self.objective.statistics(chunks[i], self.module(chunks[i], generator=part_gen))

        stats = list(map_fn(forward, range(len(chunks))))
        names = list(stats[0])
        combined = {}
        for name in names:
            value = sum(w * part[name].detach() for w, part in zip(weights, stats))
            combined[name] = value.requires_grad_(any(part[name].requires_grad for part in stats))
        logs = self.objective.from_statistics(combined, step)
        leaves = [name for name in names if combined[name].requires_grad]
        grads = torch.autograd.grad(logs["loss"], [combined[n] for n in leaves], allow_unused=True)

        def backward(i: int) -> None:
            pairs = [(stats[i][n], g * weights[i]) for n, g in zip(leaves, grads) if g is not None and stats[i][n].requires_grad]
            if pairs:
                torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])

        list(map_fn(backward, range(len(chunks))))
        return logs
