"""What the trainer trains: a :class:`TrainingTask`, and the :class:`StepContext` each step hands it.

The trainer knows no model. It asks a task for the module to train (:attr:`TrainingTask.module`), any further trainable
parameters with their optimiser options (:meth:`TrainingTask.extra_parameter_groups`) and the modules holding them
(:meth:`TrainingTask.extra_modules`), and each step for named scalars with ``"loss"``
(:meth:`TrainingTask.training_step`). Nothing else: the protocol below is everything the trainer uses.
:class:`BaseTask` gives the defaults, so a task is a module and a ``training_step``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn

from latentkit.core import JointLatentVAE, Objective, StatisticsObjective
from latentkit.core.noise import SampleNoise
from latentkit.errors import ConfigError


class _GlobalMean(torch.autograd.Function):
    """Forward: ``sum over ranks of weight·x`` (this rank's batch means → the global batch's). Backward: ``weight·grad``:
    every rank evaluates the same loss on the same global means, so d loss / d (this rank's means) is ``weight`` times
    d loss / d (global means), and the ranks' parameter gradients then add up to the whole batch's."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: float, all_reduce_sum: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.weight = weight
        return all_reduce_sum(x * weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad * ctx.weight, None, None


def _identity(tensor: Tensor) -> Tensor:
    return tensor


@attrs.frozen
class StepContext:
    """What a training step needs to know beyond its batch and step: its noise and its place in the global batch.

    ``noise`` is keyed by (run seed, step, the global index of each of this process's rows in the step's batch), so a
    row draws the same values whichever process holds it, and a resumed run draws what an uninterrupted one would. It
    is computed when a step first reads it: a task that draws no noise pays nothing for it. :meth:`global_mean` turns
    this process's batch means into the whole batch's (the identity in one process).

    Attributes:
        rows: the global indices of this process's rows within the step's batch.
        batch_size: the rows of the step's whole (global) batch.
        seed: the run's seed.
        step: the global step (1-based).
        rank: this process's rank; ``world_size`` the number of processes.
        device: where ``noise`` keeps its keys (the training device).
    """

    rows: range  #: the global indices of this process's rows within the step's batch
    batch_size: int  #: the rows of the step's whole (global) batch
    seed: int = 0  #: the run's seed
    step: int = 0  #: the global step (1-based)
    rank: int = 0
    world_size: int = 1
    device: torch.device | str | None = None  #: where ``noise`` keeps its keys (the training device)
    _all_reduce_sum: Callable[[Tensor], Tensor] = attrs.field(default=_identity, alias="all_reduce_sum", repr=False)

    @classmethod
    def single(cls, seed: int, step: int, batch_size: int, device: torch.device | str | None = None) -> StepContext:
        """The context of a single process holding the whole batch (for calling a task's step by hand, in tests)."""
        return cls(range(batch_size), batch_size, seed=seed, step=step, device=device)

    @functools.cached_property
    def noise(self) -> SampleNoise:
        """One key per row of this process's batch (:class:`~latentkit.core.SampleNoise`)."""
        return SampleNoise.for_rows(self.seed, self.step, self.rows, device=self.device)

    def global_mean(self, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        """This process's batch means → the whole batch's, differentiably (the identity in a single process).

        Each entry must be a mean over this process's rows; the result is the size-weighted mean over all processes,
        and the gradient flowing back into ``stats`` is this process's share, so that the parameter gradients, summed
        over processes by the trainer, are those of one pass over the whole batch."""
        if self.world_size == 1:
            return dict(stats)
        names = list(stats)
        flat = torch.cat([stats[name].float().reshape(-1) for name in names])
        total = _GlobalMean.apply(flat, len(self.rows) / self.batch_size, self._all_reduce_sum)
        out, offset = {}, 0
        for name in names:
            size = stats[name].numel()
            out[name] = total[offset : offset + size].reshape(stats[name].shape).to(stats[name].dtype)
            offset += size
        return out


@runtime_checkable
class TrainingTask(Protocol):
    """A batch, the global step and a :class:`StepContext` in; a dict of named scalars with ``"loss"`` out.

    In a run over several processes each process's ``training_step`` sees its rows of the batch; the trainer sums the
    processes' gradients, so the ``"loss"`` of each must be its share of the whole batch's loss — as it is when the loss
    depends on the batch only through :meth:`StepContext.global_mean`.

    Why a protocol: the trainer knows no model; it optimises ``module`` and the groups of
    :meth:`extra_parameter_groups`, checkpoints ``module`` and :meth:`extra_modules`, and calls nothing else.
    :class:`BaseTask` gives the defaults (no extra parameters or modules); docs/trainer.md has two complete tasks.

    Attributes:
        module: the model being trained: its parameters are the optimiser's first group; checkpoints save it as
            ``model.safetensors``.
    """

    #: the model being trained: its parameters are the optimiser's first group; checkpoints save it as model.safetensors
    module: nn.Module

    def training_step(self, batch: Tensor, step: int, context: StepContext) -> dict[str, Tensor]:
        """Named scalars of this batch, ``"loss"`` (differentiable) among them; the trainer calls ``backward``."""
        ...

    def extra_parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups beyond ``module``'s (``{"params": [...], "lr": ..., "betas": ...}``); ``[]``:
        none. Their parameters must belong to :meth:`extra_modules`, which checkpoints save."""
        ...

    def extra_modules(self) -> dict[str, nn.Module]:
        """Modules trained beside ``module`` (a discriminator), by name: moved to the device, checkpointed as
        ``NAME.safetensors`` and restored on resume; ``{}``: none."""
        ...


class BaseTask:
    """Defaults for a :class:`TrainingTask`: no extra parameters. A subclass sets ``module`` and ``training_step``."""

    module: nn.Module

    def training_step(self, batch: Tensor, step: int, context: StepContext) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement training_step(batch, step, context)")

    def extra_parameter_groups(self) -> list[dict]:
        return []

    def extra_modules(self) -> dict[str, nn.Module]:
        return {}


class VAETask(BaseTask):
    """A :class:`~latentkit.core.JointLatentVAE` trained with any :class:`~latentkit.core.Objective`.

    An objective's own trainable state (:meth:`~latentkit.core.Objective.trainable`, e.g. FactorVAE's discriminator) is
    the extra module ``"objective"`` (``objective.safetensors`` in checkpoints), in its own parameter group with the
    objective's :meth:`~latentkit.core.Objective.optimizer_options`.
    """

    def __init__(self, model: JointLatentVAE, objective: Objective, seed: int = 0):
        self.module = model
        self.objective = objective
        objective.attach(model, seed)
        self._objective_state = objective.trainable()

    def extra_modules(self) -> dict[str, nn.Module]:
        return {} if self._objective_state is None else {"objective": self._objective_state}

    def extra_parameter_groups(self) -> list[dict]:
        if self._objective_state is None:
            return []
        return [{"params": list(self._objective_state.parameters()), **self.objective.optimizer_options()}]

    def training_step(self, batch: Tensor, step: int, context: StepContext) -> dict[str, Tensor]:
        # The latent's step-dependent state (an annealed temperature) is a pure function of the step, set before the
        # forward pass, so a resumed run matches an uninterrupted one (LatentFamily.at_step).
        self.module.latent.at_step(step)
        output = self.module(batch, noise=context.noise)
        if isinstance(self.objective, StatisticsObjective):
            stats = context.global_mean(self.objective.statistics(batch, output))
            return self.objective.from_statistics(stats, step)
        if context.world_size > 1:
            raise ConfigError(
                "training over several processes evaluates the objective on the global batch's means, so it needs an "
                f"objective that is a latentkit.core.StatisticsObjective (as jointvae); {type(self.objective).__name__} "
                "is not: train it with a single process"
            )
        return self.objective(batch, output, step)
