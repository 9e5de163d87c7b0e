"""Unsupervised accuracy of the discrete code: the pure functions, the registered metric, and the paper's 88.7%."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentkit.assembly.build import build_model
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.data.provider import ImageData
from latentkit.errors import ConfigError, UnknownNameError
from latentkit.metrics.accuracy import (
    cluster_accuracy,
    combine_categories,
    contingency_table,
    hungarian_accuracy,
    kmeans_clusters,
    majority_accuracy,
    normalized_mutual_info,
)
from latentkit.plugins import get_registry

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
MNIST_SRC = SHARED / "reference_models" / "jointvae-original" / "mnist"


# --- the pure functions -------------------------------------------------------------------------------------------


def test_identity_codes_score_one():
    labels = np.arange(1000) % 10
    result = cluster_accuracy(labels, labels)
    assert result["majority"] == result["hungarian"] == 1.0
    assert result["nmi"] == pytest.approx(1.0)
    assert result["n_images"] == 1000 and result["n_clusters_used"] == 10


def test_permuted_codes_score_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=5000)
    perm = rng.permutation(10)
    result = cluster_accuracy(perm[labels], labels)
    assert result["majority"] == result["hungarian"] == 1.0
    assert result["nmi"] == pytest.approx(1.0)


def test_random_codes_score_about_chance():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=20000)
    clusters = rng.integers(0, 10, size=20000)
    result = cluster_accuracy(clusters, labels)
    assert 0.09 < result["hungarian"] < 0.12
    assert result["hungarian"] <= result["majority"] < 0.13
    assert result["nmi"] < 0.01


def test_hand_computed_example():
    # clusters 0..2 against labels a=0, b=1:
    #   cluster 0: a a a b      -> majority a (3)
    #   cluster 1: a a b        -> majority a (2)   (shares a with cluster 0)
    #   cluster 2: b b          -> majority b (2)
    clusters = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    labels = [0, 0, 0, 1, 0, 0, 1, 1, 1]
    table, c_values, l_values = contingency_table(clusters, labels)
    np.testing.assert_array_equal(table, [[3, 1], [2, 1], [0, 2]])
    np.testing.assert_array_equal(c_values, [0, 1, 2])
    np.testing.assert_array_equal(l_values, [0, 1])
    # majority: (3 + 2 + 2) / 9; Hungarian (one-to-one, one cluster unmatched): 0->a, 2->b = (3 + 2) / 9
    assert majority_accuracy(table) == pytest.approx(7 / 9)
    assert hungarian_accuracy(table) == pytest.approx(5 / 9)
    result = cluster_accuracy(clusters, labels)
    assert result["majority"] == pytest.approx(7 / 9) and result["hungarian"] == pytest.approx(5 / 9)
    assert result["n_images"] == 9 and result["n_clusters_used"] == 3


def test_more_labels_than_clusters():
    # 2 clusters, 3 labels: the third label can never be matched.
    clusters = [0, 0, 1, 1, 1, 0]
    labels = [5, 5, 7, 7, 9, 9]
    assert hungarian_accuracy(contingency_table(clusters, labels)[0]) == pytest.approx(4 / 6)
    assert majority_accuracy(contingency_table(clusters, labels)[0]) == pytest.approx(4 / 6)


def test_nmi_matches_a_hand_computation():
    table = np.array([[3, 1], [2, 1], [0, 2]], dtype=float)
    p = table / table.sum()
    pc, pl = p.sum(1), p.sum(0)
    nz = p > 0
    mi = np.sum(p[nz] * np.log(p[nz] / np.outer(pc, pl)[nz]))
    h = lambda q: -np.sum(q[q > 0] * np.log(q[q > 0]))  # noqa: E731
    assert normalized_mutual_info(table) == pytest.approx(mi / ((h(pc) + h(pl)) / 2))
    assert normalized_mutual_info(np.array([[5]])) == 1.0


def test_combine_categories_is_mixed_radix():
    cats = np.array([[0, 0, 0], [1, 0, 1], [1, 2, 3], [0, 1, 0]])
    ids = combine_categories(cats, [2, 3, 4])
    np.testing.assert_array_equal(ids, [0, 1 * 12 + 0 * 4 + 1, 1 * 12 + 2 * 4 + 3, 4])
    every = np.array([[a, b, c] for a in range(2) for b in range(3) for c in range(4)])
    np.testing.assert_array_equal(combine_categories(every, [2, 3, 4]), np.arange(24))
    np.testing.assert_array_equal(combine_categories(torch.tensor([3, 1, 4]), [5]), [3, 1, 4])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(2, 5), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_combine_categories_is_a_bijection(sizes, seed):
    rng = np.random.default_rng(seed)
    cats = np.stack([rng.integers(0, k, size=50) for k in sizes], axis=1)
    ids = combine_categories(cats, sizes)
    assert ids.min() >= 0 and ids.max() < np.prod(sizes)
    # Distinct category tuples give distinct ids and vice versa.
    assert len(set(map(tuple, cats))) == len(set(ids.tolist()))


def test_bad_inputs():
    with pytest.raises(ConfigError, match="out of range"):
        combine_categories([[0, 2]], [2, 2])
    with pytest.raises(ConfigError, match="variables"):
        combine_categories([[0, 1]], [2])
    with pytest.raises(ConfigError, match="pair up"):
        cluster_accuracy([0, 1], [0])
    with pytest.raises(ConfigError, match="empty"):
        cluster_accuracy([], [])
    with pytest.raises(ConfigError, match="whole numbers"):
        cluster_accuracy([0.5], [0])


# --- the registered metric ----------------------------------------------------------------------------------------


def _tiny_model(channels):
    torch.manual_seed(0)
    return build_model(ModelSpec((1, 32, 32), channels, Component("jointvae_conv", {"hidden": 16})))


def _data(n=40, labels=True):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=g)
    return ImageData(images=images, labels=torch.arange(n) % 4 if labels else None)


def test_metric_is_registered():
    assert "accuracy" in get_registry().metrics.names()


def test_metric_combines_every_discrete_variable_and_restores_mode():
    metric = get_registry().metrics.get("accuracy")
    model = _tiny_model(
        [
            ChannelSpec("cont", "gaussian", {"units": 3}),
            ChannelSpec("d1", "gumbel_softmax", {"sizes": [2, 3]}),
            ChannelSpec("d2", "gumbel_softmax", {"sizes": [4]}),
        ]
    )
    model.train()
    data = _data()
    result = metric(model, data, batch_size=7, device="cpu")
    assert model.training  # mode restored
    assert set(result) >= {"majority", "hungarian", "n_images", "n_clusters_used"}
    assert result["n_images"] == len(data)
    assert 1 <= result["n_clusters_used"] <= 2 * 3 * 4
    # The same figures from the pure functions on eval-mode categories.
    model.eval()
    with torch.no_grad():
        params = model.encode(data.images.float() / 255)
    cats = torch.cat([model.latent.channels[n].categories(params[n]) for n in ("d1", "d2")], dim=1)
    expected = cluster_accuracy(combine_categories(cats, [2, 3, 4]), data.labels)
    assert result == expected
    # Batch size does not change the answer.
    assert metric(model, data, batch_size=1000, device="cpu") == expected
    json.dumps(result)  # JSON-serialisable


def test_metric_needs_a_discrete_channel():
    metric = get_registry().metrics.get("accuracy")
    model = _tiny_model([ChannelSpec("cont", "gaussian", {"units": 3})])
    with pytest.raises(ConfigError, match="discrete"):
        metric(model, _data(), batch_size=10, device="cpu")


def test_metric_needs_labels():
    metric = get_registry().metrics.get("accuracy")
    model = _tiny_model([ChannelSpec("disc", "gumbel_softmax", {"sizes": [4]})])
    with pytest.raises(ConfigError, match="labels"):
        metric(model, _data(labels=False), batch_size=10, device="cpu")


def test_unknown_metric_lists_known_ones():
    with pytest.raises(UnknownNameError, match="accuracy"):
        get_registry().metrics.get("acuracy")


# --- k-means on the continuous means (what a continuous-only model's codes say about the class) ------------------


def _blobs(n=3000, k=10, dims=4, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    centres = rng.normal(0.0, 5.0, size=(k, dims))
    return centres[labels] + rng.normal(0.0, spread, size=(n, dims)), labels


def test_kmeans_on_separated_classes_scores_one():
    codes, labels = _blobs()
    result = cluster_accuracy(kmeans_clusters(codes, 10), labels)
    assert result["hungarian"] == result["majority"] == 1.0


def test_kmeans_on_noise_scores_about_chance():
    rng = np.random.default_rng(3)
    codes, labels = rng.normal(size=(5000, 4)), rng.integers(0, 10, size=5000)
    assert cluster_accuracy(kmeans_clusters(codes, 10), labels)["hungarian"] < 0.13


def test_kmeans_standardize_weights_units_equally():
    # The class lives in a unit of small spread beside a noise unit a hundred times wider: raw k-means splits the noise.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=4000)
    codes = np.stack([labels * 0.1 + rng.normal(0, 0.005, 4000), rng.normal(0, 10.0, 4000)], axis=1)
    raw = cluster_accuracy(kmeans_clusters(codes, 2), labels)["hungarian"]
    scaled = cluster_accuracy(kmeans_clusters(codes, 2, standardize=True), labels)["hungarian"]
    assert raw < 0.6 and scaled == 1.0


def test_kmeans_is_seeded():
    codes, _ = _blobs(spread=3.0)
    assert (kmeans_clusters(codes, 10, seed=1) == kmeans_clusters(codes, 10, seed=1)).all()


@pytest.mark.parametrize("codes, k, match", [
    (np.zeros((5, 0)), 2, "shape"), (np.zeros((5, 2)), 0, "clusters must be a positive whole number, got 0"),
    (np.zeros((3, 2)), 4, "more images"),
    (np.full((5, 2), np.nan), 2, "NaN"),
])
def test_kmeans_bad_inputs(codes, k, match):
    with pytest.raises(ConfigError, match=match):
        kmeans_clusters(codes, k)


def test_kmeans_metric_clusters_the_continuous_means_only():
    metric = get_registry().metrics.get("kmeans-accuracy")
    model = _tiny_model([ChannelSpec("cont", "gaussian", {"units": 3}), ChannelSpec("d", "gumbel_softmax", {"sizes": [4]})])
    model.train()
    data = _data(n=60)
    result = metric(model, data, batch_size=7, device="cpu")
    assert model.training  # mode restored
    assert result["clusters"] == 4  # one per label value by default
    model.eval()
    with torch.no_grad():
        means = model.encode(data.images.float() / 255)["cont"]["mean"].double().numpy()
    expected = cluster_accuracy(kmeans_clusters(means, 4), data.labels)
    assert {k: v for k, v in result.items() if k != "clusters"} == expected
    assert metric(model, data, batch_size=7, device="cpu", clusters=6)["clusters"] == 6
    json.dumps(result)


def test_kmeans_metric_errors():
    metric = get_registry().metrics.get("kmeans-accuracy")
    with pytest.raises(ConfigError, match="continuous"):
        metric(_tiny_model([ChannelSpec("d", "gumbel_softmax", {"sizes": [4]})]), _data(), batch_size=10)
    cont = _tiny_model([ChannelSpec("cont", "gaussian", {"units": 3})])
    with pytest.raises(ConfigError, match="labels"):
        metric(cont, _data(labels=False), batch_size=10)
    with pytest.raises(ConfigError, match="clusters"):
        metric(cont, _data(), batch_size=10, clusters=-1)
    with pytest.raises(ConfigError, match="no option"):
        metric(cont, _data(), batch_size=10, k=3)


# --- label MIG: is the class held by one unit? ----------------------------------------------------------------------


def _model_reading_the_label():
    """A 2-unit Gaussian model whose encoder puts the label (pixel 0 of the image) in cont.0 and noise in cont.1."""
    model = _tiny_model([ChannelSpec("cont", "gaussian", {"units": 2})])
    gen = torch.Generator().manual_seed(5)

    def encode(x):
        label = x[:, 0, 0, 0] * 255 / 40
        noise = torch.randn(x.shape[0], generator=gen)
        return {"cont": {"mean": torch.stack([label, noise], 1), "logvar": torch.zeros(x.shape[0], 2)}}

    model.encode = encode
    return model


def _labelled(n=400):
    labels = torch.arange(n) % 4
    images = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
    images[:, 0, 0, 0] = (labels * 40).to(torch.uint8)
    return ImageData(images=images, labels=labels)


def test_label_mig_finds_the_unit_that_is_the_label():
    metric = get_registry().metrics.get("label-mig")
    result = metric(_model_reading_the_label(), _labelled(), batch_size=64)
    assert result["top_unit"] == "cont.0" and result["top_share"] == pytest.approx(1.0)
    assert result["second_unit"] == "cont.1" and result["second_share"] < 0.1
    assert result["score"] == pytest.approx(result["top_share"] - result["second_share"])
    assert result["label_entropy"] == pytest.approx(np.log(4))
    json.dumps(result)


def test_label_mig_of_a_random_model_is_low_and_checks_its_inputs():
    metric = get_registry().metrics.get("label-mig")
    model = _tiny_model([ChannelSpec("cont", "gaussian", {"units": 3})])
    result = metric(model, _data(n=200), batch_size=50)
    assert 0.0 <= result["score"] <= result["top_share"] <= 1.0
    with pytest.raises(ConfigError, match="labels"):
        metric(model, _data(labels=False), batch_size=10)
    with pytest.raises(ConfigError, match="num_bins"):
        metric(model, _data(), batch_size=10, num_bins=1)


# --- the paper's headline figure -----------------------------------------------------------------------------------


def _mnist_available() -> bool:
    raw = DATA / "MNIST" / "raw"
    return (raw / "t10k-images-idx3-ubyte").is_file() and (raw / "t10k-labels-idx1-ubyte").is_file()


@pytest.mark.skipif(not (MNIST_SRC / "model.pt").is_file(), reason=f"reference checkpoint {MNIST_SRC} is absent")
@pytest.mark.skipif(not _mnist_available(), reason=f"MNIST is absent from {DATA}/MNIST/raw")
def test_imported_mnist_checkpoint_scores_0_8873(tmp_path, capsys):
    """`latentkit evaluate OUT --metric accuracy --data-root ../shared/data --json` on the author's checkpoint."""
    from latentkit.cli import main

    out = tmp_path / "mnist"
    assert main(["import-jointvae", str(MNIST_SRC), str(out)]) == 0
    capsys.readouterr()
    code = main(["evaluate", str(out), "--metric", "accuracy", "--data-root", str(DATA), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["dataset"] == "mnist" and report["split"] == "test"
    acc = report["metrics"]["accuracy"]
    assert acc["n_images"] == 10_000
    assert round(acc["majority"], 4) == 0.8873
    assert round(acc["hungarian"], 4) == 0.8873
    assert acc["majority"] == acc["hungarian"] == 8873 / 10_000
    assert acc["n_clusters_used"] == 10
