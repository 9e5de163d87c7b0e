"""A worked example of a family whose prior depends on another channel: a mixture of Gaussians indexed by a category.

Why it lives here: it proves that :class:`~latentkit.core.LatentFamily`'s ``depends_on`` and
:class:`~latentkit.core.LatentContext` are enough for a VaDE/GMVAE-style prior ``p(z, c) = p(c) p(z | c)`` with no
change to the core, and it gives plugin authors a template (and the conformance suite a dependent family to run on).

``MixtureGaussian(units, components, parent="disc")`` has posterior ``q(z) = N(mean, exp(logvar))`` and prior
``p(z | c) = N(mu_c, I)`` where ``c`` is the one-hot value of the categorical channel ``parent`` (a single variable with
``components`` categories: :class:`ExampleCategorical`, or the built-in ``gumbel_softmax`` with ``sizes=[components]``)
and ``mu`` is a learnable ``(components, units)`` parameter. Its ``kl`` is the expected conditional KL
``E_{q(c)}[KL(q(z) ‖ p(z | c))]`` per unit, so that the joint
latent's sum over channels, ``KL(q(c) ‖ p(c)) + E_{q(c)}[KL(q(z) ‖ p(z | c))]``, is exactly ``KL(q(z, c) ‖ p(z, c))``
for the mean-field posterior ``q(z) q(c)``.

Its posterior comes from the core's :class:`~latentkit.core.DiagonalGaussianPosterior` mixin, as the built-in
``gaussian`` and ``gaussian_mixture`` families' do (nothing under ``latentkit/`` may import a concrete plugin); the
built-in ``gaussian_mixture`` is the complete version of this example (learnable variances, responsibilities). This one
is not registered by any entry point: tests add :data:`PLUGIN` to a plugin host in code, as a third-party package would
through its entry point — ``PluginHost(plugins={"mixture_gaussian_example": PLUGIN})`` for a host of their own, or
:func:`latentkit.plugins.register_plugin` for the process's. The conformance suite checks it beside
:class:`ExampleCategorical`, a minimal categorical family defined here too, so the framework names no plugin.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentkit.core import DiagonalGaussianPosterior, LatentContext, LatentFamily, Params, SampleNoise
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import at_least, check, positive_float, positive_int

_LOG_2PI = math.log(2 * math.pi)


class MixtureGaussian(DiagonalGaussianPosterior, LatentFamily):
    """Gaussian units whose prior mean is chosen by the category of channel ``parent``."""

    family_name = "mixture_gaussian"

    def __init__(self, units: int, components: int, parent: str = "disc", spread: float = 2.0):
        super().__init__()
        check("units", units, positive_int, owner=self.family_name)
        check("components", components, at_least(2), owner=self.family_name)
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"mixture_gaussian parent must name the categorical channel, got {parent!r}")
        self.units, self.components = int(units), int(components)
        self.depends_on = (parent,)
        self.parent = parent
        # Component means spread apart (deterministically) so that samples of different components are distinguishable.
        gen = torch.Generator().manual_seed(0)
        self.mu = nn.Parameter(spread * torch.randn(self.components, self.units, generator=gen))

    # --- the parent ---------------------------------------------------------------------------------------------------
    def _weights(self, context: LatentContext) -> Tensor:
        """``q(c)``: the parent's category probabilities ``(B, components)``."""
        try:
            alpha = context.params[self.parent]["alpha"]
        except KeyError:
            raise ConfigError(
                f"mixture_gaussian needs the parameters of channel {self.parent!r} (a categorical with 'alpha') in its "
                f"context; got channels {list(context.params)}"
            ) from None
        self._check_width(alpha, "alpha")
        return alpha

    def _component_means(self, context: LatentContext) -> Tensor:
        """``mu_c`` for the parent's sampled one-hot ``c``: ``(B, units)``."""
        try:
            one_hot = context.samples[self.parent]
        except KeyError:
            raise ConfigError(
                f"mixture_gaussian needs a sample of channel {self.parent!r} in its context; got samples of "
                f"{list(context.samples)}"
            ) from None
        self._check_width(one_hot, "sample")
        return one_hot.to(self.mu.dtype) @ self.mu

    def _check_width(self, value: Tensor, what: str) -> None:
        if value.dim() != 2 or value.shape[1] != self.components:
            raise ConfigError(
                f"mixture_gaussian with {self.components} components needs channel {self.parent!r} to be one "
                f"categorical variable of {self.components} categories; its {what} has shape {tuple(value.shape)}"
            )

    # --- protocol ----------------------------------------------------------------------------------------------------
    def kl(self, params: Params, context: LatentContext) -> Tensor:
        mean, logvar = params["mean"], params["logvar"]
        alpha = self._weights(context).to(mean.dtype)
        mu = self.mu.to(mean.dtype)
        diff = mean.unsqueeze(1) - mu.unsqueeze(0)  # (B, K, units)
        # KL(N(m, v) || N(mu_k, 1)) = 0.5 (v + (m - mu_k)^2 - 1 - log v), written with expm1 so it is >= 0 in floats.
        per_component = 0.5 * (diff.pow(2) + torch.expm1(logvar).unsqueeze(1) - logvar.unsqueeze(1))
        return (alpha.unsqueeze(-1) * per_component).sum(1)

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        centre = self._component_means(context).detach()
        return centre + torch.randn(n, self.units, generator=generator, dtype=centre.dtype)

    def traversal_values(self, unit: int, n: int) -> Tensor:
        q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
        return torch.distributions.Normal(0.0, 1.0).icdf(q).float().unsqueeze(1)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        centre = self._component_means(context).to(value.dtype)
        return -0.5 * (_LOG_2PI + (value - centre).pow(2))

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 2, "components": 3}, {"units": 1, "components": 2, "parent": "c"}]

    @classmethod
    def conformance_parents(cls, config: dict) -> dict[str, LatentFamily]:
        """The channels the conformance suite builds around this family (see :mod:`latentkit.testing.conformance`):
        an :class:`ExampleCategorical` of ``components`` categories under the configured parent name. Defined in this
        module, not looked up by a plugin's name: the framework names no plugin."""
        return {config.get("parent", "disc"): ExampleCategorical(config["components"])}

    def extra_repr(self) -> str:
        return f"parent={self.parent!r}, components={self.components}, " + super().extra_repr()


class ExampleCategorical(LatentFamily):
    """One categorical variable of ``categories`` categories, relaxed with Gumbel-Softmax at ``temperature`` in
    training, with a uniform prior: the smallest parent :class:`MixtureGaussian` can read (its ``alpha`` and one-hot
    samples). The built-in ``gumbel_softmax`` family is the complete version (several variables, annealing,
    straight-through samples, the relaxed densities)."""

    family_name = "example_categorical"
    is_discrete = True

    def __init__(self, categories: int, temperature: float = 0.67):
        super().__init__()
        check("categories", categories, at_least(2), owner=self.family_name)
        check("temperature", temperature, positive_float.such_as("0.67"), owner=self.family_name)
        self.k, self.temperature = int(categories), float(temperature)

    @property
    def param_size(self) -> int:
        return self.k

    @property
    def sample_size(self) -> int:
        return self.k

    @property
    def unit_count(self) -> int:
        return 1

    def unit_slice(self, unit: int) -> slice:
        return slice(0, self.k)

    def unit_sizes(self) -> tuple[int, ...]:
        return (self.k,)

    def params_from_features(self, features: Tensor) -> Params:
        return {"alpha": torch.softmax(features, dim=-1)}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        alpha = params["alpha"]
        gumbel = noise.gumbel(self.k, dtype=alpha.dtype, device=alpha.device)
        return torch.softmax((torch.log(alpha + 1e-12) + gumbel) / self.temperature, dim=-1)

    def _one_hot(self, index: Tensor, dtype: torch.dtype) -> Tensor:
        return torch.nn.functional.one_hot(index, self.k).to(dtype)

    def representative(self, params: Params) -> Tensor:
        return self._one_hot(params["alpha"].argmax(-1), params["alpha"].dtype)

    def categories(self, params: Params) -> Tensor:
        return params["alpha"].argmax(-1, keepdim=True)

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        alpha = params["alpha"]
        log_k = math.log(self.k)
        kl = log_k + (alpha * torch.log(alpha + 1e-12)).sum(-1, keepdim=True)
        return kl.clamp(0.0, log_k)  # rounding strays by ~1e-7 at the uniform posterior

    def capacity_bound(self) -> float:
        return math.log(self.k)

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        return self._one_hot(torch.randint(self.k, (n,), generator=generator), torch.get_default_dtype())

    def traversal_values(self, unit: int, n: int) -> Tensor:
        return torch.eye(self.k)

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        alpha = params["alpha"]
        index = torch.multinomial(alpha.detach().double().cpu(), 1, generator=generator)[:, 0].to(alpha.device)
        return self._one_hot(index, alpha.dtype)

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        log_alpha = torch.log(params["alpha"])
        return torch.where(value > 0, log_alpha, torch.zeros_like(log_alpha)).sum(-1, keepdim=True)  # no 0 · (-inf)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return value.new_full((value.shape[0], 1), -math.log(self.k))

    def _concrete(self, log_alpha: Tensor, sample: Tensor) -> Tensor:
        """The Concrete density (Maddison et al. 2017) of a relaxed sample on the simplex, ``(B, 1)``."""
        lam, log_y = self.temperature, torch.log(sample.clamp_min(torch.finfo(sample.dtype).tiny))
        log_norm = math.lgamma(self.k) + (self.k - 1) * math.log(lam)
        density = (log_alpha - (lam + 1) * log_y).sum(-1) - self.k * torch.logsumexp(log_alpha - lam * log_y, dim=-1)
        return (log_norm + density).unsqueeze(-1)

    def log_density(self, params: Params, sample: Tensor) -> Tensor:
        return self._concrete(torch.log(params["alpha"] + 1e-12), sample)

    def log_prior_density(self, sample: Tensor, context: LatentContext) -> Tensor:
        return self._concrete(sample.new_full((self.k,), -math.log(self.k)).expand_as(sample), sample)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"categories": 2}, {"categories": 5, "temperature": 1.0}]


class _MixturePlugin:
    """A plugin object registering :class:`MixtureGaussian`, for a :class:`~latentkit.plugins.PluginHost`."""

    @hookimpl
    def latentkit_register_families(self, registry):
        registry.add("mixture_gaussian", MixtureGaussian)


#: Register with ``PluginHost(plugins={"mixture_gaussian_example": PLUGIN})`` or
#: ``latentkit.plugins.register_plugin(PLUGIN, name="mixture_gaussian_example")``.
PLUGIN = _MixturePlugin()
