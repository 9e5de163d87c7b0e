"""The view of a run that hooks receive: enough to log, draw and evaluate, nothing of the trainer's internals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from latentkit.data.provider import ImageData


@attrs.define(eq=False)
class Run:
    """What a run-time hook is handed: the run's directory, settings, progress, model and data (the trainer keeps it up
    to date; hooks read it and keep their own state in ``plugin_state``).

    Why a view: a plugin that reads only this never depends on the trainer's internals, so the trainer can change
    without breaking plugins.

    Attributes:
        directory: the run directory.
        config: the run's saved configuration (recipe config, experiment, versions).
        total_steps: the step the run trains to.
        model: the module being trained.
        device: the training device.
        data: the training data (uint8 images or float32 samples, on ``device``), or ``None``.
        step: the last completed step.
        resumed_from: the step of the checkpoint the run resumed from, else ``None``.
        last_checkpoint: the folder of the newest checkpoint written, else ``None``.
        plugin_state: per-run scratch space for plugins, by plugin name.
        quiet: plugins should print nothing (tests).
        hooks: the relay the run-time hooks are called through; a plugin may call another hook through it
            (``run.hooks.latentkit_log_images(run=run, step=step, images=...)``).
    """

    directory: Path  #: the run directory
    config: dict  #: the run's saved configuration (recipe config, experiment, versions)
    total_steps: int
    model: nn.Module
    device: torch.device
    data: ImageData | None = None  #: the training data (uint8 images or float32 samples, on ``device``)
    step: int = 0  #: the last completed step
    resumed_from: int | None = None
    last_checkpoint: Path | None = None
    plugin_state: dict[str, Any] = attrs.field(factory=dict)  #: per-run scratch space for plugins, by plugin name
    quiet: bool = False  #: plugins should print nothing (tests)
    #: the relay the trainer calls the run-time hooks through (``relay.latentkit_step_end(run=..., ...)``); a plugin
    #: may call another hook through it rather than reaching for the plugin that implements it
    hooks: Any = None
