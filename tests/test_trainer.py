"""The generic trainer: exact resume, atomic checkpoints, signals, numerical faults, bad settings."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from latentkit import cli
from latentkit.assembly.checkpoint import load_model
from latentkit.errors import LatentkitError
from latentkit.plugins import hookimpl, register_plugin, unregister_plugin
from latentkit.assembly.recipe import apply_overrides, load_recipe
from latentkit.assembly.session import prepare_run
from latentkit.train.checkpoints import list_checkpoints
from latentkit.train.trainer import Interrupted, NumericalFault

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SMALL = [
    "--set", 'dataset_options={"n": 256, "size": 32}',
    "--set", "train.log_every=5",
    "--set", "train.checkpoint_every=10",
    "--set", "train.batch_size=32",
    "--quiet",
]


def train(*args: str) -> int:
    return cli.main(["train", *args])


def small_experiment(steps: int = 20, **train_changes):
    cfg = load_recipe(RECIPES / "jointvae_shapes.py")
    sets = ['dataset_options={"n": 256, "size": 32}', "train.log_every=5", "train.checkpoint_every=10",
            "train.batch_size=32", f"train.steps={steps}"]
    sets += [f"train.{k}={json.dumps(v)}" for k, v in train_changes.items()]
    return apply_overrides(cfg, sets).experiment()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(folder)
    return model.state_dict()


def test_resume_is_bit_identical(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "40", "--out", str(straight)) == 0
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "20", "--out", str(resumed)) == 0
    assert train("--resume", str(resumed), "--steps", "40", "--quiet") == 0

    a, b = weights(straight / "final"), weights(resumed / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
    assert json.loads((resumed / "final" / "config.json").read_text())["step"] == 40
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 41, 5))


def test_run_directory_is_self_describing(tmp_path):
    out = tmp_path / "run"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "10", "--out", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["recipe_config"]["train"]["steps"] == 10
    assert "latentkit" in config["versions"]
    assert config["experiment"]["model"]["channels"][1]["family"] == "gumbel_softmax"
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("loss", "objective", "recon", "kl/cont", "kl/disc", "kl_unit/cont.0", "kl_unit/disc.0",
                "capacity/cont", "capacity/disc", "capacity_target/disc"):
        assert key in line
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = out / "checkpoints" / "step-00000010"
    for name in ("config.json", "model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors"):
        assert (ckpt / name).is_file()
    model, cfg = load_model(out)  # a run directory loads its final checkpoint
    assert cfg["step"] == 10 and not model.training


def test_old_checkpoints_are_pruned(tmp_path):
    out = tmp_path / "run"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "40", "--set", "train.keep_checkpoints=2",
                 "--out", str(out)) == 0
    assert [s for s, _ in list_checkpoints(out)] == [30, 40]


def test_interrupted_write_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = prepare_run(small_experiment(steps=20), out=str(tmp_path / "run"), quiet=True)
    import latentkit._atomic as atomic

    real = atomic.write_bytes
    calls = {"n": 0}

    def dying_write(path, data):
        # Fail in the middle of the second checkpoint, after some of its files were written.
        calls["n"] += 1
        if trainer.run.step == 20 and calls["n"] > 2:
            raise OSError("disk full (simulated)")
        return real(path, data)

    monkeypatch.setattr("latentkit.train.checkpoints.write_bytes", dying_write)
    with pytest.raises(OSError):
        trainer.fit()
    found = list_checkpoints(tmp_path / "run")
    assert [s for s, _ in found] == [10]
    model, cfg = load_model(found[0][1])
    assert cfg["step"] == 10
    # The half-written folder is hidden and never mistaken for a checkpoint.
    leftovers = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()]
    assert all(name.startswith(".") or name == "step-00000010" for name in leftovers)


def test_nan_loss_stops_and_names_last_good_checkpoint(tmp_path):
    trainer = prepare_run(small_experiment(steps=30), out=str(tmp_path / "run"), quiet=True)

    def poisoned(real_step):
        def step_fn(batch, step, *args):
            out = real_step(batch, step, *args)
            if step == 15:
                out["loss"] = out["loss"] * float("nan")
            return out
        return step_fn

    trainer.task.training_step = poisoned(trainer.task.training_step)
    before = None
    with pytest.raises(NumericalFault) as info:
        trainer.fit()
    message = str(info.value)
    assert "step 15" in message and "step-00000010" in message
    found = list_checkpoints(tmp_path / "run")
    assert [s for s, _ in found] == [10]
    before = weights(found[0][1])
    assert all(torch.isfinite(v).all() for v in before.values())
    assert not (tmp_path / "run" / "final").exists()


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    trainer = prepare_run(small_experiment(steps=20), out=str(tmp_path / "run"), quiet=True)

    def corrupt(real_step):
        def step_fn(batch, step, *args):
            if step == 12:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("inf"))
            return real_step(batch, step, *args)
        return step_fn

    trainer.task.training_step = corrupt(trainer.task.training_step)
    with pytest.raises(NumericalFault):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [10]


class _SignalAt:
    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    @hookimpl
    def latentkit_step_end(self, run, step, scalars):
        if step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_checkpoint_then_resume_completes(tmp_path, signum):
    name = register_plugin(_SignalAt(15, signum), name=f"signal-{signum}")
    try:
        trainer = prepare_run(small_experiment(steps=30), out=str(tmp_path / "run"), quiet=True)
        with pytest.raises(Interrupted) as info:
            trainer.fit()
    finally:
        unregister_plugin(name)
    assert "--resume" in str(info.value)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")][-1] == 15
    assert train("--resume", str(tmp_path / "run"), "--quiet") == 0
    assert json.loads((tmp_path / "run" / "final" / "config.json").read_text())["step"] == 30


def test_bad_settings_are_clear_errors(tmp_path, capsys):
    recipe = str(RECIPES / "jointvae_shapes.py")
    assert train(recipe, "--set", "nonsense=1", "--out", str(tmp_path / "a")) == 2
    err = capsys.readouterr().err
    assert "unknown key 'nonsense'" in err and "train.lr" in err and "Traceback" not in err
    assert train(recipe, "--set", "train.lr=fast", "--out", str(tmp_path / "b")) == 2
    assert "expected a value of type float" in capsys.readouterr().err
    assert train(recipe, "--set", "train.steps=-3", "--out", str(tmp_path / "c")) == 2
    assert "positive whole number" in capsys.readouterr().err
    assert train(recipe, "--set", "disc_sizes=[1]", "--out", str(tmp_path / "d")) == 2
    assert "K >= 2" in capsys.readouterr().err
    assert train(recipe, "--set", "image_shape=[1,48,48]", "--out", str(tmp_path / "e")) == 2
    assert "32 or 64" in capsys.readouterr().err
    assert train(str(tmp_path / "missing_recipe.py")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train("--resume", str(tmp_path / "nowhere")) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_completed_run_asks_for_more_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "10", "--out", str(out)) == 0
    assert train("--resume", str(out), "--steps", "10", "--quiet") == 2
    assert "--steps" in capsys.readouterr().err
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--out", str(out)) == 2
    assert "not empty" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    code = train(str(RECIPES / "jointvae_mnist.py"), "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 2
    err = capsys.readouterr().err
    assert "mnist" in err.lower() and "Traceback" not in err


def test_trainer_knows_no_model(tmp_path):
    """Any task with a module and a training_step trains: here a plain linear autoencoder with an MSE loss."""
    from latentkit.data.provider import ImageData
    from latentkit.assembly.recipe import TrainConfig
    from latentkit.train import Run, Trainer
    from latentkit.plugins import get_plugin_manager

    class LinearAE:
        def __init__(self):
            self.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4), torch.nn.Linear(4, 64))

        def training_step(self, batch, step, generator):
            loss = torch.nn.functional.mse_loss(self.module(batch), batch.flatten(1))
            return {"loss": loss}

    data = ImageData(images=torch.randint(0, 256, (100, 1, 8, 8), dtype=torch.uint8))
    task = LinearAE()
    run = Run(directory=tmp_path / "ae", config={}, total_steps=30, model=task.module, device=torch.device("cpu"),
              data=data, quiet=True)
    trainer = Trainer(task, run, TrainConfig(steps=30, batch_size=10, log_every=10, checkpoint_every=10, lr=1e-2),
                      {"format": "latentkit-checkpoint", "format_version": 1, "model": None}, get_plugin_manager().hook)
    first = task.training_step(data.images[:10].float() / 255, 0, None)["loss"].item()
    trainer.fit()
    assert task.training_step(data.images[:10].float() / 255, 0, None)["loss"].item() < first
    assert [s for s, _ in list_checkpoints(run.directory)] == [20, 30]
    lines = (run.directory / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [10, 20, 30]


def test_user_error_type_is_latentkit_error():
    assert issubclass(NumericalFault, LatentkitError) and issubclass(Interrupted, LatentkitError)
    assert NumericalFault.exit_code == 2 and Interrupted.exit_code == 130


def test_signal_through_the_cli_exits_130(tmp_path, capsys):
    name = register_plugin(_SignalAt(10, signal.SIGINT), name="signal-cli")
    try:
        code = train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "30", "--out", str(tmp_path / "run"))
    finally:
        unregister_plugin(name)
    assert code == 130
    err = capsys.readouterr().err
    assert "stopped by signal SIGINT after step 10" in err and "--resume" in err and "Traceback" not in err
