"""The small protocol the trainer trains through."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from latentkit.core import BatchRows, Objective, StatisticsObjective


@runtime_checkable
class TrainingTask(Protocol):
    """A batch and the global step in, a dict of named scalars with ``"loss"`` out.

    ``module`` holds every trainable parameter and is what checkpoints save. ``generator`` is the run's noise source
    (saved in checkpoints, so a resumed run draws the same noise as an uninterrupted one).
    """

    module: nn.Module
    #: optional: ``auxiliary`` (an ``nn.Module`` of further trainable parameters, checkpointed beside ``module``) and
    #: ``auxiliary_options`` (their Adam parameter group's options)

    def training_step(self, batch: Tensor, step: int, generator: torch.Generator | None) -> dict[str, Tensor]: ...


class VAETask:
    """Any model returning a :class:`~latentkit.core.ModelOutput`, trained with any :class:`~latentkit.core.Objective`."""

    def __init__(self, model: nn.Module, objective: Objective, seed: int = 0):
        self.module = model
        self.objective = objective
        if hasattr(objective, "attach"):
            objective.attach(model, seed)
        #: parameters the objective trains beside the model (a discriminator), or None; see Objective.trainable
        self.auxiliary: nn.Module | None = objective.trainable() if hasattr(objective, "trainable") else None
        self.auxiliary_options: dict = objective.optimizer_options() if self.auxiliary is not None else {}

    def training_step(self, batch: Tensor, step: int, generator: torch.Generator | None) -> dict[str, Tensor]:
        self._at_step(step)
        return self.objective(batch, self.module(batch, generator=generator), step)

    def _at_step(self, step: int) -> None:
        """Let the model's latent set its step-dependent state (an annealed temperature) before the forward pass: a
        pure function of the step, so a resumed run matches an uninterrupted one (LatentFamily.at_step)."""
        latent = getattr(self.module, "latent", None)
        if hasattr(latent, "at_step"):
            latent.at_step(step)

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
        float rounding), with non-linear terms such as ``|KL − C|`` applied to the whole batch. Each part's noise is its
        rows of the whole batch's draw (:class:`~latentkit.core.BatchRows`), so the result does not depend on the number
        of parts, and ``generator`` ends where one pass would leave it.
        """
        self._at_step(step)  # once, before the parts' threads start
        chunks = [c for c in batch.tensor_split(min(parts, batch.shape[0])) if c.shape[0]]
        starts = [0]
        for c in chunks:
            starts.append(starts[-1] + c.shape[0])
        weights = [c.shape[0] / batch.shape[0] for c in chunks]
        # Every part draws the whole batch's noise from a copy of the generator and keeps its rows: the noise of one
        # pass over the batch, whatever the number of parts; the run's generator then advances as one pass would.
        states = generator.get_state() if generator is not None else None

        def forward(i: int) -> tuple[dict[str, Tensor], Tensor | None]:
            part_gen = None
            if states is not None:
                part_gen = torch.Generator(device=generator.device)
                part_gen.set_state(states)
            rows = BatchRows(starts[i], chunks[i].shape[0], batch.shape[0])
            out = self.objective.statistics(chunks[i], self.module(chunks[i], generator=part_gen, rows=rows))
            return out, (part_gen.get_state() if part_gen is not None else None)

        results = list(map_fn(forward, range(len(chunks))))
        stats = [r[0] for r in results]
        if generator is not None:  # every part drew the whole batch's noise: move on as one pass would have
            generator.set_state(results[0][1])
        names = list(stats[0])
        combined = {}
        for name in names:
            value = sum(w * part[name].detach() for w, part in zip(weights, stats))
            combined[name] = value.requires_grad_(any(part[name].requires_grad for part in stats))
        return backward_shares(self.objective, stats, combined, step, weights, map_fn)

    def training_step_distributed(
        self,
        module: nn.Module,
        batch: Tensor,
        step: int,
        generator: torch.Generator | None,
        rows: BatchRows,
        all_reduce_sum: Callable[[Tensor], Tensor],
        world_size: int,
    ) -> dict[str, Tensor]:
        """This rank's forward and backward of its ``rows`` of the global batch through ``module`` (the
        DistributedDataParallel wrapper, which averages parameter gradients across ranks); the statistics are summed
        across ranks (``all_reduce_sum``) before the objective sees them, so the scalars are the global batch's."""
        self._at_step(step)
        stats = self.objective.statistics(batch, module(batch, generator=generator, rows=rows))
        weight = rows.count / rows.total
        names = list(stats)
        flat = torch.cat([stats[n].detach().float().reshape(-1) for n in names]) * weight
        flat = all_reduce_sum(flat)
        combined, offset = {}, 0
        for name in names:
            size = stats[name].numel()
            value = flat[offset : offset + size].reshape(stats[name].shape).to(stats[name].dtype).clone()
            combined[name] = value.requires_grad_(stats[name].requires_grad)
            offset += size
        # DDP averages the ranks' gradients; each rank's share is weight * d loss, so scale by the world size.
        return backward_shares(self.objective, [stats], combined, step, [weight * world_size])


def backward_shares(
    objective: StatisticsObjective,
    parts: list[dict[str, Tensor]],
    combined: dict[str, Tensor],
    step: int,
    scales: list[float],
    map_fn: Callable[[Callable[[int], Any], Iterable[int]], Iterator[Any]] = map,
) -> dict[str, Tensor]:
    """Evaluate ``objective`` on the ``combined`` statistics (leaves), and back-propagate into each part's statistics
    its share: d loss / d statistics times ``scales[i]``. Returns the objective's scalars."""
    logs = objective.from_statistics(combined, step)
    leaves = [name for name in combined if combined[name].requires_grad]
    grads = torch.autograd.grad(logs["loss"], [combined[n] for n in leaves], allow_unused=True)

    def backward(i: int) -> None:
        pairs = [(parts[i][n], g * scales[i]) for n, g in zip(leaves, grads) if g is not None and parts[i][n].requires_grad]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])

    list(map_fn(backward, range(len(parts))))
    return logs
