"""`latentkit evaluate`: results written into the folder, an aligned table, KL ranking, ground-truth metrics, options.

Why these tests: evaluation is how a trained run is judged; its results must land next to the run (so they are not
lost in a terminal), name what was evaluated with which settings, and a metric that needs ground-truth factors must
say so clearly when the data set has none. The data set here is a test-only plugin (a 4 x 4 grid of block positions) so
the tests do not depend on any built-in data set's factor grid or splits; one test trains a real run on ``shapes``.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
import torch

from latentkit.assembly.build import build_model
from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
from latentkit.cli import main
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.data.ground_truth import GroundTruthData
from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.errors import ConfigError
from latentkit.assembly.evaluate import evaluate_checkpoint, format_table, parse_option_strings
from latentkit.metrics.kl import kl_per_unit
from latentkit.plugins import get_registry, hookimpl

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SPEC = ModelSpec(
    (1, 32, 32),
    [ChannelSpec("cont", "gaussian", {"units": 3}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})],
    Component("jointvae_conv", {"hidden": 8}),
)
UNIT = re.compile(r"(cont\.[0-2]|disc\.0)$")


def _checkpoint(folder: Path, dataset: Component = Component("test_blocks")) -> Path:
    torch.manual_seed(0)
    save_model_checkpoint(folder, build_model(SPEC), checkpoint_config(SPEC, dataset=dataset, step=7))
    return folder


def _evaluate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- a test-only data set with a factor grid ---------------------------------------------------------------------
class Blocks(GroundTruthData):
    """A white 8x8 block at one of 4 x 4 positions of a 32x32 image."""

    factor_names = ("x", "y")
    factor_sizes = (4, 4)
    discrete_factors = (False, False)

    @property
    def image_shape(self):
        return (1, 32, 32)

    def images(self, factors):
        self.check_factors(factors)
        out = torch.zeros(factors.shape[0], 1, 32, 32, dtype=torch.uint8)
        for i, (x, y) in enumerate(factors.tolist()):
            out[i, 0, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8] = 255
        return out

    def factor_values(self, factors):
        return factors.double() / 3


class BlocksProvider(DatasetProvider):
    """The 16 images of :class:`Blocks` as both splits, labelled by x; its ground truth is the grid."""

    dataset_name = "test_blocks"
    splits = ("train", "test")

    @property
    def image_shape(self):
        return (1, 32, 32)

    def load(self, root=None, split="train"):
        self.check_split(split)
        grid = Blocks()
        factors = grid.index_to_factors(torch.arange(len(grid)))
        return ImageData(images=grid.images(factors), labels=factors[:, 0].clone())

    def ground_truth(self, root):
        return Blocks()


class PlainProvider(BlocksProvider):
    """The same images, but no ground truth."""

    dataset_name = "test_plain"
    ground_truth = DatasetProvider.ground_truth


@pytest.fixture
def blocks(plugins):
    @hookimpl
    def latentkit_register_datasets(registry):
        registry.add("test_blocks", BlocksProvider)
        registry.add("test_plain", PlainProvider)

    module = types.ModuleType("test_blocks_plugin")
    module.latentkit_register_datasets = latentkit_register_datasets
    plugins.register(module, "test_blocks_plugin")
    yield


SMALL_FVAE = ["--option", "factorvae.num_train=30", "--option", "factorvae.num_eval=20",
              "--option", "factorvae.num_variance_estimate=100", "--option", "factorvae.vote_size=8",
              "--option", "factorvae.prune_threshold=0.0"]


# --- results file and table --------------------------------------------------------------------------------------
def test_kl_ranking_writes_results_into_the_folder_and_prints_a_table(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl-ranking", "--batch-size", "5")
    assert code == 0, err
    path = ckpt / "evaluation" / "kl-ranking-test.json"
    assert path.is_file() and f"results written to {path}" in out
    record = json.loads(path.read_text())
    assert record["metric"] == "kl-ranking" and record["split"] == "test" and record["step"] == 7
    assert record["dataset"] == {"name": "test_blocks", "options": {}}
    assert record["checkpoint"] == str(ckpt)
    result = record["results"]
    # every unit, named, ranked by descending KL
    assert sorted(result["ranking"]) == ["cont.0", "cont.1", "cont.2", "disc.0"]
    values = list(result["kl"].values())
    assert list(result["kl"]) == result["ranking"] and values == sorted(values, reverse=True)
    assert all(v >= 0 for v in values) and result["total"] == pytest.approx(sum(values))
    assert result["n_images"] == 16

    # the table: a header, one row per quantity, values right-aligned in one column
    lines = out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("metric"))):]
    table = [line for line in table if not line.startswith("results written")]
    assert table[0].split() == ["metric", "quantity", "value"]
    rows = table[2:]
    assert rows[0].startswith("kl-ranking")
    kl_rows = [row for row in rows if " kl." in row]
    assert [row.split()[-2].removeprefix("kl.") for row in kl_rows] == result["ranking"]
    ends = {len(row) for row in rows if re.search(r"\d$", row) and "ranking" not in row}
    assert len(ends) == 1, rows  # numbers end in the same column


def test_kl_ranking_matches_the_latent_kl():
    torch.manual_seed(0)
    model = build_model(SPEC)
    images = torch.randint(0, 256, (9, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    per_unit = kl_per_unit(model, ImageData(images=images), batch_size=4)
    model.eval()
    with torch.no_grad():
        kl = model.latent.kl(model.encode(images.float() / 255))
    expected = {f"cont.{i}": float(kl["cont"][:, i].mean()) for i in range(3)}
    expected["disc.0"] = float(kl["disc"][:, 0].mean())
    assert per_unit.keys() == expected.keys()
    for unit in expected:
        assert per_unit[unit] == pytest.approx(expected[unit], rel=1e-5, abs=1e-7)
    ranking = get_registry().metrics.get("kl-ranking")(model, ImageData(images=images), batch_size=100, device="cpu")
    assert all(UNIT.match(unit) for unit in ranking["ranking"])
    assert [ranking["kl"][u] for u in ranking["ranking"]] == pytest.approx(sorted(expected.values(), reverse=True))


def test_json_output_keeps_its_structure(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--metric", "kl-ranking", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "test_blocks" and report["split"] == "test" and report["checkpoint"] == str(ckpt)
    assert set(report["metrics"]["accuracy"]) >= {"majority", "hungarian", "nmi"}
    assert report["metrics"]["kl-ranking"]["ranking"]
    assert report["files"] == {
        "accuracy": str(ckpt / "evaluation" / "accuracy-test.json"),
        "kl-ranking": str(ckpt / "evaluation" / "kl-ranking-test.json"),
    }
    saved = json.loads((ckpt / "evaluation" / "accuracy-test.json").read_text())
    assert saved["results"] == report["metrics"]["accuracy"]


def test_a_run_directory_gets_the_results(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(RECIPES / "jointvae_shapes.py"), "--set", 'dataset_options={"n": 64, "size": 32}',
                 "--set", "train.batch_size=16", "--set", "train.log_every=5", "--set", "train.checkpoint_every=5",
                 "--steps", "5", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    code, out, err = _evaluate(capsys, str(run), "--metric", "kl-ranking")
    assert code == 0, err
    record = json.loads((run / "evaluation" / "kl-ranking-test.json").read_text())
    assert record["step"] == 5 and Path(record["checkpoint"]) == run / "final"
    assert sorted(record["results"]["ranking"]) == [f"cont.{i}" for i in range(6)] + ["disc.0"]


def test_no_save_writes_nothing(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl-ranking", "--no-save")
    assert code == 0, err
    assert not (ckpt / "evaluation").exists() and "results written" not in out


# --- names and options -------------------------------------------------------------------------------------------
def test_unknown_metric_lists_the_known_ones(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl_ranking")
    assert code == 2 and out == ""
    assert "'kl_ranking'" in err and "Did you mean 'kl-ranking'?" in err
    for name in ("accuracy", "dci", "factorvae", "kl-ranking", "mig", "sap"):
        assert name in err
    assert not (ckpt / "evaluation").exists()


def test_option_strings():
    metrics = {name: get_registry().metrics.get(name) for name in ("factorvae", "mig", "accuracy")}
    parsed = parse_option_strings(["factorvae.num_train=20", "seed=3", "mig.num_bins=5"], metrics)
    assert parsed == {"factorvae": {"num_train": 20, "seed": 3}, "mig": {"seed": 3, "num_bins": 5}, "accuracy": {}}
    # a metric's own setting wins over a shared one, whatever the order
    assert parse_option_strings(["factorvae.seed=1", "seed=2"], metrics)["factorvae"]["seed"] == 1
    with pytest.raises(ConfigError, match="no metric evaluated has an option 'nope'"):
        parse_option_strings(["nope=1"], metrics)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_option_strings(["num_train"], metrics)
    with pytest.raises(ConfigError, match="'sap'"):
        parse_option_strings(["sap.num_train=3"], metrics)


def test_bad_options_are_user_errors(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "factorvae", "--option", "factorvae.num_trian=3")
    assert code == 2 and "num_trian" in err and "num_train" in err
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "factorvae", "--option", "num_train=0")
    assert code == 2 and "num_train must be a positive whole number, got 0" in err
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--option", "accuracy.seed=1",
                               "--split", "train")
    assert code == 2 and "has no option" in err


# --- ground truth --------------------------------------------------------------------------------------------------
def test_ground_truth_metrics_via_evaluate(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt", Component("test_blocks"))
    code, out, err = _evaluate(
        capsys, str(ckpt), "--metric", "factorvae", "--metric", "mig", "--metric", "sap", "--metric", "dci",
        *SMALL_FVAE, "--option", "num_train=60", "--option", "num_test=20", "--option", "dci.n_estimators=3",
        "--batch-size", "50",
    )
    assert code == 0, err
    for name in ("factorvae", "mig", "sap", "dci"):
        record = json.loads((ckpt / "evaluation" / f"{name}.json").read_text())  # no split: drawn from the grid
        assert record["split"] is None and record["ground_truth"] is True
        assert record["dataset"]["name"] == "test_blocks"
    fvae = json.loads((ckpt / "evaluation" / "factorvae.json").read_text())
    assert fvae["options"]["num_train"] == 30 and fvae["options"]["num_eval"] == 20
    assert fvae["options"]["seed"] == 0 and fvae["options"]["vote_size"] == 8  # defaults recorded beside the given
    assert fvae["results"]["images_encoded"] == 100 + 8 * 50
    assert 0.0 <= fvae["results"]["score"] <= 1.0
    mig = json.loads((ckpt / "evaluation" / "mig.json").read_text())
    assert mig["options"]["num_train"] == 60
    assert "factorvae" in out and "score" in out and "disentanglement" in out


def test_ground_truth_metric_on_a_data_set_without_one(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt", Component("test_plain"))
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "mig")
    assert code == 2 and out == ""
    assert "metric 'mig' needs a data set with ground-truth factors; 'test_plain' has none" in err
    # the split-based metrics still work there
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl-ranking", "--split", "train")
    assert code == 0, err


def test_ground_truth_metrics_do_not_load_the_split(tmp_path, blocks, monkeypatch):
    ckpt = _checkpoint(tmp_path / "ckpt", Component("test_blocks"))

    def refuse(self, root=None, split="train"):
        raise AssertionError("the split was loaded")

    monkeypatch.setattr(BlocksProvider, "load", refuse)
    report = evaluate_checkpoint(ckpt, ["mig"], data_root=tmp_path, split="no-such-split",
                                 options={"mig": {"num_train": 40}}, save=False)
    assert report["split"] is None and 0.0 <= report["metrics"]["mig"]["score"] <= 1.0
    assert report["options"]["mig"]["num_train"] == 40 and report["files"] == {}
    assert "mig" in format_table(report)


def test_unwritable_folder_fails_before_the_work(tmp_path, monkeypatch, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    import latentkit.assembly.evaluate as ev

    def no_write(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", no_write)
    called = []
    monkeypatch.setattr(ev, "needs_data", lambda fn: called.append(fn) or True)
    with pytest.raises(ConfigError, match="cannot write evaluation results.*--no-save"):
        ev.evaluate_checkpoint(ckpt, ["kl-ranking"], data_root=tmp_path)
    assert called == []  # nothing evaluated


def test_max_images_evaluates_a_fixed_random_subset(capsys, tmp_path, blocks):
    ckpt = _checkpoint(tmp_path / "ckpt")
    reports = []
    for _ in range(2):
        code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--metric", "kl-ranking",
                                   "--max-images", "5", "--json", "--no-save")
        assert code == 0, err
        reports.append(json.loads(out))
    report = reports[0]
    assert report["images"] == 5 and report["metrics"]["kl-ranking"]["n_images"] == 5
    assert report["metrics"] == reports[1]["metrics"]  # the same subset every time
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl-ranking", "--json", "--no-save")
    assert json.loads(out)["images"] == 16  # all of them by default
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "kl-ranking", "--max-images", "0")
    assert code == 2 and "max_images" in err


def test_random_subset_keeps_labels_with_their_images():
    from latentkit.assembly.evaluate import random_subset

    images = torch.arange(20, dtype=torch.uint8).reshape(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    data = ImageData(images=images, labels=torch.arange(20), factors=torch.arange(20.0).unsqueeze(1) * 2)
    sub = random_subset(data, 7)
    assert len(sub) == 7 and sub.labels.tolist() == sorted(sub.labels.tolist())
    assert torch.equal(sub.images[:, 0, 0, 0].long(), sub.labels)
    assert torch.equal(sub.factors[:, 0], sub.labels.double() * 2)


# --- data-set options on the command line ----------------------------------------------------------------------------
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DSPRITES_SRC = SHARED / "reference_models" / "jointvae-original" / "dsprites"
TINY_FVAE = ["--option", "factorvae.num_train=200", "--option", "factorvae.num_eval=100",
             "--option", "factorvae.num_variance_estimate=200", "--option", "factorvae.vote_size=4"]


def _original_dsprites_folder(folder: Path) -> Path:
    """An untrained model in the original JointVAE code's format (``model.pt`` + ``specs.json``) for dSprites: 6
    continuous units and one 3-way categorical, 64x64 — the layout of the original's released dSprites checkpoint,
    written by inverting :func:`~latentkit.interop.jointvae_original.convert_state_dict`."""
    from latentkit.interop.jointvae_original import model_spec_from_original

    specs = {"dataset": "dsprites", "latent_spec": {"cont": 6, "disc": [3]},
             "cont_capacity": [0.0, 40.0, 300000, 150.0], "disc_capacity": [0.0, 1.1, 300000, 150.0]}
    torch.manual_seed(0)
    probe = {"img_to_features.0.weight": torch.zeros(32, 1, 4, 4), "img_to_features.6.weight": torch.zeros(1)}
    spec, _ = model_spec_from_original(specs, probe)
    ours = build_model(spec).state_dict()
    state = {}
    for i in (0, 2, 4, 6):
        for p in ("weight", "bias"):
            state[f"img_to_features.{i}.{p}"] = ours[f"encoder.0.{i}.{p}"]
            state[f"features_to_img.{i}.{p}"] = ours[f"decoder.2.{i}.{p}"]
    for p in ("weight", "bias"):
        state[f"features_to_hidden.0.{p}"] = ours[f"encoder.2.0.{p}"]
        state[f"latent_to_features.0.{p}"] = ours[f"decoder.0.0.{p}"]
        state[f"latent_to_features.2.{p}"] = ours[f"decoder.0.2.{p}"]
        mean, log_var, alphas = ours[f"encoder.3.{p}"].split([6, 6, 3])
        state.update({f"fc_mean.{p}": mean, f"fc_log_var.{p}": log_var, f"fc_alphas.0.{p}": alphas})
    folder.mkdir(parents=True)
    torch.save({k: v.clone() for k, v in state.items()}, folder / "model.pt")
    (folder / "specs.json").write_text(json.dumps(specs))
    return folder


def _imported_dsprites_scores_on_the_procedural_set(capsys, src: Path, tmp_path: Path) -> None:
    """``import-jointvae`` then ``evaluate --dataset-option source=procedural`` with no npz anywhere: no config.json
    edit, the record names both the data set scored on and the one the checkpoint records."""
    out = tmp_path / "imported"
    assert main(["import-jointvae", str(src), str(out)]) == 0
    config_before = (out / "config.json").read_text()
    assert json.loads(config_before)["dataset"] == {"name": "dsprites", "options": {}}
    empty = tmp_path / "no-data"
    empty.mkdir()
    capsys.readouterr()
    code, stdout, err = _evaluate(capsys, str(out), "--metric", "factorvae", *TINY_FVAE, "--data-root", str(empty),
                                  "--dataset-option", "source=procedural", "--batch-size", "200")
    assert code == 0, err
    assert "data set dsprites (source=\"procedural\")" in stdout
    record = json.loads((out / "evaluation" / "factorvae.json").read_text())
    assert record["dataset"] == {"name": "dsprites", "options": {"source": "procedural"}}
    assert record["checkpoint_dataset"] == {"name": "dsprites", "options": {}}
    assert record["options"]["num_train"] == 200 and record["options"]["num_eval"] == 100
    assert 0.0 <= record["results"]["score"] <= 1.0
    assert (out / "config.json").read_text() == config_before  # nothing edited
    assert list(empty.iterdir()) == []
    # without the option the recorded npz is demanded, and the error says where it goes and what else to do
    code, stdout, err = _evaluate(capsys, str(out), "--metric", "factorvae", *TINY_FVAE, "--data-root", str(empty))
    assert code == 2 and "dsprites_ndarray" in err and "procedural" in err


def test_an_imported_dsprites_checkpoint_evaluates_on_the_procedural_set(capsys, tmp_path):
    _imported_dsprites_scores_on_the_procedural_set(capsys, _original_dsprites_folder(tmp_path / "original"), tmp_path)


def test_the_originals_dsprites_checkpoint_evaluates_on_the_procedural_set(capsys, tmp_path):
    if not (DSPRITES_SRC / "model.pt").is_file() or not (DSPRITES_SRC / "specs.json").is_file():
        pytest.skip(f"the original's dSprites checkpoint is absent: expected model.pt and specs.json in "
                    f"{DSPRITES_SRC} (the fabricated checkpoint of the test above covers the same path)")
    _imported_dsprites_scores_on_the_procedural_set(capsys, DSPRITES_SRC, tmp_path)


def test_dataset_names_another_registered_data_set(capsys, tmp_path, blocks):
    """``--dataset`` replaces the name and starts from the options given (the recorded ones belong to another data
    set's provider); the same name keeps the recorded options and updates them."""
    ckpt = _checkpoint(tmp_path / "ckpt", Component("test_plain"))
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "mig", "--dataset", "test_blocks",
                               "--option", "num_train=40", "--json", "--no-save")
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "test_blocks" and 0.0 <= report["metrics"]["mig"]["score"] <= 1.0


def test_override_dataset_rules():
    from latentkit.assembly.datasets import override_dataset, parse_dataset_options

    recorded = {"name": "dsprites", "options": {"label_factor": "shape", "n": 10}}
    assert override_dataset(recorded) == Component("dsprites", {"label_factor": "shape", "n": 10})
    assert override_dataset(recorded, None, {"source": "procedural", "n": 5}) == Component(
        "dsprites", {"label_factor": "shape", "n": 5, "source": "procedural"})
    assert override_dataset(recorded, "dsprites", {"n": 5}).options == {"label_factor": "shape", "n": 5}
    assert override_dataset(recorded, "dsprites_procedural", {"n": 5}) == Component("dsprites_procedural", {"n": 5})
    assert override_dataset(None) is None and override_dataset(None, "mnist") == Component("mnist")
    with pytest.raises(ConfigError, match="--dataset NAME"):
        override_dataset(None, None, {"n": 5})
    assert parse_dataset_options(["source=procedural", "n=1000", "label_factor=null", "size=32", "size=64"]) == {
        "source": "procedural", "n": 1000, "label_factor": None, "size": 64}
    for bad in ("source", "=3", "a b=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_dataset_options([bad])


def test_evaluating_mnist_test_needs_only_the_test_files(capsys, tmp_path, idx_files):
    """Why: a user with only the t10k files (or evaluating on another machine) must not be asked for the 60,000
    training images; torchvision's MNIST class checks all four files even for the test split."""
    root = idx_files(tmp_path / "data", "MNIST", n_test=7)
    raw = root / "MNIST" / "raw"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).unlink()
    ckpt = _checkpoint(tmp_path / "ckpt", Component("mnist"))
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--metric", "kl-ranking",
                               "--data-root", str(root), "--json", "--no-save")
    assert code == 0, err
    report = json.loads(out)
    assert report["split"] == "test" and report["images"] == 7
    # the training split still says which of its files are missing (and only those are required)
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--split", "train",
                               "--data-root", str(root), "--no-save")
    assert code == 2 and "train-images-idx3-ubyte" in err and "'train'" in err
