"""Self-describing checkpoint folders: safetensors for tensors, JSON for everything else.

A folder holds ``config.json`` (format, model spec, objective, data set, plugin versions, step) and
``model.safetensors``; a training checkpoint adds more files (optimiser moments, RNG states). The folder is written
whole into a temporary sibling and swapped in, so a killed write leaves the previous checkpoint intact. Loading reads
only JSON and safetensors: it never executes code from a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

import latentkit
from latentkit.assembly.build import build_model
from latentkit.errors import CheckpointError, LatentkitError
from latentkit.plugins import Registry, get_registry
from latentkit.specs import Component, ModelSpec
from latentkit.train.checkpoints import (  # noqa: F401  (the folder format is the trainer's; re-exported here)
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    load_weights,
    read_config,
    read_tensors,
    save_model_checkpoint,
    tensors_to_bytes,
    write_folder,
)


def checkpoint_config(
    spec: ModelSpec,
    objective: Component | None = None,
    dataset: Component | None = None,
    step: int = 0,
    registry: Registry | None = None,
    **extra: Any,
) -> dict:
    registry = registry or get_registry()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "latentkit_version": latentkit.__version__,
        "model": spec.to_dict(),
        "objective": None if objective is None else {"name": objective.name, "options": objective.options},
        "dataset": None if dataset is None else {"name": dataset.name, "options": dataset.options},
        "step": int(step),
        "versions": registry.versions(),
        **extra,
    }


def resolve_checkpoint(folder: str | os.PathLike) -> Path:
    """A checkpoint folder itself, or for a run directory its ``final`` checkpoint, else its newest step checkpoint."""
    folder = Path(folder)
    if (folder / CONFIG_FILE).is_file():
        try:
            if json.loads((folder / CONFIG_FILE).read_text()).get("format") == FORMAT:
                return folder
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return folder  # let read_config report the corruption
    if (folder / "final" / CONFIG_FILE).is_file():
        return folder / "final"
    steps = sorted(p for p in (folder / "checkpoints").glob("step-*") if (p / CONFIG_FILE).is_file())
    return steps[-1] if steps else folder


def load_model(folder: str | os.PathLike, registry: Registry | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint folder (or run directory) describes and load its weights.

    Returns ``(model, config)`` with the model in eval mode.
    """
    folder = resolve_checkpoint(folder)
    config = read_config(folder)
    try:
        spec = ModelSpec.from_dict(config.get("model"))
        model = build_model(spec, registry)
    except LatentkitError as exc:
        raise CheckpointError(f"checkpoint {str(folder)!r} describes a model latentkit cannot build: {exc}") from None
    load_weights(model, read_tensors(Path(folder) / MODEL_FILE), str(folder))
    model.eval()
    return model, config
