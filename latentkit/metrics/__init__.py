"""Evaluation metrics (pure functions on arrays); the registered metric plugins wrap them around a model."""

from latentkit.metrics.accuracy import (
    cluster_accuracy,
    combine_categories,
    contingency_table,
    hungarian_accuracy,
    majority_accuracy,
    normalized_mutual_info,
)

__all__ = [
    "cluster_accuracy",
    "combine_categories",
    "contingency_table",
    "hungarian_accuracy",
    "majority_accuracy",
    "normalized_mutual_info",
]
