"""Laplace units with a standard Laplace prior: heavier tails than the Gaussian, sparser codes (a sparse-coding prior).

Posterior Laplace(loc, b) with b = exp(log_scale), prior Laplace(0, 1). The KL has a closed form::

    KL(Laplace(μ, b) || Laplace(0, 1)) = −log b + |μ| + b·exp(−|μ| / b) − 1

(0 at μ = 0, b = 1, the prior). Reparametrised samples use the inverse CDF: ``μ − b·sign(u)·log(1 − 2|u|)`` with
``u ~ U(−½, ½)``. Traversal values are the standard Laplace quantiles of ``linspace(0.05, 0.95, n)`` (±2.30).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, OneColumnPerUnit, Params, SampleNoise
from latentkit.plugins import hookimpl

#: log-scale is clamped to this range (scale between 2e-9 and 5e8), which keeps KL and samples finite for any features.
LOG_SCALE_LIMIT = 20.0
_TINY = 1e-7


def _quantile(p: Tensor) -> Tensor:
    """The standard Laplace inverse CDF."""
    centred = p - 0.5
    return -torch.sign(centred) * torch.log1p(-2 * centred.abs())


class Laplace(OneColumnPerUnit, LatentFamily):
    """``units`` independent Laplace coordinates. Encoder features: ``units`` locations, then ``units`` log-scales."""

    family_name = "laplace"

    def __init__(self, units: int):
        super().__init__()
        self.set_units(units)

    @property
    def param_size(self) -> int:
        return 2 * self.units

    def params_from_features(self, features: Tensor) -> Params:
        loc, log_scale = features[:, : self.units], features[:, self.units :]
        return {"loc": loc, "log_scale": log_scale.clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        loc, scale = params["loc"], params["log_scale"].exp()
        u = (noise.uniform(self.units, dtype=loc.dtype, device=loc.device) - 0.5).clamp(-0.5 + _TINY, 0.5 - _TINY)
        return loc - scale * torch.sign(u) * torch.log1p(-2 * u.abs())

    def representative(self, params: Params) -> Tensor:
        return params["loc"]

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        loc, log_scale = params["loc"], params["log_scale"]
        scale = log_scale.exp()
        kl = -log_scale + loc.abs() + scale * torch.exp(-loc.abs() / scale) - 1
        return kl.clamp_min(0.0)  # rounding near the prior

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, self.units, generator=generator).clamp(_TINY, 1 - _TINY)
        return _quantile(u)

    def traversal_values(self, unit: int, n: int) -> Tensor:
        return _quantile(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float().unsqueeze(1)

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        loc = params["loc"]
        return self.rsample(params, SampleNoise.fresh(loc.shape[0], generator, device=loc.device))

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        loc, log_scale = params["loc"], params["log_scale"]
        return -math.log(2) - log_scale - (value - loc).abs() * torch.exp(-log_scale)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return -math.log(2) - value.abs()

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 1}, {"units": 4}]


@hookimpl
def latentkit_register_families(registry):
    registry.add("laplace", Laplace)
