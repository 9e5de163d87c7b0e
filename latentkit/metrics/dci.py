"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018), disentanglement_lib's variant.

``num_train`` and ``num_test`` random images are encoded. Per factor a gradient-boosted tree classifier
(``sklearn.ensemble.GradientBoostingClassifier``, scikit-learn's defaults as disentanglement_lib: 100 trees of depth
3) predicts the factor's class from all code columns; the importance matrix ``R (D x F)`` holds the absolute feature
importances.

* disentanglement: per column ``1 - H_F(R[i, :] / sum)`` (entropy over factors, base F), weighted by the column's
  share of the total importance;
* completeness: per factor ``1 - H_D(R[:, j] / sum)`` (entropy over columns, base D), weighted by the factor's share;
* informativeness: the classifiers' mean accuracy on the training and on the test points.

A discrete column (a categorical latent's argmax category) is one more feature holding the category index (trees split
on it like on any column). ``n_estimators`` and ``max_depth`` are settable; the trees are seeded with ``seed``.
"""

from __future__ import annotations

import numpy as np

from latentkit.data.ground_truth import GroundTruthData
from latentkit.metrics.base import (
    DEFAULT_CHUNK,
    CodeSampler,
    Representation,
    axis_names,
)
from latentkit.validation import at_least, check, positive_int

NAME = "dci"
DEFAULTS = {"num_train": 10_000, "num_test": 5_000, "n_estimators": 100, "max_depth": 3, "seed": 0,
            "chunk_size": DEFAULT_CHUNK, "prefetch": True}


def importance_gbt(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    n_estimators: int = 100, max_depth: int = 3, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(importance (D, F), train accuracy (F,), test accuracy (F,))`` of one boosted classifier per factor."""
    from sklearn.ensemble import GradientBoostingClassifier  # scikit-learn is imported only when a metric runs

    dims, num_factors = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((dims, num_factors))
    train_acc, test_acc = np.zeros(num_factors), np.zeros(num_factors)
    for j in range(num_factors):
        if np.unique(y_train[:, j]).size < 2:  # nothing to learn: a constant prediction, no importance
            train_acc[j] = 1.0
            test_acc[j] = float(np.mean(y_test[:, j] == y_train[0, j]))
            continue
        model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed % 2**32)
        model.fit(x_train, y_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc[j] = np.mean(model.predict(x_train) == y_train[:, j])
        test_acc[j] = np.mean(model.predict(x_test) == y_test[:, j])
    return importance, train_acc, test_acc


def _entropy(p: np.ndarray, base: int) -> np.ndarray:
    """scipy.stats.entropy along axis 0: ``p`` normalised per column, ``-sum p log p / log base``."""
    p = p / p.sum(axis=0, keepdims=True)
    return -(p * np.log(p)).sum(axis=0) / np.log(base)


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    if importance.shape[1] < 2:
        return np.ones(importance.shape[0])
    return 1.0 - _entropy(importance.T + 1e-11, base=importance.shape[1])


def disentanglement(importance: np.ndarray) -> float:
    per_code = disentanglement_per_code(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    code_importance = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * code_importance))


def completeness(importance: np.ndarray) -> float:
    """Disentanglement with the roles swapped: how concentrated each factor is on few codes."""
    return disentanglement(importance.T)


def compute_dci(
    codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    n_estimators: int = 100, max_depth: int = 3, seed: int = 0,
    names: tuple[str, ...] | None = None, factor_names: tuple[str, ...] | None = None,
) -> dict:
    dims, num_factors = codes_train.shape[1], factors_train.shape[1]
    names, factor_names = axis_names(names, dims, "z"), axis_names(factor_names, num_factors, "factor")
    importance, train_acc, test_acc = importance_gbt(
        codes_train, factors_train, codes_test, factors_test, n_estimators, max_depth, seed
    )
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "informativeness_per_factor": {factor_names[j]: float(test_acc[j]) for j in range(num_factors)},
        "importance": {names[i]: {factor_names[j]: float(importance[i, j]) for j in range(num_factors)}
                       for i in range(dims)},
    }


def dci_score(
    ground_truth: GroundTruthData,
    represent: Representation,
    *,
    num_train: int = 10_000,
    num_test: int = 5_000,
    n_estimators: int = 100,
    max_depth: int = 3,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
    names: tuple[str, ...] | None = None,
) -> dict:
    draws = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    gt = draws.ground_truth
    num_train = check("num_train", num_train, at_least(2).such_as("10000"), NAME)
    num_test = check("num_test", num_test, positive_int.such_as("5000"), NAME)
    n_estimators = check("n_estimators", n_estimators, positive_int.such_as("100"), NAME)
    max_depth = check("max_depth", max_depth, positive_int.such_as("3"), NAME)
    x_train, _, y_train = draws.codes(num_train)
    x_test, _, y_test = draws.codes(num_test)
    result = compute_dci(x_train, y_train, x_test, y_test, n_estimators, max_depth, draws.seed, names, tuple(gt.factor_names))
    result["images_encoded"] = num_train + num_test
    return result
