"""The Mutual Information Gap (Chen et al. 2018), disentanglement_lib's discrete variant.

``num_train`` random images are encoded; every continuous code column is discretised into ``num_bins`` equal-width bins
(``np.digitize`` on ``np.histogram``'s edges, as disentanglement_lib's ``_histogram_discretize``); a discrete column (a
categorical latent's argmax category) is used as it is, with no binning. The mutual information (nats,
``sklearn.metrics.mutual_info_score``) of every (column, factor) pair is computed; per factor the gap between the two
largest, divided by the factor's entropy; the score is the mean over factors.

Factors with a single value (zero entropy) have no gap and are left out of the mean. With a single code column the
second largest mutual information is taken as 0.
"""

from __future__ import annotations

import numpy as np

from latentkit.data.ground_truth import GroundTruthData
from latentkit.metrics.base import (
    DEFAULT_CHUNK,
    CodeSampler,
    Representation,
    axis_names,
    discrete_codes,
)
from latentkit.validation import at_least, check, positive_int

NAME = "mig"
DEFAULTS = {"num_train": 10_000, "num_bins": 20, "seed": 0, "chunk_size": DEFAULT_CHUNK, "prefetch": True}


def histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Each column to bin indices of ``num_bins`` equal-width bins over its range (disentanglement_lib's)."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        out[:, j] = np.digitize(codes[:, j], np.histogram(codes[:, j], num_bins)[1][:-1])
    return out


def discretize(codes: np.ndarray, is_discrete: np.ndarray, num_bins: int) -> np.ndarray:
    """Continuous columns binned, discrete columns as category labels."""
    out = histogram_discretize(codes, num_bins)
    if is_discrete.any():
        out[:, is_discrete] = discrete_codes(codes, is_discrete)
    return out


def mutual_info_matrix(discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``(D, F)`` mutual information (nats) of every discretised code column with every factor."""
    from sklearn.metrics import mutual_info_score  # scikit-learn is imported only when a metric runs

    m = np.zeros((discrete.shape[1], factors.shape[1]))
    for i in range(discrete.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info_score(factors[:, j], discrete[:, i])
    return m


def factor_entropies(factors: np.ndarray) -> np.ndarray:
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])


def compute_mig(
    codes: np.ndarray,
    is_discrete: np.ndarray,
    factors: np.ndarray,
    num_bins: int = 20,
    names: tuple[str, ...] | None = None,
    factor_names: tuple[str, ...] | None = None,
) -> dict:
    """MIG of ``codes (N, D)`` against factor class indices ``factors (N, F)``."""
    dims, num_factors = codes.shape[1], factors.shape[1]
    names, factor_names = axis_names(names, dims, "z"), axis_names(factor_names, num_factors, "factor")
    m = mutual_info_matrix(discretize(codes, is_discrete, num_bins), factors)
    entropy = factor_entropies(factors)
    order = np.argsort(-m, axis=0, kind="stable")
    top = m[order[0], np.arange(num_factors)]
    second = m[order[1], np.arange(num_factors)] if dims > 1 else np.zeros(num_factors)
    informative = entropy > 0
    gaps = np.where(informative, (top - second) / np.where(informative, entropy, 1.0), np.nan)
    return {
        "score": float(np.mean(gaps[informative])) if informative.any() else 0.0,
        "per_factor": {factor_names[j]: float(gaps[j]) for j in range(num_factors) if informative[j]},
        "top_dim": {factor_names[j]: names[order[0, j]] for j in range(num_factors) if informative[j]},
        "mutual_info": {names[i]: {factor_names[j]: float(m[i, j]) for j in range(num_factors)} for i in range(dims)},
        "factor_entropy": {factor_names[j]: float(entropy[j]) for j in range(num_factors)},
    }


def mig_score(
    ground_truth: GroundTruthData,
    represent: Representation,
    *,
    num_train: int = 10_000,
    num_bins: int = 20,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
    names: tuple[str, ...] | None = None,
) -> dict:
    """MIG on ``num_train`` images drawn from the grid (codes from ``represent``)."""
    draws = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    gt = draws.ground_truth
    num_train = check("num_train", num_train, at_least(2).such_as("10000"), NAME)
    num_bins = check("num_bins", num_bins, positive_int.such_as("20"), NAME)
    codes, is_discrete, factors = draws.codes(num_train)
    result = compute_mig(codes, is_discrete, factors, num_bins, names, tuple(gt.factor_names))
    result["images_encoded"] = num_train
    return result
