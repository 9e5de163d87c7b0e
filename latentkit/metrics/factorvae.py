"""The FactorVAE score (Kim & Mnih 2018), disentanglement_lib's protocol.

1. *Global scale*: encode ``num_variance_estimate`` random images; each code column's variance (ddof=1); collapsed
   columns are pruned (see *Pruning*).
2. *One vote*: pick a factor ``k`` uniformly; draw ``vote_size`` (L) images sharing one random value of ``k`` (the first
   draw's, as disentanglement_lib does), everything else random; encode; each kept continuous column's variance divided
   by its global variance (disentanglement_lib divides every column by its global standard deviation); the vote is
   ``(argmin column, k)``.
3. ``num_train`` votes make a table; the majority-vote classifier maps each column to its most frequent factor. The
   score is its accuracy on ``num_eval`` fresh votes (``eval_accuracy``; ``train_accuracy`` on the training votes).
   ``score_se`` is its standard error over those votes, ``sqrt(p (1 - p) / num_eval)`` (the votes are independent given
   the classifier), so two figures can be told apart from vote noise: at 5,000 votes and p = 0.7 it is 0.0065.

Defaults are disentanglement_lib's: L = 64, 10,000 variance points, 10,000 training and 5,000 evaluation votes, prune
below a spread of 0.05 (the original paper used L = 100 and 800 votes).

**Discrete columns** (a categorical latent's argmax category): such a column uses the *Gini variance*
``(N^2 - sum_c count_c^2) / (2 N (N-1))`` — the variance formula ``sum_{i,j} (x_i - x_j)^2 / (2 N (N-1))`` with the
squared distance replaced by "differs" — in place of the variance, globally and per vote. How a vote compares it with
the continuous columns is ``discrete_scale``:

* ``"none"`` (default): the per-vote Gini variance as it is. This is what disentanglement_lib's protocol does to such a
  column: it divides every column by its global standard deviation before taking per-vote variances, and relabelling
  categories changes no Gini variance (a count statistic, not a moment of the column's values). It is the convention
  that reproduces the JointVAE paper's dSprites figure: 0.6932 on the original's released checkpoint, the paper's 0.69.
* ``"global"``: the per-vote Gini variance divided by its global value, as continuous columns are (CascadeVAE's
  published implementation). On the same checkpoint it gives 0.81: an unfixed categorical column then sits near 1 like
  an unfixed continuous one, where under ``"none"`` it sits at its raw Gini variance (at most ``(1 - 1/K) / 2``) and
  wins votes for factors it does not hold.

**Pruning**: a column is pruned when its global spread (standard deviation; the square root of the Gini variance for a
discrete column) is below ``prune_threshold`` times the spread the same column has under the model's *prior* — the
representation's ``prior_scale`` (:class:`~latentkit.metrics.base.ModelRepresentation` provides it: 1 for a unit
Gaussian, 0.28 for Beta(1, 1), 0.50 for a relaxed Bernoulli unit, 0.56 for a uniform 3-way categorical). Why relative:
"collapsed" means "uses a small part of what its prior spans"; an absolute 0.05 is 5 % of a unit Gaussian's spread but
17 % of a Beta(1, 1)'s, so bounded families would be pruned at a different stage of collapse than Gaussians. A plain
representation function (no ``prior_scale``) is pruned by the absolute spread (scale 1 for every column), which is
disentanglement_lib's rule and the relative rule for unit Gaussians. The result records ``prune_rule``
(``"relative to the prior"`` or ``"absolute"``), the ``prior_scale`` used, and ``discrete_scale``.

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
    gini_variance,
    images_ahead,
    represent_images,
    variances,
)
from latentkit.validation import at_least, check, non_negative_float, one_of, positive_int

__all__ = [
    "DEFAULTS",
    "DISCRETE_SCALES",
    "NAME",
    "factor_vae_score",
    "gini_variance",
    "prune_yardstick",
    "variances",
    "vote_standard_error",
]

NAME = "factorvae"
DEFAULTS = {
    "vote_size": 64,
    "num_train": 10_000,
    "num_eval": 5_000,
    "num_variance_estimate": 10_000,
    "prune_threshold": 0.05,
    "discrete_scale": "none",
    "seed": 0,
    "chunk_size": DEFAULT_CHUNK,
    "prefetch": True,
}
#: how a vote compares a discrete column's Gini variance: as it is (disentanglement_lib), or over its global value
DISCRETE_SCALES = ("none", "global")


def prune_yardstick(prior_scale: np.ndarray | None, dims: int) -> np.ndarray:
    """Each column's spread under the prior (``prior_scale``, checked), or 1 for every column without one."""
    if prior_scale is None:
        return np.ones(dims)
    scale = np.asarray(prior_scale, dtype=np.float64).reshape(-1)
    if scale.shape != (dims,) or not (np.isfinite(scale) & (scale > 0)).all():
        raise ConfigError(
            f"a representation's prior_scale must give a positive, finite spread for each of its {dims} columns, got "
            f"{np.asarray(prior_scale).tolist()}"
        )
    return scale


def vote_standard_error(accuracy: float, num_votes: int) -> float:
    """The binomial standard error of an accuracy over ``num_votes`` independent votes."""
    return float(np.sqrt(accuracy * (1.0 - accuracy) / num_votes))


def factor_vae_score(
    ground_truth: GroundTruthData,
    represent: Representation,
    *,
    vote_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    discrete_scale: str = "none",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    prefetch: bool = True,
    names: tuple[str, ...] | None = None,
    prior_scale: np.ndarray | None = None,
) -> dict:
    """``{"score", "eval_accuracy", "train_accuracy", "num_active_dims", "active_dims", "dim_to_factor", ...}``.

    ``prior_scale`` (``(D,)``, positive): each column's spread under the prior, the yardstick of pruning; by default the
    representation's ``prior_scale`` attribute, and without one the absolute rule (module docstring). ``train_votes``
    in the result is the training vote table, ``{factor: [votes per column]}``.
    """
    draws = CodeSampler(NAME, ground_truth, represent, seed, chunk_size, prefetch)
    gt = draws.ground_truth
    vote_size = check("vote_size", vote_size, at_least(2).such_as("64"), NAME)
    num_train = check("num_train", num_train, positive_int.such_as("10000"), NAME)
    num_eval = check("num_eval", num_eval, positive_int.such_as("5000"), NAME)
    num_variance_estimate = check("num_variance_estimate", num_variance_estimate, at_least(2).such_as("10000"), NAME)
    prune_threshold = check("prune_threshold", prune_threshold, non_negative_float.such_as("0.05"), NAME)
    discrete_scale = check("discrete_scale", discrete_scale, one_of(*DISCRETE_SCALES), NAME)

    codes, is_discrete, _ = draws.codes(num_variance_estimate)
    global_var = variances(codes, is_discrete)
    dims = codes.shape[1]
    if prior_scale is None:
        prior_scale = getattr(represent, "prior_scale", None)
    yardstick = prune_yardstick(prior_scale, dims)
    active = (np.sqrt(global_var) >= prune_threshold * yardstick) & (global_var > 0)
    names = axis_names(names, dims, "z")
    result = {
        "discrete_scale": discrete_scale,
        "prune_rule": "absolute" if prior_scale is None else "relative to the prior",
        "prior_scale": None if prior_scale is None else {names[i]: float(yardstick[i]) for i in range(dims)},
        "score": 0.0,
        "score_se": 0.0,
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
        result["score_se"] = vote_standard_error(result["score"], num_eval)
        result["images_encoded"] = num_variance_estimate
        return result

    def votes(n_votes: int) -> np.ndarray:
        table = np.zeros((gt.num_factors, dims), dtype=np.int64)
        active_idx = np.flatnonzero(active)
        scale = global_var[active].copy()
        if discrete_scale == "none":  # disentanglement_lib: a Gini variance is left as it is
            scale[is_discrete[active]] = 1.0
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
    result["score_se"] = vote_standard_error(result["score"], num_eval)
    factor_names = axis_names(gt.factor_names, gt.num_factors, "factor")
    result["train_votes"] = {factor_names[k]: train_votes[k].tolist() for k in range(gt.num_factors)}
    result["dim_to_factor"] = {
        names[i]: factor_names[classifier[i]] for i in np.flatnonzero(active) if train_votes[:, i].sum() > 0
    }
    result["images_encoded"] = num_variance_estimate + (num_train + num_eval) * vote_size
    return result
