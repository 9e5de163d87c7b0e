"""Inference of unlabelled continuous properties: for each ground-truth factor, the latent unit that tracks it.

The JointVAE paper's Fig. 8a reads a chair's azimuth off one continuous unit, with no azimuth label used in training.
With a factor grid (dSprites) the same question has a number: ``num_points`` images are drawn uniformly from the grid
and encoded (Gaussian means); for each factor with more than one value, the Pearson correlation of its physical value
with every continuous unit; the unit with the largest ``|r|`` is the factor's unit, reported with ``r`` (its sign is
arbitrary: a unit may grow as the factor shrinks) and the Spearman rank correlation (monotone, not only linear, tracking).
The score is the mean over factors of the best ``|r|``. Discrete columns are left out (a category index has no order).
Circular factors (dSprites' orientation, whose shapes also have symmetries) cannot be tracked linearly by one unit; a
low ``|r|`` there says so rather than that nothing encodes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from latentkit.data.ground_truth import GroundTruthData
from latentkit.errors import ConfigError
from latentkit.metrics.base import DEFAULT_CHUNK, CodeSampler, Representation, axis_names
from latentkit.validation import at_least, check

NAME = "factor-correlation"
DEFAULTS = {"num_points": 10_000, "seed": 0, "chunk_size": DEFAULT_CHUNK, "prefetch": True}


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


def _pearson_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(A, B)`` Pearson correlations of the columns of ``a (N, A)`` with those of ``b (N, B)``; 0 for a constant column."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.sqrt((a**2).sum(axis=0)), np.sqrt((b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ b) / np.outer(na, nb)
    return np.clip(np.nan_to_num(r, nan=0.0), -1.0, 1.0)


def correlation_table(codes: np.ndarray, is_discrete: np.ndarray, values: np.ndarray,
                      code_names: Sequence[str], factor_names: Sequence[str],
                      discrete_factors: Sequence[bool] = ()) -> dict:
    """Per ordered factor with more than one value (keyed by factor name): ``unit``, its best-tracking continuous unit;
    ``pearson`` (``r``) and ``spearman`` (``rho``) of that unit; ``abs_pearson_by_unit``, ``|r|`` of every unit; and
    ``score``, the mean best ``|r|``. ``codes (N, D)``, ``values (N, F)`` physical factor
    values; factors flagged in ``discrete_factors`` (categorical, e.g. a shape) are left out."""
    codes, values = np.asarray(codes, dtype=np.float64), np.asarray(values, dtype=np.float64)
    cont = np.flatnonzero(~np.asarray(is_discrete, dtype=bool))
    if cont.size == 0:
        raise ConfigError(f"{NAME} correlates continuous units with factors, but the representation has none")
    if codes.shape[0] < 3 or codes.shape[0] != values.shape[0]:
        raise ConfigError(f"{NAME} needs at least 3 points with one row of factors each; got {codes.shape[0]} codes "
                          f"and {values.shape[0]} factor rows")
    r = _pearson_matrix(codes[:, cont], values)
    rho = _pearson_matrix(_ranks(codes[:, cont]), _ranks(values))
    units, pearson, spearman, by_unit = {}, {}, {}, {}
    for j, factor in enumerate(factor_names):
        if (j < len(discrete_factors) and discrete_factors[j]) or np.unique(values[:, j]).size < 2:
            continue
        best = int(np.argmax(np.abs(r[:, j])))
        units[factor] = code_names[cont[best]]
        pearson[factor] = float(r[best, j])
        spearman[factor] = float(rho[best, j])
        by_unit[factor] = {code_names[c]: float(abs(r[i, j])) for i, c in enumerate(cont)}
    if not units:
        raise ConfigError(f"{NAME}: no ordered factor varies over the drawn points; nothing to correlate")
    score = float(np.mean([abs(v) for v in pearson.values()]))
    return {"score": score, "unit": units, "pearson": pearson, "spearman": spearman, "abs_pearson_by_unit": by_unit}


def sample_correlation_points(ground_truth: GroundTruthData, represent: Representation, num_points: int = 10_000,
                              seed: int = 0, chunk_size: int = DEFAULT_CHUNK, prefetch: bool = True
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, is_discrete, physical factor values)`` of ``num_points`` images drawn uniformly from the grid."""
    sampler = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    n = check("num_points", num_points, at_least(3).such_as("10000"), NAME)
    codes, is_discrete, factors = sampler.codes(n)
    values = ground_truth.factor_values(torch.from_numpy(factors)).numpy()
    return codes, is_discrete, values


def factor_correlation(ground_truth: GroundTruthData, represent: Representation, num_points: int = 10_000,
                       seed: int = 0, chunk_size: int = DEFAULT_CHUNK, prefetch: bool = True,
                       names: Sequence[str] | None = None) -> dict:
    """The registered metric's core: :func:`correlation_table` on ``num_points`` images drawn from the grid."""
    codes, is_discrete, values = sample_correlation_points(ground_truth, represent, num_points, seed, chunk_size,
                                                           prefetch)
    code_names = axis_names(names, codes.shape[1], "z")
    factor_names = axis_names(ground_truth.factor_names, values.shape[1], "factor")
    table = correlation_table(codes, is_discrete, values, code_names, factor_names, ground_truth.discrete_factors)
    return {**table, "num_points": codes.shape[0]}
