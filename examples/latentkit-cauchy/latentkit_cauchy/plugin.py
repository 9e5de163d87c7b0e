"""Cauchy latent units with a standard Cauchy prior: a heavy-tailed family, shipped as a third-party plugin.

Why Cauchy: its tails are so heavy that it has no mean or variance, so a few units can take very large values without
the prior objecting much — a useful contrast to the Gaussian and Laplace families, and a demanding test of the
conformance suite (the Monte-Carlo KL check still works: ``log q − log p`` is bounded for Cauchy draws).

Posterior ``Cauchy(μ, γ)`` per unit with ``γ = exp(log_scale)``; prior ``Cauchy(0, 1)``. The KL between two Cauchy
distributions has a closed form (Chyzak & Nielsen 2019), symmetric in its arguments::

    KL(Cauchy(μ₁, γ₁) ‖ Cauchy(μ₂, γ₂)) = log((γ₁ + γ₂)² + (μ₁ − μ₂)²) − log(4 γ₁ γ₂)

which is 0 exactly when ``μ₁ = μ₂`` and ``γ₁ = γ₂``. Reparametrised samples use the inverse CDF:
``μ + γ · tan(π (u − ½))`` with ``u ~ U(0, 1)`` drawn from the per-row noise passed in (training) or from the
generator passed in (prior and exact posterior draws).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, OneColumnPerUnit, Params, SampleNoise
from latentkit.plugins import hookimpl

#: log-scale is clamped to ±this (scale between 2e-9 and 5e8), so the KL and samples stay finite for any features.
LOG_SCALE_LIMIT = 20.0
#: ``u − ½`` is kept within ``±(½ − EDGE)``: ``tan`` at exactly ``±π/2`` is infinite (or, rounded in float32, of the
#: wrong sign). This truncates each tail at probability 1e-6, far below what 20 000 Monte-Carlo draws can detect.
EDGE = 1e-6
#: Traversals sweep the prior's quantiles ``linspace(0.1, 0.9, n)`` (±3.08): the central 80 % of its mass. The
#: Gaussian's 0.05–0.95 would reach ±6.31 here, spending a third of the sweep in the tails.
TRAVERSAL_QUANTILES = (0.1, 0.9)


def _standard_quantile(centred: Tensor) -> Tensor:
    """The standard Cauchy inverse CDF at ``p = centred + ½``, for ``centred`` in ``(−½, ½)``."""
    return torch.tan(math.pi * centred.clamp(-0.5 + EDGE, 0.5 - EDGE))


def _centred_uniform(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype | None = None, device=None
) -> Tensor:
    """``u − ½`` for ``u ~ U(0, 1)``, drawn only from ``generator`` (exact resume and reproducible checks need it)."""
    return torch.rand(shape, generator=generator, dtype=dtype, device=device) - 0.5


def _log1p_square(x: Tensor) -> Tensor:
    """``log(1 + x²)`` as ``2·log(hypot(1, x))``: finite even where ``x²`` would overflow (|x| > 1.8e19 in float32)."""
    return 2 * torch.log(torch.hypot(torch.ones_like(x), x))


class Cauchy(OneColumnPerUnit, LatentFamily):
    """``units`` independent Cauchy coordinates. Encoder features: ``units`` locations, then ``units`` log-scales.

    Features of zeros give location 0 and scale 1: the prior, as the conformance suite requires.
    """

    family_name = "cauchy"

    def __init__(self, units: int):
        super().__init__()
        self.set_units(units)  # OneColumnPerUnit: a whole number >= 1, or an error naming the family

    @property
    def param_size(self) -> int:
        return 2 * self.units

    # --- parameters and samples --------------------------------------------------------------------------------------
    def params_from_features(self, features: Tensor) -> Params:
        loc, log_scale = features[:, : self.units], features[:, self.units :]
        return {"loc": loc, "log_scale": log_scale.clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        # All randomness from ``noise``: row i's uniforms depend only on row i's key (the row rule).
        loc, log_scale = params["loc"], params["log_scale"]
        centred = noise.uniform(self.units, dtype=loc.dtype, device=loc.device) - 0.5
        return loc + log_scale.exp() * _standard_quantile(centred)

    def representative(self, params: Params) -> Tensor:
        # The location is the median and the mode (a Cauchy has no mean).
        return params["loc"]

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        loc, log_scale = params["loc"], params["log_scale"]
        # log((γ + 1)² + μ²) − log(4γ) = 2·log(hypot(γ + 1, μ) / 2) − log γ: hypot never overflows for large μ, and
        # at the prior (μ = 0, γ = 1) the first term is log(1) = 0 exactly.
        kl = 2 * torch.log(torch.hypot(log_scale.exp() + 1, loc) / 2) - log_scale
        return kl.clamp_min(0.0)  # rounding near the prior

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        return _standard_quantile(_centred_uniform((n, self.units), generator))

    def traversal_values(self, unit: int, n: int) -> Tensor:
        low, high = TRAVERSAL_QUANTILES
        p = torch.linspace(low, high, n, dtype=torch.float64)
        return _standard_quantile(p - 0.5).float().unsqueeze(1)

    # --- exact posterior, for the Monte-Carlo KL check ---------------------------------------------------------------
    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        loc = params["loc"]
        return self.rsample(params, SampleNoise.fresh(loc.shape[0], generator, device=loc.device))

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        loc, log_scale = params["loc"], params["log_scale"]
        z = (value - loc) * torch.exp(-log_scale)
        return -math.log(math.pi) - log_scale - _log1p_square(z)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return -math.log(math.pi) - _log1p_square(value)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 1}, {"units": 4}]


@hookimpl
def latentkit_register_families(registry):
    """Called by latentkit at start-up, once this module is found through the ``latentkit`` entry-point group."""
    registry.add("cauchy", Cauchy)
