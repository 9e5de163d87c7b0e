"""Gaussian units with a mixture-of-Gaussians prior indexed by a categorical channel (VaDE, GMVAE, MFCVAE).

The joint prior is ``p(z, c) = p(c) p(z | c)`` with ``c`` the value of a categorical channel (``parent``, by default
JointVAE's ``disc``: one variable of ``components`` categories, uniform ``p(c)``) and, per unit,

    p(z | c = k) = N(mu_k, exp(prior_logvar_k)),   mu, prior_logvar: learnable (components, units)

The posterior is the usual mean-field Gaussian ``q(z | x) = N(mean, exp(logvar))``, independent of ``q(c | x)``. The
channel's ``kl`` is the *expected conditional* KL, per unit,

    Σ_k q(c = k | x) · KL(N(mean, var) ‖ N(mu_k, var_k)),

so that the joint latent's sum of channel KLs, ``KL(q(c) ‖ p(c)) + E_q(c)[KL(q(z) ‖ p(z | c))]``, is exactly
``KL(q(z) q(c) ‖ p(c) p(z | c))``: the ELBO's KL term for a mixture prior, with no change to the core (the family only
reads the parent's parameters through :class:`~latentkit.core.LatentContext`).

Traversal values come from the quantiles of the *marginal* prior of a unit (the equal-weight mixture), not of N(0, 1):
after training, a mixture prior's mass sits around its component means, which can be far from 0 ± 1.6.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from latentkit.core import LOGVAR_LIMIT, DiagonalGaussianPosterior, LatentContext, LatentFamily, Params
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import boolean, check, non_negative_float

_LOG_2PI = math.log(2 * math.pi)
#: How far from 1 the parent's probabilities may sum (float32 softmax rounding is ~1e-6) before the parent is judged not
#: to be one categorical variable.
_SUM_TOLERANCE = 1e-3


class GaussianMixture(DiagonalGaussianPosterior, LatentFamily):
    """``units`` Gaussian coordinates whose prior is a mixture of ``components`` Gaussians, the component being the
    category of channel ``parent``.

    Encoder features: ``units`` means, then ``units`` log-variances (as the gaussian family). Options:

    * ``components`` — K ≥ 2, the number of categories of ``parent`` (one categorical variable, e.g.
      ``gumbel_softmax`` with ``sizes=[K]``);
    * ``parent`` — the name of that channel (``"disc"``, JointVAEConfig's discrete channel, by default);
    * ``learn_variance`` — learn each component's per-unit log-variance (initialised at 0); otherwise every component
      has unit variance (a fixed buffer of zeros, still saved with the model);
    * ``spread`` — the component means start at ``spread · N(0, 1)`` draws from torch's global RNG, so they differ
      between components (seen by the encoder as distinct targets) and change with the run's seed.
    """

    family_name = "gaussian_mixture"

    def __init__(
        self,
        units: int,
        components: int,
        parent: str = "disc",
        learn_variance: bool = True,
        spread: float = 1.0,
    ):
        super().__init__()
        self.set_units(units)
        if isinstance(components, bool) or not isinstance(components, numbers.Integral) or components < 2:
            raise ConfigError(
                f"gaussian_mixture needs components >= 2 (a whole number: the categories of channel {parent!r}), "
                f"got {components!r}; for a single Gaussian prior use the gaussian family"
            )
        if not isinstance(parent, str) or not parent:
            raise ConfigError(
                f"gaussian_mixture parent must be the name of a categorical channel (e.g. 'disc'), got {parent!r}"
            )
        self.learn_variance = check("learn_variance", learn_variance, boolean, owner=self.family_name)
        self.spread = check("spread", spread, non_negative_float.such_as("1.0"), owner=self.family_name)
        self.components = int(components)
        self.parent = parent
        self.depends_on = (parent,)
        self.mu = nn.Parameter(self.spread * torch.randn(self.components, self.units))
        zeros = torch.zeros(self.components, self.units)
        if learn_variance:
            self.prior_logvar = nn.Parameter(zeros)
        else:
            self.register_buffer("prior_logvar", zeros)
        # The parent's probabilities are checked to sum to 1 once, not every step (the check synchronises the device).
        self._parent_checked = False

    # --- the prior's parameters --------------------------------------------------------------------------------------
    def _prior(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, prior_logvar)``, ``(components, units)`` each, in ``like``'s dtype and device, log-variance clamped."""
        mu = self.mu.to(like.device, like.dtype)
        logvar = self.prior_logvar.to(like.device, like.dtype).clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
        return mu, logvar

    # --- the parent --------------------------------------------------------------------------------------------------
    def _parent_probabilities(self, context: LatentContext) -> Tensor:
        """``q(c | x)``: the parent's category probabilities ``(B, components)``."""
        params = context.params.get(self.parent)
        if params is None or "alpha" not in params:
            raise ConfigError(
                f"gaussian_mixture needs the parameters of channel {self.parent!r} (a categorical channel with "
                f"'alpha', e.g. gumbel_softmax) to compute its KL; the context has channels {list(context.params)}. "
                f"Add a gumbel_softmax channel {self.parent!r} with sizes=[{self.components}], or set parent= to the "
                f"name of yours"
            )
        alpha = params["alpha"]
        self._check_width(alpha, "parameters 'alpha'")
        if not self._parent_checked:
            total = alpha.detach().sum(-1)
            if total.numel() and ((total - 1).abs().max() > _SUM_TOLERANCE).item():
                raise ConfigError(
                    f"gaussian_mixture needs channel {self.parent!r} to be ONE categorical variable of "
                    f"{self.components} categories, but its probabilities sum to {total[0].item():.4g} per row: it has "
                    f"several variables of {self.components} categories in all; give it sizes=[{self.components}]"
                )
            self._parent_checked = True
        return alpha

    def _parent_sample(self, context: LatentContext, what: str) -> Tensor:
        """The parent's value ``(B, components)``: a one-hot, or a relaxed sample on the simplex."""
        sample = context.samples.get(self.parent)
        if sample is None:
            raise ConfigError(
                f"gaussian_mixture needs a sample of channel {self.parent!r} (its component indicator) for {what}; "
                f"the context has samples of {list(context.samples)}. Draw {self.parent!r} first (JointLatent."
                f"prior_sample does so by dependency order) or pass its value"
            )
        self._check_width(sample, "sample")
        return sample

    def _check_width(self, value: Tensor, what: str) -> None:
        if value.dim() != 2 or value.shape[1] != self.components:
            raise ConfigError(
                f"gaussian_mixture with {self.components} components needs channel {self.parent!r} to be one "
                f"categorical variable of {self.components} categories, but its {what} has shape "
                f"{tuple(value.shape)}; give {self.parent!r} sizes=[{self.components}] or set components="
                f"{value.shape[-1] if value.dim() else '?'}"
            )

    def _conditional_prior(self, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance ``(B, units)`` of ``p(z | c)`` for component indicators ``weights`` ``(B, K)``.

        For a one-hot ``c`` this is exactly component ``c``; a relaxed (training) sample mixes the components' means
        and log-variances with its weights, a smooth interpolation that agrees with the mixture at the vertices."""
        mu, logvar = self._prior(weights)
        return weights @ mu, weights @ logvar

    # --- mixture-specific helpers ------------------------------------------------------------------------------------
    def _unit_component_kl(self, params: Params) -> Tensor:
        """``KL(N(mean, var) ‖ N(mu_k, var_k))`` per row, component and unit: ``(B, components, units)``.

        Written as ``½ ((mean − mu_k)² / var_k + expm1(d) − d)`` with ``d = logvar − prior_logvar_k``, whose every term
        is ≥ 0 in floating point (``expm1(d) ≥ d``), so the KL is non-negative exactly, not only up to rounding."""
        mean, logvar = params["mean"], params["logvar"]
        mu, prior_logvar = self._prior(mean)
        diff = mean.unsqueeze(1) - mu  # (B, K, units)
        d = logvar.unsqueeze(1) - prior_logvar
        return 0.5 * (diff.pow(2) * torch.exp(-prior_logvar) + torch.expm1(d) - d)

    def component_kl(self, params: Params) -> Tensor:
        """``KL(q(z | x) ‖ p(z | c = k))`` summed over units, for every component ``k``: ``(B, components)``. It needs
        only this channel's parameters and the prior's; :meth:`responsibilities` and clustering read it."""
        return self._unit_component_kl(params).sum(-1)

    def responsibilities(self, params: Params) -> Tensor:
        """The posterior over components implied by ``q(z | x)`` alone: ``softmax_k(−component_kl_k)``, ``(B, K)``.

        Why this form: for a fixed ``q(z | x)``, the part of the KL term that depends on ``q(c | x)`` is
        ``KL(q(c) ‖ U) + Σ_k q(k) KL_k`` (``KL_k`` = :meth:`component_kl`, ``U`` the uniform ``p(c)``), and minimising
        it over the simplex (a Lagrange multiplier for ``Σ q = 1``) gives ``q(k) ∝ exp(−KL_k)``. It is VaDE's
        ``q(c | x) = E_q(z)[p(c | z)]`` made exact in expectation: ``E_q(z)[log p(z | k)] = −KL_k − H[q(z)]`` and the
        entropy does not depend on ``k``, so ``softmax_k(log p(k) + E_q(z)[log p(z | k)])`` is this softmax when
        ``p(c)`` is uniform. Use it to read cluster assignments off the continuous code, or to see how far the
        categorical channel's own ``q(c | x)`` is from the optimum given ``q(z | x)``."""
        return torch.softmax(-self.component_kl(params), dim=-1)

    # --- protocol ----------------------------------------------------------------------------------------------------
    def kl(self, params: Params, context: LatentContext) -> Tensor:
        """``Σ_k q(c = k | x) KL(N(mean, var) ‖ N(mu_k, var_k))`` per unit, ``(B, units)``, with ``q(c | x)`` the
        parent's ``alpha`` (its parameters, never its relaxed training sample)."""
        alpha = self._parent_probabilities(context).to(params["mean"].dtype)
        return (alpha.unsqueeze(-1) * self._unit_component_kl(params)).sum(1)

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        """``z ~ p(z | c)`` for the parent's drawn ``c`` (``context.samples[parent]``, one-hot or relaxed)."""
        weights = self._parent_sample(context, "prior samples").detach().to(self.mu.dtype)
        with torch.no_grad():
            mean, logvar = self._conditional_prior(weights)
        device = generator.device if generator is not None else weights.device
        eps = torch.randn(n, self.units, generator=generator, device=device, dtype=mean.dtype).to(mean.device)
        return mean + torch.exp(0.5 * logvar) * eps

    def traversal_values(self, unit: int, n: int) -> Tensor:
        """``n`` quantiles (5 % … 95 %) of unit ``unit``'s marginal prior, the equal-weight mixture of the components'
        ``N(mu_k, var_k)``, found by bisection on its CDF: ``(n, 1)`` float32.

        Why not N(0, 1)'s ±1.645: a trained mixture prior puts its mass around its component means, which can lie far
        from 0, so standard-normal values would sweep a region the decoder never saw, or miss every component."""
        return self._marginal_quantiles(unit, torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float().unsqueeze(1)

    def neutral_value(self) -> Tensor:
        """Each unit's marginal prior median (the mixture's, found as :meth:`traversal_values` finds its quantiles):
        where the prior's mass is, not the mean of the zero-features posterior (0), which can fall between components
        far from any."""
        medians = [self._marginal_quantiles(u, torch.tensor([0.5], dtype=torch.float64)) for u in range(self.units)]
        return torch.cat(medians).float()

    def _marginal_quantiles(self, unit: int, target: Tensor) -> Tensor:
        """Quantiles ``target`` (float64) of unit ``unit``'s marginal prior, the equal-weight mixture of the components'
        ``N(mu_k, var_k)``, by bisection on its CDF."""
        with torch.no_grad():
            mu = self.mu[:, unit].detach().double().cpu()
            std = torch.exp(0.5 * self.prior_logvar[:, unit].detach().double().cpu().clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT))
            components = torch.distributions.Normal(mu, std)
            lo = torch.full_like(target, (mu - 10 * std).min().item())
            hi = torch.full_like(target, (mu + 10 * std).max().item())
            for _ in range(100):  # the bracket halves each time: 100 halvings reach float64 resolution
                mid = 0.5 * (lo + hi)
                below = components.cdf(mid.unsqueeze(-1)).mean(-1) < target
                lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
            return 0.5 * (lo + hi)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        """``log p(value | c)`` per unit, ``c`` the parent's sample in ``context`` (mixed as in :meth:`prior_sample`
        when it is relaxed)."""
        weights = self._parent_sample(context, "log_prior").to(value.dtype)
        mean, logvar = self._conditional_prior(weights)
        return -0.5 * (_LOG_2PI + logvar + (value - mean).pow(2) * torch.exp(-logvar))

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [
            {"units": 2, "components": 3},
            {"units": 1, "components": 2, "parent": "c", "learn_variance": False},
            {"units": 3, "components": 5, "parent": "cluster", "spread": 2.0},
        ]

    @classmethod
    def conformance_parents(cls, config: dict) -> dict[str, LatentFamily]:
        """A ``gumbel_softmax`` channel of ``components`` categories under the configured parent name, looked up in
        the registry (plugins import no other plugin)."""
        from latentkit.plugins import get_registry

        categorical = get_registry().families.get("gumbel_softmax")
        return {config.get("parent", "disc"): categorical(sizes=[config["components"]])}

    def extra_repr(self) -> str:
        return (
            f"parent={self.parent!r}, components={self.components}, learn_variance={self.learn_variance}, "
            + super().extra_repr()
        )


@hookimpl
def latentkit_register_families(registry):
    registry.add("gaussian_mixture", GaussianMixture)
