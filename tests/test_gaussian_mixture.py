"""The built-in ``gaussian_mixture`` family: a mixture-of-Gaussians prior p(z | c) indexed by a categorical channel.

Why these tests: the family's KL is the one term of a VaDE/GMVAE-style ELBO that nothing else checks, and its helpers
(``component_kl``, ``responsibilities``, ``traversal_values``) are used by clustering code and figures. Each is checked
against an independent computation — torch.distributions, a Monte-Carlo estimate written from scratch, a brute-force
minimisation, the mixture CDF — with a *learned-looking* prior (random means and log-variances), which the conformance
suite (run on the freshly initialised prior, log-variances 0) does not reach. Last, JointVAEConfig builds and trains a
model with it, and the mixture's parameters are trained and saved.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from latentkit.assembly.checkpoint import load_model
from latentkit.assembly.build import build_model, build_objective
from latentkit.core import JointLatent, LatentContext
from latentkit.errors import ConfigError
from latentkit.plugins import get_registry
from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import JointVAEConfig
from latentkit.testing import CHECKS, check_family
from latentkit.testing.strategies import generator, moderate_features, seeds
from latentkit.assembly.session import prepare_run
from latentkit_plugins.gaussian import Gaussian
from latentkit_plugins.gaussian_mixture import GaussianMixture
from latentkit_plugins.gumbel_softmax import GumbelSoftmax

pytestmark = pytest.mark.usefixtures("single_thread")

K, UNITS = 4, 3


def _mixture(seed: int, components: int = K, units: int = UNITS, **options) -> GaussianMixture:
    """A family whose prior looks trained: means ~ 2·N(0, 1), log-variances ~ U(−1.5, 1.5), all from ``seed``."""
    family = GaussianMixture(units, components, **options)
    gen = generator(seed)
    with torch.no_grad():
        family.mu.copy_(2 * torch.randn(components, units, generator=gen))
        family.prior_logvar.copy_(3 * torch.rand(components, units, generator=gen) - 1.5)
    return family


def _latent(family: GaussianMixture) -> JointLatent:
    """disc first, so that features are [disc logits | z means | z log-variances]."""
    return JointLatent({family.parent: GumbelSoftmax([family.components]), "z": family})


# --- registration and the conformance suite -------------------------------------------------------------------------
def test_registered_as_a_built_in_family_and_passes_the_conformance_suite():
    entry = get_registry().families.entry("gaussian_mixture")
    assert entry.value is GaussianMixture and entry.source.distribution == "latentkit"
    report = check_family(GaussianMixture)  # raises AssertionError on any failed check
    skipped = {r.check for r in report.skipped}
    # the checks that exclude dependent families
    assert skipped == {"kl_zero_at_prior", "training_density", "prior_sample_matches_prior"}
    assert len(report.passed) == (len(CHECKS) - len(skipped)) * len(GaussianMixture.example_configs())


# --- the KL -----------------------------------------------------------------------------------------------------------
def _joint_kl_monte_carlo(latent: JointLatent, features: torch.Tensor, n: int, seed: int):
    """E[log q(z, c) − log p(c) p(z | c)] with torch.distributions only (no code of the family), and its SE."""
    params = latent.split(features)
    family = latent.channels["z"]
    alpha, mean, std = params["disc"]["alpha"], params["z"]["mean"], torch.exp(0.5 * params["z"]["logvar"])
    mu, prior_std = family.mu.detach().double(), torch.exp(0.5 * family.prior_logvar.detach().double())
    gen = generator(seed)
    c = torch.multinomial(alpha, n, replacement=True, generator=gen).T  # (n, B)
    z = mean + std * torch.randn(n, *mean.shape, generator=gen, dtype=mean.dtype)  # (n, B, units)
    log_q = Categorical(probs=alpha).log_prob(c) + Normal(mean, std).log_prob(z).sum(-1)
    log_p = -math.log(family.components) + Normal(mu[c], prior_std[c]).log_prob(z).sum(-1)
    diff = log_q - log_p
    return diff.mean(0), diff.std(0) / math.sqrt(n)


@settings(deadline=None, max_examples=10)
@given(features=moderate_features(K + 2 * UNITS, max_batch=3), seed=seeds())
def test_joint_kl_is_kl_of_q_zc_to_the_mixture_prior(features, seed):
    """Σ channels' KL = KL(q(c) q(z) ‖ p(c) p(z | c)), within 5 SE + 0.01 nats per unit (1 + 3 units) of a
    Monte-Carlo estimate over 20 000 draws. 10 examples × ≤ 3 rows: false failure < 2e-5."""
    latent = _latent(_mixture(seed % 2**32))
    features = features.double()
    analytic = sum(kl.double().sum(-1) for kl in latent.kl(latent.split(features)).values())
    estimate, se = _joint_kl_monte_carlo(latent, features, 20_000, seed % 2**32 + 1)
    assert ((analytic - estimate).abs() <= 5 * se + 0.01 * (1 + UNITS)).all(), (analytic, estimate, se)


@settings(deadline=None, max_examples=20)
@given(features=moderate_features(K + 2 * UNITS, max_batch=4))
def test_with_identical_standard_components_it_is_the_gaussian_familys_kl(features):
    """spread=0, learn_variance=False: every component is N(0, 1), so whatever q(c) the KL is the gaussian family's."""
    family = GaussianMixture(UNITS, K, learn_variance=False, spread=0.0)
    assert not family.mu.any() and not family.prior_logvar.any()
    latent = _latent(family)
    params = latent.split(features)
    kl = latent.kl(params)["z"]
    torch.testing.assert_close(kl, Gaussian(UNITS).kl(params["z"], LatentContext()), rtol=1e-12, atol=1e-12)


def test_one_component_is_refused_with_a_pointer_to_the_gaussian_family():
    with pytest.raises(ConfigError, match="components >= 2.*gaussian family"):
        GaussianMixture(2, 1)


@pytest.mark.parametrize("learn_variance", [True, False])
def test_component_kl_is_torch_distributions_kl_of_independent_normals(learn_variance):
    family = _mixture(3, learn_variance=learn_variance)
    features = torch.randn(5, 2 * UNITS, generator=generator(4), dtype=torch.float64)
    params = family.params_from_features(features)
    q = Independent(Normal(params["mean"], torch.exp(0.5 * params["logvar"])), 1)
    for_all_k = family.component_kl(params)
    assert for_all_k.shape == (5, K)
    for k in range(K):
        p_k = Independent(Normal(family.mu[k].detach().double(), torch.exp(0.5 * family.prior_logvar[k].detach().double())), 1)
        torch.testing.assert_close(for_all_k[:, k], kl_divergence(q, p_k), rtol=1e-10, atol=1e-12)
    # and kl at a certain category is that component's KL, per unit summing to it
    latent = _latent(family)
    for k in range(K):
        alpha = torch.nn.functional.one_hot(torch.full((5,), k), K).double()
        kl = family.kl(params, LatentContext({"disc": {"alpha": alpha}}))
        torch.testing.assert_close(kl.sum(-1), for_all_k[:, k])
    assert latent.channels["z"] is family


# --- responsibilities -------------------------------------------------------------------------------------------------
def _kl_term(q: torch.Tensor, component_kl: torch.Tensor) -> torch.Tensor:
    """KL(q(c) ‖ U) + Σ_k q(k) KL_k: the part of the joint KL that depends on q(c | x)."""
    return torch.special.xlogy(q, q).sum(-1) + math.log(q.shape[-1]) + (q * component_kl).sum(-1)


@settings(deadline=None, max_examples=30)
@given(
    features=moderate_features(2 * UNITS, max_batch=3),
    alternative_logits=st.lists(st.floats(-8, 8), min_size=K, max_size=K),
    seed=seeds(),
)
def test_responsibilities_minimise_the_kl_over_q_c(features, alternative_logits, seed):
    """For a fixed q(z | x), no distribution over components gives a smaller KL term than responsibilities():
    not a random one, not a one-hot at the closest component, not the uniform one. The minimum is
    log K − logsumexp(−KL_k)."""
    family = _mixture(seed % 2**32)
    params = family.params_from_features(features)
    r = family.responsibilities(params)
    component_kl = family.component_kl(params)
    torch.testing.assert_close(r.sum(-1), torch.ones(features.shape[0], dtype=r.dtype))
    best = _kl_term(r, component_kl)
    torch.testing.assert_close(best, math.log(K) - torch.logsumexp(-component_kl, -1))
    alternatives = [
        torch.softmax(torch.tensor(alternative_logits, dtype=r.dtype), -1).expand_as(r),
        torch.nn.functional.one_hot(component_kl.argmin(-1), K).to(r.dtype),
        torch.full_like(r, 1 / K),
    ]
    for q in alternatives:
        assert (best <= _kl_term(q, component_kl) + 1e-9).all(), (q, r)


# --- traversal values -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_traversal_values_are_quantiles_of_the_marginal_mixture_prior(seed):
    family = _mixture(seed)
    n = 9
    for unit in range(UNITS):
        values = family.traversal_values(unit, n)
        assert values.shape == (n, 1) and values.dtype == torch.float32
        v = values[:, 0].double()
        assert (v[1:] > v[:-1]).all(), v
        mu, std = family.mu[:, unit].detach().double(), torch.exp(0.5 * family.prior_logvar[:, unit].detach().double())
        assert (v >= (mu - 3 * std).min()).all() and (v <= (mu + 3 * std).max()).all()
        cdf = Normal(mu, std).cdf(v.unsqueeze(-1)).mean(-1)  # the equal-weight mixture's CDF at the values
        torch.testing.assert_close(cdf, torch.linspace(0.05, 0.95, n, dtype=torch.float64), atol=1e-6, rtol=0)


def test_traversal_values_follow_the_prior_away_from_the_origin():
    family = GaussianMixture(1, 2, learn_variance=False)
    with torch.no_grad():
        family.mu.copy_(torch.tensor([[10.0], [20.0]]))
    values = family.traversal_values(0, 5)[:, 0]
    assert values.min() > 7 and values.max() < 23  # N(0, 1)'s ±1.645 would miss both components


# --- prior samples and log_prior --------------------------------------------------------------------------------------
def test_prior_samples_are_drawn_from_the_component_the_parent_drew():
    """Given c = k (one-hot), z ~ N(mu_k, var_k): mean within 5 SE, variance within 5 SE, for every k and unit."""
    family = _mixture(7)
    latent = _latent(family)
    n = 4000
    for k in range(K):
        one_hot = torch.nn.functional.one_hot(torch.full((n,), k), K).float()
        z = latent.prior_sample(n, generator(k), given={"disc": one_hot})["z"]
        mu, var = family.mu[k].detach(), family.prior_logvar[k].detach().exp()
        assert ((z.mean(0) - mu).abs() <= 5 * (var / n).sqrt()).all()
        assert ((z.var(0) / var - 1).abs() <= 5 * math.sqrt(2 / n)).all()
    samples = latent.prior_sample(8, generator(0))  # ancestral, with the parent drawn first
    assert samples["z"].shape == (8, UNITS) and torch.isfinite(samples["z"]).all()


def test_log_prior_is_the_log_density_of_the_parents_component():
    family = _mixture(8)
    value = torch.randn(6, UNITS, generator=generator(1))
    c = torch.tensor([0, 1, 2, 3, 0, 2])
    ctx = LatentContext(samples={"disc": torch.nn.functional.one_hot(c, K).float()})
    expected = Normal(family.mu[c].detach(), torch.exp(0.5 * family.prior_logvar[c].detach())).log_prob(value)
    torch.testing.assert_close(family.log_prior(value, ctx), expected)


# --- configuration errors ---------------------------------------------------------------------------------------------
def test_a_missing_parent_is_a_config_error_naming_the_channel():
    family = GaussianMixture(2, 3, parent="cluster")
    params = family.params_from_features(torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="channel 'cluster'.*sizes=\\[3\\]"):
        family.kl(params, LatentContext(params={"disc": {"alpha": torch.full((1, 3), 1 / 3)}}))
    with pytest.raises(ConfigError, match="sample of channel 'cluster'"):
        family.prior_sample(1, LatentContext())
    with pytest.raises(ConfigError, match="sample of channel 'cluster'"):
        family.log_prior(torch.zeros(1, 2), LatentContext())


@pytest.mark.parametrize(
    ("sizes", "message"),
    [([3], "channel 'disc' to be one categorical variable of 2 categories.*shape \\(1, 3\\)"),
     ([2, 2], "ONE categorical variable of 4 categories.*sizes=\\[4\\]")],
    ids=["wrong-width", "two-variables-of-the-right-total-width"],
)
def test_a_parent_of_the_wrong_shape_is_a_config_error(sizes, message):
    components = 2 if sizes == [3] else 4
    latent = JointLatent({"disc": GumbelSoftmax(sizes), "z": GaussianMixture(1, components)})
    with pytest.raises(ConfigError, match=message):
        latent.kl(latent.split(torch.zeros(1, latent.param_size)))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"units": 0, "components": 2}, r"gaussian_mixture option units must be a positive whole number, got 0 \(e.g."),
     ({"units": 1, "components": 2.5}, "components >= 2"),
     ({"units": 1, "components": 2, "parent": ""}, "parent must be the name"),
     ({"units": 1, "components": 2, "learn_variance": "yes"}, "gaussian_mixture option learn_variance must be true or false"),
     ({"units": 1, "components": 2, "spread": -1.0}, "spread must be a finite non-negative number, got -1.0")],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        GaussianMixture(**options)


# --- parameters, seeds, state -----------------------------------------------------------------------------------------
def test_means_come_from_the_global_seed_and_the_variance_option_decides_what_is_learned():
    torch.manual_seed(11)
    a = GaussianMixture(3, 4, spread=2.0)
    torch.manual_seed(11)
    expected = 2.0 * torch.randn(4, 3)
    torch.manual_seed(12)
    b = GaussianMixture(3, 4, spread=2.0, learn_variance=False)
    assert torch.equal(a.mu.detach(), expected) and not torch.equal(a.mu.detach(), b.mu.detach())
    assert {name for name, _ in a.named_parameters()} == {"mu", "prior_logvar"}
    assert {name for name, _ in b.named_parameters()} == {"mu"}
    assert set(b.state_dict()) == {"mu", "prior_logvar"} and not b.prior_logvar.any()  # the buffer is saved too
    assert "components=4" in repr(a) and "learn_variance=False" in repr(b)


def _recipe(tmp_path=None, steps: int = 3) -> JointVAEConfig:
    return JointVAEConfig(
        dataset="shapes",
        dataset_options={"n": 64, "size": 32},
        image_shape=(1, 32, 32),
        cont_units=4,
        disc_sizes=[10],
        cont_family="gaussian_mixture",
        cont_options={"components": 10},
        hidden=32,
        train=TrainConfig(steps=steps, batch_size=16, log_every=1, checkpoint_every=steps, figures_every=0),
    )


def test_the_recipe_builds_and_the_mixture_prior_gets_gradients():
    experiment = _recipe().experiment()
    torch.manual_seed(0)
    model = build_model(experiment.model).train()
    objective = build_objective(experiment.objective, model)
    family = model.latent.channels["cont"]
    assert isinstance(family, GaussianMixture) and family.parent == "disc" and family.components == 10
    x = torch.rand(8, 1, 32, 32)
    objective(x, model(x), step=100)["loss"].backward()
    for p in (family.mu, family.prior_logvar):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_the_recipe_trains_and_saves_the_mixture_prior(tmp_path):
    trainer = prepare_run(_recipe().experiment(), out=str(tmp_path / "run"), quiet=True)
    family = trainer.run.model.latent.channels["cont"]
    before = {name: t.detach().clone() for name, t in family.state_dict().items()}
    trainer.fit()
    model, config = load_model(tmp_path / "run")
    assert config["step"] == 3
    saved = model.state_dict()
    for name in ("mu", "prior_logvar"):
        key = f"latent.channels.cont.{name}"
        assert key in saved and torch.isfinite(saved[key]).all()
        assert not torch.equal(saved[key], before[name]), f"{name} did not change in training"


def test_neutral_value_is_the_marginal_prior_median():
    """Traversals hold the other units at the prior's median, not at 0, which can lie between components."""
    torch.manual_seed(3)
    family = GaussianMixture(units=3, components=4, spread=2.0)
    neutral = family.neutral_value()
    assert neutral.shape == (3,)
    std = torch.exp(0.5 * family.prior_logvar.detach())
    cdf = torch.distributions.Normal(family.mu.detach(), std).cdf(neutral.unsqueeze(0)).mean(0)
    torch.testing.assert_close(cdf, torch.full((3,), 0.5), rtol=0, atol=1e-6)
