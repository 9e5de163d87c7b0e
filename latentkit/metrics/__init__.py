"""Evaluation metrics (pure functions on arrays and representation functions); the registered metric plugins wrap
them around a model (``plugins/metrics.py``).

Disentanglement metrics (:mod:`~latentkit.metrics.factorvae`, :mod:`~latentkit.metrics.mig`,
:mod:`~latentkit.metrics.dci`, :mod:`~latentkit.metrics.sap`) take a ground-truth data set and a representation
function ``represent(uint8 images) -> (float64 codes (N, D), bool is_discrete (D,))``; see
:mod:`latentkit.metrics.base`.
"""

from latentkit.metrics.accuracy import (
    cluster_accuracy,
    combine_categories,
    contingency_table,
    hungarian_accuracy,
    majority_accuracy,
    normalized_mutual_info,
)
from latentkit.metrics.base import GroundTruthMetric, ModelRepresentation, resolve_options, sample_codes
from latentkit.metrics.dci import compute_dci, dci_score
from latentkit.metrics.factorvae import factor_vae_score, gini_variance
from latentkit.metrics.kl import kl_per_unit, kl_ranking
from latentkit.metrics.mig import compute_mig, mig_score
from latentkit.metrics.sap import compute_sap, sap_score

__all__ = [
    "GroundTruthMetric",
    "ModelRepresentation",
    "cluster_accuracy",
    "combine_categories",
    "compute_dci",
    "compute_mig",
    "compute_sap",
    "contingency_table",
    "dci_score",
    "factor_vae_score",
    "gini_variance",
    "hungarian_accuracy",
    "kl_per_unit",
    "kl_ranking",
    "majority_accuracy",
    "mig_score",
    "normalized_mutual_info",
    "resolve_options",
    "sample_codes",
    "sap_score",
]
