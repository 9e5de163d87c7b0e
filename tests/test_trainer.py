"""The generic trainer: exact resume, atomic checkpoints, signals, numerical faults, bad settings."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
from pathlib import Path

import attrs
import pytest
import torch

from latentkit import cli
from latentkit.assembly.checkpoint import load_model
from latentkit.assembly.recipe import apply_overrides, config_from_dict, config_to_dict, load_recipe
from latentkit.assembly.session import prepare_run
from latentkit.core import SampleNoise
from latentkit.errors import ConfigError, LatentkitError
from latentkit.plugins import hookimpl, register_plugin, unregister_plugin
from latentkit.train import BaseTask, StepContext, TrainConfig, Trainer
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
    # the config class's import path is recorded, so the saved config can be rebuilt
    assert config["recipe_class"] == "latentkit_plugins.jointvae_recipe.JointVAEConfig"
    module, _, name = config["recipe_class"].rpartition(".")
    rebuilt = config_from_dict(getattr(importlib.import_module(module), name), config["recipe_config"])
    assert config_to_dict(rebuilt) == config["recipe_config"]
    assert "latentkit" in config["versions"]
    # the code that trained it: the checkout's commit where latentkit runs from a git checkout (CI and developers)
    head = subprocess.run(["git", "-C", str(RECIPES.parent), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert config["source"]["commit"] == head.stdout.strip() and isinstance(config["source"]["dirty"], bool)
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


class LinearAE(BaseTask):
    """A model that is no JointVAE, trained through the public API: a linear autoencoder with an MSE loss."""

    def __init__(self, size: int = 64):
        self.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size, 4), torch.nn.Linear(4, size))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch, step, context):
        self.seen.append(batch)
        return {"loss": torch.nn.functional.mse_loss(self.module(batch), batch.flatten(1))}


class Recorder:
    """A hook object: records every call."""

    def __init__(self):
        self.calls: list[tuple] = []

    def latentkit_run_start(self, run):
        self.calls.append(("start", run.step))

    def latentkit_step_end(self, step, scalars):  # any subset of the hook's arguments
        self.calls.append(("step", step, scalars["loss"]))

    def latentkit_checkpoint(self, run, step, folder):
        self.calls.append(("checkpoint", step, folder.name))

    def latentkit_run_end(self, run, status):
        self.calls.append(("end", status))


def _images(n: int = 100) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _config(**changes) -> TrainConfig:
    settings = dict(steps=30, batch_size=10, log_every=10, checkpoint_every=10, lr=1e-2, device="cpu")
    return TrainConfig(**{**settings, **changes})


def test_trainer_knows_no_model(tmp_path):
    """Any task trains through the public constructor: no Run, no plugin manager, no checkpoint config needed."""
    data, task, hook = _images(), LinearAE(), Recorder()
    x = data[:10].float() / 255
    first = torch.nn.functional.mse_loss(task.module(x), x.flatten(1)).item()
    run = Trainer(task, data, _config(), tmp_path / "ae", hooks=[hook]).fit()
    with torch.no_grad():
        assert torch.nn.functional.mse_loss(task.module(x), x.flatten(1)).item() < first
    assert [s for s, _ in list_checkpoints(run.directory)] == [20, 30]
    assert [c for c in hook.calls if c[0] != "step"] == [
        ("start", 0), ("checkpoint", 10, "step-00000010"), ("checkpoint", 20, "step-00000020"),
        ("checkpoint", 30, "step-00000030"), ("checkpoint", 30, "final"), ("end", "completed")]
    assert [c[1] for c in hook.calls if c[0] == "step"] == [10, 20, 30]
    assert json.loads((run.directory / "final" / "config.json").read_text())["step"] == 30
    assert all(b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1 for b in task.seen)  # uint8 / 255


def test_float_samples_are_used_as_they_are(tmp_path):
    data = torch.randn(40, 64) * 3  # vectors, not in [0, 1]
    task = LinearAE()
    Trainer(task, data, _config(steps=4, batch_size=40, memory_format="contiguous"), tmp_path / "v").fit()
    assert torch.equal(task.seen[0].sort(dim=0).values, data.sort(dim=0).values)  # the whole set, unscaled


def test_the_trainer_applies_its_threads_and_restores_them(tmp_path):
    before = torch.get_num_threads()
    seen = []

    class Counting(LinearAE):
        def training_step(self, batch, step, context):
            seen.append(torch.get_num_threads())
            return super().training_step(batch, step, context)

    Trainer(Counting(), _images(), _config(steps=3, threads=1), tmp_path / "t").fit()
    assert seen == [1, 1, 1] and torch.get_num_threads() == before


def test_a_task_outside_the_protocol_is_refused(tmp_path):
    class Bare:  # module and training_step, but not the rest of the protocol
        module = torch.nn.Linear(2, 2)

        def training_step(self, batch, step, context):
            return {}

    with pytest.raises(ConfigError, match="BaseTask"):
        Trainer(Bare(), _images(), _config(), tmp_path / "x")


class WithExtra(LinearAE):
    """A task training a second module beside its model, with its own learning rate."""

    def __init__(self, stray: bool = False):
        super().__init__()
        self.critic = torch.nn.Linear(64, 1)
        self.stray = torch.nn.Linear(64, 1) if stray else None

    def extra_modules(self):
        return {"critic": self.critic}

    def extra_parameter_groups(self):
        module = self.stray if self.stray is not None else self.critic
        return [{"params": list(module.parameters()), "lr": 1e-3}]

    def training_step(self, batch, step, context):
        scalars = super().training_step(batch, step, context)
        scalars["loss"] = scalars["loss"] + self.critic(batch.flatten(1).detach()).pow(2).mean()
        return scalars


def test_extra_modules_are_trained_checkpointed_and_restored(tmp_path):
    torch.manual_seed(0)
    straight = WithExtra()
    Trainer(straight, _images(), _config(steps=20), tmp_path / "straight").fit()
    torch.manual_seed(0)
    Trainer(WithExtra(), _images(), _config(steps=10), tmp_path / "resumed").fit()
    torch.manual_seed(1)  # other initial weights: the checkpoint must replace them all
    resumed = WithExtra()
    trainer = Trainer(resumed, _images(), _config(steps=20), tmp_path / "resumed")
    assert trainer.optimizer.param_groups[1]["lr"] == 1e-3
    assert trainer.resume_from_latest() == 10
    trainer.fit()
    assert (tmp_path / "resumed" / "final" / "critic.safetensors").is_file()
    for a, b in [(straight.module, resumed.module), (straight.critic, resumed.critic)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_extra_parameters_that_checkpoints_would_not_save_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="extra_modules"):
        Trainer(WithExtra(stray=True), _images(), _config(), tmp_path / "x")


def test_a_misspelt_hook_is_refused(tmp_path):
    class Misspelt:
        def latentkit_stepend(self, run, step, scalars):
            pass

    class AsksTooMuch:
        def latentkit_run_end(self, run, status, loss):
            pass

    for hook, message in [(Misspelt(), "not a run-time hook"), (AsksTooMuch(), "does not pass")]:
        with pytest.raises(ConfigError, match=message):
            Trainer(LinearAE(), _images(), _config(), tmp_path / "x", hooks=[hook])


def test_the_final_save_refuses_non_finite_weights(tmp_path):
    """fit's last checkpoint goes through checkpoint(): weights broken after the last step never reach final/."""

    class Breaker:
        def latentkit_evaluate(self, run, step):  # called at the end, before the final checkpoint
            with torch.no_grad():
                next(run.model.parameters()).fill_(float("nan"))

    with pytest.raises(NumericalFault):
        Trainer(LinearAE(), _images(), _config(steps=10), tmp_path / "r", hooks=[Breaker()]).fit()
    assert not (tmp_path / "r" / "final").exists()


def test_a_directory_with_checkpoints_needs_resume(tmp_path):
    Trainer(LinearAE(), _images(), _config(steps=10), tmp_path / "r").fit()
    with pytest.raises(LatentkitError, match="resume"):
        Trainer(LinearAE(), _images(), _config(steps=20), tmp_path / "r").fit()


def test_a_run_saved_with_batch_parts_resumes(tmp_path):
    out = tmp_path / "run"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "10", "--out", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    config["experiment"]["train"]["batch_parts"] = 2  # as runs before the one step path saved it
    (out / "config.json").write_text(json.dumps(config))
    assert train("--resume", str(out), "--steps", "15", "--quiet") == 0
    assert json.loads((out / "final" / "config.json").read_text())["step"] == 15


def test_runs_saved_with_batch_parts_still_load():
    saved = attrs.asdict(TrainConfig(steps=7)) | {"batch_parts": 2}
    assert TrainConfig.from_dict(saved) == TrainConfig(steps=7)
    with pytest.raises(ConfigError, match="unknown training settings"):
        TrainConfig.from_dict(saved | {"bacth_size": 3})


def test_the_step_noise_is_keyed_by_the_global_row():
    whole = StepContext.single(seed=3, step=5, batch_size=8)
    share = StepContext(range(4, 8), 8, seed=3, step=5, rank=1, world_size=2)
    assert torch.equal(whole.noise.normal(3)[4:], share.noise.normal(3))
    assert torch.equal(share.noise.keys, SampleNoise.for_rows(3, 5, range(4, 8)).keys)


def test_global_mean_gives_each_process_its_share_of_the_whole_batch_gradient():
    """Two simulated processes (each adds the other's detached contribution as its all-reduce) get gradients that sum
    to one process's on the whole batch; the identity in a single process."""
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(5, 3), torch.randn(10, 5)

    def loss(stats):  # non-linear in the batch means, as |KL - C|
        return (stats["m"] - 0.3).abs().sum() + stats["s"] ** 2

    def stats_of(rows):
        y = layer(x[rows.start : rows.stop])
        return {"m": y.mean(0), "s": (y**2).mean()}

    whole = StepContext.single(0, 1, 10)
    assert whole.global_mean(stats_of(range(10))).keys() == {"m", "s"}
    expected = torch.autograd.grad(loss(whole.global_mean(stats_of(range(10)))), list(layer.parameters()))
    shares = [range(0, 4), range(4, 10)]
    sent = []
    with torch.no_grad():
        for rows in shares:
            st = stats_of(rows)
            sent.append(torch.cat([st["m"], st["s"].reshape(1)]) * len(rows) / 10)
    total = [torch.zeros_like(p) for p in layer.parameters()]
    for rank, rows in enumerate(shares):
        other = sent[1 - rank]
        context = StepContext(rows, 10, rank=rank, world_size=2, all_reduce_sum=lambda t, o=other: t + o)
        grads = torch.autograd.grad(loss(context.global_mean(stats_of(rows))), list(layer.parameters()))
        total = [t + g for t, g in zip(total, grads)]
    for e, t in zip(expected, total):
        scale = e.abs().max().item()
        assert (e - t).abs().max().item() <= 1e-5 * scale


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


def test_vae_task_trains_a_non_statistics_objective_alone_and_refuses_it_across_processes():
    """An objective that is not a function of batch means (here: a plain Objective) trains in one process; over
    several it cannot be evaluated on the global batch, so the task says so."""
    from latentkit.assembly.build import build_model
    from latentkit.core import Objective
    from latentkit.specs import ChannelSpec, Component, ModelSpec
    from latentkit.train import VAETask

    class MeanSquare(Objective):
        def __call__(self, x, output, step):
            return {"loss": (output.reconstruction - x).pow(2).mean()}

    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 2})], Component("jointvae_conv"))
    model = build_model(spec)
    task = VAETask(model, MeanSquare())
    x = torch.rand(4, 1, 32, 32)
    assert task.training_step(x, 1, StepContext.single(0, 1, 4))["loss"].requires_grad
    with pytest.raises(ConfigError, match="StatisticsObjective"):
        task.training_step(x[:2], 1, StepContext(range(2), 4, step=1, world_size=2))
    assert task.extra_modules() == {} and task.extra_parameter_groups() == []


def test_the_learning_rate_decays_along_a_half_cosine_from_its_start_to_the_last_step():
    config = _config(steps=100, lr_decay_start=60, lr_final=0.2)
    factors = [config.learning_rate_factor(step) for step in range(1, 101)]
    assert factors[:60] == [1.0] * 60  # constant up to and including the start
    assert factors[-1] == pytest.approx(0.2) and factors[79] == pytest.approx(0.6)  # the end, and halfway (step 80)
    assert all(a > b for a, b in zip(factors[59:], factors[60:]))  # then strictly falling
    assert {_config(steps=100).learning_rate_factor(s) for s in range(1, 101)} == {1.0}  # off by default


def test_a_decaying_run_ends_at_its_final_rate_and_resumes_bit_identical(tmp_path):
    settings = _config(steps=20, lr_decay_start=6, lr_final=0.1)
    torch.manual_seed(0)
    straight = WithExtra()
    trainer = Trainer(straight, _images(), settings, tmp_path / "straight")
    trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-3, 1e-4])  # both groups × 0.1
    torch.manual_seed(0)  # the same run, stopped at step 10 while decaying (its checkpoint holds decayed rates)
    with pytest.raises(Interrupted):
        Trainer(WithExtra(), _images(), settings, tmp_path / "resumed", hooks=[_SignalAt(10, signal.SIGTERM)]).fit()
    resumed = WithExtra()
    trainer = Trainer(resumed, _images(), settings, tmp_path / "resumed")
    assert trainer.resume_from_latest() == 10
    trainer.fit()
    for a, b in [(straight.module, resumed.module), (straight.critic, resumed.critic)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("changes, message", [
    ({"steps": 30, "lr_decay_start": 30}, "not before the last step"),
    ({"lr_final": 1.5}, "at most 1"),
    ({"lr_final": 0.0}, "lr_final"),
])
def test_bad_decay_settings_are_clear_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


def test_a_branch_without_changes_continues_as_the_parent_would_and_leaves_it_alone(tmp_path):
    straight, parent, branch = tmp_path / "straight", tmp_path / "parent", tmp_path / "branch"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "40", "--out", str(straight)) == 0
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "20", "--out", str(parent)) == 0
    before = sorted(p.name for p in (parent / "checkpoints").iterdir())
    source = parent / "checkpoints" / "step-00000020"
    assert train("--branch", str(source), "--out", str(branch), "--steps", "40", "--quiet") == 0
    a, b = weights(straight / "final"), weights(branch / "final")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert sorted(p.name for p in (parent / "checkpoints").iterdir()) == before  # the parent is not touched
    record = json.loads((branch / "config.json").read_text())["branched_from"]
    assert record["step"] == 20 and record["train_changes"] == {"steps": 40}


def test_a_branch_changes_only_its_training_settings(tmp_path):
    parent, branch = tmp_path / "parent", tmp_path / "branch"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "20", "--out", str(parent)) == 0
    assert train("--branch", str(parent / "final"), "--out", str(branch), "--steps", "30",
                 "--set", "train.lr_decay_start=25", "--set", "train.lr_final=0.5", "--quiet") == 0
    experiment = json.loads((branch / "config.json").read_text())["experiment"]
    assert experiment["train"]["lr_decay_start"] == 25 and experiment["train"]["steps"] == 30
    assert json.loads((branch / "final" / "config.json").read_text())["step"] == 30
    parent_model = json.loads((parent / "config.json").read_text())["experiment"]["model"]
    assert experiment["model"] == parent_model


@pytest.mark.parametrize("extra, message", [
    (["--set", "cont_gamma=3"], "training settings only"),
    (["--steps", "20"], "ask for more steps"),
    (["--set", "train.nonsense=1"], "nonsense"),
])
def test_bad_branches_are_clear_errors(tmp_path, capsys, extra, message):
    parent = tmp_path / "parent"
    assert train(str(RECIPES / "jointvae_shapes.py"), *SMALL, "--steps", "20", "--out", str(parent)) == 0
    assert train("--branch", str(parent / "final"), "--out", str(tmp_path / "b"), *extra, "--quiet") == 2
    assert message in capsys.readouterr().err
    assert train("--branch", str(parent), "--out", str(tmp_path / "c"), "--steps", "30", "--quiet") != 0
    assert "not a checkpoint folder" in capsys.readouterr().err
