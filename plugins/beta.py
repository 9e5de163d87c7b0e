"""Beta units on (0, 1) with a Beta(a0, b0) prior: a bounded continuous family, sampled by rejection.

Posterior ``Beta(a, b)`` per unit with ``a = a0·exp(s(f_a))``, ``b = b0·exp(s(f_b))``, so zero features give the
prior; ``s`` is the identity near 0, saturating smoothly (``tanh``) at +5 (a shape up to 148× the prior's: posteriors
can concentrate) and at −1.5 (down to 0.22× the prior's). Why a floor on the shapes: a Beta with a shape far below 1
puts much of its mass within rounding of 0 or 1, where a sample (even in float64) can no longer be told from the edge
and its density is lost. Training samples are ``x = G1 / (G1 + G2)`` with ``G1 ~ Gamma(a)``, ``G2 ~ Gamma(b)``, both
drawn by the Marsaglia–Tsang rejection sampler from the :class:`~latentkit.core.SampleNoise` passed in — attempt ``t``
of a row is draw ``t`` of that row's own key, so a row's value never depends on the other rows (the row rule); for a
shape below 1 the sampler draws ``Gamma(α + 1)·U^(1/α)``. Everything is computed in log space in float64
(``x = sigmoid(log G1 − log G2)``), so tiny shapes do not underflow.

Gradients: implicit reparameterisation (Figurnov et al. 2018). For ``G ~ Gamma(α)`` with CDF ``F(G; α)`` (the
regularised lower incomplete gamma, ``torch.special.gammainc``) and density ``f``, ``dG/dα = −∂F/∂α (G; α) / f(G; α)``;
``∂F/∂α`` is a central difference in float64 (step ``α·6e-6``, about the cube root of float64's epsilon, which balances
truncation and rounding error). Only public torch functions are used.

The KL is analytic::

    KL(Beta(a, b) ‖ Beta(a0, b0)) = ln B(a0, b0) − ln B(a, b) + (a − a0) ψ(a) + (b − b0) ψ(b) + (a0 − a + b0 − b) ψ(a + b)

The capacity is unbounded (a posterior can concentrate anywhere). Traversals sweep the prior's quantiles
``linspace(0.05, 0.95, n)`` (linear for the uniform Beta(1, 1)), found by bisection on the regularised incomplete beta
function (a continued fraction, below); traversals and edits hold the other units at the prior mean ``a0 / (a0 + b0)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentkit.core import LatentContext, LatentFamily, OneColumnPerUnit, Params, SampleNoise
from latentkit.plugins import hookimpl
from latentkit.validation import check, positive_float

#: Shapes are the prior's times ``exp`` of at most this (a saturating ``tanh``): up to e^5 ≈ 148 times the prior's...
UPPER_LOG_RATIO = 5.0
#: ... and at least e^-1.5 ≈ 0.22 times the prior's (see the module docstring).
LOWER_LOG_RATIO = 1.5
#: Rejection attempts before giving up; Marsaglia–Tsang accepts with probability ≥ 0.95 per attempt.
MAX_ATTEMPTS = 64
#: Relative step of the central difference in α (≈ cube root of float64's epsilon).
_RELATIVE_STEP = 6e-6


# --- Gamma sampling under the row rule ---------------------------------------------------------------------------------
def log_gamma_sample(alpha: Tensor, noise: SampleNoise) -> Tensor:
    """``log G`` with ``G ~ Gamma(alpha)`` per entry of ``alpha`` ``(B, k)`` (float64, no gradient), drawn from
    ``noise`` row by row: Marsaglia–Tsang for ``Gamma(α')``, ``α' = α + 1`` where ``α < 1``, then the boost
    ``log G = log G' + log(U) / α``."""
    alpha = alpha.detach().to(torch.float64)
    rows, k = alpha.shape
    small = alpha < 1
    shape = torch.where(small, alpha + 1, alpha)
    d = shape - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    log_g = torch.full_like(alpha, math.nan)
    pending = torch.ones_like(alpha, dtype=torch.bool)
    normals, uniforms = noise.stream("gamma-normal"), noise.stream("gamma-accept")
    for attempt in range(MAX_ATTEMPTS):
        live = pending.any(1)
        if not live.any():
            break
        x = normals.select(live).normal(k, draw=attempt, dtype=torch.float64, device=alpha.device)
        u = uniforms.select(live).uniform(k, draw=attempt, dtype=torch.float64, device=alpha.device)
        d_l, c_l = d[live], c[live]
        v = (1 + c_l * x) ** 3
        ok = v > 0
        log_v = torch.log(torch.where(ok, v, torch.ones_like(v)))
        accept = ok & (torch.log(u) < 0.5 * x * x + d_l - d_l * v + d_l * log_v)
        take = accept & pending[live]
        block = log_g[live]
        block[take] = (torch.log(d_l) + log_v)[take]
        log_g[live] = block
        still = pending[live] & ~take
        pending[live] = still
    if pending.any():  # probability below 0.05**64 per entry
        raise RuntimeError("beta: the Gamma rejection sampler did not accept within MAX_ATTEMPTS attempts")
    boost = noise.stream("gamma-boost").uniform(k, dtype=torch.float64, device=alpha.device)
    return torch.where(small, log_g + torch.log(boost) / alpha, log_g)


def gamma_cdf_alpha_derivative(log_g: Tensor, alpha: Tensor) -> Tensor:
    """``∂F/∂α (G; α)`` for the Gamma CDF ``F = gammainc(α, G)`` by central difference in float64; the upper tail is
    differenced through ``gammaincc`` (``∂P/∂α = −∂Q/∂α``), which keeps precision where ``F`` is close to 1."""
    alpha, g = alpha.to(torch.float64), log_g.to(torch.float64).exp()
    h = _RELATIVE_STEP * alpha
    lower = (torch.special.gammainc(alpha + h, g) - torch.special.gammainc(alpha - h, g)) / (2 * h)
    upper = -(torch.special.gammaincc(alpha + h, g) - torch.special.gammaincc(alpha - h, g)) / (2 * h)
    return torch.where(torch.special.gammainc(alpha, g) < 0.5, lower, upper)


def log_gamma_alpha_derivative(log_g: Tensor, alpha: Tensor) -> Tensor:
    """``d log G / dα = −∂F/∂α / (f(G; α)·G)``, with ``f(G; α)·G = exp(α log G − G − lgamma(α))`` (log space)."""
    alpha, log_g = alpha.to(torch.float64), log_g.to(torch.float64)
    log_fg = alpha * log_g - log_g.exp() - torch.lgamma(alpha)
    return -gamma_cdf_alpha_derivative(log_g, alpha) * torch.exp(-log_fg)


class _ImplicitLogGamma(torch.autograd.Function):
    """``log G`` as a function of ``α`` for a fixed draw: the forward value is the draw, the backward is implicit
    reparameterisation (the draw moves with α so that its CDF value stays fixed)."""

    @staticmethod
    def forward(ctx, alpha: Tensor, log_g: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(alpha, log_g)
        return log_g.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        alpha, log_g = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        slope = log_gamma_alpha_derivative(log_g, alpha).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        return (grad.to(torch.float64) * slope).to(alpha.dtype), None


def implicit_log_gamma(alpha: Tensor, noise: SampleNoise) -> Tensor:
    """A reparametrised ``log G``, ``G ~ Gamma(alpha)`` (float64), drawn from ``noise`` under the row rule."""
    return _ImplicitLogGamma.apply(alpha.to(torch.float64), log_gamma_sample(alpha, noise))


# --- the regularised incomplete beta function, for quantiles -------------------------------------------------------
def _beta_continued_fraction(x: Tensor, a: float, b: float, terms: int = 200) -> Tensor:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), converging fast for ``x < (a + 1) / (a + b + 2)``."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = torch.ones_like(x)
    d = 1.0 - qab * x / qap
    d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    d = 1.0 / d
    h = d.clone()
    for m in range(1, terms + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
            c = 1.0 + aa / c
            c = torch.where(c.abs() < tiny, torch.full_like(c, tiny), c)
            d = 1.0 / d
            h = h * d * c
    return h


def regularized_incomplete_beta(x: Tensor, a: float, b: float) -> Tensor:
    """``I_x(a, b)``, the Beta(a, b) CDF at ``x`` (float64), by the continued fraction and its symmetry
    ``I_x(a, b) = 1 − I_{1−x}(b, a)``."""
    x = x.to(torch.float64).clamp(0.0, 1.0)
    inside = (x > 0) & (x < 1)
    xs = x.clamp(1e-300, 1 - 1e-16)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * torch.log(xs) + b * torch.log1p(-xs)
    )
    front = torch.exp(log_front)
    direct = front * _beta_continued_fraction(xs, a, b) / a
    mirrored = 1.0 - front * _beta_continued_fraction(1.0 - xs, b, a) / b
    value = torch.where(xs < (a + 1.0) / (a + b + 2.0), direct, mirrored)
    return torch.where(inside, value, x)


def beta_quantile(p: Tensor, a: float, b: float, grid: int = 4097, newton_steps: int = 4) -> Tensor:
    """The Beta(a, b) quantile at probabilities ``p`` in (0, 1) (float64): the CDF (:func:`regularized_incomplete_beta`)
    on a grid of [0, 1] brackets each quantile, linear interpolation starts it, and Newton steps on the CDF (kept inside
    the bracket) refine it. Why not plain bisection: each CDF evaluation is a few hundred tensor operations, and one
    vectorised grid plus four steps cost far less than fifty halvings."""
    p = p.to(torch.float64)
    xs = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    cdf = regularized_incomplete_beta(xs, a, b)
    hi_index = torch.searchsorted(cdf, p).clamp(1, grid - 1)
    lo, hi = xs[hi_index - 1], xs[hi_index]
    c_lo, c_hi = cdf[hi_index - 1], cdf[hi_index]
    x = lo + (hi - lo) * ((p - c_lo) / (c_hi - c_lo).clamp_min(1e-300))
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    for _ in range(newton_steps):
        inner = x.clamp(1e-300, 1 - 1e-16)
        density = torch.exp(log_norm + (a - 1) * torch.log(inner) + (b - 1) * torch.log1p(-inner))
        x = (x - (regularized_incomplete_beta(x, a, b) - p) / density).clamp(lo, hi)
    return x


# --- the family ----------------------------------------------------------------------------------------------------
class Beta(OneColumnPerUnit, LatentFamily):
    """``units`` independent Beta units; posterior Beta(a, b), prior Beta(prior_a, prior_b) (default the uniform
    Beta(1, 1)). Encoder features: ``units`` log-ratios ``log(a / prior_a)``, then ``units`` ``log(b / prior_b)``."""

    family_name = "beta"

    def __init__(self, units: int, prior_a: float = 1.0, prior_b: float = 1.0):
        super().__init__()
        self.set_units(units)
        self.prior_a = check("prior_a", prior_a, positive_float.such_as("1.0"), owner=self.family_name)
        self.prior_b = check("prior_b", prior_b, positive_float.such_as("1.0"), owner=self.family_name)

    @property
    def param_size(self) -> int:
        return 2 * self.units

    def params_from_features(self, features: Tensor) -> Params:
        # Slope 1 at 0 on both sides; saturates smoothly, so extreme features give finite shapes.
        f = torch.where(
            features < 0, LOWER_LOG_RATIO * torch.tanh(features / LOWER_LOG_RATIO),
            UPPER_LOG_RATIO * torch.tanh(features / UPPER_LOG_RATIO),
        )
        return {"a": self.prior_a * f[:, : self.units].exp(), "b": self.prior_b * f[:, self.units :].exp()}

    def _prior_params(self, n: int, dtype: torch.dtype = torch.float32, device=None) -> Params:
        return {
            "a": torch.full((n, self.units), self.prior_a, dtype=dtype, device=device),
            "b": torch.full((n, self.units), self.prior_b, dtype=dtype, device=device),
        }

    def rsample(self, params: Params, noise: SampleNoise) -> Tensor:
        a, b = params["a"], params["b"]
        log_g1 = implicit_log_gamma(a, noise.stream("a"))
        log_g2 = implicit_log_gamma(b, noise.stream("b"))
        x = torch.sigmoid(log_g1 - log_g2).to(a.dtype)
        # In the open interval, so log densities stay finite where rounding would reach 0 or 1.
        tiny = torch.finfo(a.dtype).tiny
        return x.clamp(tiny, 1 - torch.finfo(a.dtype).eps / 2)

    def representative(self, params: Params) -> Tensor:
        a, b = params["a"], params["b"]
        return a / (a + b)

    def neutral_value(self) -> Tensor:
        """The prior mean ``prior_a / (prior_a + prior_b)`` for every unit (inside the support, unlike 0)."""
        return torch.full((self.units,), self.prior_a / (self.prior_a + self.prior_b))

    def kl(self, params: Params, context: LatentContext) -> Tensor:
        a, b = params["a"], params["b"]
        a0, b0 = self.prior_a, self.prior_b
        log_b0 = math.lgamma(a0) + math.lgamma(b0) - math.lgamma(a0 + b0)
        log_b = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
        kl = (
            log_b0 - log_b
            + (a - a0) * torch.digamma(a)
            + (b - b0) * torch.digamma(b)
            + (a0 - a + b0 - b) * torch.digamma(a + b)
        )
        return kl.clamp_min(0.0)  # rounding near the prior

    def capacity_bound(self) -> float:
        return math.inf

    def prior_sample(self, n: int, context: LatentContext, generator: torch.Generator | None = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(self._prior_params(n), SampleNoise.fresh(n, generator))

    def traversal_values(self, unit: int, n: int) -> Tensor:
        p = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
        if self.prior_a == 1.0 and self.prior_b == 1.0:
            return p.float().unsqueeze(1)  # the uniform prior's quantiles are the probabilities themselves
        return beta_quantile(p, self.prior_a, self.prior_b).float().unsqueeze(1)

    def sample_posterior(self, params: Params, generator: torch.Generator | None = None) -> Tensor:
        a = params["a"]
        with torch.no_grad():
            return self.rsample(params, SampleNoise.fresh(a.shape[0], generator, device=a.device))

    def log_posterior(self, params: Params, value: Tensor) -> Tensor:
        return torch.distributions.Beta(params["a"], params["b"], validate_args=False).log_prob(value)

    def log_prior(self, value: Tensor, context: LatentContext) -> Tensor:
        prior = self._prior_params(value.shape[0], value.dtype, value.device)
        return torch.distributions.Beta(prior["a"], prior["b"], validate_args=False).log_prob(value)

    @classmethod
    def example_configs(cls) -> list[dict]:
        return [
            {"units": 1},
            {"units": 3},
            {"units": 2, "prior_a": 2.0, "prior_b": 5.0},
        ]

    def extra_repr(self) -> str:
        return f"prior=Beta({self.prior_a}, {self.prior_b}), " + super().extra_repr()


@hookimpl
def latentkit_register_families(registry):
    registry.add("beta", Beta)
