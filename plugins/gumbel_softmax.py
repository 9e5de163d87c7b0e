"""Categorical variables relaxed with Gumbel-Softmax: the discrete channel of JointVAE.

Any number of variables, each with its own number of categories K ≥ 2. The KL is that of the categorical posterior to
the uniform prior, ``log K + Σ α log(α + eps)`` per variable, as the original code computes it — not the KL of the
relaxed (Concrete) distribution, which has no closed form; the original's author tried it and kept this one.

Two training options beyond the original's: an annealed temperature (``anneal``, a pure function of the global step,
set by the trainer through :meth:`GumbelSoftmax.at_step`) and straight-through one-hot samples (``hard``). The
family's :meth:`~GumbelSoftmax.diagnostics` let the objective log the temperature and how close to one-hot the training
samples are.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, Params, SampleNoise
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import boolean, check, positive_float

DEFAULT_TEMPERATURE = 0.67
EPS = 1e-12
ANNEAL_SHAPES = ("exponential", "linear")
ANNEAL_EXAMPLE = '{"start": 1.0, "end": 0.5, "steps": 30000, "shape": "exponential"}'


class TemperatureAnneal:
    """The temperature at a global step: ``start`` at step 0, ``end`` from step ``steps`` on.

    With ``t = min(step, steps) / steps``: ``shape="exponential"`` (the default) interpolates geometrically,
    ``start · (end / start)^t`` — the same factor every step, as Jang et al. anneal; ``shape="linear"`` is
    ``start + (end − start) · t``."""

    def __init__(self, start: float, end: float, steps: int, shape: str = "exponential"):
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
                raise ConfigError(
                    f"gumbel_softmax anneal {name} must be a positive finite temperature such as 0.5, got {value!r} "
                    f"(a valid anneal: {ANNEAL_EXAMPLE})"
                )
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ConfigError(
                f"gumbel_softmax anneal steps must be a whole number of training steps >= 1 such as 30000, got "
                f"{steps!r} (a valid anneal: {ANNEAL_EXAMPLE})"
            )
        if shape not in ANNEAL_SHAPES:
            raise ConfigError(
                f"gumbel_softmax anneal shape must be one of {ANNEAL_SHAPES}, got {shape!r} (a valid anneal: "
                f"{ANNEAL_EXAMPLE})"
            )
        self.start, self.end, self.steps, self.shape = float(start), float(end), int(steps), shape

    @classmethod
    def from_options(cls, anneal: object) -> TemperatureAnneal:
        """Build from the family's ``anneal`` option, with errors that show a valid one."""
        if not isinstance(anneal, Mapping):
            raise ConfigError(f"gumbel_softmax anneal must be a mapping such as {ANNEAL_EXAMPLE}, got {anneal!r}")
        missing = [k for k in ("start", "end", "steps") if k not in anneal]
        unknown = [k for k in anneal if k not in ("start", "end", "steps", "shape")]
        if missing or unknown:
            raise ConfigError(
                f"gumbel_softmax anneal needs start, end and steps (shape is optional: {' or '.join(ANNEAL_SHAPES)}); "
                f"missing {missing}, unknown {unknown} in {dict(anneal)!r}; e.g. {ANNEAL_EXAMPLE}"
            )
        return cls(**anneal)

    def __call__(self, step: int) -> float:
        t = min(max(step, 0), self.steps) / self.steps
        if t >= 1:
            return self.end
        if self.shape == "linear":
            return self.start + (self.end - self.start) * t
        return self.start * (self.end / self.start) ** t

    def __repr__(self) -> str:
        return f"{self.shape}({self.start} -> {self.end} over {self.steps} steps)"


class GumbelSoftmax(LatentFamily):
    """Categorical variables of sizes ``sizes``; relaxed samples at ``temperature`` in training, one-hots in eval.

    Encoder features: the logits of each variable in turn (ΣK features); the parameters are the softmax
    probabilities ``alpha`` (``(B, ΣK)``, variables concatenated in order).

    ``anneal`` (e.g. ``{"start": 1.0, "end": 0.5, "steps": 30000, "shape": "exponential"}``, see
    :class:`TemperatureAnneal`): the temperature follows that schedule of the global step, set by :meth:`at_step`
    before each training step. It takes precedence over ``temperature``, which the JointVAE recipe always passes; a
    freshly built or loaded family has the schedule's step-0 value, ``start``, until the first :meth:`at_step`.
    Evaluation decodes one-hots and never reads the temperature; the relaxed densities (:meth:`log_density`, used by
    the tcvae objective) use the current one.

    ``hard=True``: straight-through samples. The forward value is the one-hot of each variable's argmax of the relaxed
    sample, the gradient the relaxed sample's. Why: the decoder then trains on exactly what it decodes in evaluation
    (one-hots), not on points inside the simplex it never sees afterwards; the price is a biased gradient. The argmax
    of a relaxed sample is an exact categorical draw (Gumbel-max), so the KL — the categorical's — is unchanged, and
    the training-sample densities become the categorical's.
    """

    family_name = "gumbel_softmax"
    is_discrete = True

    def __init__(
        self,
        sizes: list[int],
        temperature: float = DEFAULT_TEMPERATURE,
        eps: float = EPS,
        anneal: Mapping | None = None,
        hard: bool = False,
    ):
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
        temperature = check("temperature", temperature, positive_float.such_as("0.67"), owner=self.family_name)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < 1e-3:
            raise ConfigError(f"gumbel_softmax eps must be a small non-negative number (default 1e-12), got {eps!r}")
        hard = check("hard", hard, boolean, owner=self.family_name)
        self.sizes = tuple(int(k) for k in sizes)
        self.anneal = TemperatureAnneal.from_options(anneal) if anneal is not None else None
        self.temperature = self.anneal(0) if self.anneal is not None else temperature
        self.hard = hard
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

    def _reduce_per_variable(self, x: Tensor, op: str = "sum") -> Tensor:
        """Reduce each variable's entries with the tensor method ``op`` (``"sum"``, ``"amax"``): ``(B, ΣK)`` to
        ``(B, n_vars)``."""
        if self._uniform:
            return getattr(x.reshape(x.shape[0], len(self.sizes), self.sizes[0]), op)(-1)
        return torch.stack([getattr(part, op)(-1) for part in torch.split(x, self.sizes, dim=-1)], dim=-1)

    def _one_hot_argmax(self, scores: Tensor) -> Tensor:
        return self._per_variable(scores, lambda s: F.one_hot(s.argmax(-1), s.shape[-1]).to(scores.dtype))

    def _log_k(self, like: Tensor) -> Tensor:
        return torch.tensor([math.log(k) for k in self.sizes], dtype=like.dtype, device=like.device)

    # --- training-time state and diagnostics -------------------------------------------------------------------------
    def at_step(self, step: int) -> None:
        """With ``anneal``, set the temperature to the schedule's value at ``step``; otherwise nothing."""
        if self.anneal is not None:
            self.temperature = self.anneal(step)

    def diagnostics(self, params: Params, sample: Tensor) -> dict[str, Tensor]:
        """Batch means for the training log (the objective logs them as ``<key>/<channel>``):

        * ``temperature``: the current one;
        * ``sample_max``: the largest entry of each variable's training sample, averaged over variables and the batch
          — 1 when the samples are one-hot, 1/K when uniform: how far what the decoder trains on is from the one-hots
          it decodes in evaluation. With ``hard=True`` the decoder's samples *are* one-hot, so it reads 1 by
          construction (the relaxed sample behind the gradient is not kept: parts of a batch run on threads, and a
          family holds no per-batch state);
        * ``alpha_max``: the same for the posterior's class probabilities — how confident the encoder is, whatever
          ``hard``; ``sample_max`` above it is the sharpening by the noise and a low temperature.
        """
        return {
            "temperature": sample.new_tensor(self.temperature, dtype=torch.float32),
            "sample_max": self._reduce_per_variable(sample.detach().float(), "amax").mean(),
            "alpha_max": self._reduce_per_variable(params["alpha"].detach().float(), "amax").mean(),
        }

    # --- protocol ----------------------------------------------------------------------------------------------------
    def params_from_features(self, features: Tensor) -> Params:
        return {"alpha": self._per_variable(features, lambda f: torch.softmax(f, dim=-1))}

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        """A relaxed sample at the current temperature; with ``hard``, its one-hot with the relaxed sample's gradient."""
        alpha = params["alpha"]
        gumbel = noise.gumbel(alpha.shape[1], dtype=alpha.dtype, device=alpha.device)
        logits = (torch.log(alpha + self.eps) + gumbel) / self.temperature
        relaxed = self._per_variable(logits, lambda s: torch.softmax(s, dim=-1))
        if not self.hard:
            return relaxed
        # Straight-through: y_hard − y.detach() + y, written so that the forward value is exactly one-hot (the added
        # difference is exactly 0) while the gradient is the relaxed sample's.
        return self._one_hot_argmax(relaxed) + (relaxed - relaxed.detach())

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
        """The Concrete density of a relaxed sample under the posterior's class probabilities, at the current
        temperature. With ``hard`` a training sample is an exact one-hot categorical draw: its probability
        ``Σ_k y_k log α_k`` (the straight-through gradient reaches the sample through ``y``)."""
        log_alpha = torch.log(params["alpha"] + self.eps)
        if self.hard:
            return self._reduce_per_variable(sample * log_alpha)
        return self._concrete_log_density(log_alpha, sample)

    def log_prior_density(self, sample: Tensor, context: LatentContext) -> Tensor:
        """The Concrete density under the uniform prior (every log α_k = −log K); with ``hard``, the uniform
        categorical's ``−log K``."""
        if self.hard:
            return self.log_prior(sample, context)
        log_alpha = torch.cat([sample.new_full((k,), -math.log(k)) for k in self.sizes]).expand_as(sample)
        return self._concrete_log_density(log_alpha, sample)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [
            {"sizes": [2]},
            {"sizes": [10]},
            {"sizes": [2, 2, 2]},
            {"sizes": [3, 5], "temperature": 1.0},
            {"sizes": [3, 5], "anneal": {"start": 2.0, "end": 0.5, "steps": 100}},
            {"sizes": [2, 4], "hard": True, "anneal": {"start": 1.0, "end": 0.3, "steps": 10, "shape": "linear"}},
        ]

    def extra_repr(self) -> str:
        out = f"sizes={list(self.sizes)}, temperature={self.temperature}"
        if self.anneal is not None:
            out += f", anneal={self.anneal!r}"
        if self.hard:
            out += ", hard=True"
        return out + ", " + super().extra_repr()


@hookimpl
def latentkit_register_families(registry):
    registry.add("gumbel_softmax", GumbelSoftmax)
