"""Binary units: a relaxed Bernoulli (binary Concrete) posterior with a fair-coin prior — JointVAE's Gumbel-Softmax
for two categories, with one feature per unit instead of two.

Posterior Bernoulli(p), p = sigmoid(logit); training samples are the binary Concrete relaxation
``sigmoid((logit + log u − log(1 − u)) / τ)`` (τ = 0.67 by default, as the categorical channel); evaluation uses the
hard value ``p > ½``. The KL is that of the Bernoulli to Bernoulli(½), per unit::

    KL = p·log(2p) + (1 − p)·log(2(1 − p)) ∈ [0, log 2]

so each unit carries at most log 2 nats: the capacity bound is ``units · log 2`` (the discrete capacity of JointVAE
with K = 2). Like the categorical channel, the KL is the discrete one, not the relaxed density's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, OneColumnPerUnit, Params, SampleNoise
from latentkit.plugins import hookimpl
from latentkit.validation import Rule, check, positive_float

DEFAULT_TEMPERATURE = 0.67
#: the relaxation's temperature: positive, and below 100 (hotter, every sample sits at ½ whatever the logit)
TEMPERATURE = Rule(lambda v: positive_float.test(v) and v < 100, "a positive number below 100", "0.67", float)
_LOG2 = math.log(2)
_EPS = 1e-12


class RelaxedBernoulli(OneColumnPerUnit, LatentFamily):
    """``units`` binary units. Encoder features: one logit per unit."""

    family_name = "relaxed_bernoulli"
    is_discrete = True

    def __init__(self, units: int, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__()
        self.set_units(units)
        self.temperature = check("temperature", temperature, TEMPERATURE, owner=self.family_name)

    @property
    def param_size(self) -> int:
        return self.units

    def unit_sizes(self) -> tuple[int, ...]:
        return (2,) * self.units

    def params_from_features(self, features: Tensor) -> Params:
        return {"logits": features}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        logits = params["logits"]
        u = noise.uniform(self.units, dtype=logits.dtype, device=logits.device)
        logistic = torch.log(u + _EPS) - torch.log1p(-u + _EPS)
        return torch.sigmoid((logits + logistic) / self.temperature)

    def representative(self, params: Params) -> Tensor:
        return (params["logits"] > 0).to(params["logits"].dtype)

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        logits = params["logits"]
        p = torch.sigmoid(logits)
        # p·log p + (1−p)·log(1−p) with log-sigmoids, exact for any logit
        neg_entropy = p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)
        return (_LOG2 + neg_entropy).clamp(0.0, _LOG2)

    def capacity_bound(self) -> float:
        return self.units * _LOG2

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        return (torch.rand(n, self.units, generator=generator) < 0.5).float()

    def traversal_values(self, unit: int, n: int) -> Tensor:
        return torch.tensor([[0.0], [1.0]])

    def neutral_value(self) -> Tensor:
        """0.5 for every unit: the median of the relaxed prior (symmetric about 0.5 at p = 0.5). The representative of
        the prior, a hard bit, would sit on an edge of the relaxed samples' support (0, 1) the decoder trained on."""
        return torch.full((self.units,), 0.5)

    def categories(self, params: Params) -> Tensor:
        return (params["logits"] > 0).long()

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        logits = params["logits"]
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        return (u < torch.sigmoid(logits)).to(logits.dtype)

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        logits = params["logits"]
        return value * F.logsigmoid(logits) + (1 - value) * F.logsigmoid(-logits)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return torch.full_like(value, -_LOG2)

    # --- densities of relaxed (training) samples: the binary Concrete distribution -----------------------------------
    def _binary_concrete_log_density(self, logits: Tensor, sample: Tensor) -> Tensor:
        """log BinConcrete(y; α = e^logits, λ) = log λ + log α − (λ+1)(log y + log(1−y))
        − 2 log(α y^−λ + (1−y)^−λ), per unit."""
        lam = self.temperature
        tiny = torch.finfo(sample.dtype).tiny
        log_y, log_1my = torch.log(sample.clamp_min(tiny)), torch.log((1 - sample).clamp_min(tiny))
        return (
            math.log(lam) + logits - (lam + 1) * (log_y + log_1my)
            - 2 * torch.logaddexp(logits - lam * log_y, -lam * log_1my)
        )

    def log_density(self, params: Params, sample: Tensor) -> Tensor:
        return self._binary_concrete_log_density(params["logits"], sample)

    def log_prior_density(self, sample: Tensor, context: LatentContext) -> Tensor:
        return self._binary_concrete_log_density(torch.zeros_like(sample), sample)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 1}, {"units": 5, "temperature": 0.5}]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"


@hookimpl
def latentkit_register_families(registry):
    registry.add("relaxed_bernoulli", RelaxedBernoulli)
