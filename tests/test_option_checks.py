"""The built-in families and grid data sets check their options with latentkit.validation: a bad value is a
ConfigError naming the plugin, the option, the value and a valid example; a good one is stored converted."""

from __future__ import annotations

import math

import pytest
from latentkit_plugins.beta import Beta
from latentkit_plugins.gaussian import Gaussian
from latentkit_plugins.gaussian_mixture import GaussianMixture
from latentkit_plugins.gumbel_softmax import GumbelSoftmax
from latentkit_plugins.laplace import Laplace
from latentkit_plugins.procedural_shapes import Shapes
from latentkit_plugins.relaxed_bernoulli import RelaxedBernoulli

from latentkit.errors import ConfigError


@pytest.mark.parametrize(("build", "family", "option", "value", "example"), [
    (lambda v: Gaussian(units=v), "gaussian", "units", 0, "4"),
    (lambda v: Laplace(units=v), "laplace", "units", 2.0, "4"),
    (lambda v: RelaxedBernoulli(units=v), "relaxed_bernoulli", "units", True, "4"),
    (lambda v: RelaxedBernoulli(2, temperature=v), "relaxed_bernoulli", "temperature", 100.0, "0.67"),
    (lambda v: RelaxedBernoulli(2, temperature=v), "relaxed_bernoulli", "temperature", 0.0, "0.67"),
    (lambda v: GumbelSoftmax([3], temperature=v), "gumbel_softmax", "temperature", -0.5, "0.67"),
    (lambda v: GumbelSoftmax([3], hard=v), "gumbel_softmax", "hard", "yes", "true"),
    (lambda v: GaussianMixture(1, 2, spread=v), "gaussian_mixture", "spread", math.inf, "1.0"),
    (lambda v: GaussianMixture(1, 2, learn_variance=v), "gaussian_mixture", "learn_variance", 1, "true"),
    (lambda v: Beta(units=2, prior_a=v), "beta", "prior_a", 0.0, "1.0"),
    (lambda v: Beta(units=2, prior_b=v), "beta", "prior_b", "1", "1.0"),
    (lambda v: Shapes(n=v), "shapes", "n", 0, "1000"),
    (lambda v: Shapes(seed=v), "shapes", "seed", 1.5, "0"),
])
def test_a_bad_option_names_plugin_option_value_and_example(build, family, option, value, example):
    with pytest.raises(ConfigError) as info:
        build(value)
    message = str(info.value)
    assert message.startswith(f"{family} option {option} must be ") and repr(value) in message
    assert message.endswith(f"(e.g. {option}={example})")


def test_good_options_are_stored_converted():
    assert RelaxedBernoulli(2, temperature=99).temperature == 99.0
    assert type(RelaxedBernoulli(2, temperature=1).temperature) is float
    assert GumbelSoftmax([3], temperature=1).temperature == 1.0 and GumbelSoftmax([3], hard=True).hard is True
    mixture = GaussianMixture(1, 2, spread=0, learn_variance=False)
    assert type(mixture.spread) is float and mixture.learn_variance is False
    assert Beta(units=2, prior_a=2, prior_b=5).prior_a == 2.0 and Laplace(units=3).units == 3
    assert Shapes().n is None and Shapes(n=10, seed=-2).n == 10
