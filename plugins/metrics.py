"""Built-in evaluation metrics.

A metric is a callable ``metric(model, data, batch_size, device) -> dict`` of JSON-serialisable values, registered
under a name; ``latentkit evaluate --metric NAME`` runs it on a checkpoint (see :mod:`latentkit.metrics.base` for the
optional attributes ``needs_ground_truth``, ``needs_data`` and ``options``).

* ``accuracy``: unsupervised accuracy of the discrete code (see :mod:`latentkit.metrics.accuracy`). Every image is
  encoded in eval mode; the argmax categories of every channel whose family ``is_discrete`` (channels in declaration
  order, variables in order) are combined into one cluster id and scored against the labels by majority map, by
  one-to-one Hungarian matching, and by NMI.
* ``kmeans-accuracy``: the same three scores for the ``clusters`` (default: as many as the labels) clusters of a
  k-means on the continuous channels' means — the class information a continuous-only model (β-VAE) holds, measured
  the way the discrete code's is (:func:`latentkit.metrics.accuracy.kmeans_clusters`).
* ``label-mig``: MIG with the class label as the only factor — whether one unit holds the class (the paper's Fig. 3
  claim about β-VAE on MNIST): the best unit's share of H(label) and the gap to the second.
* ``reconstruction``: each image's BCE summed over its pixels, decoded from its representative latent: median, mean,
  10th and 90th percentiles (:mod:`latentkit.metrics.reconstruction`).
* ``kl-ranking``: each latent unit's mean KL to its prior on the split, ranked (:mod:`latentkit.metrics.kl`).
* ``factorvae``, ``mig``, ``dci``, ``sap``: disentanglement metrics on the data set's ground-truth factor grid, with
  disentanglement_lib's protocols and defaults (:mod:`latentkit.metrics.factorvae`, ``.mig``, ``.dci``, ``.sap``).
  The representation is the Gaussian means plus, per discrete variable, its argmax category. ``factorvae`` compares a
  discrete column's per-vote Gini variance as it is (``discrete_scale="none"``, the default: disentanglement_lib's
  convention, the one that reproduces the JointVAE paper's dSprites figure) or divided by its global value
  (``"global"``, CascadeVAE's), and prunes a column whose spread is below ``prune_threshold`` times its spread under
  the model's prior (a unit Gaussian's is 1; see :mod:`latentkit.metrics.factorvae`).
* ``factor-correlation``: per ordered ground-truth factor, the continuous unit most correlated with it on images drawn
  from the grid, with Pearson and Spearman correlations (the paper's Fig. 8a as a number,
  :mod:`latentkit.metrics.correlation`; ``latentkit plot`` draws the scatter).
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.data.provider import ImageData, as_float_batch
from latentkit.errors import ConfigError
from latentkit.metrics import correlation, dci, factorvae, mig, sap
from latentkit.metrics.accuracy import cluster_accuracy, combine_categories, kmeans_clusters
from latentkit.metrics.base import GroundTruthMetric, ModelRepresentation, resolve_options
from latentkit.metrics.kl import kl_ranking
from latentkit.metrics.mig import compute_mig
from latentkit.metrics.reconstruction import reconstruction
from latentkit.plugins import hookimpl
from latentkit.validation import at_least, boolean, check, positive_int


def encode_categories(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu"):
    """``(categories (N, n_vars) int64, sizes)`` of every discrete channel of ``model`` over ``data``, eval mode."""
    discrete = [(name, family) for name, family in model.latent.items() if family.is_discrete]
    if not discrete:
        names = ", ".join(f"{name} ({type(f).__name__})" for name, f in model.latent.items())
        raise ConfigError(
            f"the accuracy metric needs a discrete latent channel (e.g. gumbel_softmax), but this model's channels "
            f"are {names}"
        )
    check("batch_size", batch_size, positive_int, example="1000")
    sizes = [k for _, family in discrete for k in family.unit_sizes()]
    was_training = model.training
    model.eval()
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                x = as_float_batch(data.images[start : start + batch_size].to(device))
                params = model.encode(x)
                parts.append(torch.cat([family.categories(params[name]) for name, family in discrete], dim=1).cpu())
    finally:
        model.train(was_training)
    cats = torch.cat(parts) if parts else torch.zeros(0, len(sizes), dtype=torch.int64)
    return cats, sizes


def _labels_or_error(data: ImageData, metric: str):
    if data.labels is None:
        raise ConfigError(
            f"the {metric} metric needs class labels, but this data split has none (e.g. celeba, chairs); evaluate on "
            "a labelled data set such as mnist or fashion_mnist"
        )
    return data.labels


def accuracy(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu") -> dict:
    """``{"majority", "hungarian", "nmi", "n_images", "n_clusters_used"}`` of the discrete code against the labels."""
    labels = _labels_or_error(data, "accuracy")
    cats, sizes = encode_categories(model, data, batch_size, device)
    return cluster_accuracy(combine_categories(cats, sizes), labels)


def _encode_labelled(model: nn.Module, data: ImageData, batch_size, device, metric: str):
    """``(codes, is_discrete, column names, labels)`` of a labelled split under the model's representation."""
    labels = _labels_or_error(data, metric)
    represent = ModelRepresentation(model, batch_size, device)
    codes, is_discrete = represent(data.images)
    return codes, is_discrete, represent.names, labels


KMEANS_DEFAULTS = {"clusters": 0, "seed": 0, "n_init": 10, "standardize": False}


def kmeans_accuracy(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu",
                    **options) -> dict:
    """``accuracy``'s scores for a k-means of the continuous means (``clusters`` 0: one per label value)."""
    opts = resolve_options("kmeans-accuracy", KMEANS_DEFAULTS, options)
    k = check("clusters", opts["clusters"], at_least(0), owner="kmeans-accuracy")
    codes, is_discrete, _, labels = _encode_labelled(model, data, batch_size, device, "kmeans-accuracy")
    k = k or len(torch.unique(torch.as_tensor(labels)))
    if is_discrete.all():
        raise ConfigError("the kmeans-accuracy metric clusters continuous units, but this model has none; use the "
                          "accuracy metric for its discrete code")
    clusters = kmeans_clusters(
        codes[:, ~is_discrete], k,
        seed=check("seed", opts["seed"], at_least(0), owner="kmeans-accuracy"),
        n_init=check("n_init", opts["n_init"], positive_int, owner="kmeans-accuracy"),
        standardize=check("standardize", opts["standardize"], boolean, owner="kmeans-accuracy"),
    )
    return {**cluster_accuracy(clusters, labels), "clusters": k}


kmeans_accuracy.options = KMEANS_DEFAULTS

LABEL_MIG_DEFAULTS = {"num_bins": 20}


def label_mig(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu",
              **options) -> dict:
    """MIG with the class label as the one factor: is the class held by a single unit?

    Why: "a β-VAE does not disentangle MNIST" is a claim about where the digit lives, not whether it is encoded (a
    k-means of all its means finds it). Each unit (continuous ones binned as MIG does, a discrete variable's argmax as
    is) gets its mutual information with the label, as a share of H(label); ``top_share`` is the best unit's share,
    ``score`` the gap to the second best. A discrete code that is the digit scores near its ``top_share``; a digit
    spread over several continuous units has a low top share and gap.
    """
    opts = resolve_options("label-mig", LABEL_MIG_DEFAULTS, options)
    bins = check("num_bins", opts["num_bins"], at_least(2), owner="label-mig")
    codes, is_discrete, names, labels = _encode_labelled(model, data, batch_size, device, "label-mig")
    label_index = torch.unique(torch.as_tensor(labels), return_inverse=True)[1].numpy()[:, None]
    result = compute_mig(codes, is_discrete, label_index, bins, names, ("label",))
    entropy = result["factor_entropy"]["label"]
    shares = sorted(((info["label"] / entropy if entropy > 0 else 0.0), unit)
                    for unit, info in result["mutual_info"].items())[::-1]
    return {"score": result["score"], "top_unit": shares[0][1], "top_share": shares[0][0],
            "second_unit": shares[1][1] if len(shares) > 1 else "", "second_share": shares[1][0] if len(shares) > 1 else 0.0,
            "label_entropy": entropy}


label_mig.options = LABEL_MIG_DEFAULTS


factorvae_metric = GroundTruthMetric(factorvae.NAME, factorvae.factor_vae_score, factorvae.DEFAULTS, factorvae.__doc__)
mig_metric = GroundTruthMetric(mig.NAME, mig.mig_score, mig.DEFAULTS, mig.__doc__)
dci_metric = GroundTruthMetric(dci.NAME, dci.dci_score, dci.DEFAULTS, dci.__doc__)
sap_metric = GroundTruthMetric(sap.NAME, sap.sap_score, sap.DEFAULTS, sap.__doc__)
correlation_metric = GroundTruthMetric(correlation.NAME, correlation.factor_correlation, correlation.DEFAULTS,
                                       correlation.__doc__)


@hookimpl
def latentkit_register_metrics(registry):
    registry.add("accuracy", accuracy)
    registry.add("kmeans-accuracy", kmeans_accuracy)
    registry.add("label-mig", label_mig)
    registry.add("kl-ranking", kl_ranking)
    registry.add("reconstruction", reconstruction)
    for metric in (factorvae_metric, mig_metric, dci_metric, sap_metric, correlation_metric):
        registry.add(metric.name, metric)
