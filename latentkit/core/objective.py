"""The objective protocol: one override point per objective (disentanglement_lib's lesson).

An objective maps a batch, the model's output and the global step to a dict of named scalars. The entry ``"loss"`` is
what the optimiser minimises; every other entry is for logging. The step arrives as an argument, never as hidden state,
so the same objective evaluated at the same step gives the same value after a resume.

**Batch statistics (optional).** Most VAE objectives are a function of a few *batch means* — the mean reconstruction
term, each unit's mean KL — passed through something non-linear (JointVAE's ``γ·|KL − C|``). Such an objective can say
so by implementing :meth:`StatisticsObjective.statistics` (the batch means, differentiable) and
:meth:`StatisticsObjective.from_statistics` (the scalars, from batch means). Training over several processes
(``torchrun``) needs it: each process computes its rows' means, the training task combines them into the whole batch's
(:meth:`latentkit.train.StepContext.global_mean`), evaluates the objective once on them, and each process
back-propagates its share of the gradient — the gradient of one pass over the whole batch, with the non-linearity
applied to the whole batch's means, not to each process's.
"""

from __future__ import annotations

import abc

from torch import Tensor, nn

from latentkit.core.model import ModelOutput


class Objective(abc.ABC):
    """Named scalars from a batch, the model's output and the step; ``"loss"`` is what the optimiser minimises.

    **Trainable state (optional).** An objective may own parameters of its own — FactorVAE's discriminator — by
    returning them as a module from :meth:`trainable`. The training task hands that module to the trainer as its extra
    module ``"objective"`` (:meth:`latentkit.train.TrainingTask.extra_modules`), which optimises it together with the
    model in its own Adam parameter group (:meth:`optimizer_options`: e.g. another learning rate and betas), moves it to
    the device, saves it in every checkpoint (``objective.safetensors``) and restores it on resume. The objective's ``"loss"`` must then be the sum
    of the model's loss and the state's own loss, each part reaching only its own parameters (evaluate the state on
    detached inputs for its loss, and with detached parameters inside the model's loss), so one backward pass and one
    optimiser step train both.

    **Built by a factory.** A plugin registers a factory (a function or a class) that receives the objective's own
    options and, of ``latent``, ``image_shape``, ``registry`` and ``dataset_size``, only those its signature names; an
    objective built on another gets it from ``registry.build_objective`` / ``registry.extend_objective``.

    Attributes:
        objective_name: the name it is registered under (set by subclasses).
    """

    objective_name = ""

    @abc.abstractmethod
    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        """Named scalars; ``"loss"`` is the value to minimise."""

    def trainable(self) -> nn.Module | None:
        """Parameters this objective trains alongside the model (``None``: none)."""
        return None

    def optimizer_options(self) -> dict:
        """Adam options (``lr``, ``betas``, ...) of the parameter group of :meth:`trainable`; ``{}``: the model's."""
        return {}

    def attach(self, model: nn.Module, seed: int) -> None:
        """Called once by the training task, before the first step, with the model being trained and the run's seed.

        Most objectives need nothing beyond the forward pass they are given and ignore it. One that needs another pass
        — the encoding of an augmented view of the batch — keeps ``model``; one that draws noise of its own seeds it
        from ``(seed, step)``, so that a resumed run draws what an uninterrupted one would have drawn."""


class StatisticsObjective(Objective):
    """An objective that is a function of batch means; ``__call__`` is ``from_statistics(statistics(...))``.

    Why: over several processes each process computes its rows' :meth:`statistics`, the training task combines them
    into the whole batch's (:meth:`latentkit.train.StepContext.global_mean`) and :meth:`from_statistics` applies the
    non-linearity once, to the whole batch — the gradient of one pass over it. The contract: a batch's statistics are
    the size-weighted mean of its parts'. A plain :class:`Objective` trains in one process only.
    """

    @abc.abstractmethod
    def statistics(self, x: Tensor, output: ModelOutput) -> dict[str, Tensor]:
        """Batch means (each a tensor of any fixed shape), differentiable with respect to the model.

        The statistics of a batch must equal the size-weighted mean of the statistics of its parts."""

    @abc.abstractmethod
    def from_statistics(self, stats: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """Named scalars (with ``"loss"``) from the batch means of :meth:`statistics`."""

    def __call__(self, x: Tensor, output: ModelOutput, step: int) -> dict[str, Tensor]:
        return self.from_statistics(self.statistics(x, output), step)
