"""Checkpoint folders: safetensors for tensors, JSON for everything else — the trainer's own I/O.

A *model checkpoint* folder holds ``config.json`` (its ``format``, the step, and whatever metadata the caller adds:
the assembly writes the model spec, objective, data set and plugin versions) and ``model.safetensors``. A *training
checkpoint* is a model checkpoint with more files — the optimiser's moments (``optimizer.safetensors`` and
``optimizer.json``), the RNG states (``rng.safetensors``) and one ``NAME.safetensors`` per extra module the task trains
beside its model (:meth:`~latentkit.train.task.TrainingTask.extra_modules`; ``objective.safetensors`` for an objective's
discriminator) — so ``latentkit evaluate`` reads any of them and a resumed run continues bit-identically.

A folder is written whole into a temporary hidden sibling and swapped in, so a killed write leaves the previous
checkpoint intact. Loading reads only JSON and safetensors: it never executes code from a file. This module lives in
the trainer, which must not import the assembly; :mod:`latentkit.assembly.checkpoint` builds on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from latentkit._atomic import write_bytes
from latentkit.errors import CheckpointError

FORMAT = "latentkit-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
RNG_FILE = "rng.safetensors"
#: names an extra module cannot take: its file would replace one of the checkpoint's own
RESERVED_NAMES = frozenset(Path(name).stem for name in (MODEL_FILE, OPTIMIZER_TENSORS, RNG_FILE)) | {"config"}
CHECKPOINTS = "checkpoints"
FINAL = "final"  #: the completed run's last checkpoint, beside checkpoints/
_STEP_DIR = re.compile(r"^step-(\d+)$")


# --- folders of files ------------------------------------------------------------------------------------------------
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


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing; the checkpoint folder is incomplete")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{str(path)!r} is corrupt ({exc}); restore it or use another checkpoint") from None


# --- model checkpoints -----------------------------------------------------------------------------------------------
def save_model_checkpoint(
    folder: str | os.PathLike,
    model: nn.Module,
    config: dict,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``model``'s weights and ``config`` (a dict with ``"format": FORMAT``) as a checkpoint folder."""
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


def load_weights(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    where: str,
    hint: str = f"the weights and {CONFIG_FILE} come from different models — use the config written with these weights",
) -> None:
    """Load ``tensors`` into ``model``, or name every missing, unexpected and misshapen entry."""
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


# --- training checkpoints --------------------------------------------------------------------------------------------
def extra_file(name: str) -> str:
    """The file an extra module named ``name`` is saved in."""
    return f"{name}.safetensors"


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
    _match_state_layout(optimizer)


def _match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimiser moments their parameter's memory layout (checkpoints store them contiguous)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _rng_tensors() -> dict[str, torch.Tensor]:
    """torch's global RNG states: training noise is keyed per sample (:class:`~latentkit.core.SampleNoise`), but a
    task may still draw from the global generator (dropout), and a resumed run must draw what an uninterrupted one
    would."""
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state()
    return out


def save_training_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: dict,
    extra_modules: dict[str, nn.Module] | None = None,
) -> Path:
    """Write a training checkpoint: the model checkpoint, the optimiser, the RNG states and each extra module."""
    files = _optimizer_files(optimizer)
    files[RNG_FILE] = tensors_to_bytes(_rng_tensors())
    for name, module in (extra_modules or {}).items():
        files[extra_file(name)] = tensors_to_bytes({k: v.detach() for k, v in module.state_dict().items()})
    return save_model_checkpoint(folder, model, config, extra_files=files)


def load_training_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra_modules: dict[str, nn.Module] | None = None,
) -> dict:
    """Restore what :func:`save_training_checkpoint` wrote into the given objects; returns the checkpoint's config."""
    folder = Path(folder)
    config = read_config(folder)
    load_weights(model, read_tensors(folder / MODEL_FILE), str(folder))
    for name, module in (extra_modules or {}).items():
        path = folder / extra_file(name)
        if not path.is_file():
            raise CheckpointError(
                f"{str(folder)!r} has no {extra_file(name)}: it was written by a run that trained no {name!r} beside "
                f"its model, so this run (which does) cannot resume from it"
            )
        load_weights(module, read_tensors(path), str(path))
    _load_optimizer(optimizer, folder)
    rng = read_tensors(folder / RNG_FILE)  # checkpoints before per-sample noise also hold "generator": unused now
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    return config


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete step checkpoints of a run, oldest first (temporary, half-written folders are hidden names)."""
    root = Path(run_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / CONFIG_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def step_folder(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
