"""Categorical variables relaxed with Gumbel-Softmax: the discrete channel of JointVAE.

Any number of variables, each with its own number of categories K ≥ 2. The KL is that of the categorical posterior to
the uniform prior, ``log K + Σ α log(α + eps)`` per variable, as the original code computes it — not the KL of the
relaxed (Concrete) distribution, which has no closed form; the original's author tried it and kept this one.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, Params
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl

DEFAULT_TEMPERATURE = 0.67
EPS = 1e-12


class GumbelSoftmax(LatentFamily):
    """Categorical variables of sizes ``sizes``; relaxed samples at ``temperature`` in training, one-hots in eval.

    Encoder features: the logits of each variable in turn (ΣK features); the parameters are the softmax
    probabilities ``alpha`` (``(B, ΣK)``, variables concatenated in order).
    """

    family_name = "gumbel_softmax"
    is_discrete = True

    def __init__(self, sizes: list[int], temperature: float = DEFAULT_TEMPERATURE, eps: float = EPS):
        super().__init__()
        if isinstance(sizes, (int, str)) or not hasattr(sizes, "__iter__"):
            raise ConfigError(f"gumbel_softmax sizes must be a list of category counts such as [10], got {sizes!r}")
        sizes = list(sizes)
        if not sizes:
            raise ConfigError("gumbel_softmax needs at least one categorical variable: sizes=[K, ...]")
        for k in sizes:
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
                raise ConfigError(
                    f"every categorical variable needs K >= 2 categories (a whole number), got {k!r} in sizes={sizes}; "
                    "a variable with one category carries no information"
                )
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not 0 < temperature < math.inf:
            raise ConfigError(f"gumbel_softmax temperature must be a positive number (e.g. 0.67), got {temperature!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < 1e-3:
            raise ConfigError(f"gumbel_softmax eps must be a small non-negative number (default 1e-12), got {eps!r}")
        self.sizes = tuple(int(k) for k in sizes)
        self.temperature = float(temperature)
        self.eps = float(eps)
        self._offsets = [0]
        for k in self.sizes:
            self._offsets.append(self._offsets[-1] + k)
        # Equal sizes allow one reshape instead of a split per variable (the common case: [10], [2, 2, 2]).
        self._uniform = len(set(self.sizes)) == 1

    # --- sizes -------------------------------------------------------------------------------------------------------
    @property
    def param_size(self) -> int:
        return self._offsets[-1]

    @property
    def sample_size(self) -> int:
        return self._offsets[-1]

    @property
    def unit_count(self) -> int:
        return len(self.sizes)

    def unit_slice(self, unit: int) -> slice:
        return slice(self._offsets[unit], self._offsets[unit + 1])

    def unit_sizes(self) -> tuple[int, ...]:
        return self.sizes

    # --- per-variable helpers ----------------------------------------------------------------------------------------
    def _per_variable(self, x: Tensor, fn) -> Tensor:
        """Apply ``fn`` (acting on the last dim of one variable) to each variable, re-concatenated."""
        if self._uniform:
            b = x.shape[0]
            return fn(x.reshape(b, len(self.sizes), self.sizes[0])).reshape(b, -1)
        return torch.cat([fn(part) for part in torch.split(x, self.sizes, dim=-1)], dim=-1)

    def _reduce_per_variable(self, x: Tensor) -> Tensor:
        """Sum each variable's entries: ``(B, ΣK)`` to ``(B, n_vars)``."""
        if self._uniform:
            return x.reshape(x.shape[0], len(self.sizes), self.sizes[0]).sum(-1)
        return torch.stack([part.sum(-1) for part in torch.split(x, self.sizes, dim=-1)], dim=-1)

    def _one_hot_argmax(self, scores: Tensor) -> Tensor:
        return self._per_variable(scores, lambda s: F.one_hot(s.argmax(-1), s.shape[-1]).to(scores.dtype))

    def _log_k(self, like: Tensor) -> Tensor:
        return torch.tensor([math.log(k) for k in self.sizes], dtype=like.dtype, device=like.device)

    # --- protocol ----------------------------------------------------------------------------------------------------
    def params_from_features(self, features: Tensor) -> Params:
        return {"alpha": self._per_variable(features, lambda f: torch.softmax(f, dim=-1))}

    def rsample(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        alpha = params["alpha"]
        u = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
        gumbel = -torch.log(-torch.log(u + self.eps) + self.eps)
        logits = (torch.log(alpha + self.eps) + gumbel) / self.temperature
        return self._per_variable(logits, lambda s: torch.softmax(s, dim=-1))

    def representative(self, params: Params) -> Tensor:
        return self._one_hot_argmax(params["alpha"])

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        alpha = params["alpha"]
        neg_entropy = self._reduce_per_variable(alpha * torch.log(alpha + self.eps))
        log_k = self._log_k(alpha)
        # Clamped into [0, log K]: rounding can stray by ~1e-7 at the uniform posterior.
        return torch.minimum((log_k + neg_entropy).clamp_min(0.0), log_k)

    def capacity_bound(self) -> float:
        return float(sum(math.log(k) for k in self.sizes))

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        return self._one_hot_argmax(torch.rand(n, self.sample_size, generator=generator))

    def traversal_values(self, unit: int, n: int) -> Tensor:
        return torch.eye(self.sizes[unit])

    def categories(self, params: Params) -> Tensor:
        alpha = params["alpha"]
        if self._uniform:
            return alpha.reshape(alpha.shape[0], len(self.sizes), self.sizes[0]).argmax(-1)
        return torch.stack([part.argmax(-1) for part in torch.split(alpha, self.sizes, dim=-1)], dim=-1)

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        alpha = params["alpha"]
        u = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
        gumbel = -torch.log(-torch.log(u))  # exact Gumbel-max: an exact categorical draw
        return self._one_hot_argmax(torch.log(alpha) + gumbel)

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        log_alpha = torch.log(params["alpha"])
        picked = torch.where(value > 0, log_alpha, torch.zeros_like(log_alpha))
        return self._reduce_per_variable(picked)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        return (-self._log_k(value)).expand(value.shape[0], -1)

    # --- densities of relaxed (training) samples: the Concrete distribution (Maddison et al. 2017) --------------------
    def _concrete_log_density(self, log_alpha: Tensor, sample: Tensor) -> Tensor:
        """log Concrete(sample; α, λ) per variable, ``(B, n_vars)``: log((K−1)!) + (K−1) log λ
        + Σ_k (log α_k − (λ+1) log y_k) − K · logsumexp_k(log α_k − λ log y_k), the density on the simplex."""
        lam = self.temperature
        log_y = torch.log(sample.clamp_min(torch.finfo(sample.dtype).tiny))
        out = []
        for i, k in enumerate(self.sizes):
            cols = slice(self._offsets[i], self._offsets[i + 1])
            la, ly = log_alpha[..., cols], log_y[..., cols]
            log_norm = math.lgamma(k) + (k - 1) * math.log(lam)
            out.append(log_norm + (la - (lam + 1) * ly).sum(-1) - k * torch.logsumexp(la - lam * ly, dim=-1))
        return torch.stack(out, dim=-1)

    def log_density(self, params: Params, sample: Tensor) -> Tensor:
        """The Concrete density of a relaxed sample under the posterior's class probabilities."""
        return self._concrete_log_density(torch.log(params["alpha"] + self.eps), sample)

    def log_prior_density(self, sample: Tensor, context: LatentContext) -> Tensor:
        """The Concrete density under the uniform prior (every log α_k = −log K)."""
        log_alpha = torch.cat([sample.new_full((k,), -math.log(k)) for k in self.sizes]).expand_as(sample)
        return self._concrete_log_density(log_alpha, sample)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"sizes": [2]}, {"sizes": [10]}, {"sizes": [2, 2, 2]}, {"sizes": [3, 5], "temperature": 1.0}]

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}, temperature={self.temperature}, " + super().extra_repr()


@hookimpl
def latentkit_register_families(registry):
    registry.add("gumbel_softmax", GumbelSoftmax)
