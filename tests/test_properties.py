"""Hypothesis property tests of the latent families, the joint latent and the capacity schedules.

Why properties rather than examples: the bugs that matter here (a KL off by a factor for some parameters, a joint KL
that drops a channel, a capacity clipped at the wrong bound, a NaN for saturated logits) live in corners that a few
hand-picked examples miss. Statistical properties use moderate float64 parameters and an explicit confidence bound;
finiteness properties use extreme ones (±1e4, exactly one-hot softmaxes) in float32, as a diverging encoder produces.

The Monte-Carlo bound, stated once (derivation in :mod:`latentkit.testing.montecarlo`): with n = 20 000 exact
posterior draws per row, ``|analytic − MC| ≤ 5·SE + 0.01`` nats per unit, and ``5·SE + 0.01·(units)`` per row total.
A correct KL fails one comparison with probability ≈ 5.7e-7; the joint test below makes at most 25 examples × 3 rows ×
(≤ 13 unit comparisons + 1 total) ≈ 1 000 comparisons per run, so a false failure has probability < 1e-3.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence

from latentkit.assembly.build import build_objective
from latentkit.specs import Component
from latentkit.core import JointLatent, JointLatentVAE, LatentContext, ModelOutput, SampleNoise
from latentkit.errors import ConfigError
from latentkit.plugins import get_registry
from latentkit.testing import assert_kl_agrees, joint_kl_monte_carlo
from latentkit.testing.strategies import extreme_features, generator, moderate_features, seeds
from latentkit_plugins.gaussian import Gaussian
from latentkit_plugins.gumbel_softmax import GumbelSoftmax
from latentkit_plugins.schedules import ConstantCapacity, LinearCapacity

pytestmark = pytest.mark.usefixtures("single_thread")

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _noise(seed: int, batch: int) -> SampleNoise:
    """Training noise for rows 0..batch-1, keyed as the trainer keys them."""
    return SampleNoise.for_rows(seed, 0, range(batch))


# --- strategies ----------------------------------------------------------------------------------------------------
def _registered_examples():
    """(family class, config) for every independent registered family's example configurations."""
    out = []
    for entry in get_registry().families:
        for config in entry.value.example_configs():
            if not tuple(entry.value(**config).depends_on):
                out.append((entry.value, config))
    return out


sizes_st = st.lists(st.integers(2, 6), min_size=1, max_size=3)
temperatures = st.floats(0.1, 2.0)
gaussian_specs = st.integers(1, 4).map(lambda units: (Gaussian, {"units": units}))
gumbel_specs = st.builds(lambda s, t: (GumbelSoftmax, {"sizes": s, "temperature": t}), sizes_st, temperatures)
#: A channel: any registered family with one of its example configs, or a built-in with drawn parameters.
channel_specs = st.one_of(st.sampled_from(_registered_examples()), gaussian_specs, gumbel_specs)


@st.composite
def joint_latents(draw, max_channels: int = 3) -> JointLatent:
    specs = draw(st.lists(channel_specs, min_size=1, max_size=max_channels))
    return JointLatent({f"ch{i}": cls(**config) for i, (cls, config) in enumerate(specs)})


@st.composite
def families(draw):
    cls, config = draw(channel_specs)
    return cls(**config)


def _any_features(width: int, **kwargs):
    return st.one_of(moderate_features(width, **kwargs), extreme_features(width, **kwargs))


def _per_variable(family: GumbelSoftmax, x: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(x, list(family.sizes), dim=-1))


# --- the joint KL against an independent Monte-Carlo estimate ------------------------------------------------------
@settings(deadline=None, max_examples=25, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_joint_kl_matches_joint_monte_carlo(data):
    """For any mix of families and parameters, Σ_channels KL = E[log q(z, c) − log p(z, c)] over joint exact draws.

    z and c are drawn together from the product posterior (the categorical itself, not its relaxation) and scored
    jointly, so a wrong per-family KL fails the per-unit comparison and a wrong combination fails the row total.
    """
    latent = data.draw(joint_latents(), label="latent")
    features = data.draw(moderate_features(latent.param_size, max_batch=3), label="features")
    seed = data.draw(seeds(), label="seed")
    mc = joint_kl_monte_carlo(latent, features, generator=generator(seed))
    assert_kl_agrees(mc)


class ScaledKLGaussian(Gaussian):
    def kl(self, params, context):
        return 1.2 * super().kl(params, context)


class DroppingJoint(JointLatent):
    """A combination bug: the last channel's KL is left out."""

    def kl(self, params, samples=None):
        out = super().kl(params, samples)
        out.pop(self.names[-1])
        return out


class ZeroingJoint(JointLatent):
    """A combination bug: the last channel's KL is replaced by zeros (its key kept)."""

    def kl(self, params, samples=None):
        out = super().kl(params, samples)
        out[self.names[-1]] = torch.zeros_like(out[self.names[-1]])
        return out


_FEATURES = torch.tensor([[1.0, -0.5, 0.7, 0.3, 2.0, -1.0, 0.0], [0.2, 0.1, -0.7, 1.0, -2.0, 0.5, 1.5]],
                         dtype=torch.float64)


def test_monte_carlo_check_passes_for_the_correct_latent():
    """The control for the next tests: same features and seed, correct KL, no failure."""
    latent = JointLatent({"z": Gaussian(2), "c": GumbelSoftmax([3])})
    assert_kl_agrees(joint_kl_monte_carlo(latent, _FEATURES, generator=generator(0)))


@pytest.mark.parametrize(
    ("latent", "phrase"),
    [
        (JointLatent({"z": ScaledKLGaussian(2), "c": GumbelSoftmax([3])}), "channel 'z'"),
        (DroppingJoint({"z": Gaussian(2), "c": GumbelSoftmax([3])}), "no entry for channel 'c'"),
        (ZeroingJoint({"z": Gaussian(2), "c": GumbelSoftmax([3])}), "channel 'c'"),
    ],
    ids=["wrong-family-kl", "dropped-channel", "zeroed-channel"],
)
def test_monte_carlo_check_detects_wrong_kl(latent, phrase):
    with pytest.raises(AssertionError, match=phrase):
        assert_kl_agrees(joint_kl_monte_carlo(latent, _FEATURES, generator=generator(0)))


# --- closed forms against torch.distributions ----------------------------------------------------------------------
@settings(deadline=None, max_examples=50)
@given(features=moderate_features(2 * 4, max_batch=4), scale=st.floats(0.1, 4.0))
def test_gaussian_kl_matches_torch_distributions(features, scale):
    family = Gaussian(4)
    params = family.params_from_features(features * scale)
    ours = family.kl(params, LatentContext())
    q = Normal(params["mean"], torch.exp(0.5 * params["logvar"]))
    theirs = kl_divergence(q, Normal(torch.zeros_like(params["mean"]), torch.ones_like(params["mean"])))
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_categorical_kl_matches_torch_distributions(data):
    family = GumbelSoftmax(data.draw(sizes_st))
    features = data.draw(moderate_features(family.param_size, max_batch=4))
    params = family.params_from_features(features)
    ours = family.kl(params, LatentContext())
    for v, alpha in enumerate(_per_variable(family, params["alpha"])):
        uniform = torch.full_like(alpha, 1.0 / alpha.shape[-1])
        theirs = kl_divergence(Categorical(probs=alpha), Categorical(probs=uniform))
        torch.testing.assert_close(ours[:, v], theirs, rtol=1e-7, atol=1e-9)


@settings(deadline=None, max_examples=30)
@given(features=moderate_features(2 * 3, max_batch=4), seed=seeds())
def test_gaussian_log_densities_match_torch_distributions(features, seed):
    """The Monte-Carlo check trusts log_posterior and log_prior; they are checked against torch here."""
    family = Gaussian(3)
    params = family.params_from_features(features)
    value = family.sample_posterior(params, generator(seed))
    q = Normal(params["mean"], torch.exp(0.5 * params["logvar"]))
    torch.testing.assert_close(family.log_posterior(params, value), q.log_prob(value))
    torch.testing.assert_close(family.log_prior(value, LatentContext()), Normal(0.0, 1.0).log_prob(value))


@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_categorical_log_densities_match_torch_distributions(data):
    family = GumbelSoftmax(data.draw(sizes_st))
    features = data.draw(moderate_features(family.param_size, max_batch=4))
    params = family.params_from_features(features)
    value = family.sample_posterior(params, generator(data.draw(seeds())))
    log_q, log_p = family.log_posterior(params, value), family.log_prior(value, LatentContext())
    for v, (alpha, one_hot) in enumerate(zip(_per_variable(family, params["alpha"]), _per_variable(family, value))):
        torch.testing.assert_close(log_q[:, v], Categorical(probs=alpha).log_prob(one_hot.argmax(-1)))
        torch.testing.assert_close(log_p[:, v], torch.full_like(log_p[:, v], -math.log(alpha.shape[-1])))


@settings(deadline=None, max_examples=15)
@given(logits=st.lists(st.floats(-3, 3), min_size=2, max_size=6), seed=seeds())
def test_categorical_sample_posterior_is_the_exact_categorical(logits, seed):
    """Frequencies of 20 000 exact draws match α within 5 SE + 1e-3 (the Monte-Carlo check relies on exactness)."""
    family = GumbelSoftmax([len(logits)])
    params = family.params_from_features(torch.tensor([logits], dtype=torch.float64).expand(20_000, -1))
    draws = family.sample_posterior(params, generator(seed))
    assert ((draws == 0) | (draws == 1)).all() and (draws.sum(1) == 1).all()
    alpha = params["alpha"][0]
    se = (alpha * (1 - alpha) / draws.shape[0]).sqrt()
    assert ((draws.mean(0) - alpha).abs() <= 5 * se + 1e-3).all()


@settings(deadline=None, max_examples=15)
@given(mean=st.floats(-3, 3), logvar=st.floats(-3, 3), seed=seeds())
def test_gaussian_sample_posterior_moments(mean, logvar, seed):
    family = Gaussian(1)
    n = 20_000
    params = family.params_from_features(torch.tensor([[mean, logvar]], dtype=torch.float64).expand(n, -1))
    draws = family.sample_posterior(params, generator(seed))[:, 0]
    std = math.exp(0.5 * logvar)
    assert abs(draws.mean().item() - mean) <= 5 * std / math.sqrt(n) + 1e-9
    assert abs(draws.var().item() / std**2 - 1) <= 5 * math.sqrt(2 / n) + 1e-3


# --- the categorical KL's range and its zero ------------------------------------------------------------------------
@settings(deadline=None, max_examples=60, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_categorical_kl_lies_in_zero_log_k_for_any_logits(data):
    """KL(Cat(α) ‖ U) ∈ [0, log K] exactly, extreme logits (±1e4, exactly one-hot α) included, float32 and float64."""
    family = GumbelSoftmax(data.draw(sizes_st))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    features = data.draw(_any_features(family.param_size, dtype=dtype))
    kl = family.kl(family.params_from_features(features), LatentContext())
    log_k = torch.tensor([math.log(k) for k in family.sizes], dtype=dtype)
    assert torch.isfinite(kl).all()
    assert (kl >= 0).all() and (kl <= log_k).all(), (kl, log_k)


def test_categorical_kl_of_an_exact_one_hot_is_log_k():
    family = GumbelSoftmax([3, 10])
    alpha = torch.cat([F.one_hot(torch.tensor([2]), 3), F.one_hot(torch.tensor([7]), 10)], -1).float()
    kl = family.kl({"alpha": alpha}, LatentContext())
    torch.testing.assert_close(kl, torch.tensor([[math.log(3), math.log(10)]]))


@settings(deadline=None, max_examples=30)
@given(family=families(), dtype=st.sampled_from([torch.float32, torch.float64]), batch=st.integers(1, 5))
def test_kl_is_zero_at_the_prior(family, dtype, batch):
    """Features of zeros give the prior (mean 0 / log-variance 0; uniform α), where the KL is 0 within 1e-6."""
    params = family.params_from_features(torch.zeros(batch, family.param_size, dtype=dtype))
    kl = family.kl(params, LatentContext())
    assert kl.abs().max().item() <= 1e-6


# --- the relaxation --------------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=60, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_relaxed_samples_lie_on_the_simplex(data):
    family = GumbelSoftmax(data.draw(sizes_st), temperature=data.draw(st.floats(0.01, 10.0)))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    features = data.draw(_any_features(family.param_size, dtype=dtype))
    sample = family.rsample(family.params_from_features(features), _noise(data.draw(seeds()), features.shape[0]))
    assert torch.isfinite(sample).all() and (sample >= 0).all() and (sample <= 1).all()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for block in _per_variable(family, sample):
        assert ((block.sum(-1) - 1).abs() <= tol).all()


TEMPERATURES = [5.0, 2.0, 1.0, 0.67, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]


@settings(deadline=None, max_examples=40, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_relaxed_samples_approach_one_hot_as_temperature_falls(data):
    """For fixed noise (one generator seed), the max probability never falls as τ falls; at τ = 1e-3 the sample is
    ``one_hot(argmax(log α + g))`` wherever the top two scores differ by more than 0.05.
    """
    sizes = data.draw(sizes_st)
    features = data.draw(moderate_features(sum(sizes), max_batch=3))
    seed = data.draw(seeds())
    params = GumbelSoftmax(sizes).params_from_features(features)
    previous = None
    for tau in TEMPERATURES:
        family = GumbelSoftmax(sizes, temperature=tau)
        sample = family.rsample(params, _noise(seed, features.shape[0]))
        top = torch.stack([block.max(-1).values for block in _per_variable(family, sample)], -1)
        if previous is not None:
            assert (top >= previous - 1e-9).all(), (tau, top, previous)
        previous = top
    # The same Gumbel noise the sampler drew.
    gumbel = _noise(seed, features.shape[0]).gumbel(params["alpha"].shape[1], dtype=params["alpha"].dtype)
    scores = torch.log(params["alpha"]) + gumbel
    for block, score in zip(_per_variable(family, sample), _per_variable(family, scores)):
        top2 = score.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > 0.05
        expected = F.one_hot(score.argmax(-1), score.shape[-1]).to(block.dtype)
        torch.testing.assert_close(block[clear], expected[clear], rtol=0, atol=1e-6)


# --- gradients and finiteness, for every registered family ----------------------------------------------------------
@settings(deadline=None, max_examples=40, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_gradients_reach_the_parameters_through_every_rsample(data):
    family = data.draw(families())
    features = data.draw(moderate_features(family.param_size))
    seed = data.draw(seeds())
    gen = generator(seed)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in family.params_from_features(features).items()}
    sample = family.rsample(params, _noise(seed, features.shape[0]))
    (sample * torch.randn(sample.shape, generator=gen, dtype=sample.dtype)).sum().backward()
    for name, value in params.items():
        assert value.grad is not None, f"no gradient reaches parameter {name!r}"
        assert torch.isfinite(value.grad).all()
        assert (value.grad.flatten(1).abs().sum(1) > 0).all(), f"zero gradient for {name!r} in some row"


@settings(deadline=None, max_examples=60, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_no_nan_or_inf_for_extreme_parameters(data):
    latent = data.draw(joint_latents())
    features = data.draw(extreme_features(latent.param_size))
    params = latent.split(features)
    training = latent.sample(params, reparametrise=True, noise=_noise(data.draw(seeds()), features.shape[0]))
    for samples in (training, latent.sample(params, reparametrise=False)):
        for name, value in samples.items():
            assert torch.isfinite(value).all(), (name, features)
    for name, kl in latent.kl(params).items():
        assert torch.isfinite(kl).all() and (kl >= 0).all(), (name, kl, features)
    for name, p in params.items():
        for key, value in p.items():
            assert torch.isfinite(value).all(), (name, key)


def test_exact_one_hot_parameters_stay_finite():
    """α given exactly one-hot (log α = −inf off the hot entry) still gives finite samples and KL."""
    family = GumbelSoftmax([4, 4], temperature=0.67)
    alpha = F.one_hot(torch.tensor([[0, 3], [2, 2]]), 4).flatten(1).float()
    params = {"alpha": alpha}
    for value in (family.rsample(params, _noise(0, 2)), family.representative(params), family.kl(params, None)):
        assert torch.isfinite(value).all()
    torch.testing.assert_close(family.representative(params), alpha)


# --- capacity: never above Σ log K ----------------------------------------------------------------------------------
capacities = st.one_of(
    st.builds(
        lambda a, b, steps: {"name": "linear", "options": {"c_min": min(a, b), "c_max": max(a, b), "steps": steps}},
        st.floats(0, 100), st.floats(0, 100), st.integers(1, 100_000),
    ),
    st.builds(lambda v: {"name": "constant", "options": {"value": v}}, st.floats(0, 100)),
)


@settings(deadline=None, max_examples=40, suppress_health_check=SLOW_OK)
@given(sizes=sizes_st, capacity=capacities, step=st.integers(0, 300_000), gamma=st.floats(0, 100))
def test_discrete_capacity_never_exceeds_sum_log_k(sizes, capacity, step, gamma):
    """Whatever a schedule asks, the capacity the objective uses for a categorical channel is ≤ Σ log K, and the
    asked-for value stays visible as ``capacity_target``."""
    latent = JointLatent({"cont": Gaussian(2), "disc": GumbelSoftmax(sizes)})
    model = JointLatentVAE(nn.Identity(), latent, nn.Identity(), (1, 4, 4))
    terms = {"cont": {"gamma": 1.0, "capacity": {"name": "constant"}}, "disc": {"gamma": gamma, "capacity": capacity}}
    objective = build_objective(Component("jointvae", {"terms": terms}), model)
    gen = generator(step)
    params = latent.split(torch.randn(3, latent.param_size, generator=gen))
    samples = latent.sample(params, reparametrise=False)
    x = torch.rand(3, 1, 4, 4, generator=gen)
    output = ModelOutput(torch.sigmoid(torch.randn(3, 1, 4, 4, generator=gen)), params, samples, latent.concat(samples))
    logs = objective(x, output, step)
    bound = sum(math.log(k) for k in sizes)
    asked = get_registry().schedules.get(capacity["name"])(**capacity["options"])(step)
    f32 = lambda v: torch.tensor(v, dtype=torch.float32).item()  # noqa: E731 - logs are float32 tensors
    assert logs["capacity/disc"].item() <= f32(bound)
    assert logs["capacity/disc"].item() == f32(min(asked, bound))
    assert logs["capacity_target/disc"].item() == f32(asked)
    expected = logs["recon"] + (logs["kl/cont"] - 0.0).abs() + gamma * (logs["kl/disc"] - min(asked, bound)).abs()
    torch.testing.assert_close(logs["objective"], expected, rtol=1e-5, atol=1e-4)


# --- schedules -----------------------------------------------------------------------------------------------------
linear_args = st.tuples(st.floats(0, 1e3), st.floats(0, 1e3), st.integers(1, 10**6)).map(
    lambda t: (min(t[0], t[1]), max(t[0], t[1]), t[2])
)


@settings(deadline=None, max_examples=100)
@given(args=linear_args, steps=st.lists(st.integers(0, 3 * 10**6), min_size=1, max_size=20))
def test_linear_schedule_is_a_pure_monotone_function_of_step(args, steps):
    c_min, c_max, n = args
    schedule = LinearCapacity(c_min, c_max, n)
    state = dict(vars(schedule))
    forward = [schedule(s) for s in steps]
    backward = [schedule(s) for s in reversed(steps)][::-1]
    assert forward == backward and vars(schedule) == state  # no hidden state: order of calls does not matter
    pairs = sorted(zip(steps, forward))
    assert all(a[1] <= b[1] for a, b in zip(pairs, pairs[1:]))  # monotone
    assert all(c_min <= v <= c_max for v in forward)
    assert schedule(0) == c_min
    for s in (n, n + 1, 2 * n, 3 * 10**6 + n):
        assert schedule(s) == pytest.approx(c_max, rel=1e-12, abs=1e-12)
    assert schedule(n + 10**7) == c_max


def test_linear_schedule_equals_c_max_exactly_at_steps():
    schedule = LinearCapacity(11.153671296499512, 31.503787468274634, 32390)
    assert schedule(32390) == 31.503787468274634


@pytest.mark.parametrize(
    "kwargs",
    [
        {"c_min": -1.0}, {"c_max": -0.5}, {"c_max": "5"}, {"c_max": None}, {"c_max": math.nan}, {"c_max": math.inf},
        {"c_max": True}, {"c_min": 3.0, "c_max": 2.0}, {"steps": 0}, {"steps": -10}, {"steps": 2.5},
        {"steps": "100"}, {"steps": True},
    ],
    ids=repr,
)
def test_linear_schedule_rejects_bad_input(kwargs):
    with pytest.raises(ConfigError):
        LinearCapacity(**kwargs)


@pytest.mark.parametrize("value", [-1.0, "1", None, math.nan, math.inf, False])
def test_constant_schedule_rejects_bad_input(value):
    with pytest.raises(ConfigError):
        ConstantCapacity(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sizes": [1]}, {"sizes": [0]}, {"sizes": [-3]}, {"sizes": [2, 1]}, {"sizes": []}, {"sizes": 3},
        {"sizes": "10"}, {"sizes": [2.5]}, {"sizes": [True, 2]}, {"sizes": [2], "temperature": 0},
        {"sizes": [2], "temperature": -1.0}, {"sizes": [2], "temperature": math.inf},
        {"sizes": [2], "temperature": math.nan}, {"sizes": [2], "temperature": "hot"}, {"sizes": [2], "eps": -1e-12},
    ],
    ids=repr,
)
def test_gumbel_softmax_rejects_bad_configs(kwargs):
    """K < 2 (a variable with one category carries nothing) and other bad options are ConfigErrors."""
    with pytest.raises(ConfigError):
        GumbelSoftmax(**kwargs)


@pytest.mark.parametrize("units", [0, -1, 1.5, True, "3", None])
def test_gaussian_rejects_bad_units(units):
    with pytest.raises(ConfigError):
        Gaussian(units)


def test_noise_for_other_rows_than_the_batch_is_a_clear_error():
    latent = JointLatent({"cont": Gaussian(2)})
    params = latent.split(torch.zeros(3, latent.param_size))
    with pytest.raises(ConfigError, match="keys for 2 rows but the batch has 3"):
        latent.sample(params, reparametrise=True, noise=_noise(0, 2))
