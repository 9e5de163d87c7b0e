"""Start or resume a run: build everything an :class:`Experiment` names, then hand it to the :class:`Trainer`."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import torch

import latentkit
from latentkit._atomic import write_json
from latentkit.assembly.build import build_model, build_objective
from latentkit.assembly.checkpoint import checkpoint_config
from latentkit.assembly.datasets import load_dataset
from latentkit.data.provider import ImageData
from latentkit.errors import ConfigError, LatentkitError
from latentkit.plugins import Registry, get_plugin_manager, get_registry
from latentkit.specs import Component, Experiment, ModelSpec
from latentkit.train.config import TrainConfig
from latentkit.train.distributed import Processes, initialise
from latentkit.train.task import VAETask
from latentkit.train.trainer import Trainer

RUN_CONFIG = "config.json"
RUN_FORMAT = "latentkit-run"


def experiment_from_dict(data: dict) -> Experiment:
    try:
        train = TrainConfig.from_dict(data["train"])  # drops settings older runs saved that are gone (batch_parts)
        return Experiment(
            model=ModelSpec.from_dict(data["model"]),
            objective=Component.from_dict(data["objective"], "objective"),
            dataset=Component.from_dict(data["dataset"], "dataset"),
            train=train,
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"the run's experiment description is incomplete or malformed ({exc})") from None


def _load_data(experiment: Experiment, data_root: str | None) -> ImageData:
    data = load_dataset(experiment.dataset, data_root, "train")
    if tuple(data.image_shape) != tuple(experiment.model.image_shape):
        raise ConfigError(
            f"data set {experiment.dataset.name!r} yields samples of shape {tuple(data.image_shape)}, but the model "
            f"expects {tuple(experiment.model.image_shape)}; set image_shape in the recipe to the shape of one sample "
            f"(or --set 'image_shape=[{', '.join(map(str, data.image_shape))}]')"
        )
    return data


def _new_run_dir(out: str | None, recipe: str | None) -> Path:
    if out:
        path = Path(out)
        if path.exists() and any(path.iterdir()):
            raise LatentkitError(
                f"output folder {str(path)!r} is not empty; continue that run with `latentkit train --resume {path}`, "
                f"or choose another --out"
            )
        return path
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{Path(recipe).stem if recipe else 'run'}-{stamp}"
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def prepare_run(
    experiment: Experiment,
    *,
    recipe: str | None = None,
    recipe_config: dict | None = None,
    recipe_class: str | None = None,
    out: str | None = None,
    data_root: str | None = None,
    resume: str | None = None,
    quiet: bool = False,
) -> Trainer:
    """Build model, objective, data and trainer for a new run or a resumed one.

    A new run's ``config.json`` records ``recipe`` (the file), ``recipe_config`` (the config as JSON) and
    ``recipe_class`` (its class's import path, see :func:`latentkit.assembly.recipe.config_class_path`)."""
    registry = get_registry()
    processes = initialise(experiment.train.device)  # a single process unless launched by torchrun
    if resume:
        run_dir, run_config = Path(resume), read_run_config(Path(resume))
        data_root = data_root or run_config.get("data_root")  # a resumed run reads the data it started with
    else:
        run_dir = _name_run_dir(processes, out, recipe)
        run_config = _new_run_config(recipe, recipe_config, recipe_class, registry)
    torch.manual_seed(experiment.train.seed)
    model = build_model(experiment.model, registry).to(processes.device(experiment.train.device))
    data = _load_data(experiment, data_root)
    objective = build_objective(experiment.objective, model, registry, dataset_size=len(data))
    _record_run(run_dir, run_config, experiment, data_root, processes)
    trainer = Trainer(
        VAETask(model, objective, experiment.train.seed), data, experiment.train, run_dir,
        hooks=get_plugin_manager().hook,
        checkpoint_metadata=checkpoint_config(experiment.model, experiment.objective, experiment.dataset,
                                              registry=registry),
        run_config=run_config, processes=processes, quiet=quiet,
    )
    if resume and trainer.resume_from_latest() == 0:
        raise LatentkitError(f"run {str(run_dir)!r} has no complete checkpoint to resume from; start it again")
    return trainer


def _name_run_dir(processes: Processes, out: str | None, recipe: str | None) -> Path:
    """A new run's directory: rank 0 names it (a time stamp could differ between ranks) and tells the others."""
    run_dir = _new_run_dir(out, recipe) if processes.is_main else None
    return Path(processes.broadcast(None if run_dir is None else str(run_dir)))


def _new_run_config(
    recipe: str | None, recipe_config: dict | None, recipe_class: str | None, registry: Registry
) -> dict:
    return {
        "format": RUN_FORMAT,
        "latentkit_version": latentkit.__version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "recipe": recipe,
        "recipe_config": recipe_config,
        "recipe_class": recipe_class,
        "versions": registry.versions(),
        "source": source_revision(),
    }


def source_revision() -> dict | None:
    """The git commit of the latentkit checkout this run's code came from, and whether it had uncommitted changes.

    Why: a figure quoted from a run is only reproducible with the code that trained it, and a version number does not
    change between commits. ``None`` when latentkit is not a git checkout (an installed wheel) or git is missing."""
    root = Path(latentkit.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def _record_run(
    run_dir: Path, run_config: dict, experiment: Experiment, data_root: str | None, processes: Processes
) -> None:
    """Bring the run's config.json up to date (--steps may have changed on resume); rank 0 writes it."""
    run_config["experiment"] = experiment.to_dict()
    run_config["data_root"] = None if data_root is None else str(Path(data_root).resolve())
    if processes.world_size > 1:
        run_config["distributed"] = {"world_size": processes.world_size, "backend": processes.backend}
    if processes.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_CONFIG, run_config)


def read_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise LatentkitError(
            f"{str(run_dir)!r} is not a run directory (no {RUN_CONFIG}); pass the folder `latentkit train` printed"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LatentkitError(f"{str(path)!r} is corrupt ({exc})") from None
    if config.get("format") != RUN_FORMAT:
        raise LatentkitError(f"{str(path)!r} is not a latentkit run config")
    return config


def branch_run(checkpoint: str, out: str, train_changes: dict[str, Any]) -> Path:
    """A new run directory ``out`` that continues from ``checkpoint`` with some training settings changed.

    Why: to ask what a setting does from a given state — the last steps in another precision, a falling learning rate
    from step N — the branch must start from the very weights, optimiser state and random state of the parent, and
    only the training settings may differ (a model, objective or data change is a new run). ``checkpoint`` is a
    step folder (``RUN/checkpoints/step-N``) or ``RUN/final``; the branch holds a copy of it as its only checkpoint and
    records ``branched_from`` (the checkpoint, its step and the changes) in its ``config.json``; resume it with
    :func:`prepare_run` (``resume=out``). The parent is not touched."""
    source = Path(checkpoint)
    meta_path = source / "config.json"
    run_dir = source.parent.parent if source.parent.name == "checkpoints" else source.parent
    if not meta_path.is_file() or not (run_dir / RUN_CONFIG).is_file():
        raise LatentkitError(
            f"{checkpoint!r} is not a checkpoint folder of a run: branch from RUN/checkpoints/step-N or RUN/final"
        )
    parent = read_run_config(run_dir)
    meta = json.loads(meta_path.read_text())
    step = int(meta["step"])
    experiment = experiment_from_dict(parent["experiment"])
    # checked as any saved config is: an unknown setting is refused by name, each value by its rule
    train = TrainConfig.from_dict({**attrs.asdict(experiment.train), **train_changes})
    if train.steps <= step:
        raise ConfigError(f"the branch starts after step {step} of its parent; ask for more steps (--steps, the total)")
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise LatentkitError(f"{out!r} is not empty; a branch goes into a new directory")
    folder = target / "checkpoints" / f"step-{step:08d}"
    shutil.copytree(source, folder)
    meta["train"] = attrs.asdict(train)
    write_json(folder / "config.json", meta)
    config = {**parent, "experiment": {**parent["experiment"], "train": attrs.asdict(train)},
              "branched_from": {"checkpoint": str(source.resolve()), "step": step, "train_changes": train_changes}}
    write_json(target / RUN_CONFIG, config)
    return target


def resume_experiment(run_dir: str, steps: int | None, device: str | None) -> Experiment:
    config = read_run_config(Path(run_dir))
    experiment = experiment_from_dict(config["experiment"])
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["steps"] = steps
    if device is not None:
        changes["device"] = device
    return attrs.evolve(experiment, train=attrs.evolve(experiment.train, **changes)) if changes else experiment
