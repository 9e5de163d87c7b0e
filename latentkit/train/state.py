"""Training checkpoints: model, optimiser moments and RNG states as safetensors, everything else as JSON.

A training checkpoint is a model checkpoint folder (loadable by :func:`latentkit.assembly.checkpoint.load_model`) with three
more files, so ``latentkit evaluate`` works on any of them and ``--resume`` continues bit-identically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentkit.assembly.checkpoint import (
    CONFIG_FILE,
    load_weights,
    read_config,
    read_tensors,
    save_model_checkpoint,
    tensors_to_bytes,
)
from latentkit.errors import CheckpointError

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
RNG_FILE = "rng.safetensors"
AUXILIARY_FILE = "objective.safetensors"  #: parameters an objective trains beside the model (a discriminator)
CHECKPOINTS = "checkpoints"
FINAL = "final"  #: the completed run's last checkpoint, beside checkpoints/
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _optimizer_files(optimizer: torch.optim.Optimizer) -> dict[str, bytes]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    meta = {"param_groups": state["param_groups"], "scalars": scalars, "class": type(optimizer).__name__}
    return {OPTIMIZER_TENSORS: tensors_to_bytes(tensors), OPTIMIZER_JSON: (json.dumps(meta, indent=1) + "\n").encode()}


def _load_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    tensors = read_tensors(folder / OPTIMIZER_TENSORS)
    try:
        meta = json.loads((folder / OPTIMIZER_JSON).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{str(folder / OPTIMIZER_JSON)!r} is missing or corrupt ({exc})") from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"the optimiser state in {str(folder)!r} does not match the model ({exc})") from None


def _rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    out = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state()
    return out


def save_training_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    config: dict,
    auxiliary: nn.Module | None = None,
) -> Path:
    files = _optimizer_files(optimizer)
    files[RNG_FILE] = tensors_to_bytes(_rng_tensors(generator))
    if auxiliary is not None:
        state = {k: v.detach().contiguous() for k, v in auxiliary.state_dict().items()}
        files[AUXILIARY_FILE] = tensors_to_bytes(state)
    return save_model_checkpoint(folder, model, config, extra_files=files)


def load_training_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    auxiliary: nn.Module | None = None,
) -> dict:
    config = read_config(folder)
    load_weights(model, read_tensors(folder / "model.safetensors"), str(folder))
    if auxiliary is not None:
        if not (folder / AUXILIARY_FILE).is_file():
            raise CheckpointError(
                f"{str(folder)!r} has no {AUXILIARY_FILE}: it was written by a run whose objective trains no "
                f"parameters of its own, so this run (whose objective does) cannot resume from it"
            )
        load_weights(auxiliary, read_tensors(folder / AUXILIARY_FILE), str(folder / AUXILIARY_FILE))
    _load_optimizer(optimizer, folder)
    rng = read_tensors(folder / RNG_FILE)
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    return config


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints of a run, oldest first (temporary, half-written folders are hidden names)."""
    root = Path(run_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / CONFIG_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def step_folder(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
