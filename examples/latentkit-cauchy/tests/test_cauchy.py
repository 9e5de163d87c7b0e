"""The Cauchy family passes latentkit's latent-family conformance suite, and latentkit finds it by name.

Why: latentkit trusts a family for its KL, samples and gradients and cannot check them while training; the suite checks
them here, one pytest test per property and example configuration (``Cauchy.example_configs()``).
"""

import pytest
import torch

from latentkit.core import LatentContext
from latentkit.errors import ConfigError
from latentkit.plugins import get_registry
from latentkit.testing import FamilyConformance
from latentkit_cauchy.plugin import Cauchy


class TestCauchyConformance(FamilyConformance):
    family_cls = Cauchy


def test_the_entry_point_registers_the_family():
    """Installed (``pip install .``), latentkit's registry holds the family under ``cauchy``."""
    entry = get_registry().families.entry("cauchy")
    assert entry.value is Cauchy
    assert entry.source.distribution == "latentkit-cauchy"


def test_kl_agrees_with_torch_distributions_cauchy():
    """An independent check of the formula: torch's own Cauchy log-density, averaged over many draws."""
    family = Cauchy(units=1)
    params = family.params_from_features(torch.tensor([[1.5, 0.7]], dtype=torch.float64))
    posterior = torch.distributions.Cauchy(params["loc"], params["log_scale"].exp())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        draws = posterior.sample(torch.Size([200_000]))
    estimate = (posterior.log_prob(draws) - torch.distributions.Cauchy(0.0, 1.0).log_prob(draws)).mean()
    assert family.kl(params, LatentContext()).item() == pytest.approx(estimate.item(), abs=0.01)


def test_bad_units_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"cauchy option units must be a positive whole number, got 0 \(e.g. units=4\)"):
        Cauchy(units=0)
