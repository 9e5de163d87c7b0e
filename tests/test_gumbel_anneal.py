"""Gumbel-Softmax: an annealed temperature set from the global step, straight-through samples, and the per-family
diagnostics the jointvae objective logs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from latentkit import cli
from latentkit.assembly.build import build_model, build_objective
from latentkit.core import SampleNoise
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.errors import ConfigError
from latentkit_plugins.jointvae_recipe import JointVAEConfig
from latentkit.testing import check_family
from latentkit.train.task import StepContext, VAETask
from latentkit_plugins.gumbel_softmax import EPS, GumbelSoftmax

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
START, END, STEPS = 2.0, 0.5, 100


def _anneal(shape: str | None = None, start: float = START, end: float = END, steps: int = STEPS) -> dict:
    out = {"start": start, "end": end, "steps": steps}
    return out if shape is None else {**out, "shape": shape}


def _params(family: GumbelSoftmax, batch: int, seed: int = 0, requires_grad: bool = False):
    features = torch.randn(batch, family.param_size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    features.requires_grad_(requires_grad)
    return features, family.params_from_features(features)


# --- the schedule ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        # closed forms at 0, steps/2, steps and beyond
        (None, [START, math.sqrt(START * END), END, END]),
        ("exponential", [START, math.sqrt(START * END), END, END]),
        ("linear", [START, (START + END) / 2, END, END]),
    ],
)
def test_schedule_values(shape, expected):
    family = GumbelSoftmax([3], anneal=_anneal(shape))
    assert family.temperature == START  # before any at_step: the schedule's step-0 value
    for step, value in zip([0, STEPS // 2, STEPS, 3 * STEPS], expected):
        family.at_step(step)
        assert family.temperature == pytest.approx(value, rel=1e-12), step
    family.at_step(STEPS // 4)  # a pure function of the step: going back gives the earlier value
    t = 0.25
    quarter = START * (END / START) ** t if shape != "linear" else START + (END - START) * t
    assert family.temperature == pytest.approx(quarter, rel=1e-12)


def test_anneal_takes_precedence_and_without_it_the_temperature_stays():
    # The recipe always passes temperature (JointVAEConfig merges disc_options and sets it itself).
    assert GumbelSoftmax([3], temperature=0.67, anneal=_anneal()).temperature == START
    fixed = GumbelSoftmax([3], temperature=0.8)
    fixed.at_step(10_000)
    assert fixed.temperature == 0.8


def test_densities_use_the_current_temperature():
    annealed = GumbelSoftmax([3, 5], anneal=_anneal())
    annealed.at_step(STEPS)
    reference = GumbelSoftmax([3, 5], temperature=END)
    _, params = _params(annealed, 4)
    sample = reference.rsample(params, SampleNoise.for_rows(1, 0, range(4)))
    torch.testing.assert_close(annealed.log_density(params, sample), reference.log_density(params, sample))
    torch.testing.assert_close(annealed.log_prior_density(sample, None), reference.log_prior_density(sample, None))
    assert "exponential(2.0 -> 0.5 over 100 steps)" in repr(annealed)


@pytest.mark.parametrize(
    ("anneal", "message"),
    [
        (0.5, "must be a mapping such as"),
        ({"start": 1.0, "end": 0.5}, r"missing \['steps'\]"),
        ({**_anneal(), "speed": 2}, r"unknown \['speed'\]"),
        (_anneal(start=0.0), "start must be a positive finite temperature"),
        (_anneal(end=-1.0), "end must be a positive finite temperature"),
        (_anneal(end=math.inf), "end must be a positive finite temperature"),
        (_anneal(start=True), "start must be a positive finite temperature"),
        (_anneal(steps=0), "steps must be a whole number of training steps >= 1"),
        (_anneal(steps=10.5), "steps must be a whole number of training steps >= 1"),
        (_anneal("cosine"), r"shape must be one of \('exponential', 'linear'\)"),
    ],
)
def test_bad_anneal_is_a_config_error_showing_a_valid_one(anneal, message):
    with pytest.raises(ConfigError, match=message) as info:
        GumbelSoftmax([3], anneal=anneal)
    assert '"start": 1.0' in str(info.value)  # every message shows a valid schedule


def test_bad_hard_is_a_config_error():
    with pytest.raises(ConfigError, match="hard must be true or false"):
        GumbelSoftmax([3], hard="yes")


# --- straight-through samples ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[4], [3, 5]])
def test_straight_through_is_one_hot_forward_with_the_relaxed_gradient(sizes):
    family = GumbelSoftmax(sizes, temperature=0.7, hard=True)
    features, params = _params(family, 6, requires_grad=True)
    noise = SampleNoise.for_rows(3, 0, range(6))
    sample = family.rsample(params, noise)

    # The same computation by hand, with the same noise.
    manual_features = features.detach().clone().requires_grad_(True)
    alpha = torch.cat([torch.softmax(f, -1) for f in manual_features.split(sizes, -1)], -1)
    logits = (torch.log(alpha + EPS) + noise.gumbel(alpha.shape[1], dtype=alpha.dtype)) / 0.7
    relaxed = torch.cat([torch.softmax(s, -1) for s in logits.split(sizes, -1)], -1)
    one_hot = torch.cat([F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype) for y in relaxed.split(sizes, -1)], -1)

    assert torch.equal(sample, one_hot)  # exactly one-hot: what the decoder sees in evaluation
    weights = torch.randn(sample.shape, generator=torch.Generator().manual_seed(4), dtype=sample.dtype)
    (sample * weights).sum().backward()
    (relaxed * weights).sum().backward()
    torch.testing.assert_close(features.grad, manual_features.grad)
    # the KL is the categorical's, unchanged by hard
    soft = GumbelSoftmax(sizes, temperature=0.7)
    torch.testing.assert_close(family.kl(params, None), soft.kl(params, None))


def test_hard_training_densities_are_the_categoricals():
    """A straight-through sample is an exact categorical draw: the tcvae objective's densities are the pmf's."""
    family = GumbelSoftmax([3, 5], hard=True)
    _, params = _params(family, 6)
    sample = family.rsample(params, SampleNoise.for_rows(5, 0, range(6)))
    torch.testing.assert_close(family.log_density(params, sample), family.log_posterior(params, sample))
    torch.testing.assert_close(family.log_prior_density(sample, None), family.log_prior(sample, None))


# --- diagnostics -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"sizes": [3, 5]}, {"sizes": [2, 2], "hard": True, "anneal": _anneal()}])
def test_diagnostics_are_batch_means(options):
    family = GumbelSoftmax(**options)
    family.at_step(30)
    _, params = _params(family, 8)
    sample = family.rsample(params, SampleNoise.for_rows(2, 0, range(8)))
    whole = family.diagnostics(params, sample)
    assert set(whole) == {"temperature", "sample_max", "alpha_max"}
    halves = [(slice(0, 5), 5 / 8), (slice(5, 8), 3 / 8)]
    parts = [family.diagnostics({"alpha": params["alpha"][rows]}, sample[rows]) for rows, _ in halves]
    for key, value in whole.items():
        assert value.dim() == 0 and not value.requires_grad
        combined = sum(w * part[key] for (_, w), part in zip(halves, parts))
        torch.testing.assert_close(value, combined, msg=key)
    assert whole["temperature"].item() == pytest.approx(family.temperature)
    if family.hard:
        assert whole["sample_max"].item() == 1.0  # one-hot by construction
    else:
        assert 1 / 5 < whole["sample_max"].item() < 1.0


def test_the_task_sets_the_temperature_and_its_rows_diagnostics_combine_into_the_whole_batch():
    torch.manual_seed(0)
    anneal = _anneal("linear")
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 2}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [3, 4], "anneal": anneal})],
                     Component("jointvae_conv"))
    model = build_model(spec)
    linear = {"name": "linear", "options": {"c_max": 5.0, "steps": 100}}
    objective = build_objective(Component("jointvae", {"terms": {
        "cont": {"gamma": 30.0, "capacity": linear}, "disc": {"gamma": 30.0, "capacity": linear}}}), model)
    task = VAETask(model, objective)
    x = (torch.rand(7, 1, 32, 32) > 0.5).float()
    whole = task.training_step(x, 40, StepContext.single(5, 40, 7))
    assert whole["temperature/disc"].item() == pytest.approx(START + (END - START) * 0.4)
    # Rows 0-3 and 4-6 as two processes would hold them (each keyed by its rows' global indices): their diagnostics,
    # weighted by size, are the whole batch's, because every row draws the same noise wherever it is computed.
    parts = []
    for rows in (range(0, 4), range(4, 7)):
        model.latent.at_step(0)
        context = StepContext(rows, 7, seed=5, step=40)
        parts.append(task.training_step(x[rows.start : rows.stop], 40, context))
    for key in ("temperature/disc", "sample_max/disc", "alpha_max/disc"):
        combined = (4 * parts[0][key] + 3 * parts[1][key]) / 7
        torch.testing.assert_close(combined.detach(), whole[key].detach(), msg=key)
    assert "temperature/cont" not in whole  # a Gaussian has no diagnostics


# --- conformance -------------------------------------------------------------------------------------------------------
def test_conformance_of_annealed_and_hard_configs(single_thread):
    configs = [c for c in GumbelSoftmax.example_configs() if "anneal" in c or c.get("hard")]
    assert any("anneal" in c for c in configs) and any(c.get("hard") for c in configs)
    check_family(GumbelSoftmax, configs, max_examples=4)


# --- training through the recipe: schedule logged, resume exact ----------------------------------------------------------
TRAIN_ANNEAL = {"start": 1.0, "end": 0.25, "steps": 8}
SMALL = [
    "--set", 'dataset_options={"n": 128, "size": 32}',
    "--set", "train.log_every=2",
    "--set", "train.checkpoint_every=5",
    "--set", "train.batch_size=16",
    "--set", "disc_options=" + json.dumps({"anneal": TRAIN_ANNEAL, "hard": True}),
    "--quiet",
]


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("anneal") / "straight"
    assert cli.main(["train", str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "10", "--out", str(out)]) == 0
    return out


def test_recipe_disc_options_reach_the_channel():
    experiment = JointVAEConfig(disc_options={"anneal": TRAIN_ANNEAL, "hard": True}).experiment()
    disc = next(c for c in experiment.model.channels if c.name == "disc")
    assert disc.options["anneal"] == TRAIN_ANNEAL and disc.options["hard"] is True


def test_training_logs_the_scheduled_temperature(straight_run):
    rows = _metrics(straight_run)
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10]
    for row in rows:
        t = min(row["step"], 8) / 8
        assert row["temperature/disc"] == pytest.approx(1.0 * 0.25**t, rel=1e-6), row["step"]
        assert row["sample_max/disc"] == 1.0  # hard: the decoder trains on one-hots
        assert 1 / 3 - 1e-6 <= row["alpha_max/disc"] <= 1.0


def test_resumed_run_has_the_uninterrupted_temperature(straight_run, tmp_path):
    resumed = tmp_path / "resumed"
    assert cli.main(["train", str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "5", "--out", str(resumed)]) == 0
    assert cli.main(["train", "--resume", str(resumed), "--steps", "10", "--quiet"]) == 0
    after = {r["step"]: r for r in _metrics(resumed)}
    assert after[6]["temperature/disc"] == _metrics(straight_run)[2]["temperature/disc"] != 1.0
    assert (resumed / "metrics.jsonl").read_text() == (straight_run / "metrics.jsonl").read_text()
