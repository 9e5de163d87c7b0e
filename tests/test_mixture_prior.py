"""A channel whose prior depends on another channel's value works through the protocol alone, with no core change.

Why: VaDE/GMVAE-style priors ``p(z, c) = p(c) p(z | c)`` are the natural next family after JointVAE's independent
channels. :class:`latentkit.testing.examples.MixtureGaussian` (``depends_on=("disc",)``, ``p(z | c) = N(mu_c, I)``
with learnable ``mu``) is registered here as a third-party plugin and checked end to end: its KL combines with the
categorical's into the joint KL (against a Monte-Carlo estimate written from scratch with torch.distributions),
prior sampling is ancestral in dependency order, bad dependency graphs are ConfigErrors, and the conformance suite runs
on it inside a joint latent.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from torch.distributions import Categorical, Normal, kl_divergence

from latentkit.assembly.build import build_latent
from latentkit.specs import ModelSpec
from latentkit.core import JointLatent, LatentContext
from latentkit.errors import ConfigError
from latentkit.plugins import get_registry
from latentkit.testing import FamilyConformance, assert_kl_agrees, check_family, joint_kl_monte_carlo
from latentkit.testing.examples import PLUGIN, ExampleCategorical, MixtureGaussian
from latentkit.testing.strategies import generator, moderate_features, seeds
from latentkit_plugins.gumbel_softmax import GumbelSoftmax

pytestmark = pytest.mark.usefixtures("single_thread")

K, UNITS = 4, 2


@pytest.fixture
def registered(plugins):
    """MixtureGaussian registered in code, as a third-party distribution's entry point would register it."""
    plugins.register(PLUGIN, "mixture_gaussian_example")
    return get_registry()


def _spec(*channels) -> ModelSpec:
    return ModelSpec.from_dict({"image_shape": [1, 32, 32], "channels": list(channels), "network": "jointvae_conv"})


def _latent(registered, z_first: bool = True) -> JointLatent:
    z = {"name": "z", "family": "mixture_gaussian", "options": {"units": UNITS, "components": K, "parent": "disc"}}
    disc = {"name": "disc", "family": "gumbel_softmax", "options": {"sizes": [K]}}
    return build_latent(_spec(*([z, disc] if z_first else [disc, z])), registered)


def test_registered_as_a_third_party_family(registered):
    entry = registered.families.entry("mixture_gaussian")
    assert entry.value is MixtureGaussian
    assert entry.source.plugin == "mixture_gaussian_example" and entry.source.distribution == "(not installed)"


def _independent_joint_mc(latent: JointLatent, features: torch.Tensor, n: int, seed: int):
    """E[log q(z, c) − log p(z, c)], p(z, c) = p(c) p(z | c), written with torch.distributions only."""
    params = latent.split(features)
    alpha, mean, logvar = params["disc"]["alpha"], params["z"]["mean"], params["z"]["logvar"]
    mu = latent.channels["z"].mu.detach().double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        c = Categorical(probs=alpha).sample((n,))  # (n, B): the categorical itself
        z = Normal(mean, torch.exp(0.5 * logvar)).sample((n,))  # (n, B, units)
    log_q = Categorical(probs=alpha).log_prob(c) + Normal(mean, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_p = -math.log(K) + Normal(mu[c], 1.0).log_prob(z).sum(-1)
    diff = log_q - log_p
    return diff.mean(0), diff.std(0) / math.sqrt(n)


@settings(deadline=None, max_examples=10)
@given(features=moderate_features(K + 2 * UNITS, max_batch=3), seed=seeds())
def test_joint_kl_matches_a_monte_carlo_estimate_of_kl_q_zc_p_zc(features, seed):
    """Σ channels' KL = KL(q(c)‖p(c)) + E_q(c)[KL(q(z)‖p(z|c))] = E[log q(z, c) − log p(z, c)], within 5 SE + 0.03.

    Channels are declared disc-then-z here, matching ``features``; 0.03 nats = 0.01 per unit (1 categorical + 2
    Gaussian units), the bound of :mod:`latentkit.testing.montecarlo`. 10 examples × ≤ 3 rows: false failure < 1e-4.
    """
    registry = get_registry()
    latent = JointLatent({
        "disc": registry.families.get("gumbel_softmax")([K]),
        "z": MixtureGaussian(UNITS, K, parent="disc"),
    })
    features = features.double()
    analytic = sum(kl.double().sum(-1) for kl in latent.kl(latent.split(features)).values())
    estimate, se = _independent_joint_mc(latent, features, 20_000, seed % 2**32)
    assert ((analytic - estimate).abs() <= 5 * se + 0.03).all(), (analytic, estimate, se)
    # and the library's generic Monte-Carlo check (which uses the families' own log densities) agrees too
    assert_kl_agrees(joint_kl_monte_carlo(latent, features, generator=generator(seed)))


class UniformWeightsMixture(MixtureGaussian):
    """A plausible bug: averages the conditional KL with uniform weights instead of q(c)."""

    def kl(self, params, context):
        alpha = context.params[self.parent]["alpha"]
        uniform = torch.full_like(alpha, 1.0 / alpha.shape[1])
        return super().kl(params, LatentContext({self.parent: {"alpha": uniform}}, context.samples))


def test_a_wrong_conditional_kl_is_detected():
    latent = JointLatent({"disc": GumbelSoftmax([K]), "z": UniformWeightsMixture(UNITS, K)})
    features = torch.tensor([[3.0, -2.0, -2.0, -2.0, 0.5, -0.5, 0.2, -0.3]], dtype=torch.float64)
    with pytest.raises(AssertionError, match="channel 'z'"):
        assert_kl_agrees(joint_kl_monte_carlo(latent, features, generator=generator(0)))
    with pytest.raises(AssertionError, match="kl_matches_monte_carlo"):
        check_family(UniformWeightsMixture, [{"units": UNITS, "components": K}], checks=["kl_matches_monte_carlo"])


def test_conditional_kl_at_a_certain_category_is_the_gaussian_kl_to_that_component():
    family = MixtureGaussian(UNITS, K)
    params = family.params_from_features(torch.tensor([[0.3, -1.2, 0.4, -0.8]], dtype=torch.float64))
    for k in range(K):
        alpha = torch.nn.functional.one_hot(torch.tensor([k]), K).double()
        kl = family.kl(params, LatentContext({"disc": {"alpha": alpha}}))
        q = Normal(params["mean"], torch.exp(0.5 * params["logvar"]))
        expected = kl_divergence(q, Normal(family.mu[k].detach().double(), 1.0))
        torch.testing.assert_close(kl, expected)


@pytest.mark.parametrize("z_first", [True, False], ids=["z-declared-first", "disc-declared-first"])
def test_prior_sample_is_ancestral(registered, z_first):
    """c ~ U{1..K}, then z | c ~ N(mu_c, I): z clusters around the mean of the component its own c picked.

    With z declared *before* disc, this only works because the core orders prior sampling by dependency.
    Bounds: 5 standard errors per component mean and frequency (16 comparisons, false failure < 1e-5).
    """
    latent = _latent(registered, z_first)
    n = 8000
    samples = latent.prior_sample(n, generator(0))
    c, z = samples["disc"].argmax(1), samples["z"]
    assert (samples["disc"].sum(1) == 1).all()
    mu = latent.channels["z"].mu.detach()
    for k in range(K):
        picked = z[c == k]
        count = picked.shape[0]
        assert abs(count / n - 1 / K) <= 5 * math.sqrt((1 / K) * (1 - 1 / K) / n)
        assert ((picked.mean(0) - mu[k]).abs() <= 5 / math.sqrt(count)).all(), (k, picked.mean(0), mu[k])
        assert ((picked.var(0) - 1).abs() <= 5 * math.sqrt(2 / count)).all()
    # the components really are apart, so a prior that ignored c would fail the check above
    assert torch.cdist(mu, mu).add(torch.eye(K) * 1e9).min() > 0.5


def test_the_learnable_prior_trains_and_is_saved(registered):
    latent = _latent(registered)
    params = latent.split(torch.randn(5, latent.param_size))
    sum(kl.sum() for kl in latent.kl(params).values()).backward()
    mu = latent.channels["z"].mu
    assert mu.grad is not None and torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0
    assert "channels.z.mu" in latent.state_dict()


def test_dependency_cycle_is_a_config_error():
    with pytest.raises(ConfigError, match="cycle"):
        JointLatent({"a": MixtureGaussian(1, 2, parent="b"), "b": MixtureGaussian(1, 2, parent="a")})


def test_self_dependency_is_a_config_error():
    with pytest.raises(ConfigError, match="depends on"):
        JointLatent({"z": MixtureGaussian(1, 2, parent="z")})


def test_unknown_dependency_is_a_config_error(registered):
    z = {"name": "z", "family": "mixture_gaussian", "options": {"units": 1, "components": 2, "parent": "nope"}}
    disc = {"name": "disc", "family": "gumbel_softmax", "options": {"sizes": [2]}}
    with pytest.raises(ConfigError, match="'nope'"):
        build_latent(_spec(z, disc), registered)


def test_a_parent_of_the_wrong_shape_is_a_config_error():
    latent = JointLatent({"disc": GumbelSoftmax([3]), "z": MixtureGaussian(1, 2)})
    with pytest.raises(ConfigError, match="2 categories"):
        latent.kl(latent.split(torch.zeros(1, latent.param_size)))


class TestMixtureGaussianConformance(FamilyConformance):
    """The conformance suite on a dependent family: parents come from MixtureGaussian.conformance_parents, every check
    runs inside a joint latent with them, and kl_zero_at_prior is skipped (see latentkit.testing.conformance)."""

    family_cls = MixtureGaussian


class TestExampleCategoricalConformance(FamilyConformance):
    """The parent MixtureGaussian's conformance cases are built with (defined beside it, so the framework names no
    plugin) is itself a conforming family."""

    family_cls = ExampleCategorical


def test_the_conformance_parent_is_the_example_categorical():
    (name, parent), = MixtureGaussian.conformance_parents({"units": 1, "components": 3, "parent": "c"}).items()
    assert name == "c" and isinstance(parent, ExampleCategorical) and parent.unit_sizes() == (3,)


def test_dependent_family_without_parents_is_skipped_with_a_reason():
    class NoParents(MixtureGaussian):
        conformance_parents = None

    report = check_family(NoParents, [{"units": 1, "components": 2}])
    assert report.skipped and not report.passed
    assert all("depends on channels ['disc']" in r.message and "parents=" in r.message for r in report.skipped)
