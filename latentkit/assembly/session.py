"""Start or resume a run: build everything an :class:`Experiment` names, then hand it to the :class:`Trainer`."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import attrs
import torch

import latentkit
from latentkit._atomic import write_json
from latentkit.assembly.build import build_model, build_objective
from latentkit.assembly.checkpoint import checkpoint_config
from latentkit.assembly.specs import Component, ModelSpec
from latentkit.assembly.datasets import load_dataset
from latentkit.errors import ConfigError, LatentkitError
from latentkit.plugins import get_plugin_manager, get_registry
from latentkit.assembly.recipe import Experiment, TrainConfig
from latentkit.train.distributed import NoHooks, initialise
from latentkit.train.run import Run
from latentkit.train.task import VAETask
from latentkit.train.trainer import Trainer
from latentkit.devices import resolve_device

RUN_CONFIG = "config.json"
RUN_FORMAT = "latentkit-run"


def experiment_from_dict(data: dict) -> Experiment:
    try:
        train = TrainConfig(**data["train"])
        return Experiment(
            model=ModelSpec.from_dict(data["model"]),
            objective=Component.from_dict(data["objective"], "objective"),
            dataset=Component.from_dict(data["dataset"], "dataset"),
            train=train,
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"the run's experiment description is incomplete or malformed ({exc})") from None


def _load_data(experiment: Experiment, data_root: str | None, device: torch.device):
    data = load_dataset(experiment.dataset, data_root, "train")
    if tuple(data.image_shape) != tuple(experiment.model.image_shape):
        raise ConfigError(
            f"data set {experiment.dataset.name!r} yields samples of shape {tuple(data.image_shape)}, but the model "
            f"expects {tuple(experiment.model.image_shape)}; set image_shape in the recipe to the shape of one sample "
            f"(or --set 'image_shape=[{', '.join(map(str, data.image_shape))}]')"
        )
    return attrs.evolve(data, images=data.images.to(device))


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
    out: str | None = None,
    data_root: str | None = None,
    resume: str | None = None,
    quiet: bool = False,
) -> Trainer:
    """Build model, objective, data and trainer for a new run or a resumed one."""
    registry = get_registry()
    device = resolve_device(experiment.train.device)
    distributed = initialise(device.type)  # None unless launched by torchrun with several processes
    if distributed is not None and device.type == "cuda":
        device = torch.device("cuda", distributed.local_rank)
    if resume:
        run_dir = Path(resume)
        run_config = read_run_config(run_dir)
        data_root = data_root or run_config.get("data_root")  # a resumed run reads the data it started with
    else:
        run_dir = _new_run_dir(out, recipe) if distributed is None or distributed.is_main else None
        if distributed is not None:  # rank 0 names the run directory (a time stamp could differ between ranks)
            run_dir = Path(distributed.broadcast(None if run_dir is None else str(run_dir)))
        run_config = {
            "format": RUN_FORMAT,
            "latentkit_version": latentkit.__version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "recipe": recipe,
            "recipe_config": recipe_config,
            "experiment": experiment.to_dict(),
            "versions": registry.versions(),
        }
    if experiment.train.threads:
        torch.set_num_threads(experiment.train.threads)
    torch.manual_seed(experiment.train.seed)
    model = build_model(experiment.model, registry).to(device)
    data = _load_data(experiment, data_root, device)
    objective = build_objective(experiment.objective, model, registry, dataset_size=len(data))
    run_config["experiment"] = experiment.to_dict()  # --steps may have changed on resume
    run_config["data_root"] = None if data_root is None else str(Path(data_root).resolve())
    if distributed is not None:
        run_config["distributed"] = {"world_size": distributed.world_size, "backend": distributed.backend}
    if distributed is None or distributed.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_CONFIG, run_config)
    run = Run(
        directory=run_dir,
        config=run_config,
        total_steps=experiment.train.steps,
        model=model,
        device=device,
        data=data,
        quiet=quiet,
    )
    ckpt_config = checkpoint_config(experiment.model, experiment.objective, experiment.dataset, registry=registry)
    ckpt_config["train"] = attrs.asdict(experiment.train)
    hook = get_plugin_manager().hook if distributed is None or distributed.is_main else NoHooks()
    trainer = Trainer(VAETask(model, objective, experiment.train.seed), run, experiment.train, ckpt_config, hook, distributed)
    if resume:
        if trainer.resume_from_latest() == 0:
            raise LatentkitError(f"run {str(run_dir)!r} has no complete checkpoint to resume from; start it again")
    return trainer


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


def resume_experiment(run_dir: str, steps: int | None, device: str | None) -> Experiment:
    config = read_run_config(Path(run_dir))
    experiment = experiment_from_dict(config["experiment"])
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["steps"] = steps
    if device is not None:
        changes["device"] = device
    return attrs.evolve(experiment, train=attrs.evolve(experiment.train, **changes)) if changes else experiment
