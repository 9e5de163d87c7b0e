"""FactorVAE score, MIG, DCI and SAP: disentanglement_lib's sanity checks, on a tiny synthetic factor grid.

Why these tests: a disentanglement metric that is subtly wrong (a transposed matrix, samples instead of means, a
pruned dimension indexed wrongly) still returns a plausible number between 0 and 1. The checks every implementation
should pass (disentanglement_lib's tests; ``shared/notes/metrics.md``) pin the metrics down without any model: the
factors themselves as the representation score ~1; noise and constants score chance (FactorVAE) or ~0 (the others);
a duplicated dimension leaves no gap; permuting or rescaling the code columns changes nothing.

The grid's "images" are the factor indices themselves (a 1x1x4 uint8 image), so a representation is any function of
the factors. Settings are small (a few thousand points and votes) so the file runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentkit.assembly.build import build_model
from latentkit.data.ground_truth import GroundTruthData
from latentkit.errors import ConfigError
from latentkit.metrics import (
    ModelRepresentation,
    compute_mig,
    dci_score,
    factor_vae_score,
    gini_variance,
    mig_score,
    sap_score,
)
from latentkit.metrics.base import resolve_options, spread
from latentkit.metrics.correlation import factor_correlation
from latentkit.metrics.dci import completeness, disentanglement
from latentkit.metrics.factorvae import variances
from latentkit.plugins import get_registry
from latentkit.specs import ChannelSpec, Component, ModelSpec


class TinyGrid(GroundTruthData):
    """Four factors (one categorical); the image of a factor row is the row itself as uint8."""

    factor_names = ("shape", "size", "x", "y")
    factor_sizes = (3, 4, 6, 5)
    discrete_factors = (True, False, False, False)

    @property
    def image_shape(self):
        return (1, 1, len(self.factor_sizes))

    def images(self, factors):
        self.check_factors(factors)
        return factors.to(torch.uint8).view(-1, *self.image_shape)

    def factor_values(self, factors):
        return factors.double()


GRID = TinyGrid()
F = GRID.num_factors
FVAE = {"num_train": 2000, "num_eval": 1000, "num_variance_estimate": 2000}
MIG = {"num_train": 3000}
DCI = {"num_train": 600, "num_test": 300, "n_estimators": 10}
SAP = {"num_train": 2000, "num_test": 1000}


def factors_of(images: torch.Tensor) -> np.ndarray:
    return images.reshape(images.shape[0], -1).numpy().astype(np.float64)


def identity(images):
    return factors_of(images), np.zeros(F, dtype=bool)


def constant(images):
    return np.zeros((images.shape[0], F)), np.zeros(F, dtype=bool)


def noise_representation(seed: int = 0, dims: int = F):
    rng = np.random.default_rng(seed)
    return lambda images: (rng.normal(size=(images.shape[0], dims)), np.zeros(dims, dtype=bool))


def mixed_representation(columns=None, scales=None, seed: int = 7):
    """Factors blurred by noise (an imperfect code, so scores are neither 0 nor 1), then columns permuted/rescaled.

    Each representation built here draws the same noise sequence, so two of them differ only by the transformation.
    """
    rng = np.random.default_rng(seed)
    columns = list(range(F)) if columns is None else list(columns)
    scales = np.ones(len(columns)) if scales is None else np.asarray(scales, dtype=np.float64)

    def represent(images):
        z = factors_of(images) / np.asarray(GRID.factor_sizes) + rng.normal(scale=0.4, size=(images.shape[0], F))
        z[:, 1] += 0.5 * z[:, 2]  # one code mixes two factors
        return z[:, columns] * scales, np.zeros(len(columns), dtype=bool)

    return represent


def all_scores(represent_factory):
    """Every metric on a fresh representation from ``represent_factory``."""
    fvae = factor_vae_score(GRID, represent_factory(), **FVAE)
    mig = mig_score(GRID, represent_factory(), **MIG)
    dci = dci_score(GRID, represent_factory(), **DCI)
    sap = sap_score(GRID, represent_factory(), **SAP)
    return fvae, mig, dci, sap


# --- identity, constant, noise -------------------------------------------------------------------------------------
def test_identity_representation_scores_one():
    fvae, mig, dci, sap = all_scores(lambda: identity)
    assert fvae["score"] == fvae["eval_accuracy"] == 1.0 and fvae["train_accuracy"] == 1.0
    assert fvae["num_active_dims"] == F
    assert fvae["dim_to_factor"] == {"z0": "shape", "z1": "size", "z2": "x", "z3": "y"}
    assert mig["score"] > 0.95 and min(mig["per_factor"].values()) > 0.9
    assert mig["top_dim"] == {"shape": "z0", "size": "z1", "x": "z2", "y": "z3"}
    assert dci["disentanglement"] > 0.95 and dci["completeness"] > 0.95
    assert dci["informativeness_test"] > 0.99
    sap_cont = sap_score(GRID, identity, continuous_factors=True, **SAP)
    assert sap_cont["score"] > 0.95  # disentanglement_lib's identity test uses continuous factors
    assert sap["score"] > 0.2  # one-feature linear classifiers cannot isolate middle classes, but beat all others
    assert sap["top_dim"] == {"shape": "z0", "size": "z1", "x": "z2", "y": "z3"}


def test_noise_representation_scores_chance_and_zero():
    fvae, mig, dci, sap = all_scores(lambda: noise_representation(0))
    assert abs(fvae["score"] - 1 / F) < 0.08, fvae
    assert fvae["num_active_dims"] == F
    assert mig["score"] < 0.03
    assert dci["disentanglement"] < 0.2 and dci["completeness"] < 0.2
    assert sap["score"] < 0.05
    assert sap_score(GRID, noise_representation(0), continuous_factors=True, **SAP)["score"] < 0.01


def test_constant_representation_scores_chance_and_zero():
    calls = []

    def counted_constant(images):
        calls.append(images.shape[0])
        return constant(images)

    fvae = factor_vae_score(GRID, counted_constant, **FVAE)
    assert fvae["num_active_dims"] == 0 and fvae["active_dims"] == []
    assert abs(fvae["score"] - 1 / F) < 0.05  # the featureless classifier: the most frequent factor
    assert sum(calls) == FVAE["num_variance_estimate"] == fvae["images_encoded"]  # nothing encoded for votes
    assert mig_score(GRID, constant, **MIG)["score"] == 0.0
    dci = dci_score(GRID, constant, **DCI)
    assert dci["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert dci["completeness"] == pytest.approx(0.0, abs=1e-6)
    assert sap_score(GRID, constant, **SAP)["score"] == 0.0
    assert sap_score(GRID, constant, continuous_factors=True, **SAP)["score"] == 0.0


def test_pruned_collapsed_dimension_is_ignored():
    def with_collapsed(images):
        z = factors_of(images)
        z = np.concatenate([z, 0.01 * z[:, :1]], axis=1)  # std ~0.008 < 0.05: pruned
        return z, np.zeros(F + 1, dtype=bool)

    result = factor_vae_score(GRID, with_collapsed, **FVAE)
    assert result["num_active_dims"] == F and "z4" not in result["active_dims"]
    assert result["score"] == 1.0
    kept = factor_vae_score(GRID, with_collapsed, prune_threshold=0.0, **FVAE)
    assert kept["num_active_dims"] == F + 1


# --- duplicated dimension ------------------------------------------------------------------------------------------
def test_duplicated_dimension_has_no_gap_for_its_factor():
    def duplicate_x(images):
        z = factors_of(images)
        return np.concatenate([z, z[:, 2:3]], axis=1), np.zeros(F + 1, dtype=bool)

    mig = mig_score(GRID, duplicate_x, **MIG)
    assert mig["per_factor"]["x"] == pytest.approx(0.0, abs=1e-12)
    for factor in ("shape", "size", "y"):
        assert mig["per_factor"][factor] > 0.9
    sap = sap_score(GRID, duplicate_x, continuous_factors=True, **SAP)
    assert sap["per_factor"]["x"] == pytest.approx(0.0, abs=1e-12) and sap["per_factor"]["y"] > 0.9

    def duplicate_all(images):
        z = factors_of(images)
        return np.concatenate([z, z], axis=1), np.zeros(2 * F, dtype=bool)

    assert mig_score(GRID, duplicate_all, **MIG)["score"] == pytest.approx(0.0, abs=1e-12)
    assert sap_score(GRID, duplicate_all, continuous_factors=True, **SAP)["score"] == pytest.approx(0.0, abs=1e-12)
    dci = dci_score(GRID, duplicate_all, **DCI)
    assert dci["completeness"] < 0.8  # each factor's importance is shared by two codes


# --- invariance ----------------------------------------------------------------------------------------------------
def test_scores_do_not_depend_on_the_order_of_dimensions():
    base = all_scores(lambda: mixed_representation())
    assert 0.4 < base[0]["score"] < 1.0 and 0.05 < base[1]["score"] < 0.9  # an informative, imperfect code
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        permuted = all_scores(lambda perm=perm: mixed_representation(columns=perm))
        assert permuted[0]["score"] == base[0]["score"]
        assert permuted[0]["train_accuracy"] == base[0]["train_accuracy"]
        assert permuted[1]["score"] == base[1]["score"]
        assert permuted[3]["score"] == base[3]["score"]
        # Boosted trees break ties between equally good splits by feature order: equal up to such ties.
        for key in ("disentanglement", "completeness", "informativeness_test"):
            assert permuted[2][key] == pytest.approx(base[2][key], abs=0.03), key


def test_scores_do_not_depend_on_the_scale_of_dimensions():
    base = all_scores(lambda: mixed_representation())
    powers_of_two = [2.0, 0.5, 4.0, -8.0]  # exact in floating point: identical binning and variance ratios
    scaled = all_scores(lambda: mixed_representation(scales=powers_of_two))
    assert scaled[0]["score"] == base[0]["score"] and scaled[0]["train_accuracy"] == base[0]["train_accuracy"]
    assert scaled[1]["per_factor"]["shape"] == pytest.approx(base[1]["per_factor"]["shape"], abs=1e-9)
    for key in ("disentanglement", "completeness", "informativeness_test"):
        assert scaled[2][key] == pytest.approx(base[2][key], abs=0.03), key
    assert scaled[3]["score"] == pytest.approx(base[3]["score"], abs=1e-9)  # columns are standardised (sap.py)

    arbitrary = [3.7, 0.3, 11.0, 1.9]  # positive, not powers of two: equal up to rounding at bin edges and ties
    other = all_scores(lambda: mixed_representation(scales=arbitrary))
    assert other[0]["score"] == pytest.approx(base[0]["score"], abs=0.01)
    assert other[1]["score"] == pytest.approx(base[1]["score"], abs=0.01)
    for key in ("disentanglement", "completeness"):
        assert other[2][key] == pytest.approx(base[2][key], abs=0.03), key
    sap_cont = [sap_score(GRID, mixed_representation(scales=s), continuous_factors=True, **SAP)["score"]
                for s in (None, arbitrary, powers_of_two)]
    assert sap_cont[1] == pytest.approx(sap_cont[0], abs=1e-9) and sap_cont[2] == pytest.approx(sap_cont[0], abs=1e-9)


def test_seeded_and_reproducible():
    a = factor_vae_score(GRID, noise_representation(), seed=3, **FVAE)
    b = factor_vae_score(GRID, noise_representation(), seed=3, **FVAE)
    c = factor_vae_score(GRID, noise_representation(), seed=4, **FVAE)
    assert a == b
    assert (a["train_accuracy"], a["score"]) != (c["train_accuracy"], c["score"])
    assert mig_score(GRID, mixed_representation(), seed=3, **MIG) == mig_score(
        GRID, mixed_representation(), seed=3, **MIG
    )


def test_score_standard_error_matches_the_spread_over_seeds():
    """For noise every vote's argmin is uniform whatever its factor, so the score is a binomial proportion over the
    evaluation votes: its spread over seeds must match ``score_se`` (12 seeds: the sample sd is within ±0.21 of the
    true one per sigma, so [0.4, 1.8] is beyond three sigmas)."""
    runs = [factor_vae_score(GRID, noise_representation(s), seed=s, num_train=200, num_eval=1000,
                             num_variance_estimate=500) for s in range(12)]
    scores = np.array([r["score"] for r in runs])
    for r in runs:
        assert r["score_se"] == pytest.approx(np.sqrt(r["score"] * (1 - r["score"]) / 1000), rel=1e-12)
    ratio = scores.std(ddof=1) / np.mean([r["score_se"] for r in runs])
    assert 0.4 < ratio < 1.8, (scores, ratio)


def test_chunking_and_prefetching_do_not_change_the_results():
    """Images are drawn and encoded many votes at a time, the next chunk generated while the current one is encoded:
    speed and memory settings, not part of the protocol — with the same seed the votes are the same."""
    base = factor_vae_score(GRID, mixed_representation(), **FVAE)
    assert base == factor_vae_score(GRID, mixed_representation(), chunk_size=64 * 7, **FVAE)
    assert base == factor_vae_score(GRID, mixed_representation(), chunk_size=100, prefetch=False, **FVAE)
    assert base == factor_vae_score(GRID, mixed_representation(), chunk_size=1, **FVAE)  # one vote per chunk
    assert base["images_encoded"] == FVAE["num_variance_estimate"] + 64 * (FVAE["num_train"] + FVAE["num_eval"])
    mig = mig_score(GRID, mixed_representation(), **MIG)
    assert mig == mig_score(GRID, mixed_representation(), chunk_size=333, prefetch=False, **MIG)


# --- categorical columns -------------------------------------------------------------------------------------------
def test_gini_variance_is_the_pairwise_formula():
    rng = np.random.default_rng(0)
    cats = rng.integers(0, 4, size=(5, 37))
    pairs = np.array([[np.sum(row[:, None] != row[None, :]) / (2 * len(row) * (len(row) - 1)) for row in cats]])
    np.testing.assert_allclose(gini_variance(cats, axis=1), pairs[0])
    counts = np.bincount(cats[0], minlength=4)
    n = cats.shape[1]
    assert gini_variance(cats[0]) == pytest.approx((n * n - np.sum(counts**2)) / (2 * n * (n - 1)))
    assert gini_variance(np.zeros(10)) == 0.0
    # for 0/1 values it is the ordinary variance (ddof=1)
    bits = rng.integers(0, 2, size=50)
    assert gini_variance(bits) == pytest.approx(np.var(bits, ddof=1))
    # the labels do not matter
    assert gini_variance(cats[0]) == pytest.approx(gini_variance(np.array([10, -3, 7, 0.5])[cats[0]]))
    # discrete columns use it, continuous ones the variance
    codes = np.stack([cats[0], cats[0]], axis=1).astype(float)
    v = variances(codes, np.array([True, False]))
    assert v[0] == pytest.approx(gini_variance(cats[0])) and v[1] == pytest.approx(np.var(cats[0], ddof=1))


@pytest.mark.parametrize("discrete_scale", ["none", "global"])
def test_categorical_column_enters_as_its_argmax_category(discrete_scale):
    relabel = np.array([2.0, 0.0, 1.0])  # a categorical latent's categories are an arbitrary labelling of shape

    def shape_as_category(images):
        z = factors_of(images)
        z[:, 0] = relabel[z[:, 0].astype(int)]
        return z, np.array([True, False, False, False])

    fvae = factor_vae_score(GRID, shape_as_category, discrete_scale=discrete_scale, **FVAE)
    assert fvae["score"] == 1.0 and fvae["dim_to_factor"]["z0"] == "shape"
    assert fvae["discrete_scale"] == discrete_scale
    expected_gini = gini_variance(np.repeat([0, 1, 2], 1000))  # about uniform over 3 categories
    assert fvae["global_variance"]["z0"] == pytest.approx(expected_gini, abs=0.01)
    mig = mig_score(GRID, shape_as_category, **MIG)
    assert mig["per_factor"]["shape"] == pytest.approx(mig_score(GRID, identity, **MIG)["per_factor"]["shape"])
    assert mig["top_dim"]["shape"] == "z0"


@pytest.mark.parametrize("discrete_scale", ["none", "global"])
def test_noise_with_a_categorical_column_scores_chance(discrete_scale):
    """Under ``"none"`` a categorical noise column (raw Gini variance ~1/3) wins nearly every vote over continuous
    noise (variance ratio ~1); its one factor is then right about 1/F of the time: chance either way."""
    rng = np.random.default_rng(0)

    def noise_and_category(images):
        n = images.shape[0]
        return (np.concatenate([rng.normal(size=(n, F)), rng.integers(0, 3, size=(n, 1))], axis=1),
                np.array([False] * F + [True]))

    fvae = factor_vae_score(GRID, noise_and_category, discrete_scale=discrete_scale, **FVAE)
    assert abs(fvae["score"] - 1 / F) < 0.08, fvae
    votes_for_category = sum(v[F] for v in fvae["train_votes"].values())
    if discrete_scale == "none":
        assert votes_for_category > 0.95 * FVAE["num_train"]
    else:
        assert votes_for_category < 0.5 * FVAE["num_train"]


class Coins(TinyGrid):
    """Three two-valued factors (fair coins); the image is the factor row itself."""

    factor_names = ("a", "b", "c")
    factor_sizes = (2, 2, 2)
    discrete_factors = (True, True, True)


def test_the_two_discrete_scales_disagree_as_computed_by_hand():
    """z0 = a (categorical), z1 = b + c (continuous), fair coins, L = 64. By hand, per vote:

    * a fixed: z0's Gini variance is 0 -> z0 (both conventions);
    * b fixed (c likewise): z0's per-vote Gini variance ~ p(1-p) L/(L-1) ~ 0.25 (at most 0.254), its global one ~0.25;
      z1's variance ~0.25 of a global 0.5, ratio ~0.5. ``"global"``: z0 ~1 against z1 ~0.5 -> z1. ``"none"``
      (disentanglement_lib): z0 0.25 against z1 0.5 -> z0.

    Either comparison flips only if 64 fair coins show fewer than 11 or more than 53 heads (about 1e-8 per vote).
    So ``"global"`` votes a -> z0, b, c -> z1: score (n_a + max(n_b, n_c)) / n ~ 2/3; ``"none"`` votes every factor
    -> z0: score max(n_a, n_b, n_c) / n ~ 1/3."""

    def coins(images):
        f = factors_of(images)
        return np.stack([f[:, 0], f[:, 1] + f[:, 2]], axis=1), np.array([True, False])

    small = {"num_train": 3000, "num_eval": 1500, "num_variance_estimate": 4000}
    by = {scale: factor_vae_score(Coins(), coins, discrete_scale=scale, **small) for scale in ("none", "global")}
    n = {k: sum(v) for k, v in by["global"]["train_votes"].items()}
    assert by["global"]["train_votes"] == {"a": [n["a"], 0], "b": [0, n["b"]], "c": [0, n["c"]]}
    assert by["none"]["train_votes"] == {"a": [n["a"], 0], "b": [n["b"], 0], "c": [n["c"], 0]}  # the same k draws
    total = small["num_train"]
    assert by["global"]["train_accuracy"] == pytest.approx((n["a"] + max(n["b"], n["c"])) / total)
    assert by["none"]["train_accuracy"] == pytest.approx(max(n.values()) / total)
    assert by["global"]["score"] == pytest.approx(2 / 3, abs=0.05)
    assert by["none"]["score"] == pytest.approx(1 / 3, abs=0.05)
    assert by["global"]["dim_to_factor"]["z0"] == "a" and "z1" not in by["none"]["dim_to_factor"]
    assert by["none"]["discrete_scale"] == "none" and by["global"]["discrete_scale"] == "global"


# --- pruning relative to the prior ---------------------------------------------------------------------------------
def _bounded_model():
    torch.manual_seed(0)
    spec = ModelSpec(
        (1, 32, 32),
        [ChannelSpec("cont", "gaussian", {"units": 2}), ChannelSpec("b", "beta", {"units": 2}),
         ChannelSpec("rb", "relaxed_bernoulli", {"units": 1}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})],
        Component("jointvae_conv", {"hidden": 8}),
    )
    return build_model(spec)


def test_prior_scale_of_each_family():
    represent = ModelRepresentation(_bounded_model())
    scale = dict(zip(represent.names, represent.prior_scale))
    assert scale["cont.0"] == scale["cont.1"] == 1.0  # exactly: unit Gaussians keep the absolute rule
    assert scale["b.0"] == pytest.approx(1 / np.sqrt(12), rel=0.06)  # Beta(1, 1)'s std, 0.289, snapped to 0.282
    assert scale["rb.0"] == pytest.approx(0.5, rel=0.06)  # sqrt of a fair coin's Gini variance
    assert scale["disc.0"] == pytest.approx(np.sqrt(1 / 3), rel=0.06)  # sqrt((1 - 1/K) / 2), K = 3
    assert represent.prior_scale is represent.prior_scale  # computed once


def test_spread_is_robust_to_heavy_tails_only():
    rng = np.random.default_rng(0)
    draws = np.stack([rng.normal(size=50_000), rng.laplace(size=50_000), rng.standard_cauchy(size=50_000)], axis=1)
    s = spread(draws, np.zeros(3, dtype=bool))
    assert s[0] == pytest.approx(1.0, rel=0.02) and s[1] == pytest.approx(np.sqrt(2), rel=0.02)  # the std
    assert s[2] == pytest.approx(2 / 1.349, rel=0.03)  # Cauchy(0, 1): IQR 2, not its unbounded std


def test_bounded_column_with_small_absolute_but_normal_relative_spread_is_kept():
    """A Beta unit whose means spread 0.034 over the data (12 % of its prior's 0.28) is in use; one spreading 0.0028
    (1 %) has collapsed. The absolute 0.05 would prune both; relative to the prior, only the collapsed one goes."""
    model_represent = ModelRepresentation(_bounded_model())
    names = model_represent.names  # cont.0 cont.1 b.0 b.1 rb.0 disc.0

    class BetaCodes:
        prior_scale = model_represent.prior_scale

        def __call__(self, images):
            f = factors_of(images)
            z = np.stack([f[:, 1], f[:, 0] - 1.0, 0.5 + 0.02 * (f[:, 2] - 2.5), 0.5 + 0.002 * (f[:, 3] - 2.0),
                          np.zeros(len(f)), f[:, 3]], axis=1)
            return z, np.array([False, False, False, False, True, True])

    relative = factor_vae_score(GRID, BetaCodes(), names=names, **FVAE)
    assert relative["prune_rule"] == "relative to the prior"
    assert np.sqrt(relative["global_variance"]["b.0"]) < 0.05  # small in absolute terms
    assert relative["active_dims"] == ["cont.0", "cont.1", "b.0", "disc.0"]  # b.1 collapsed; rb.0 constant
    assert relative["dim_to_factor"]["b.0"] == "x" and relative["score"] == 1.0
    assert relative["prior_scale"]["b.0"] == pytest.approx(0.28, abs=0.01)

    plain = BetaCodes()
    absolute = factor_vae_score(GRID, lambda images: plain(images), names=names, **FVAE)  # no prior_scale: absolute
    assert absolute["prune_rule"] == "absolute" and absolute["prior_scale"] is None
    assert absolute["active_dims"] == ["cont.0", "cont.1", "disc.0"] and absolute["score"] < 0.85  # x lost
    explicit = factor_vae_score(GRID, lambda images: plain(images), names=names,
                                prior_scale=model_represent.prior_scale, **FVAE)
    assert explicit["active_dims"] == relative["active_dims"]
    with pytest.raises(ConfigError, match="prior_scale"):
        factor_vae_score(GRID, lambda images: plain(images), prior_scale=np.ones(3), **FVAE)


def test_mig_does_not_bin_discrete_columns():
    rng = np.random.default_rng(0)
    factor = rng.integers(0, 30, size=(5000, 1))  # 30 values: 20 equal-width bins would merge some
    codes = np.concatenate([factor, np.zeros_like(factor)], axis=1).astype(float)
    as_category = compute_mig(codes, np.array([True, False]), factor)
    binned = compute_mig(codes, np.array([False, False]), factor)
    assert as_category["score"] == pytest.approx(1.0)
    assert binned["score"] < 0.95


def test_model_representation_gives_means_and_argmax_categories():
    torch.manual_seed(0)
    spec = ModelSpec(
        (1, 32, 32),
        [ChannelSpec("cont", "gaussian", {"units": 3}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3, 2]})],
        Component("jointvae_conv", {"hidden": 8}),
    )
    model = build_model(spec)
    model.train()
    images = torch.randint(0, 256, (23, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    represent = ModelRepresentation(model, batch_size=10)
    codes, is_discrete = represent(images)
    assert model.training  # mode restored
    assert represent.names == ("cont.0", "cont.1", "cont.2", "disc.0", "disc.1")
    np.testing.assert_array_equal(is_discrete, [False, False, False, True, True])
    assert codes.dtype == np.float64 and codes.shape == (23, 5)
    assert represent.images_encoded == 23
    model.eval()
    with torch.no_grad():
        params = model.encode(images.float() / 255)
    np.testing.assert_allclose(codes[:, :3], params["cont"]["mean"].double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(codes[:, 3:], model.latent.channels["disc"].categories(params["disc"]).numpy())
    # the batch size does not change the codes
    np.testing.assert_allclose(ModelRepresentation(model, batch_size=1000)(images)[0], codes, rtol=1e-5, atol=1e-6)


# --- pure functions, options, registration -------------------------------------------------------------------------
def test_dci_scores_of_known_importance_matrices():
    assert disentanglement(np.eye(4)) == pytest.approx(1.0) and completeness(np.eye(4)) == pytest.approx(1.0)
    assert disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-9)
    # one code carries every factor: each factor's importance sits in one code (completeness 1), but that code
    # serves all factors (disentanglement 0)
    one_code = np.zeros((4, 4))
    one_code[0] = 1.0
    assert completeness(one_code) == pytest.approx(1.0) and disentanglement(one_code) == pytest.approx(0.0, abs=1e-9)


def test_options_are_checked():
    with pytest.raises(ConfigError, match=r"factorvae option num_train must be a positive whole number, got 0 \(e.g."):
        factor_vae_score(GRID, identity, num_train=0)
    with pytest.raises(ConfigError, match="prune_threshold"):
        factor_vae_score(GRID, identity, prune_threshold=-1.0)
    with pytest.raises(ConfigError, match=r"discrete_scale must be one of 'none', 'global'"):
        factor_vae_score(GRID, identity, discrete_scale="cascadevae")
    with pytest.raises(ConfigError, match="continuous_factors"):
        sap_score(GRID, identity, continuous_factors="yes")
    with pytest.raises(ConfigError, match="num_trian.*num_train"):
        resolve_options("factorvae", {"num_train": 1}, {"num_trian": 5})
    with pytest.raises(ConfigError, match="one row of codes per image"):
        mig_score(GRID, lambda images: (np.zeros((3, 2)), np.zeros(2, bool)), **MIG)
    with pytest.raises(ConfigError, match="non-finite"):
        mig_score(GRID, lambda images: (np.full((len(images), 2), np.nan), np.zeros(2, bool)), **MIG)


def test_metrics_are_registered_with_disentanglement_lib_defaults():
    metrics = get_registry().metrics
    for name in ("factorvae", "mig", "dci", "sap", "accuracy", "kl-ranking"):
        assert name in metrics.names()
    fvae = metrics.get("factorvae")
    assert fvae.needs_ground_truth and not fvae.needs_data
    assert {k: fvae.options[k] for k in ("vote_size", "num_train", "num_eval", "num_variance_estimate")} == {
        "vote_size": 64, "num_train": 10_000, "num_eval": 5_000, "num_variance_estimate": 10_000
    }
    assert fvae.options["prune_threshold"] == 0.05
    assert fvae.options["discrete_scale"] == "none"  # the paper's / disentanglement_lib's convention
    assert metrics.get("mig").options["num_train"] == 10_000 and metrics.get("mig").options["num_bins"] == 20
    assert (metrics.get("dci").options["num_train"], metrics.get("dci").options["num_test"]) == (10_000, 5_000)
    sap = metrics.get("sap").options
    assert (sap["num_train"], sap["num_test"], sap["continuous_factors"], sap["svm_c"]) == (10_000, 5_000, False, 0.01)
    assert sap["standardize"] is True  # the one documented departure (sap.py)
    assert not getattr(metrics.get("accuracy"), "needs_ground_truth", False)
    json.dumps({name: metrics.get(name).options for name in ("factorvae", "mig", "dci", "sap")})


@pytest.mark.parametrize("name", ["factorvae", "mig", "dci", "sap", "factor-correlation"])
def test_registered_metric_runs_on_a_model(name):
    """The registered form: a model's representation on a grid of 32x32 images."""

    class Bars(GroundTruthData):
        factor_names = ("x", "y")
        factor_sizes = (4, 3)
        discrete_factors = (False, False)

        @property
        def image_shape(self):
            return (1, 32, 32)

        def images(self, factors):
            out = torch.zeros(factors.shape[0], 1, 32, 32, dtype=torch.uint8)
            for i, (x, y) in enumerate(factors.tolist()):
                out[i, 0, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8] = 255
            return out

        def factor_values(self, factors):
            return factors.double()

    torch.manual_seed(0)
    spec = ModelSpec(
        (1, 32, 32),
        [ChannelSpec("cont", "gaussian", {"units": 2}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})],
        Component("jointvae_conv", {"hidden": 8}),
    )
    model = build_model(spec)
    small = {
        "factorvae": {"num_train": 20, "num_eval": 10, "num_variance_estimate": 50, "vote_size": 8,
                      "prune_threshold": 0.0},
        "mig": {"num_train": 50},
        "dci": {"num_train": 60, "num_test": 20, "n_estimators": 3},
        "sap": {"num_train": 50, "num_test": 20},
        "factor-correlation": {"num_points": 50},
    }[name]
    result = get_registry().metrics.get(name)(model, None, batch_size=16, device="cpu", ground_truth=Bars(), **small)
    for key in ("score",) if name != "dci" else ("disentanglement", "completeness"):
        assert 0.0 <= result[key] <= 1.0
    if name == "factorvae":  # a model's representation prunes relative to its prior
        assert result["prune_rule"] == "relative to the prior" and result["discrete_scale"] == "none"
        assert result["prior_scale"]["cont.0"] == 1.0
    assert result.get("images_encoded", result.get("num_points")) > 0
    with pytest.raises(ConfigError, match="image"):
        get_registry().metrics.get(name)(model, None, batch_size=16, ground_truth=GRID, **small)



# --- factor correlation (the paper's Fig. 8a as a number) ----------------------------------------------------------
CORR = {"num_points": 3000}


def test_correlation_of_identity_codes_is_one_and_skips_the_categorical_factor():
    result = factor_correlation(GRID, identity, names=("z_shape", "z_size", "z_x", "z_y"), **CORR)
    assert set(result["unit"]) == {"size", "x", "y"}  # shape is categorical: left out
    for factor in ("size", "x", "y"):
        assert result["unit"][factor] == f"z_{factor}"
        assert result["pearson"][factor] == pytest.approx(1.0) and result["spearman"][factor] == pytest.approx(1.0)
        assert result["abs_pearson_by_unit"][factor][f"z_{factor}"] == pytest.approx(1.0)
    assert result["score"] == pytest.approx(1.0)


def test_correlation_of_noise_is_near_zero():
    result = factor_correlation(GRID, noise_representation(3), **CORR)
    assert result["score"] < 0.08


def test_correlation_sign_and_rank():
    def twisted(images):  # x negated, y through a monotone non-linearity
        f = factors_of(images)
        return np.stack([-f[:, 2], np.exp(2.0 * f[:, 3])], axis=1), np.zeros(2, dtype=bool)

    result = factor_correlation(GRID, twisted, names=("neg_x", "exp_y"), **CORR)
    assert result["unit"]["x"] == "neg_x" and result["pearson"]["x"] == pytest.approx(-1.0)
    assert result["unit"]["y"] == "exp_y" and result["spearman"]["y"] == pytest.approx(1.0)
    assert result["pearson"]["y"] < 0.95  # linear correlation misses what the rank correlation sees


def test_correlation_ignores_discrete_columns_and_needs_a_continuous_one():
    def x_as_category(images):
        f = factors_of(images)
        return np.stack([f[:, 2], np.zeros(len(f))], axis=1), np.array([True, False])

    result = factor_correlation(GRID, x_as_category, names=("cat", "flat"), **CORR)
    assert set(result["unit"].values()) == {"flat"}
    assert result["score"] == 0.0
    with pytest.raises(ConfigError, match="continuous"):
        factor_correlation(GRID, lambda im: (factors_of(im), np.ones(F, dtype=bool)), **CORR)
    with pytest.raises(ConfigError, match="num_points"):
        factor_correlation(GRID, identity, num_points=2)
