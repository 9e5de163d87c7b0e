"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018), disentanglement_lib's variant.

``num_train`` and ``num_test`` random images are encoded. Per factor a gradient-boosted tree classifier (100 trees of
depth 3, learning rate 0.1: scikit-learn's defaults, which disentanglement_lib uses) predicts the factor's class from
all code columns; the importance matrix ``R (D x F)`` holds each classifier's feature importances, normalised to sum to
one per factor.

* disentanglement: per column ``1 - H_F(R[i, :] / sum)`` (entropy over factors, base F), weighted by the column's
  share of the total importance;
* completeness: per factor ``1 - H_D(R[:, j] / sum)`` (entropy over columns, base D), weighted by the factor's share;
* informativeness: the classifiers' mean accuracy on the training and on the test points.

**The estimator** (``estimator=``, recorded in the results):

* ``"lightgbm"`` (default): LightGBM's gradient-boosted trees with the same budget (``n_estimators`` rounds of the
  softmax loss, ``max_depth`` levels, at most ``2**max_depth`` leaves, learning rate 0.1, every point and column in
  every tree, leaves of one point allowed as in scikit-learn). Why: scikit-learn's ``GradientBoostingClassifier`` sorts
  every column at every split, exactly, in one thread — minutes at the defaults on dSprites (40 and 32 classes, one tree
  per class per round); LightGBM bins each column once (255 bins; codes with fewer distinct values are split exactly)
  and grows the same trees in seconds. The importances are LightGBM's *gain* importances — the summed loss reduction of
  every split on a column — divided by their sum, which is how scikit-learn's ``feature_importances_`` (the summed
  impurity decrease of every split on a column, over all trees, divided by its sum) is built: both measure how much a
  column lowers the boosting loss, where LightGBM's *split* importances (how often a column is used) would count a
  split that helps little like one that helps much. Deterministic (``deterministic=True``, column-wise histograms,
  seeded), in ``torch.get_num_threads()`` threads. On the sanity-check representations of the metric tests the
  disentanglement and completeness stay within 0.02 of scikit-learn's (``tests/test_dci.py``; at the defaults at
  most 0.0012). Columns that order the points alike (a duplicated or negated unit) share their importance equally
  (:func:`rank_equivalent_columns`), as scikit-learn's random choice among equally good splits does on average.
* ``"sklearn"``: disentanglement_lib's estimator, ``sklearn.ensemble.GradientBoostingClassifier`` with
  ``n_estimators`` and ``max_depth`` — the reference, for reproducing published figures exactly.

A discrete column (a categorical latent's argmax category) is one more feature holding the category index (trees split
on it like on any column). ``n_estimators`` and ``max_depth`` are settable; the trees are seeded with ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch

from latentkit.data.ground_truth import GroundTruthData
from latentkit.metrics.base import (
    DEFAULT_CHUNK,
    CodeSampler,
    Representation,
    axis_names,
)
from latentkit.validation import at_least, check, one_of, positive_int

NAME = "dci"
ESTIMATORS = ("lightgbm", "sklearn")
DEFAULTS = {"num_train": 10_000, "num_test": 5_000, "n_estimators": 100, "max_depth": 3, "seed": 0,
            "estimator": "lightgbm", "chunk_size": DEFAULT_CHUNK, "prefetch": True}


def _sklearn_classifier(n_estimators: int, max_depth: int, seed: int):
    """disentanglement_lib's classifier and its importances (impurity decrease, normalised by scikit-learn)."""
    from sklearn.ensemble import GradientBoostingClassifier  # scikit-learn is imported only when a metric runs

    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed % 2**32)
    return model, lambda: np.abs(model.feature_importances_)


def _lightgbm_classifier(n_estimators: int, max_depth: int, seed: int):
    """LightGBM's boosted trees on scikit-learn's budget; gain importances (see the module docstring for why)."""
    import lightgbm  # imported only when the metric runs

    model = lightgbm.LGBMClassifier(
        n_estimators=n_estimators, max_depth=max_depth, num_leaves=2**max_depth, learning_rate=0.1,
        min_child_samples=1, min_child_weight=1e-3, min_split_gain=0.0, reg_lambda=0.0, subsample=1.0,
        colsample_bytree=1.0, importance_type="gain", random_state=seed % 2**31, n_jobs=max(1, torch.get_num_threads()),
        deterministic=True, force_col_wise=True, verbose=-1,
    )

    def importances() -> np.ndarray:
        gain = np.abs(np.asarray(model.booster_.feature_importance("gain"), dtype=np.float64))
        return gain / gain.sum() if gain.sum() > 0 else gain

    return model, importances


def rank_equivalent_columns(x: np.ndarray) -> list[list[int]]:
    """Columns grouped when they order the points alike (equal, or equal up to a monotone map, e.g. a duplicate).

    Why: such columns offer trees the very same splits. scikit-learn draws among equally good splits at random, so in
    expectation the copies share the importance equally; LightGBM always takes the first column, which would make a
    duplicated code look perfectly complete. The LightGBM estimator fits one column per group and shares its importance
    equally among the group.
    """
    groups: dict[bytes, list[int]] = {}
    for i in range(x.shape[1]):
        rank = np.unique(x[:, i], return_inverse=True)[1].ravel().astype(np.int64)
        descending = (rank.max() - rank).tobytes()
        key = descending if descending in groups else rank.tobytes()
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def importance_gbt(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    n_estimators: int = 100, max_depth: int = 3, seed: int = 0, estimator: str = "lightgbm",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(importance (D, F), train accuracy (F,), test accuracy (F,))`` of one boosted classifier per factor."""
    estimator = check("estimator", estimator, one_of(*ESTIMATORS), NAME)
    dims, num_factors = x_train.shape[1], y_train.shape[1]
    if estimator == "lightgbm":
        groups = rank_equivalent_columns(x_train)
        if len(groups) < dims:  # fit on one column per group, share its importance equally among the group
            first = [g[0] for g in groups]
            share, train_acc, test_acc = importance_gbt(
                x_train[:, first], y_train, x_test[:, first], y_test, n_estimators, max_depth, seed, estimator
            )
            importance = np.zeros((dims, num_factors))
            for k, group in enumerate(groups):
                importance[group] = share[k] / len(group)
            return importance, train_acc, test_acc
    make = _lightgbm_classifier if estimator == "lightgbm" else _sklearn_classifier
    importance = np.zeros((dims, num_factors))
    train_acc, test_acc = np.zeros(num_factors), np.zeros(num_factors)
    for j in range(num_factors):
        if np.unique(y_train[:, j]).size < 2:  # nothing to learn: a constant prediction, no importance
            train_acc[j] = 1.0
            test_acc[j] = float(np.mean(y_test[:, j] == y_train[0, j]))
            continue
        model, importances = make(n_estimators, max_depth, seed)
        model.fit(x_train, y_train[:, j])
        importance[:, j] = importances()
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
    names: tuple[str, ...] | None = None, factor_names: tuple[str, ...] | None = None, estimator: str = "lightgbm",
) -> dict:
    dims, num_factors = codes_train.shape[1], factors_train.shape[1]
    names, factor_names = axis_names(names, dims, "z"), axis_names(factor_names, num_factors, "factor")
    importance, train_acc, test_acc = importance_gbt(
        codes_train, factors_train, codes_test, factors_test, n_estimators, max_depth, seed, estimator
    )
    return {
        "estimator": estimator,
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
    estimator: str = "lightgbm",
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
    estimator = check("estimator", estimator, one_of(*ESTIMATORS), NAME)
    x_train, _, y_train = draws.codes(num_train)
    x_test, _, y_test = draws.codes(num_test)
    result = compute_dci(x_train, y_train, x_test, y_test, n_estimators, max_depth, draws.seed, names,
                         tuple(gt.factor_names), estimator)
    result["images_encoded"] = num_train + num_test
    return result
