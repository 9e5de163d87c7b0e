"""Gaussian units with a unit-normal prior: the continuous channel of JointVAE."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentkit.core import DiagonalGaussianPosterior, LatentContext, LatentFamily, Params
from latentkit.plugins import hookimpl

_LOG_2PI = math.log(2 * math.pi)


class Gaussian(DiagonalGaussianPosterior, LatentFamily):
    """``units`` independent Gaussian coordinates; posterior N(mean, exp(logvar)), prior N(0, 1).

    Encoder features: ``units`` means, then ``units`` log-variances.
    """

    family_name = "gaussian"

    def __init__(self, units: int):
        super().__init__()
        self.set_units(units)

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        mean, logvar = params["mean"], params["logvar"]
        return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp())

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.units, generator=generator)

    def traversal_values(self, unit: int, n: int) -> Tensor:
        # The original's values: the standard normal quantiles of linspace(0.05, 0.95, n), about ±1.645.
        q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
        return torch.distributions.Normal(0.0, 1.0).icdf(q).float().unsqueeze(1)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return -0.5 * (_LOG_2PI + value.pow(2))

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 1}, {"units": 3}, {"units": 10}]


@hookimpl
def latentkit_register_families(registry):
    registry.add("gaussian", Gaussian)
