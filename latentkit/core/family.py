"""The latent-family protocol.

A *family* describes one kind of latent unit (a Gaussian coordinate, a categorical variable, ...). An instance of a
family class is configured into a *channel* (``GumbelSoftmax(sizes=[2, 2, 2])``) and is the only object that knows how
its encoder features become distribution parameters, how to sample, and what its KL to the prior is.

The design follows ``torch.distributions``: a family is a small object, parameters are plain tensors held in a dict, and
the analytic KL is the family's job. What JointVAE adds is a *capacity bound* — the largest KL to its prior one channel
can carry (``inf`` for a Gaussian, ``Σ log K`` for categoricals) — which the objective uses to clip capacity schedules,
and *traversal values* for visualisation.

Families may depend on other channels (a mixture prior whose component is another channel's category, as in VaDE or
GMVAE). Such a family lists the channels it reads in :attr:`LatentFamily.depends_on`; every method that involves the
prior receives a :class:`LatentContext` holding the other channels' parameters and samples, so the core never needs to
know about the dependency.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import Tensor, nn

from latentkit.core.noise import SampleNoise
from latentkit.validation import check, positive_int

#: The distribution parameters of one channel for a batch, by name (e.g. ``{"mean": ..., "logvar": ...}``).
#: Every tensor's first dimension is the batch.
Params = dict[str, Tensor]


@attrs.frozen
class LatentContext:
    """What a channel may read of the *other* channels of the same joint latent.

    ``params`` always holds every channel's parameters. ``samples`` holds the values drawn so far: during
    :meth:`JointLatent.prior_sample` only channels earlier in dependency order are present.
    """

    params: Mapping[str, Params] = attrs.field(factory=dict)
    samples: Mapping[str, Tensor] = attrs.field(factory=dict)


class LatentFamily(nn.Module, abc.ABC):
    """One channel of a joint latent: ``unit_count`` units of one family, configured.

    Subclasses are ``nn.Module`` so that a family with learnable prior parameters (a GMM prior) keeps them in the
    model's state dict. Shapes below use ``B`` for the batch.

    Contract (checked for every registered family by :mod:`latentkit.testing`):

    * ``kl(params, ctx)`` is the analytic KL of the posterior to the prior per unit, shape ``(B, unit_count)``, finite,
      non-negative, 0 at the prior, at most :meth:`capacity_bound` summed over units;
    * it agrees with a Monte-Carlo estimate ``E[log_posterior - log_prior]`` over :meth:`sample_posterior` draws;
    * ``rsample`` is differentiable with respect to ``params`` (``has_rsample``);
    * **the row rule**: ``rsample(params, noise)`` takes all its randomness from ``noise`` (a :class:`SampleNoise`
      with one key per row), and a row's draw depends only on that row's parameters and its key — never on the other
      rows of the batch. A rejection sampler draws attempt ``t`` of a row with ``draw=t`` from
      ``noise.select(pending)`` for the rows still pending, so a row takes the same attempts whatever the batch.
      Why: the trainer keys each row by (run seed, step, global sample index), so a batch split across processes,
      or resumed, draws exactly what one pass over the whole batch draws;
    * :meth:`prior_sample` draws from the family's own prior (checked by Monte Carlo against :meth:`log_prior` and
      :meth:`log_posterior`), and :meth:`sample_posterior` from the posterior;
    * for a family without ``depends_on``, encoder features of zeros give the prior (so KL is 0 there);
    * :meth:`prior_sample` and :meth:`sample_posterior` use only the ``generator`` passed in (outside training no
      per-row keys are needed);
    * :meth:`neutral_value` is a point of the prior's support (traversals hold the other units there).

    A family with ``depends_on`` must read only ``context.params`` in :meth:`kl` (during training the context's samples
    are relaxed, not exact); the conformance suite builds it beside the channels named by its optional classmethod
    ``conformance_parents(config) -> {name: LatentFamily}``.

    The constructor's keyword arguments are the family's options (validate them with :mod:`latentkit.validation`;
    bad values raise :class:`~latentkit.errors.ConfigError`); override :meth:`example_configs` when it needs any.
    docs/plugins.md states the whole contract with a complete example.

    Attributes:
        family_name: the name the family is registered under (set by subclasses).
        has_rsample: True when :meth:`rsample` is reparametrised (gradients reach the parameters).
        is_discrete: True when units take values in a finite set and :meth:`categories` is defined.
        depends_on: the channels whose parameters or samples this family's prior reads (default none).
    """

    #: Name under which the family is registered; set by subclasses.
    family_name: ClassVar[str] = ""
    #: True when :meth:`rsample` is reparametrised (gradients reach the parameters).
    has_rsample: ClassVar[bool] = True
    #: True when units take values in a finite set and :meth:`categories` is defined.
    is_discrete: ClassVar[bool] = False
    #: Names of the channels whose parameters or samples this family's prior depends on.
    depends_on: tuple[str, ...] = ()

    # --- sizes -------------------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def param_size(self) -> int:
        """Number of encoder features this channel consumes."""

    @property
    @abc.abstractmethod
    def sample_size(self) -> int:
        """Width of this channel's sample in the latent vector fed to the decoder."""

    @property
    @abc.abstractmethod
    def unit_count(self) -> int:
        """Number of units the KL is reported for (Gaussian: dimensions; categorical: variables)."""

    @abc.abstractmethod
    def unit_slice(self, unit: int) -> slice:
        """The columns of this channel's sample that belong to ``unit``."""

    # --- parameters and samples --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def params_from_features(self, features: Tensor) -> Params:
        """Turn ``(B, param_size)`` encoder features into distribution parameters."""

    @abc.abstractmethod
    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        """A reparametrised (differentiable) training sample, ``(B, sample_size)``, with all its randomness from
        ``noise`` (``len(noise) == B``): row ``i``'s value is a function of row ``i``'s parameters and
        ``noise.keys[i]`` only (the row rule, see the class docstring)."""

    @abc.abstractmethod
    def representative(self, params: Params) -> Tensor:
        """The deterministic value used in evaluation (Gaussian: the mean; categorical: the argmax one-hot)."""

    @abc.abstractmethod
    def kl(self, params: Params, context: LatentContext) -> Tensor:
        """Analytic KL of the posterior to the prior per unit, ``(B, unit_count)``."""

    @abc.abstractmethod
    def capacity_bound(self) -> float:
        """The largest KL, in nats, this whole channel can carry (``math.inf`` when unbounded)."""

    @abc.abstractmethod
    def prior_sample(
        self, n: int, context: LatentContext, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` draws from the prior, ``(n, sample_size)``, in the space the decoder reads."""

    @abc.abstractmethod
    def traversal_values(self, unit: int, n: int) -> Tensor:
        """Values to sweep ``unit`` through, ``(m, width of unit_slice(unit))``; ``n`` is a hint for continuous units.

        For a discrete family, row ``k`` is the encoding of category ``k`` (one-hot for a categorical, ``[0]``/``[1]``
        for a binary unit): figures, edits and conditional samples set a unit to category ``k`` with it."""

    def neutral_value(self) -> Tensor:
        """The value, ``(sample_size,)``, at which traversals and edits hold this channel's units when they vary
        others: the prior's representative, not 0 — for a bounded family 0 can be an edge of the support (a Beta
        unit), or not a value at all (a one-hot).

        Default: the representative of the parameters that zero encoder features give, which is the prior's for a
        family without ``depends_on`` (the contract above). Override it where that is wrong (e.g. a prior that is not
        what zero features give)."""
        reference = next(iter(self.parameters()), None)
        device = reference.device if reference is not None else None
        zeros = torch.zeros(1, self.param_size, device=device)
        with torch.no_grad():
            return self.representative(self.params_from_features(zeros))[0]

    # --- exact posterior, for Monte-Carlo checks ---------------------------------------------------------------------
    @abc.abstractmethod
    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        """An exact (not relaxed) posterior draw, in the space of :meth:`prior_sample`."""

    @abc.abstractmethod
    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        """``log q(value)`` per unit, ``(B, unit_count)``, for values from :meth:`sample_posterior`."""

    @abc.abstractmethod
    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        """``log p(value)`` per unit, ``(B, unit_count)``."""

    # --- densities of training samples (optional) --------------------------------------------------------------------
    def log_density(self, params: Params, sample: Tensor) -> Tensor:
        """``log q(sample | x)`` per unit, ``(B, unit_count)``, for a *training* sample (from :meth:`rsample`).

        Estimators of the aggregate posterior q(z) (β-TCVAE's total correlation) evaluate every sample of a batch under
        every posterior of the batch with it. The default is :meth:`log_posterior`, right when :meth:`rsample` draws
        from the posterior itself (Gaussian, Laplace); a relaxed family, whose training samples live off the discrete
        support, overrides it with the density of its relaxed distribution (Concrete, for Gumbel-Softmax)."""
        return self.log_posterior(params, sample)

    def log_prior_density(self, sample: Tensor, context: LatentContext) -> Tensor:
        """``log p(sample)`` per unit for a training sample: the prior counterpart of :meth:`log_density` (default
        :meth:`log_prior`; a relaxed family gives its relaxed prior's density)."""
        return self.log_prior(sample, context)

    # --- training-time state and diagnostics (optional) ---------------------------------------------------------------
    def at_step(self, step: int) -> None:
        """Set whatever of this family changes over training from the global ``step`` (default: nothing).

        Why: a family whose training sampling changes as training goes on — an annealed Gumbel-Softmax temperature —
        must not count steps itself. The trainer calls this (through :meth:`JointLatent.at_step`) before the forward
        pass of every training step, with the step being taken (the first is 1), so the value is a pure function of
        the step, as a capacity schedule is: a resumed run gets the value an uninterrupted one has, and nothing needs
        saving in checkpoints. A freshly built family has the value of step 0 until the first call."""

    def diagnostics(self, params: Params, sample: Tensor) -> dict[str, Tensor]:
        """Scalars about this channel's training ``sample`` (drawn from ``params``) worth logging; default none.

        Contract: each value is a 0-dimensional tensor holding a **mean over the batch** (a value that is the same for
        every row, such as a temperature, is its own mean), so that the values of a batch computed in parts combine,
        weighted by size, into the whole batch's like the objective's other statistics. The jointvae objective
        computes them without gradient and logs each as ``<key>/<channel>``; keys must not be names the objective
        logs itself (``kl``, ``capacity``, ``spread``, ...)."""
        return {}

    # --- optional ----------------------------------------------------------------------------------------------------
    def categories(self, params: Params) -> Tensor:
        """The most probable category of each unit, ``(B, unit_count)`` int64 (discrete families only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a discrete family")

    def unit_sizes(self) -> tuple[int, ...]:
        """Number of categories of each unit (discrete families only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a discrete family")

    @classmethod
    def example_configs(cls) -> list[dict]:
        """Configurations the conformance suite builds this family with; override to cover your options."""
        return [{}]

    def extra_repr(self) -> str:
        bound = self.capacity_bound()
        return f"units={self.unit_count}, capacity_bound={'inf' if math.isinf(bound) else f'{bound:.4f}'}"


class OneColumnPerUnit:
    """Mixin for families whose every unit is one column of the sample (``self.units`` of them): Gaussian, Laplace,
    binary units. Put it before :class:`LatentFamily` in the bases."""

    units: int

    def set_units(self, units: object) -> None:
        """Check and store ``units`` (a whole number >= 1), with an error that names the family."""
        self.units = check("units", units, positive_int.such_as("4"),
                           owner=getattr(self, "family_name", "") or type(self).__name__)

    @property
    def sample_size(self) -> int:
        return self.units

    @property
    def unit_count(self) -> int:
        return self.units

    def unit_slice(self, unit: int) -> slice:
        return slice(unit, unit + 1)


#: log-variance is clamped to this range: std between 3e-7 and 3e6. Trained encoders never get near it; it keeps the KL
#: and samples finite for arbitrary encoder outputs.
LOGVAR_LIMIT = 30.0
_LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussianPosterior(OneColumnPerUnit):
    """Mixin for families whose posterior is ``N(mean, exp(logvar))`` per unit, whatever their prior (the standard
    normal of ``gaussian``, a mixture indexed by a category): the encoder gives ``units`` means then ``units``
    log-variances, and sampling, the representative (the mean) and the posterior density are written once, here.
    Put it before :class:`LatentFamily` in the bases."""

    @property
    def param_size(self) -> int:
        return 2 * self.units

    def params_from_features(self, features: Tensor) -> Params:
        mean, logvar = features[:, : self.units], features[:, self.units :]
        return {"mean": mean, "logvar": logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        mean, logvar = params["mean"], params["logvar"]
        eps = noise.normal(mean.shape[1], dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(0.5 * logvar) * eps

    def representative(self, params: Params) -> Tensor:
        return params["mean"]

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        mean = params["mean"]
        return self.rsample(params, SampleNoise.fresh(mean.shape[0], generator, device=mean.device))

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        mean, logvar = params["mean"], params["logvar"]
        return -0.5 * (_LOG_2PI + logvar + (value - mean).pow(2) * torch.exp(-logvar))
