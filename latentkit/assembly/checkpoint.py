"""Self-describing checkpoint folders: safetensors for tensors, JSON for everything else.

A folder holds ``config.json`` (format, model spec, objective, data set, plugin versions, step) and
``model.safetensors``; a training checkpoint adds more files (optimiser moments, RNG states). The folder is written
whole into a temporary sibling and swapped in, so a killed write leaves the previous checkpoint intact. Loading reads
only JSON and safetensors: it never executes code from a file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

import latentkit
from latentkit._atomic import write_bytes
from latentkit.assembly.build import build_model
from latentkit.assembly.specs import Component, ModelSpec
from latentkit.errors import CheckpointError, LatentkitError
from latentkit.plugins import Registry, get_registry

FORMAT = "latentkit-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})


def write_folder(folder: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name → content) as the folder ``folder``, replacing any previous one atomically enough that
    an interrupted write never leaves a half-written folder in its place."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, data in files.items():
        write_bytes(tmp / name, data)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(folder.parent)
    return folder


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def save_model_checkpoint(
    folder: str | os.PathLike,
    model: nn.Module,
    config: dict,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``model``'s weights and ``config`` (from :func:`checkpoint_config`) as a checkpoint folder."""
    files = {MODEL_FILE: tensors_to_bytes(model.state_dict())}
    files.update(extra_files or {})
    files[CONFIG_FILE] = (json.dumps(config, indent=2) + "\n").encode()
    return write_folder(folder, files)


def read_config(folder: str | os.PathLike) -> dict:
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {str(folder)!r} does not exist; pass a folder written by latentkit (it holds "
            f"{CONFIG_FILE} and {MODEL_FILE}), e.g. a run's checkpoint or the output of `latentkit import-jointvae`"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{str(folder)!r} is not a latentkit checkpoint: it has no {CONFIG_FILE}. "
            f"To use a checkpoint of the original JointVAE code, convert it with `latentkit import-jointvae`."
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is corrupt (not valid JSON: {exc}); restore it or use another checkpoint") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a latentkit checkpoint config (its 'format' is not {FORMAT!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} was written by a newer latentkit (format {config['format_version']}); upgrade latentkit"
        )
    return config


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing; the checkpoint folder is incomplete")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{str(path)!r} is corrupt ({exc}); restore it or use another checkpoint") from None


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


def load_weights(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    where: str,
    hint: str = f"the weights and {CONFIG_FILE} come from different models — use the config written with these weights",
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(expected[k].shape) != tuple(tensors[k].shape))
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            details.append(
                "wrong shapes " + ", ".join(f"{k}: {tuple(tensors[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:5])
            )
        raise CheckpointError(
            f"the weights in {where!r} do not match the model its config describes ({'; '.join(details)}); {hint}"
        )
    model.load_state_dict(tensors)
