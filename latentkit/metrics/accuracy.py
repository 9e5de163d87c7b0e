"""Unsupervised accuracy of a discrete code (the JointVAE paper's 88.7% on MNIST).

Each image's cluster is the argmax category of every discrete variable, combined into one id (mixed radix: with
variables of sizes ``K_0, K_1, ...`` the id is ``((c_0 K_1 + c_1) K_2 + c_2) ...``). Against the true labels the
contingency table (clusters x labels) is scored two ways:

* **majority**: each cluster is mapped to its most frequent label (several clusters may share a label);
* **hungarian**: a one-to-one map between clusters and labels chosen to maximise the matches
  (``scipy.optimize.linear_sum_assignment``; rectangular tables allowed, unmatched clusters count as wrong).

Also the normalised mutual information (arithmetic-mean normalisation, as scikit-learn's default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from latentkit.errors import ConfigError
from latentkit.validation import check, positive_int


def _as_int_array(values, what: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub" and arr.size:
        raise ConfigError(f"{what} must be whole numbers, got an array of {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def combine_categories(categories, sizes: Sequence[int]) -> np.ndarray:
    """``(N, n_vars)`` category indices (variable ``j`` in ``0..sizes[j]-1``) to one cluster id per row (mixed radix)."""
    cats = _as_int_array(categories, "categories")
    if cats.ndim == 1:
        cats = cats[:, None]
    sizes = [int(k) for k in sizes]
    if cats.ndim != 2 or cats.shape[1] != len(sizes):
        raise ConfigError(f"categories of shape {cats.shape} do not match {len(sizes)} variables of sizes {sizes}")
    if math.prod(sizes) > 2**62:
        raise ConfigError(f"{math.prod(sizes)} possible clusters (sizes {sizes}) do not fit a 64-bit id")
    if cats.size and ((cats < 0).any() or (cats >= np.asarray(sizes)).any()):
        raise ConfigError(f"categories out of range for variables of sizes {sizes}")
    ids = np.zeros(cats.shape[0], dtype=np.int64)
    for j, k in enumerate(sizes):
        ids = ids * k + cats[:, j]
    return ids


def contingency_table(clusters, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(table, cluster values, label values)``: ``table[i, j]`` counts images of cluster ``i`` with label ``j``,
    over the clusters and labels that occur."""
    clusters = _as_int_array(clusters, "cluster ids").reshape(-1)
    labels = _as_int_array(labels, "labels").reshape(-1)
    if clusters.shape != labels.shape:
        raise ConfigError(f"{clusters.shape[0]} cluster ids but {labels.shape[0]} labels; they must pair up")
    if clusters.size == 0:
        raise ConfigError("no images to score: the cluster ids and labels are empty")
    c_values, c_index = np.unique(clusters, return_inverse=True)
    l_values, l_index = np.unique(labels, return_inverse=True)
    flat = c_index.reshape(-1) * len(l_values) + l_index.reshape(-1)
    table = np.bincount(flat, minlength=len(c_values) * len(l_values)).reshape(len(c_values), len(l_values))
    return table.astype(np.int64), c_values, l_values


def majority_accuracy(table: np.ndarray) -> float:
    """Accuracy when each cluster (row) is mapped to its most frequent label (column)."""
    table = np.asarray(table)
    return float(table.max(axis=1).sum() / table.sum())


def hungarian_accuracy(table: np.ndarray) -> float:
    """Accuracy of the best one-to-one map between clusters (rows) and labels (columns)."""
    table = np.asarray(table)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def normalized_mutual_info(table: np.ndarray) -> float:
    """NMI of the clustering and the labels, ``MI / mean(H(clusters), H(labels))`` (1 when both are constant)."""
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    p = table / n
    pc, pl = p.sum(1), p.sum(0)
    h_c = -float(np.sum(pc[pc > 0] * np.log(pc[pc > 0])))
    h_l = -float(np.sum(pl[pl > 0] * np.log(pl[pl > 0])))
    if h_c == 0.0 and h_l == 0.0:
        return 1.0
    nz = p > 0
    mi = float(np.sum(p[nz] * (np.log(p[nz]) - np.log(np.outer(pc, pl)[nz]))))
    mean_h = (h_c + h_l) / 2
    return float(min(max(mi / mean_h, 0.0), 1.0)) if mean_h > 0 else 0.0


def cluster_accuracy(clusters, labels) -> dict[str, float | int]:
    """``{"majority", "hungarian", "nmi", "n_images", "n_clusters_used"}`` of cluster ids against labels."""
    table, c_values, _ = contingency_table(clusters, labels)
    return {
        "majority": majority_accuracy(table),
        "hungarian": hungarian_accuracy(table),
        "nmi": normalized_mutual_info(table),
        "n_images": int(table.sum()),
        "n_clusters_used": int(len(c_values)),
    }


def kmeans_clusters(codes, k: int, seed: int = 0, n_init: int = 10, standardize: bool = False) -> np.ndarray:
    """Cluster ids ``(N,)`` of ``k``-means (k-means++ starts, ``n_init`` restarts, best inertia) on ``codes (N, D)``.

    Why: a continuous-only model has no categorical code to read a class from; the JointVAE paper's claim that a
    β-VAE does not separate the digits becomes measurable as the accuracy of the best ``k`` clusters of its means.
    ``standardize`` scales each column to unit variance first (k-means otherwise weights units by their spread).
    """
    from sklearn.cluster import KMeans  # scikit-learn: a well-kept k-means (Lloyd/Elkan, k-means++), imported lazily

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ConfigError(f"k-means needs codes of shape (N, D) with D >= 1, got {codes.shape}")
    k = check("clusters", k, positive_int.such_as("10"), "k-means")
    if codes.shape[0] < k:
        raise ConfigError(f"{codes.shape[0]} images cannot form {k} k-means clusters; evaluate on more images")
    if not np.isfinite(codes).all():
        raise ConfigError("the codes hold NaN or inf; the model is broken or diverged")
    if standardize:
        spread = codes.std(axis=0)
        codes = (codes - codes.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    km = KMeans(n_clusters=int(k), n_init=int(n_init), random_state=int(seed))
    return km.fit_predict(codes).astype(np.int64)
