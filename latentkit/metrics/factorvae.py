"""The FactorVAE score (Kim & Mnih 2018), disentanglement_lib's protocol.

1. *Global scale*: encode ``num_variance_estimate`` random images; each code column's variance (ddof=1); columns whose
   standard deviation is below ``prune_threshold`` are pruned (collapsed units).
2. *One vote*: pick a factor ``k`` uniformly; draw ``vote_size`` (L) images sharing one random value of ``k`` (the first
   draw's, as disentanglement_lib does), everything else random; encode; each kept column's variance divided by its
   global variance; the vote is ``(argmin column, k)``.
3. ``num_train`` votes make a table; the majority-vote classifier maps each column to its most frequent factor. The
   score is its accuracy on ``num_eval`` fresh votes (``eval_accuracy``; ``train_accuracy`` on the training votes).

Defaults are disentanglement_lib's: L = 64, 10,000 variance points, 10,000 training and 5,000 evaluation votes, prune
below std 0.05 (the original paper used L = 100 and 800 votes).

**Discrete columns** (a categorical latent's argmax category): neither the paper nor disentanglement_lib says how. As in
CascadeVAE's published implementation, such a column uses the *Gini variance* ``(N^2 - sum_c count_c^2) / (2 N (N-1))``
— the variance formula ``sum_{i,j} (x_i - x_j)^2 / (2 N (N-1))`` with the squared distance replaced by "differs" — in
place of the variance, globally and per vote, normalised (divided by its global value) and pruned the same way.

**No active column** (a constant representation): disentanglement_lib returns 0. Here the classifier then has no
feature and predicts the most frequent training factor, so the score is chance, about ``1 / num_factors`` — the value a
constant representation should get; nothing is encoded for the votes then.

Efficiency: votes are drawn many at a time (``chunk_size`` images per step, a whole number of votes), their images
generated and encoded in one call of the representation, and variances, argmins and the vote table computed
vectorised; with ``prefetch`` the next chunk's images are generated in a worker thread while the current chunk is
encoded. Encoding is the only cost that should grow with the images (about 970,000 with the defaults).
``chunk_size`` and ``prefetch`` change speed and memory, never the result.
"""

from __future__ import annotations

import numpy as np
import torch

from latentkit.data.ground_truth import GroundTruthData
from latentkit.errors import ConfigError
from latentkit.metrics.base import (
    DEFAULT_CHUNK,
    CodeSampler,
    Representation,
    axis_names,
    images_ahead,
    represent_images,
)
from latentkit.validation import at_least, check, non_negative_float, positive_int

NAME = "factorvae"
DEFAULTS = {
    "vote_size": 64,
    "num_train": 10_000,
    "num_eval": 5_000,
    "num_variance_estimate": 10_000,
    "prune_threshold": 0.05,
    "seed": 0,
    "chunk_size": DEFAULT_CHUNK,
    "prefetch": True,
}


def gini_variance(categories: np.ndarray, axis: int = 0) -> np.ndarray:
    """``(N^2 - sum_c count_c^2) / (2 N (N - 1))`` of integer-valued ``categories`` along ``axis`` (N >= 2)."""
    cats = np.moveaxis(np.asarray(categories), axis, -1)
    n = cats.shape[-1]
    if n < 2:
        raise ConfigError(f"the Gini variance needs at least 2 values, got {n}")
    values = np.unique(cats)
    sq = np.zeros(cats.shape[:-1], dtype=np.float64)
    for v in values:  # few categories: one pass each
        count = (cats == v).sum(-1).astype(np.float64)
        sq += count * count
    return (n * n - sq) / (2.0 * n * (n - 1))


def variances(codes: np.ndarray, is_discrete: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per column the variance (ddof=1) along ``axis``, or the Gini variance for discrete columns."""
    out = np.var(codes, axis=axis, ddof=1)
    if is_discrete.any():
        disc = np.flatnonzero(is_discrete)
        out[..., disc] = gini_variance(np.take(codes, disc, axis=-1), axis=axis)
    return out


def factor_vae_score(
    ground_truth: GroundTruthData,
    represent: Representation,
    *,
    vote_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
    names: tuple[str, ...] | None = None,
) -> dict:
    """``{"score", "eval_accuracy", "train_accuracy", "num_active_dims", "active_dims", "dim_to_factor", ...}``."""
    draws = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    gt = draws.ground_truth
    vote_size = check("vote_size", vote_size, at_least(2).such_as("64"), NAME)
    num_train = check("num_train", num_train, positive_int.such_as("10000"), NAME)
    num_eval = check("num_eval", num_eval, positive_int.such_as("5000"), NAME)
    num_variance_estimate = check("num_variance_estimate", num_variance_estimate, at_least(2).such_as("10000"), NAME)
    prune_threshold = check("prune_threshold", prune_threshold, non_negative_float.such_as("0.05"), NAME)

    codes, is_discrete, _ = draws.codes(num_variance_estimate)
    global_var = variances(codes, is_discrete)
    active = (np.sqrt(global_var) >= prune_threshold) & (global_var > 0)
    dims = codes.shape[1]
    names = axis_names(names, dims, "z")
    result = {
        "score": 0.0,
        "eval_accuracy": 0.0,
        "train_accuracy": 0.0,
        "num_active_dims": int(active.sum()),
        "active_dims": [names[i] for i in np.flatnonzero(active)],
        "global_variance": {names[i]: float(global_var[i]) for i in range(dims)},
        "dim_to_factor": {},
    }
    if not active.any():  # no feature: the classifier predicts the most frequent training factor (chance)
        train_k = torch.randint(0, gt.num_factors, (num_train,), generator=draws.generator).numpy()
        eval_k = torch.randint(0, gt.num_factors, (num_eval,), generator=draws.generator).numpy()
        guess = np.bincount(train_k, minlength=gt.num_factors).argmax()
        result["train_accuracy"] = float(np.mean(train_k == guess))
        result["eval_accuracy"] = result["score"] = float(np.mean(eval_k == guess))
        result["images_encoded"] = num_variance_estimate
        return result

    def votes(n_votes: int) -> np.ndarray:
        table = np.zeros((gt.num_factors, dims), dtype=np.int64)
        active_idx = np.flatnonzero(active)
        scale = global_var[active]
        per_chunk = max(1, draws.chunk_size // vote_size)

        # Every vote's factors are drawn up front (a few tens of MB), so the chunking never changes the votes.
        k_all = torch.randint(0, gt.num_factors, (n_votes,), generator=draws.generator)
        factors_all = gt.sample_factors(n_votes * vote_size, draws.generator).view(n_votes, vote_size, gt.num_factors)
        rows = torch.arange(n_votes)
        factors_all[rows, :, k_all] = factors_all[rows, 0, k_all][:, None]
        chunks = (
            (factors_all[start : start + per_chunk].reshape(-1, gt.num_factors), k_all[start : start + per_chunk])
            for start in range(0, n_votes, per_chunk)
        )
        for _, k, images in images_ahead(gt, chunks, draws.prefetch):
            v = k.shape[0]
            c, flags = represent_images(represent, images)
            if flags.shape != is_discrete.shape or (flags != is_discrete).any():
                raise ConfigError("the representation changed its columns between calls")
            local = variances(c.reshape(v, vote_size, dims)[:, :, active], flags[active], axis=1)
            argmin = active_idx[np.argmin(local / scale, axis=1)]
            np.add.at(table, (k.numpy(), argmin), 1)
        return table

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # column -> factor
    cols = np.arange(dims)
    eval_votes = votes(num_eval)
    result["train_accuracy"] = float(train_votes[classifier, cols].sum() / train_votes.sum())
    result["eval_accuracy"] = result["score"] = float(eval_votes[classifier, cols].sum() / eval_votes.sum())
    factor_names = axis_names(gt.factor_names, gt.num_factors, "factor")
    result["dim_to_factor"] = {
        names[i]: factor_names[classifier[i]] for i in np.flatnonzero(active) if train_votes[:, i].sum() > 0
    }
    result["images_encoded"] = num_variance_estimate + (num_train + num_eval) * vote_size
    return result
