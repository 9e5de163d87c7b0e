"""Training beyond images: 1-D signals through the normal recipe, session and CLI path, with MLP networks.

What is checked: sample shapes of 1, 2 or 3 dimensions in specs, data containers and the float-batch helper; the
Gaussian likelihood against ``torch.distributions.Normal``; the MLP's shapes and option errors; the ``signals`` data
set's factor grid and labels; a short training run of the signals recipe with resume bit-identical to an uninterrupted
run, evaluation, and figures (line plots, or a skip notice for shapes that cannot be drawn).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from latentkit import cli
from latentkit.assembly.build import build_model, build_objective
from latentkit.assembly.checkpoint import load_model
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.data import ImageData, as_float_batch
from latentkit.assembly.datasets import build_provider
from latentkit.errors import ConfigError, DataError
from latentkit_plugins.jointvae_recipe import JointVAEConfig
from latentkit_plugins.mlp_networks import MLP
from latentkit_plugins.procedural_signals import NUM_SIGNALS, WAVEFORMS, SignalsGroundTruth

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "jointvae_signals.py"
TINY = [
    "--set", 'dataset_options={"n": 64, "length": 32}',
    "--set", "image_shape=[1, 32]",
    "--set", "hidden=32",
    "--set", "train.batch_size=16",
    "--set", "train.log_every=5",
    "--set", "train.checkpoint_every=10",
    "--set", "train.figures_every=10",
    "--quiet",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(single_thread):
    """Tiny MLPs: one intra-op thread is much faster on a loaded 2-core machine."""


def _channels() -> list[ChannelSpec]:
    return [ChannelSpec("cont", "gaussian", {"units": 2}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})]


def _objective(model, **options):
    zero = {"name": "constant", "options": {"value": 0.0}}
    terms = {name: {"gamma": 1.0, "capacity": zero} for name in ("cont", "disc")}
    return build_objective(Component("jointvae", {"terms": terms, **options}), model)


# --- sample shapes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16,), (2, 16), (1, 8, 8)])
def test_model_spec_takes_vectors_signals_and_images(shape):
    spec = ModelSpec(shape, _channels(), Component("mlp", {"hidden": 8}))
    assert spec.image_shape == shape
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # as checkpoints store it


@pytest.mark.parametrize("shape", [(), (1, 2, 3, 4), (0, 16), ("a",)])
def test_model_spec_refuses_other_shapes_and_says_what_a_shape_is(shape):
    with pytest.raises(ConfigError, match="the shape of one sample"):
        ModelSpec(shape, _channels(), Component("mlp"))


def test_data_holds_uint8_or_float32_samples_of_any_rank():
    assert ImageData(torch.rand(5, 2, 16)).image_shape == (2, 16)
    assert ImageData(torch.rand(5, 16)).image_shape == (16,)
    assert ImageData(torch.zeros(5, 1, 4, 4, dtype=torch.uint8)).image_shape == (1, 4, 4)
    with pytest.raises(DataError, match="uint8 or float32"):
        ImageData(torch.rand(5, 16, dtype=torch.float64))
    with pytest.raises(DataError, match="uint8 or float32"):
        ImageData(torch.rand(5))


def test_float_batch_scales_uint8_and_passes_float32_through():
    images = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(as_float_batch(images), images.float().div_(255.0))  # the bit-exact uint8 path
    signals = torch.rand(3, 1, 8)
    assert as_float_batch(signals) is signals
    with pytest.raises(DataError, match="uint8"):
        as_float_batch(torch.ones(2, 3, dtype=torch.int64))


def test_conv_network_refuses_signals_and_names_the_mlp():
    with pytest.raises(ConfigError, match="mlp"):
        build_model(ModelSpec((1, 64), _channels(), Component("jointvae_conv")))


# --- the objective --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.1, 0.7])
def test_gaussian_likelihood_is_the_normal_nll_summed_per_sample(sigma):
    torch.manual_seed(0)
    model = build_model(ModelSpec((2, 16), _channels(), Component("mlp", {"hidden": 8, "output": "identity"})))
    x = torch.randn(5, 2, 16)
    output = model(x)
    logs = _objective(model, likelihood="gaussian", sigma=sigma)(x, output, 1)
    expected = -torch.distributions.Normal(output.reconstruction, sigma).log_prob(x).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(logs["recon"], expected, rtol=1e-5, atol=1e-4)
    assert logs["recon"].requires_grad


@pytest.mark.parametrize(("shape", "per_channel"), [((12,), 12), ((3, 10), 10), ((2, 4, 4), 16)])
def test_bernoulli_recon_sums_every_value_and_pixels_scale_divides_per_channel(shape, per_channel):
    torch.manual_seed(1)
    model = build_model(ModelSpec(shape, _channels(), Component("mlp", {"hidden": 8})))
    x = torch.rand(4, *shape)
    output = model(x)
    logs = _objective(model)(x, output, 1)
    expected = torch.nn.functional.binary_cross_entropy(output.reconstruction, x, reduction="none")
    torch.testing.assert_close(logs["recon"], expected.flatten(1).sum(1).mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logs["loss"], logs["objective"] / per_channel)


@pytest.mark.parametrize(("options", "phrase"), [({"likelihood": "poisson"}, "bernoulli"), ({"sigma": 0}, "sigma"),
                                                 ({"sigma": True}, "sigma")])
def test_bad_likelihood_options_are_config_errors(options, phrase):
    model = build_model(ModelSpec((8,), _channels(), Component("mlp", {"hidden": 8})))
    with pytest.raises(ConfigError, match=phrase):
        _objective(model, **options)


def test_recipe_passes_the_likelihood_and_keeps_it_out_of_objective_options():
    options = JointVAEConfig(likelihood="gaussian", sigma=0.3).experiment().objective.options
    assert (options["likelihood"], options["sigma"]) == ("gaussian", 0.3)
    with pytest.raises(ConfigError, match="sigma"):
        JointVAEConfig(objective_options={"sigma": 1.0}).experiment()


# --- the MLP ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12,), (3, 10), (2, 4, 4)])
def test_mlp_flattens_any_shape_and_decodes_back_to_it(shape):
    net = MLP(hidden=16, layers=3)
    assert net.encoder(shape, 7)(torch.rand(5, *shape)).shape == (5, 7)
    out = net.decoder(4, shape)(torch.randn(5, 4) * 10)
    assert out.shape == (5, *shape) and out.min() >= 0 and out.max() <= 1
    linear = MLP(hidden=16, output="identity").decoder(4, shape)
    assert sum(isinstance(m, torch.nn.Linear) for m in linear.modules()) == 3  # 2 hidden layers + the output layer
    assert not isinstance(list(linear.children())[-1], torch.nn.Sigmoid)


@pytest.mark.parametrize("options", [{"hidden": 0}, {"hidden": 2.5}, {"layers": 0}, {"layers": True},
                                     {"output": "tanh"}])
def test_mlp_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError, match="mlp option"):
        MLP(**options)


# --- the signals data set -------------------------------------------------------------------------------------------
def test_signals_grid_factors_labels_and_values():
    gt = SignalsGroundTruth(64)
    assert len(gt) == NUM_SIGNALS == 3 * 8 * 16 * 6 and gt.image_shape == (1, 64)
    signals = gt.images(gt.index_to_factors(torch.arange(len(gt))))
    assert signals.dtype == torch.float32 and signals.shape == (len(gt), 1, 64)
    assert 0.05 - 1e-6 <= signals.min() and signals.max() <= 0.95 + 1e-6
    assert torch.unique(signals, dim=0).shape[0] == len(gt)  # anti-aliasing: no two grid points sample alike
    short = SignalsGroundTruth(16)
    assert torch.unique(short.images(short.index_to_factors(torch.arange(len(gt)))), dim=0).shape[0] == len(gt)
    # zero phase, amplitude 0.9, one cycle: a sine, a square wave and a sawtooth about 0.5
    rows = torch.tensor([[w, 0, 0, 5] for w in range(3)])
    sine, square, sawtooth = gt.images(rows)[:, 0]
    t = torch.arange(64) / 64
    torch.testing.assert_close(sine, (0.5 + 0.45 * torch.sin(2 * math.pi * t)).float(), atol=1e-3, rtol=0)
    # the square wave is high while the sine is non-negative; the points at its jumps (0, 32) average across them
    expected = torch.where(t < 0.5, 0.95, 0.05)
    expected[[0, 32]] = 0.5
    torch.testing.assert_close(square, expected.float(), atol=1e-6, rtol=0)
    ramp = (0.5 + 0.45 * (2 * torch.remainder(t + 0.5, 1.0) - 1)).float()
    torch.testing.assert_close(sawtooth[33:], ramp[33:], atol=1e-6, rtol=0)  # away from the jump at 32
    assert WAVEFORMS == ("sine", "square", "sawtooth")


def test_signals_splits_labels_and_subset():
    provider = build_provider({"name": "signals", "options": {"length": 32}})
    train, test = provider.load(None, "train"), provider.load(None, "test")
    assert len(train) + len(test) == NUM_SIGNALS and len(test) == NUM_SIGNALS // 5
    gt = provider.ground_truth()
    index = lambda data: set(gt.factors_to_index(data.factors).tolist())  # noqa: E731
    assert not index(train) & index(test)
    assert torch.equal(train.labels, train.factors[:, 0]) and set(train.labels.tolist()) == {0, 1, 2}
    assert torch.equal(train.images, gt.images(train.factors))
    small = build_provider({"name": "signals", "options": {"n": 50}})
    assert len(small.load(None, "train")) == 50 and len(small.load(None, "test")) == 10


@pytest.mark.parametrize("options", [{"length": 8}, {"n": 0}, {"seed": "x"}, {"length": 3.5}])
def test_signals_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError, match="signals"):
        build_provider({"name": "signals", "options": options})


# --- training, resume, evaluation, figures ------------------------------------------------------------------------
def _train(*args: str) -> int:
    return cli.main(["train", *args])


@pytest.fixture(scope="module")
def signal_runs(tmp_path_factory):
    """The signals recipe, tiny: 20 steps straight, and 10 steps resumed to 20."""
    root = tmp_path_factory.mktemp("signals")
    straight, resumed = root / "straight", root / "resumed"
    assert _train(str(RECIPE), *TINY, "--steps", "20", "--out", str(straight)) == 0
    assert _train(str(RECIPE), *TINY, "--steps", "10", "--out", str(resumed)) == 0
    assert _train("--resume", str(resumed), "--steps", "20", "--quiet") == 0
    return straight, resumed


def test_signals_recipe_resume_is_bit_identical(signal_runs):
    straight, resumed = signal_runs
    a, b = load_model(straight / "final")[0].state_dict(), load_model(resumed / "final")[0].state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    model, config = load_model(straight)
    assert model.image_shape == (1, 32) and config["model"]["network"]["name"] == "mlp"
    assert config["objective"]["options"]["likelihood"] == "gaussian"


def test_signals_run_draws_line_plot_traversals_during_training(signal_runs):
    straight, _ = signal_runs
    figures = sorted((straight / "figures" / "training").glob("traversals-step-*.png"))
    assert [p.name for p in figures] == ["traversals-step-00000010.png", "traversals-step-00000020.png"]


def test_signals_run_evaluates_with_accuracy_and_ground_truth_metrics(signal_runs, capsys):
    straight, _ = signal_runs
    assert cli.main(["evaluate", str(straight), "--metric", "accuracy", "--metric", "mig", "--metric", "reconstruction",
                     "--option", "mig.num_train=200", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["metrics"]
    assert results["accuracy"]["n_images"] == 12 and 0 <= results["accuracy"]["hungarian"] <= 1
    assert math.isfinite(results["mig"]["score"]) and math.isfinite(results["reconstruction"]["bce_median"])
    assert (straight / "evaluation" / "accuracy-test.json").is_file()


def test_figure_commands_draw_signals_as_lines(signal_runs, tmp_path, capsys):
    straight, _ = signal_runs
    assert cli.main(["traverse", str(straight), "--out", str(tmp_path)]) == 0
    assert cli.main(["sample", str(straight), "--out", str(tmp_path), "--n", "3", "--recon", "4"]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"traversals.png", "samples-prior.png", "samples-given-disc.0.png", "reconstructions.png"} <= names
    assert "traversals.gif" not in names and "images only" in capsys.readouterr().err


def test_encode_refuses_a_signal_model_clearly(signal_runs, tmp_path, capsys):
    straight, _ = signal_runs
    picture = tmp_path / "a.png"
    from PIL import Image

    Image.new("L", (32, 32)).save(picture)
    assert cli.main(["encode", str(straight), str(picture), "--out", str(tmp_path / "codes.npz")]) == 2
    assert "not images" in capsys.readouterr().err


def test_training_figures_skip_undrawable_samples_once(tmp_path, capsys):
    from latentkit.train.run import Run
    from latentkit_plugins import training_figures

    model = build_model(ModelSpec((2, 4, 4), _channels(), Component("mlp", {"hidden": 8})))
    config = {"experiment": {"train": {"figures_every": 5}}}
    run = Run(directory=tmp_path, config=config, total_steps=10, model=model, device=torch.device("cpu"))
    for step in (5, 10):
        run.step = step
        training_figures.latentkit_step_end(run=run, step=step, scalars={})
    training_figures.latentkit_run_end(run=run, status="completed")
    assert not (tmp_path / training_figures.FOLDER).exists()
    notes = [line for line in capsys.readouterr().err.splitlines() if "training figures skipped" in line]
    assert len(notes) == 1 and "(2, 4, 4)" in notes[0]
