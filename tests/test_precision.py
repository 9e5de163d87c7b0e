"""train.precision / --precision: bfloat16 networks with a float32 training signal, recorded, resumable, bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from latentkit import cli
from latentkit.assembly.checkpoint import load_model
from latentkit.assembly.evaluate import evaluate_checkpoint
from latentkit.assembly.recipe import apply_overrides, load_recipe
from latentkit.assembly.session import prepare_run
from latentkit.core import Sigmoid32
from latentkit.errors import ConfigError
from latentkit.inference import reconstruct
from latentkit.precision import autocast, bfloat16_support, check_precision
from latentkit.train import TrainConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
#: bfloat16's unit roundoff: 8 significant bits, so a rounded value is within 2^-9 of the original, relatively
UNIT_ROUNDOFF = 2.0**-9
SMALL = ['dataset_options={"n": 256, "size": 32}', "train.log_every=5", "train.checkpoint_every=10",
         "train.batch_size=32", "train.figures_every=0"]


def experiment(steps: int, precision: str = "float32"):
    cfg = load_recipe(RECIPES / "jointvae_shapes.py")
    return apply_overrides(cfg, [*SMALL, f"train.steps={steps}", f'train.precision="{precision}"']).experiment()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A shapes model after 300 float32 steps: outputs as confident as a trained model's, not an initialisation's."""
    trainer = prepare_run(experiment(300), out=str(tmp_path_factory.mktemp("trained") / "run"), quiet=True)
    trainer.fit()
    return trainer


def test_precision_is_checked_and_amp_reads_as_bfloat16():
    with pytest.raises(ConfigError, match="float32"):
        TrainConfig(precision="bf16")
    with pytest.raises(ConfigError, match="bfloat16"):
        check_precision("half")
    assert TrainConfig.from_dict({"amp": True}).precision == "bfloat16"  # runs saved before `precision`
    assert TrainConfig.from_dict({"amp": False}).precision == "float32"
    assert TrainConfig().precision == "float32"


def test_bfloat16_support_names_the_cpu_and_how():
    support = bfloat16_support("cpu")
    assert support["how"] in ("amx_bf16", "avx512_bf16", "emulated")
    assert support["native"] == (support["how"] != "emulated") and support["device"]


def test_networks_run_in_bfloat16_and_hand_on_float32(trained):
    """Under bfloat16 the convolutions compute in bfloat16, while the features the latent families read, the
    reconstruction, the KL terms and the objective are float32."""
    model = trained.model
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    batch, context = trained._batch(1)
    try:
        with torch.no_grad(), autocast("bfloat16", "cpu"):
            scalars = trained.task.training_step(batch, 1, context)
            output = model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert output.reconstruction.dtype == torch.float32 and output.latent.dtype == torch.float32
    assert all(v.dtype == torch.float32 for params in output.params.values() for v in params.values())
    assert {scalars[k].dtype for k in ("objective", "loss", "recon", "kl/cont", "kl/disc")} == {torch.float32}


def test_sigmoid32_keeps_probabilities_near_one_that_bfloat16_rounds_away():
    logits = torch.tensor([6.0, 7.0, 8.0], dtype=torch.bfloat16)
    assert Sigmoid32()(logits).dtype == torch.float32
    assert torch.equal(Sigmoid32()(logits), torch.sigmoid(logits.float()))
    assert torch.sigmoid(logits)[1:].eq(torch.sigmoid(logits)[1]).all()  # bfloat16 cannot tell 7 from 8 here
    assert Sigmoid32()(logits).unique().numel() == 3
    x = torch.randn(5, dtype=torch.float64)
    assert Sigmoid32()(x).dtype == torch.float64


@settings(max_examples=12, deadline=None, derandomize=True)
@given(scale=st.floats(0.5, 1.5), step=st.integers(1, 200))
def test_objective_in_bfloat16_is_within_a_few_roundoffs_of_float32(trained, scale, step):
    """The objective computed with bfloat16 networks against float32, on a trained model with its weights scaled
    (outputs less or more confident) and batches of the data set.

    Why 4u: every rounded operand (an input or a weight of a convolution or linear layer) is within u = 2^-9 of its
    value, products accumulate in float32, so each layer's outputs carry a relative error of about u that the next layers
    pass on; the objective is a sum over every pixel and unit of smooth functions of those outputs (computed in
    float32), in which the per-element errors partly cancel. Measured: at most 6e-4 (about 0.3u) over such models; a
    training signal computed in bfloat16 itself (its sums rounded to bfloat16) would be off by about u per term."""
    model = trained.model
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.mul_(scale)
            batch, context = trained._batch(step)
            exact = trained.task.training_step(batch, step, context)["objective"]
            with autocast("bfloat16", "cpu"):
                low = trained.task.training_step(batch, step, context)["objective"]
    finally:
        model.load_state_dict(original)
    assert abs(float(low) - float(exact)) <= 4 * UNIT_ROUNDOFF * abs(float(exact)), (float(low), float(exact))


def test_bfloat16_training_records_its_precision_and_resumes_bit_identically(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    prepare_run(experiment(20, "bfloat16"), out=str(straight), quiet=True).fit()
    prepare_run(experiment(10, "bfloat16"), out=str(resumed), quiet=True).fit()
    assert cli.main(["train", "--resume", str(resumed), "--steps", "20", "--quiet"]) == 0
    config = json.loads((straight / "final" / "config.json").read_text())
    assert config["train"]["precision"] == "bfloat16"
    a, _ = load_model(straight / "final")
    b, _ = load_model(resumed / "final")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert x.dtype == torch.float32, name  # the weights stay float32
        assert torch.equal(x, y), name
    moments = load_file(straight / "final" / "optimizer.safetensors")  # Adam's moments are float32 too
    assert moments and {m.dtype for m in moments.values()} == {torch.float32}


def test_bfloat16_training_follows_float32(tmp_path):
    """The same 40 steps in both precisions end at nearly the same loss: bfloat16 changes the rounding, not the
    optimisation (each step's loss within 1% of float32's — 5u — over the run)."""
    curves = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        prepare_run(experiment(40, precision), out=str(out), quiet=True).fit()
        curves[precision] = [json.loads(line)["objective"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    for exact, low in zip(curves["float32"], curves["bfloat16"]):
        assert abs(low - exact) <= 0.01 * abs(exact), (curves)


def test_inference_and_evaluation_in_bfloat16(trained, tmp_path):
    model, images = trained.model, trained.run.data.images[:200]
    exact = reconstruct(model, images)
    low = reconstruct(model, images, precision="bfloat16")
    assert low.dtype == torch.float32 and low.shape == exact.shape
    # a probability moves by at most p(1-p)·|Δlogit| ≤ |Δlogit|/4; logits of a few units carry errors of a few u each
    assert (low - exact).abs().max() < 0.05
    assert (low - exact).abs().mean() < 4 * UNIT_ROUNDOFF

    trained.checkpoint(trained.run.step)
    folder = trained.run.last_checkpoint
    f32 = evaluate_checkpoint(folder, ["reconstruction"], data_root=None, split="train", max_images=256)
    bf16 = evaluate_checkpoint(folder, ["reconstruction"], data_root=None, split="train", max_images=256,
                               precision="bfloat16")
    assert bf16["precision"] == "bfloat16" and f32["precision"] == "float32"
    written = json.loads((Path(folder) / "evaluation" / "reconstruction-train-bfloat16.json").read_text())
    assert written["precision"] == "bfloat16"
    assert (Path(folder) / "evaluation" / "reconstruction-train.json").is_file()  # both kept
    a, b = f32["metrics"]["reconstruction"]["bce_median"], bf16["metrics"]["reconstruction"]["bce_median"]
    assert abs(a - b) <= 4 * UNIT_ROUNDOFF * a


def test_figure_commands_take_precision(trained, tmp_path):
    trained.checkpoint(trained.run.step)
    folder = str(trained.run.last_checkpoint)
    assert cli.main(["sample", folder, "--out", str(tmp_path / "f"), "--n", "3", "--recon", "3",
                     "--precision", "bfloat16"]) == 0
    assert (tmp_path / "f" / "samples-prior.png").is_file()
    with pytest.raises(SystemExit):
        cli.main(["sample", folder, "--precision", "half"])
