"""DCI's fast estimator (LightGBM's boosted trees) against disentanglement_lib's (scikit-learn's).

Why: the LightGBM default exists only to make DCI take seconds; it is acceptable only while its disentanglement and
completeness stay within 0.02 of the reference estimator on the sanity-check representations of
``tests/test_disentanglement_metrics.py`` — the factors themselves, noise, and factors mixed linearly with noise (the
stand-in for a trained model's code: informative, imperfect, one code mixing two factors). Measured once at the
defaults (10,000 / 5,000 points, 100 trees): identity 0.0000, noise 0.0004 / 0.0007, mixed 0.0012 / 0.0011
(disentanglement / completeness), and a JointVAE trained 11,553 steps on ``shapes`` 0.0032 / 0.0029 (no trained model
is kept for tests). Here, to keep the file at a few seconds: 3,000 / 1,500 points and 30 trees, where the mixed code
differs by 0.015.
"""

from __future__ import annotations

import numpy as np
import pytest

from latentkit.errors import ConfigError
from latentkit.metrics import dci_score
from latentkit.metrics.dci import DEFAULTS
from test_disentanglement_metrics import GRID, identity, mixed_representation, noise_representation

SMALL = {"num_train": 3000, "num_test": 1500, "n_estimators": 30}
REPRESENTATIONS = {
    "identity": lambda: identity,
    "noise": lambda: noise_representation(0),
    "mixed": lambda: mixed_representation(),
}


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_lightgbm_agrees_with_disentanglement_libs_estimator(name):
    fast = dci_score(GRID, REPRESENTATIONS[name](), estimator="lightgbm", **SMALL)
    reference = dci_score(GRID, REPRESENTATIONS[name](), estimator="sklearn", **SMALL)
    assert (fast["estimator"], reference["estimator"]) == ("lightgbm", "sklearn")
    for key in ("disentanglement", "completeness"):
        assert fast[key] == pytest.approx(reference[key], abs=0.02), key
    assert fast["informativeness_test"] == pytest.approx(reference["informativeness_test"], abs=0.03)
    if name == "mixed":  # an imperfect code: the agreement is not that of two saturated scores
        assert 0.2 < reference["disentanglement"] < 0.8


def test_lightgbm_is_the_default_and_its_importances_are_normalised_per_factor():
    assert DEFAULTS["estimator"] == "lightgbm"
    result = dci_score(GRID, mixed_representation(), num_train=600, num_test=300, n_estimators=10)
    assert result["estimator"] == "lightgbm"
    importance = np.array([list(row.values()) for row in result["importance"].values()])  # (codes, factors)
    np.testing.assert_allclose(importance.sum(axis=0), 1.0, rtol=1e-9)
    assert np.all(np.diag(importance) == importance.max(axis=0))  # each factor's own code matters most


def test_lightgbm_is_deterministic_and_seeded():
    runs = [dci_score(GRID, mixed_representation(), num_train=600, num_test=300, n_estimators=10, seed=s)
            for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0]["importance"] != runs[2]["importance"]


def test_unknown_estimator_is_a_config_error():
    with pytest.raises(ConfigError, match=r"dci option estimator must be one of 'lightgbm', 'sklearn'"):
        dci_score(GRID, identity, estimator="xgboost")


def test_duplicated_and_mirrored_codes_share_their_importance_as_in_scikit_learn():
    """LightGBM takes the first of equally good columns; scikit-learn draws among them, sharing importance in
    expectation. A duplicated (or negated) code must not look perfectly complete."""

    def duplicate_all(images):
        z, flags = identity(images)
        return np.concatenate([z, -3.0 * z], axis=1), np.concatenate([flags, flags])

    small = {"num_train": 1000, "num_test": 500, "n_estimators": 10}
    fast = dci_score(GRID, duplicate_all, **small)
    reference = dci_score(GRID, duplicate_all, estimator="sklearn", **small)
    assert fast["completeness"] == pytest.approx(1 - np.log(2) / np.log(8), rel=1e-6)  # two codes per factor, 50/50
    assert fast["completeness"] == pytest.approx(reference["completeness"], abs=0.02)
    assert fast["disentanglement"] == pytest.approx(reference["disentanglement"], abs=0.02)
