"""The built-in Beta family: a rejection sampler that keeps the row rule, its implicit gradient, and its prior.

Why these beside the conformance suite (which runs on every registered family, Beta included): the suite checks the
contract; these check the pieces that are Beta's own — Marsaglia–Tsang Gamma draws from per-row noise, the implicit
reparameterisation gradient against two independent references, and the quantiles traversals sweep.
"""

from __future__ import annotations

import math

import pytest
import torch

from latentkit.cli import main as cli_main
from latentkit.core import JointLatent, SampleNoise
from latentkit.errors import ConfigError
from latentkit_plugins.beta import (
    Beta,
    beta_quantile,
    implicit_log_gamma,
    log_gamma_alpha_derivative,
    log_gamma_sample,
    regularized_incomplete_beta,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SHAPES = [0.07, 0.4, 1.0, 2.5, 30.0]


def _gamma_quantile(u: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``F^{-1}(u; α)`` by bisection on ``torch.special.gammainc`` in float64 (200 halvings of a bracket)."""
    lo = torch.zeros_like(alpha)
    hi = torch.full_like(alpha, 10.0) + 20 * alpha
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = torch.special.gammainc(alpha, mid) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _same_rows(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to a few units in the last place (values in (0, 1)): a row computed inside a batch of another size may
    take another vectorised code path, whose transcendental functions can round differently by an ulp."""
    torch.testing.assert_close(a, b, rtol=0, atol=16 * torch.finfo(a.dtype).eps)


def test_check_plugin_passes_for_beta(capsys):
    """The whole conformance suite, through the command a plugin author runs."""
    assert cli_main(["check-plugin", "beta", "--max-examples", "3"]) == 0, capsys.readouterr().out


def test_implicit_gradient_matches_the_quantile_derivative():
    """dG/dα at a fixed CDF value (what implicit reparameterisation computes) against a central difference of the
    Gamma quantile function, both in float64."""
    alpha = torch.tensor(SHAPES, dtype=torch.float64)
    log_g = log_gamma_sample(alpha.unsqueeze(0).expand(4, -1), SampleNoise.for_rows(11, 3, range(4)))
    for row in log_g:
        g = row.exp()
        u = torch.special.gammainc(alpha, g)
        h = 1e-5 * alpha
        reference = (_gamma_quantile(u, alpha + h) - _gamma_quantile(u, alpha - h)) / (2 * h)
        implicit = log_gamma_alpha_derivative(row, alpha) * g
        torch.testing.assert_close(implicit, reference, rtol=1e-5, atol=0.0)


def test_implicit_gradient_agrees_with_torch_gamma_rsample():
    """Against torch.distributions.Gamma's reparametrised gradient (its own approximation: agreement to 1e-3)."""
    alpha = torch.tensor(SHAPES, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    g = torch.distributions.Gamma(alpha, torch.ones_like(alpha)).rsample((6,))
    (reference,) = torch.autograd.grad(g.sum(), alpha)
    implicit = (log_gamma_alpha_derivative(g.detach().log(), alpha.detach().expand_as(g)) * g.detach()).sum(0)
    torch.testing.assert_close(implicit, reference, rtol=1e-3, atol=0.0)


def test_pathwise_gradient_of_the_mean_is_unbiased():
    """E[x] = a / (a + b): the mean of dx/da over rsample draws estimates b / (a + b)², within 5 standard errors."""
    family = Beta(units=1)
    n = 40_000
    for a_value, b_value in [(0.5, 2.0), (1.0, 1.0), (3.0, 0.7)]:
        a = torch.full((n, 1), a_value, dtype=torch.float64, requires_grad=True)
        b = torch.full((n, 1), b_value, dtype=torch.float64)
        x = family.rsample({"a": a, "b": b}, SampleNoise.for_rows(5, 1, range(n)))
        (grad,) = torch.autograd.grad(x.sum(), a)
        expected = b_value / (a_value + b_value) ** 2
        stderr = grad.std().item() / math.sqrt(n)
        assert abs(grad.mean().item() - expected) <= 5 * stderr, (a_value, b_value, grad.mean().item(), expected)


@pytest.mark.parametrize(("a_value", "b_value"), [(0.3, 0.3), (1.0, 1.0), (2.0, 5.0), (40.0, 3.0)])
def test_draws_have_the_beta_moments(a_value, b_value):
    n = 40_000
    a = torch.full((n, 1), a_value, dtype=torch.float64)
    b = torch.full((n, 1), b_value, dtype=torch.float64)
    x = Beta(units=1).rsample({"a": a, "b": b}, SampleNoise.for_rows(2, 9, range(n)))
    mean = a_value / (a_value + b_value)
    var = a_value * b_value / ((a_value + b_value) ** 2 * (a_value + b_value + 1))
    assert abs(x.mean().item() - mean) <= 5 * math.sqrt(var / n)
    fourth = ((x - mean) ** 4).mean().item()  # the variance estimate's own spread
    assert abs(x.var().item() - var) <= 5 * math.sqrt((fourth - var**2) / n)


def test_a_row_draws_the_same_in_any_batch_and_any_split():
    """The row rule, directly: rows 0..7 drawn as one batch, in two parts, and reversed inside a larger batch."""
    family = Beta(units=3, prior_a=0.8, prior_b=2.0)
    features = torch.randn(12, family.param_size, generator=torch.Generator().manual_seed(0))
    params = family.params_from_features(features)
    whole = family.rsample({k: v[:8] for k, v in params.items()}, SampleNoise.for_rows(7, 40, range(8)))
    parts = torch.cat([
        family.rsample({k: v[:3] for k, v in params.items()}, SampleNoise.for_rows(7, 40, range(3))),
        family.rsample({k: v[3:8] for k, v in params.items()}, SampleNoise.for_rows(7, 40, range(3, 8))),
    ])
    _same_rows(whole, parts)
    order = torch.tensor([11, 7, 6, 5, 4, 10, 3, 2, 1, 0, 9, 8])
    shuffled = family.rsample({k: v[order] for k, v in params.items()}, SampleNoise.for_rows(7, 40, order))
    _same_rows(shuffled[torch.argsort(order)][:8], whole)


def test_the_joint_latent_keeps_the_row_rule_for_a_beta_channel():
    latent = JointLatent({"cont": Beta(units=2)})
    features = torch.randn(6, latent.param_size, generator=torch.Generator().manual_seed(1))
    params = latent.split(features)
    whole = latent.sample(params, reparametrise=True, noise=SampleNoise.for_rows(3, 2, range(6)))["cont"]
    tail = {"cont": {k: v[4:] for k, v in params["cont"].items()}}
    part = latent.sample(tail, reparametrise=True, noise=SampleNoise.for_rows(3, 2, range(4, 6)))["cont"]
    _same_rows(whole[4:], part)


def test_kl_matches_torch_distributions():
    family = Beta(units=2, prior_a=2.0, prior_b=5.0)
    features = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    params = family.params_from_features(features)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Beta(params["a"], params["b"]),
        torch.distributions.Beta(torch.full_like(params["a"], 2.0), torch.full_like(params["b"], 5.0)),
    )
    torch.testing.assert_close(family.kl(params, None), reference, rtol=1e-10, atol=1e-12)


def test_gamma_draws_from_tiny_shapes_stay_finite_in_log_space():
    alpha = torch.full((1000, 1), 1e-3, dtype=torch.float64)
    log_g = implicit_log_gamma(alpha.requires_grad_(True), SampleNoise.for_rows(0, 0, range(1000)))
    assert torch.isfinite(log_g).all()
    log_g.sum().backward()
    assert torch.isfinite(alpha.grad).all()


def test_traversal_values_are_prior_quantiles():
    uniform = Beta(units=1).traversal_values(0, 5)
    torch.testing.assert_close(uniform, torch.linspace(0.05, 0.95, 5).unsqueeze(1))
    skewed = Beta(units=1, prior_a=2.0, prior_b=5.0).traversal_values(0, 7).double().squeeze(1)
    p = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    torch.testing.assert_close(regularized_incomplete_beta(skewed, 2.0, 5.0), p, rtol=0, atol=1e-6)  # float32 values
    # the incomplete beta itself, against its closed form for b = 1: I_x(a, 1) = x^a
    x = torch.linspace(0.01, 0.99, 11, dtype=torch.float64)
    torch.testing.assert_close(regularized_incomplete_beta(x, 2.5, 1.0), x**2.5, rtol=1e-12, atol=0)
    torch.testing.assert_close(beta_quantile(p, 2.5, 1.0), p ** (1 / 2.5), rtol=1e-12, atol=0)


def test_neutral_value_is_the_prior_mean_inside_the_support():
    assert torch.equal(Beta(units=3).neutral_value(), torch.full((3,), 0.5))
    torch.testing.assert_close(Beta(units=1, prior_a=2.0, prior_b=6.0).neutral_value(), torch.tensor([0.25]))


@pytest.mark.parametrize("options", [{"prior_a": 0.0}, {"prior_b": -1.0}, {"prior_a": math.inf}, {"prior_b": True}])
def test_bad_prior_is_a_config_error(options):
    with pytest.raises(ConfigError, match="must be a positive finite number"):
        Beta(units=2, **options)
