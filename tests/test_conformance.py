"""Every registered latent family passes the conformance suite, and every check of the suite can fail.

Why both halves: the first is what the issue asks for — the suite runs automatically over whatever the registry holds,
built-in or third-party. The second keeps the suite honest: a check that no broken family can fail checks nothing, so
for each check there is a family broken in exactly the way that check exists to catch.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

from latentkit.plugins import get_registry
from latentkit.testing import CHECKS, FamilyConformance, check_family, family_conformance_tests, run_check
from latentkit_plugins.gaussian import Gaussian
from latentkit_plugins.gumbel_softmax import GumbelSoftmax

pytestmark = pytest.mark.usefixtures("single_thread")

#: For tests that expect a failure: no shrinking (the falsifying example's size does not matter there, its time does).
NO_SHRINK = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)

_FAMILIES = list(get_registry().families)
_CASES = [case for entry in _FAMILIES for case in family_conformance_tests(entry.value, label=entry.name)]


@pytest.mark.parametrize("case", _CASES, ids=lambda case: case.id)
def test_registered_family_conforms(case):
    """One test per registered family × example config × check (skips say why, e.g. a dependent family)."""
    case()


def test_every_registered_family_is_covered():
    """The parametrisation above is built from the registry, so a new plugin family is checked without editing tests."""
    assert {"gaussian", "gumbel_softmax"} <= {entry.name for entry in _FAMILIES}
    covered = {case.id.split("-", 1)[0] for case in _CASES}
    assert covered == {entry.name for entry in _FAMILIES}
    for entry in _FAMILIES:
        configs = entry.value.example_configs()
        assert configs, f"{entry.name}: example_configs() must give at least one configuration"
        for config in configs:
            entry.value(**config)  # every example configuration builds


class TestGaussianThroughBaseClass(FamilyConformance):
    """The subclass-a-base-class style a plugin author uses (a cheap config; the registry test covers the rest)."""

    family_cls = Gaussian
    configs = [{"units": 2}]


# --- each check can fail -------------------------------------------------------------------------------------------
class KLShapeGaussian(Gaussian):
    """Returns the KL summed over units, (B,), instead of per unit."""

    def kl(self, params, context):
        return super().kl(params, context).sum(1)


class OverlappingSlicesGaussian(Gaussian):
    """Every unit claims column 0."""

    def unit_slice(self, unit):
        return slice(0, 1)


class WideTraversalGumbel(GumbelSoftmax):
    """Traversal values one column wider than the unit."""

    def traversal_values(self, unit, n):
        return torch.eye(self.sizes[unit] + 1)


class GlobalRNGGaussian(Gaussian):
    """Ignores the generator it is given."""

    def rsample(self, params, generator=None):
        return super().rsample(params, None)


class ScaledKLGaussian(Gaussian):
    """KL off by a factor 1.5: the bug the Monte-Carlo check exists for."""

    def kl(self, params, context):
        return 1.5 * super().kl(params, context)


class SwappedUnitsGumbel(GumbelSoftmax):
    """Right KLs, reported for the wrong units (only a per-unit comparison sees it)."""

    def kl(self, params, context):
        return super().kl(params, context).flip(1)


class OffsetKLGumbel(GumbelSoftmax):
    """A KL shifted down by 1e-3 nats: negative near the prior."""

    def kl(self, params, context):
        return super().kl(params, context) - 1e-3


class LowBoundGumbel(GumbelSoftmax):
    """Claims half the true capacity bound, so the objective would clip reachable capacities."""

    def capacity_bound(self):
        return 0.5 * super().capacity_bound()


class ShiftedGaussian(Gaussian):
    """Features of zeros give mean 0.5, not the prior."""

    def params_from_features(self, features):
        params = super().params_from_features(features)
        return {"mean": params["mean"] + 0.5, "logvar": params["logvar"]}


class UnclampedGaussian(Gaussian):
    """No log-variance clamp: exp(1e4) overflows."""

    def params_from_features(self, features):
        return {"mean": features[:, : self.units], "logvar": features[:, self.units :]}


class DetachedGaussian(Gaussian):
    """A 'reparametrised' sample with the graph cut."""

    def rsample(self, params, generator=None):
        return super().rsample(params, generator).detach()


class FixedScaleGaussian(Gaussian):
    """Samples ignore the log-variance: those features never get a gradient."""

    def rsample(self, params, generator=None):
        mean = params["mean"]
        return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype)


class NoisyRepresentativeGaussian(Gaussian):
    """Evaluates with a random sample instead of the mean."""

    def representative(self, params):
        return self.rsample(params)


class ArgminGumbel(GumbelSoftmax):
    """Reports the least likely category."""

    def categories(self, params):
        return torch.stack([part.argmin(-1) for part in torch.split(params["alpha"], self.sizes, dim=-1)], dim=-1)


class WrongTemperatureDensityGumbel(GumbelSoftmax):
    """Evaluates its relaxed samples' density at another temperature than the one it samples at."""

    def log_density(self, params, sample):
        true = self.temperature
        self.temperature = true + 0.5
        try:
            return super().log_density(params, sample)
        finally:
            self.temperature = true


BROKEN = [
    (KLShapeGaussian, {"units": 3}, "shapes", "kl has shape"),
    (OverlappingSlicesGaussian, {"units": 3}, "shapes", "partition"),
    (WideTraversalGumbel, {"sizes": [3]}, "shapes", "traversal_values"),
    (GlobalRNGGaussian, {"units": 2}, "honours_generator", "generator"),
    (ScaledKLGaussian, {"units": 2}, "kl_matches_monte_carlo", "Monte-Carlo"),
    (SwappedUnitsGumbel, {"sizes": [3, 5]}, "kl_matches_monte_carlo", "Monte-Carlo"),
    (OffsetKLGumbel, {"sizes": [4]}, "kl_nonnegative_and_bounded", "negative"),
    (LowBoundGumbel, {"sizes": [2, 2]}, "kl_nonnegative_and_bounded", "capacity_bound"),
    (ShiftedGaussian, {"units": 2}, "kl_zero_at_prior", "features of zeros give the prior"),
    (UnclampedGaussian, {"units": 2}, "finite_for_extreme_features", "not finite"),
    (DetachedGaussian, {"units": 2}, "rsample_gradients", "detached"),
    (FixedScaleGaussian, {"units": 2}, "rsample_gradients", "feature columns"),
    (NoisyRepresentativeGaussian, {"units": 2}, "representative", "deterministic"),
    (ArgminGumbel, {"sizes": [4]}, "representative", "categories"),
    (WrongTemperatureDensityGumbel, {"sizes": [3]}, "training_density", "not the density of rsample"),
]


@pytest.mark.parametrize(
    ("family_cls", "config", "check", "phrase"), BROKEN, ids=[f"{b[0].__name__}-{b[2]}" for b in BROKEN]
)
def test_check_fails_for_broken_family(family_cls, config, check, phrase):
    """``check_family`` raises AssertionError naming the check and explaining the fault."""
    with pytest.raises(AssertionError) as info:
        check_family(family_cls, [config], checks=[check], settings=NO_SHRINK)
    message = str(info.value)
    assert check in message and family_cls.__name__ in message
    assert phrase in message, message


def test_every_check_is_proven_able_to_fail():
    assert {b[2] for b in BROKEN} == set(CHECKS)


def test_wrong_kl_is_caught_by_the_full_suite_with_a_readable_report():
    """Run without selecting checks: the report lists the failed checks and the bound that was violated."""
    with pytest.raises(AssertionError) as info:
        check_family(ScaledKLGaussian, [{"units": 1}], max_examples=8)
    message = str(info.value)
    assert "kl_matches_monte_carlo" in message and "5.0*SE + 0.01" in message
    assert "Falsifying example" in message  # Hypothesis's reproduction, for the plugin author


def test_family_that_crashes_fails_rather_than_erroring():
    class Crashing(Gaussian):
        def kl(self, params, context):
            raise RuntimeError("boom")

    result = run_check(Crashing, {"units": 1}, "kl_nonnegative_and_bounded", settings=NO_SHRINK)
    assert result.status == "failed" and "RuntimeError: boom" in result.message


def test_capacity_bound_is_real_for_builtins():
    """The objective relies on the bound: Σ log K for categoricals, inf for Gaussians."""
    assert GumbelSoftmax([2, 10]).capacity_bound() == pytest.approx(math.log(2) + math.log(10))
    assert math.isinf(Gaussian(3).capacity_bound())
