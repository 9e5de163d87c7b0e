"""The SAP score (Kumar et al. 2018), disentanglement_lib's variant.

``num_train`` and ``num_test`` random images are encoded. For every (code column, factor) pair a score:

* ``continuous_factors=False`` (disentanglement_lib's default, used for dSprites: every factor a class): the test
  accuracy of a one-feature linear classifier, ``sklearn.svm.LinearSVC(C=svm_c, class_weight="balanced")`` with
  ``svm_c = 0.01``, trained on that single column — a learned threshold classifier;
* ``continuous_factors=True``: the squared correlation ``cov(z, y)^2 / (var z var y)`` on the training points (0 for a
  column of variance below 1e-12).

Per factor the gap between the two best columns; the score is the mean over factors. A discrete column (a
categorical latent's argmax category) is one feature holding the category index. With a single column the second best
score is taken as 0.

One documented departure from disentanglement_lib: with ``standardize=True`` (the default) each column is z-scored
with its training mean and standard deviation before its classifier is fitted. A regularised linear SVM on a raw column
is not invariant to the column's scale (``C`` and liblinear's regularised intercept weigh differently at every scale;
multiplying a latent by 8 moved the score by 0.03 in the tests), whereas a score should not depend on the units of a
latent. ``standardize=False`` reproduces disentanglement_lib exactly; for codes of about unit variance (the usual
Gaussian means) the two agree closely.
"""

from __future__ import annotations

import warnings

import numpy as np

from latentkit.data.ground_truth import GroundTruthData
from latentkit.metrics.base import (
    DEFAULT_CHUNK,
    CodeSampler,
    Representation,
    axis_names,
)
from latentkit.validation import at_least, boolean, check, positive_float, positive_int

NAME = "sap"
DEFAULTS = {"num_train": 10_000, "num_test": 5_000, "continuous_factors": False, "svm_c": 0.01, "standardize": True,
            "seed": 0, "chunk_size": DEFAULT_CHUNK, "prefetch": True}


def score_matrix(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    continuous_factors: bool = False, svm_c: float = 0.01, seed: int = 0, standardize: bool = True,
) -> np.ndarray:
    """``(D, F)``: how well each single column predicts each factor."""
    from sklearn.exceptions import ConvergenceWarning  # scikit-learn is imported only when a metric runs
    from sklearn.svm import LinearSVC

    dims, num_factors = codes.shape[1], factors.shape[1]
    matrix = np.zeros((dims, num_factors))
    for i in range(dims):
        z, z_test = codes[:, i], codes_test[:, i]
        if standardize and not continuous_factors:
            mean, std = z.mean(), z.std()
            if std > 0:
                z, z_test = (z - mean) / std, (z_test - mean) / std
        for j in range(num_factors):
            y = factors[:, j]
            if continuous_factors:
                cov = np.cov(z, y, ddof=1)
                if cov[0, 0] > 1e-12 and cov[1, 1] > 0:
                    matrix[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
            elif np.unique(y).size < 2:
                matrix[i, j] = float(np.mean(factors_test[:, j] == y[0]))
            else:
                classifier = LinearSVC(C=svm_c, class_weight="balanced", random_state=seed % 2**32)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    classifier.fit(z[:, None], y)
                matrix[i, j] = np.mean(classifier.predict(z_test[:, None]) == factors_test[:, j])
    return matrix


def compute_sap(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    continuous_factors: bool = False, svm_c: float = 0.01, seed: int = 0, standardize: bool = True,
    names: tuple[str, ...] | None = None, factor_names: tuple[str, ...] | None = None,
) -> dict:
    dims, num_factors = codes.shape[1], factors.shape[1]
    names, factor_names = axis_names(names, dims, "z"), axis_names(factor_names, num_factors, "factor")
    matrix = score_matrix(codes, factors, codes_test, factors_test, continuous_factors, svm_c, seed, standardize)
    ordered = np.sort(matrix, axis=0)
    gaps = ordered[-1] - (ordered[-2] if dims > 1 else 0.0)
    return {
        "score": float(np.mean(gaps)),
        "per_factor": {factor_names[j]: float(gaps[j]) for j in range(num_factors)},
        "top_dim": {factor_names[j]: names[int(np.argmax(matrix[:, j]))] for j in range(num_factors)},
        "score_matrix": {names[i]: {factor_names[j]: float(matrix[i, j]) for j in range(num_factors)}
                         for i in range(dims)},
    }


def sap_score(
    ground_truth: GroundTruthData,
    represent: Representation,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    continuous_factors: bool = False,
    svm_c: float = 0.01,
    standardize: bool = True,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
    names: tuple[str, ...] | None = None,
) -> dict:
    draws = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    gt = draws.ground_truth
    num_train = check("num_train", num_train, at_least(2).such_as("10000"), NAME)
    num_test = check("num_test", num_test, positive_int.such_as("5000"), NAME)
    continuous_factors = check("continuous_factors", continuous_factors, boolean, NAME)
    svm_c = check("svm_c", svm_c, positive_float.such_as("0.01"), NAME)
    standardize = check("standardize", standardize, boolean, NAME)
    x_train, _, y_train = draws.codes(num_train)
    x_test, _, y_test = draws.codes(num_test)
    result = compute_sap(
        x_train, y_train, x_test, y_test, continuous_factors, svm_c, draws.seed, standardize, names, tuple(gt.factor_names)
    )
    result["images_encoded"] = num_train + num_test
    return result
