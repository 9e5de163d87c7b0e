"""The total-correlation objectives: β-TCVAE's decomposition (tcvae) and FactorVAE's discriminator (factorvae)."""

from __future__ import annotations

import math
from pathlib import Path

import hypothesis
import hypothesis.strategies as st
import pytest
import torch
from safetensors.torch import load_file

from latentkit import cli
from latentkit.assembly.build import build_objective
from latentkit.specs import Component
from latentkit.core import JointLatent, LatentContext, SampleNoise
from latentkit.errors import ConfigError, LatentkitError
from latentkit.plugins import get_registry
from latentkit_plugins.factorvae_objective import permute_units, unit_columns
from latentkit_plugins.tcvae_objective import decompose_kl, log_importance_weights

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def joint(*channels: tuple[str, str, dict]) -> JointLatent:
    registry = get_registry()
    return JointLatent({name: registry.families.get(family)(**options) for name, family, options in channels}).double()


MIXED = (
    ("cont", "gaussian", {"units": 3}),
    ("disc", "gumbel_softmax", {"sizes": [3, 2]}),
    ("bits", "relaxed_bernoulli", {"units": 2}),
    ("heavy", "laplace", {"units": 2}),
)


def draw(latent: JointLatent, features: torch.Tensor, seed: int = 0):
    params = latent.split(features)
    samples = latent.sample(params, reparametrise=True, noise=SampleNoise.for_rows(seed, 0, range(features.shape[0])))
    return params, samples


# --- the decomposition ------------------------------------------------------------------------------------------------


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    batch=st.integers(2, 12),
    extra=st.integers(0, 10_000),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 3.0),
    estimator=st.sampled_from(["mss", "mws"]),
)
def test_terms_sum_to_the_estimators_total_kl(batch, extra, seed, scale, estimator):
    """MI + TC + dimension-wise KL equals E[log q(z|x) − log p(z)], computed here straight from the families."""
    latent = joint(*MIXED)
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, latent.param_size, generator=gen, dtype=torch.float64) * scale
    params, samples = draw(latent, features, seed)
    terms = decompose_kl(latent, params, samples, dataset_size=batch + extra, estimator=estimator)
    context = LatentContext(params=params, samples=samples)
    direct = sum(
        (family.log_density(params[name], samples[name]) - family.log_prior_density(samples[name], context)).sum(-1)
        for name, family in latent.items()
    ).mean()
    assert torch.isfinite(terms["kl"])
    assert float(terms["mi"] + terms["tc"] + terms["dimkl"]) == pytest.approx(float(direct), rel=1e-9, abs=1e-9)
    assert float(terms["kl"]) == pytest.approx(float(direct), rel=1e-12, abs=1e-12)


def test_stratified_weights_are_exact_for_the_whole_data_set():
    """With the whole data set in the batch, MSS gives the exact aggregate posterior: MI and TC match brute force."""
    latent = joint(("cont", "gaussian", {"units": 2}), ("disc", "gumbel_softmax", {"sizes": [3]}))
    n = 9
    features = torch.randn(n, latent.param_size, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    params, samples = draw(latent, features, seed=3)
    terms = decompose_kl(latent, params, samples, dataset_size=n, estimator="mss")

    def log_q(i: int, j: int) -> torch.Tensor:  # per unit: sample i under posterior j
        return torch.cat([
            family.log_density({k: v[j : j + 1] for k, v in params[name].items()}, samples[name][i : i + 1])[0]
            for name, family in latent.items()
        ])

    table = torch.stack([torch.stack([log_q(i, j) for j in range(n)]) for i in range(n)])  # (i, j, unit)
    log_qz = torch.logsumexp(table.sum(-1), 1) - math.log(n)
    log_qzu = (torch.logsumexp(table, 1) - math.log(n)).sum(-1)
    own = torch.stack([table[i, i].sum() for i in range(n)])
    assert float(terms["mi"]) == pytest.approx(float((own - log_qz).mean()), abs=1e-10)
    assert float(terms["tc"]) == pytest.approx(float((log_qz - log_qzu).mean()), abs=1e-10)
    # MWS is biased: it misses the same estimate by log N per joint density term
    mws = decompose_kl(latent, params, samples, dataset_size=n, estimator="mws")
    assert float(mws["mi"]) != pytest.approx(float(terms["mi"]), abs=1e-3)


def test_identical_posteriors_have_no_mutual_information_or_total_correlation():
    latent = joint(*MIXED)
    features = torch.randn(1, latent.param_size, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    features = features.expand(16, -1)
    params, samples = draw(latent, features, seed=5)
    for estimator in ("mss", "mws"):
        terms = decompose_kl(latent, params, samples, dataset_size=16, estimator=estimator)
        if estimator == "mss":
            assert abs(float(terms["mi"])) < 1e-9 and abs(float(terms["tc"])) < 1e-9
        assert float(terms["mi"] + terms["tc"] + terms["dimkl"]) == pytest.approx(float(terms["kl"]), abs=1e-9)


def test_correlated_codes_have_total_correlation():
    """Posteriors whose two means move together (one factor copied) against means on an independent grid."""
    latent = joint(("cont", "gaussian", {"units": 2}))
    t = torch.linspace(-2, 2, 8, dtype=torch.float64)
    logvar = torch.full((64, 2), math.log(0.05**2), dtype=torch.float64)
    grid = torch.cartesian_prod(t, t)  # independent means: 64 posteriors on a grid
    copied = torch.stack([t.repeat(8), t.repeat(8)], 1)  # the second unit repeats the first
    tcs = {}
    for name, means in {"independent": grid, "copied": copied}.items():
        params = {"cont": {"mean": means, "logvar": logvar}}
        samples = {"cont": means + 0.05 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)}
        tcs[name] = float(decompose_kl(latent, params, samples, dataset_size=64)["tc"])
    assert abs(tcs["independent"]) < 0.05
    assert tcs["copied"] > math.log(8) - 0.1  # knowing one unit gives away the other's 8 values


def test_monte_carlo_total_kl_matches_the_analytic_kl():
    latent = joint(("cont", "gaussian", {"units": 3}))
    # a fixed posterior (the global random state would make the Monte-Carlo error, and so the test, vary by run)
    features = torch.randn(1, latent.param_size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    features = features.expand(4096, -1)
    params, samples = draw(latent, features, seed=11)
    terms = decompose_kl(latent, params, samples, dataset_size=10**6)
    analytic = latent.kl(params)["cont"].sum(-1).mean()
    assert float(terms["kl"]) == pytest.approx(float(analytic), abs=0.05)


def test_importance_weights_rows_sum_to_one():
    for estimator in ("mss", "mws"):
        w = log_importance_weights(8, 100, estimator, torch.zeros((), dtype=torch.float64)).exp()
        if estimator == "mss":
            assert torch.allclose(w.sum(1), torch.ones(8, dtype=torch.float64))
        else:
            assert torch.allclose(w.sum(1), torch.full((8,), 1 / 100, dtype=torch.float64))


# --- the tcvae objective -----------------------------------------------------------------------------------------------

TERMS = {
    "cont": {"gamma": 30.0, "capacity": {"name": "linear", "options": {"c_max": 5.0, "steps": 100}}},
    "disc": {"gamma": 30.0, "capacity": {"name": "linear", "options": {"c_max": 1.0, "steps": 100}}},
}


def small_model():
    from latentkit.assembly.build import build_model
    from latentkit.specs import ChannelSpec, ModelSpec

    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 4}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})], Component("jointvae_conv"))
    torch.manual_seed(0)
    return build_model(spec)


def test_tcvae_adds_weighted_terms_to_jointvae():
    model = small_model()
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    base = build_objective(Component("jointvae", {"terms": TERMS}), model)
    tc = build_objective(Component("tcvae", {"terms": TERMS, "tc_weight": 4.0, "mi_weight": 0.5}), model, dataset_size=100)
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    a, b = base(x, output, 50), tc(x, output, 50)
    added = 4.0 * b["tc/tc"] + 0.5 * b["tc/mi"]
    assert float(b["objective"].detach()) == pytest.approx(float((a["objective"] + added).detach()), rel=1e-6)
    assert float(b["loss"]) == pytest.approx(float(a["loss"] + added / (32 * 32)), rel=1e-6)
    b["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"estimator": "exact"}, "estimator"),
        ({"tc_weight": -1.0}, "tc_weight"),
        ({"gammas": 1}, "tcvae. has no option .gammas.; its own options are tc_weight.*terms"),
    ],
)
def test_tcvae_bad_options_are_clear(options, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(Component("tcvae", {"terms": TERMS, **options}), small_model(), dataset_size=100)


def test_tcvae_needs_a_data_set_size():
    with pytest.raises(ConfigError, match="dataset_size"):
        build_objective(Component("tcvae", {"terms": TERMS}), small_model())


# --- factorvae ---------------------------------------------------------------------------------------------------------


def test_units_are_shuffled_whole_and_independently():
    latent = joint(("cont", "gaussian", {"units": 2}), ("disc", "gumbel_softmax", {"sizes": [3, 2]}))
    columns = unit_columns(latent)
    assert columns == [slice(0, 1), slice(1, 2), slice(2, 5), slice(5, 7)]
    z = torch.arange(20 * 7, dtype=torch.float64).reshape(20, 7)
    a = permute_units(z, columns, torch.Generator().manual_seed(1))
    b = permute_units(z, columns, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    for cols in columns:  # each unit's rows are a permutation of the original rows, kept whole
        rows = sorted(map(tuple, a[:, cols].tolist()))
        assert rows == sorted(map(tuple, z[:, cols].tolist()))
    assert not torch.equal(a[:, 0], a[:, 1] - 1)  # units were not shuffled together


def test_factorvae_gradients_reach_only_their_own_parameters():
    model = small_model()
    objective = build_objective(Component("factorvae", {"terms": TERMS, "discriminator_hidden": 16,
                                                        "discriminator_layers": 2}), model)
    disc = objective.trainable()
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    logs = objective(x, output, 10)
    logs["loss"].backward()
    model_grads = [p.grad.clone() for p in model.parameters()]
    disc_grads = [p.grad.clone() for p in disc.parameters()]
    # The same pieces apart: the model's part alone, and the discriminator's cross-entropy alone.
    model.zero_grad(), disc.zero_grad()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    logs2 = objective(x, output, 10)
    (logs2["loss"] - logs2["discriminator/loss"]).backward()
    assert all(p.grad is None or not p.grad.any() for p in disc.parameters())
    for g, p in zip(model_grads, model.parameters()):
        _assert_same_gradient(p.grad, g)
    model.zero_grad(), disc.zero_grad()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    objective(x, output, 10)["discriminator/loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    for g, p in zip(disc_grads, disc.parameters()):
        _assert_same_gradient(p.grad, g)
    assert objective.optimizer_options() == {"lr": 1e-4, "betas": (0.5, 0.9)}


SMALL = [
    "--set", 'dataset_options={"n": 256, "size": 32}',
    "--set", "train.log_every=5",
    "--set", "train.checkpoint_every=10",
    "--set", "train.batch_size=32",
    "--set", "train.figures_every=0",
    "--quiet",
]
FACTORVAE = ["--set", "objective=factorvae",
             "--set", 'objective_options={"discriminator_hidden": 32, "discriminator_layers": 2, "tc_weight": 5.0}']


def test_factorvae_discriminator_is_checkpointed_and_resumes_bit_identically(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    recipe = str(RECIPES / "jointvae_shapes.py")
    assert cli.main(["train", recipe, *SMALL, *FACTORVAE, "--steps", "20", "--out", str(straight)]) == 0
    assert cli.main(["train", recipe, *SMALL, *FACTORVAE, "--steps", "10", "--out", str(resumed)]) == 0
    assert cli.main(["train", "--resume", str(resumed), "--steps", "20", "--quiet"]) == 0
    a, b = straight / "final", resumed / "final"
    for name in ("model.safetensors", "objective.safetensors", "optimizer.safetensors"):
        ta, tb = load_file(a / name), load_file(b / name)
        assert ta.keys() == tb.keys() and ta
        assert all(torch.equal(ta[k], tb[k]) for k in ta), name
    assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    assert "discriminator/accuracy" in (straight / "metrics.jsonl").read_text()


def test_resuming_a_plain_checkpoint_with_a_discriminator_is_refused(tmp_path):
    from latentkit.assembly.checkpoint import load_model
    from latentkit.train.checkpoints import load_training_checkpoint
    from latentkit.train.trainer import make_adam

    run = tmp_path / "plain"
    assert cli.main(["train", str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "10", "--out", str(run)]) == 0
    model, _ = load_model(run / "final")
    objective = build_objective(Component("factorvae", {"terms": TERMS, "discriminator_hidden": 8,
                                                        "discriminator_layers": 1}), model)
    opt = make_adam(list(model.parameters()), 1e-3, [{"params": list(objective.trainable().parameters())}])
    with pytest.raises(LatentkitError, match="objective.safetensors"):
        load_training_checkpoint(run / "final", model, opt, {"objective": objective.trainable()})


def test_three_family_recipe_trains(tmp_path):
    out = tmp_path / "three"
    recipe = str(RECIPES / "jointvae_three_families.py")
    assert cli.main(["train", recipe, *SMALL, "--steps", "10", "--out", str(out)]) == 0
    import json

    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"kl/cont", "kl/disc", "kl/bits", "capacity/bits"} <= set(last)
    assert last["capacity/bits"] <= 3 * math.log(2) + 1e-9


def test_relaxed_densities_are_torch_distributions_concrete_densities():
    from torch.distributions import RelaxedBernoulli, RelaxedOneHotCategorical

    latent = joint(("disc", "gumbel_softmax", {"sizes": [3, 5]}), ("bits", "relaxed_bernoulli", {"units": 4}))
    features = torch.randn(16, latent.param_size, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    params, samples = draw(latent, features, seed=2)
    disc, bits = dict(latent.items())["disc"], dict(latent.items())["bits"]
    t = torch.tensor(disc.temperature, dtype=torch.float64)
    alpha, y = params["disc"]["alpha"], samples["disc"]
    expected = torch.stack([RelaxedOneHotCategorical(t, probs=alpha[:, :3]).log_prob(y[:, :3]),
                            RelaxedOneHotCategorical(t, probs=alpha[:, 3:]).log_prob(y[:, 3:])], -1)
    assert torch.allclose(disc.log_density(params["disc"], y), expected, atol=1e-8)
    uniform = RelaxedOneHotCategorical(t, probs=torch.full((16, 3), 1 / 3, dtype=torch.float64)).log_prob(y[:, :3])
    assert torch.allclose(disc.log_prior_density(y, LatentContext())[:, 0], uniform, atol=1e-10)
    tb = torch.tensor(bits.temperature, dtype=torch.float64)
    logits, b = params["bits"]["logits"], samples["bits"]
    assert torch.allclose(bits.log_density(params["bits"], b), RelaxedBernoulli(tb, logits=logits).log_prob(b), atol=1e-10)
    assert torch.allclose(bits.log_prior_density(b, LatentContext()),
                          RelaxedBernoulli(tb, logits=torch.zeros_like(logits)).log_prob(b), atol=1e-10)


def _assert_same_gradient(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Two float32 computations of one gradient: equal up to rounding relative to the gradient's own magnitude (a
    float32 sum of many terms carries ~1e-6 of its largest term's size), whatever the CPU's kernels."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)
