"""Tools for testing latent families: the conformance suite, Monte-Carlo KL checks, Hypothesis strategies.

A plugin author checks a new family with one call, or one test class::

    from latentkit.testing import FamilyConformance, check_family

    check_family(MyFamily)                       # AssertionError listing every failed check

    class TestMyFamily(FamilyConformance):       # one pytest test per check and example config
        family_cls = MyFamily

Needs Hypothesis (``pip install "latentkit[testing]"``, which also brings pytest for the test classes).
:mod:`latentkit.testing.examples` holds a small family whose prior depends on another channel (a mixture of Gaussians indexed by a categorical), as a worked example of ``depends_on``.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the testing extra
    raise ImportError(
        'latentkit.testing needs Hypothesis; install the testing extra: pip install "latentkit[testing]"'
    ) from exc

from latentkit.testing.conformance import (
    CHECKS,
    CheckResult,
    ConformanceCase,
    ConformanceReport,
    FamilyConformance,
    check_family,
    family_conformance_tests,
    run_check,
)
from latentkit.testing.montecarlo import MonteCarloKL, assert_kl_agrees, joint_kl_monte_carlo

__all__ = [
    "CHECKS",
    "CheckResult",
    "ConformanceCase",
    "ConformanceReport",
    "FamilyConformance",
    "MonteCarloKL",
    "assert_kl_agrees",
    "check_family",
    "family_conformance_tests",
    "joint_kl_monte_carlo",
    "run_check",
]
