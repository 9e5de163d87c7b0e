"""Evaluate a checkpoint folder with registered metrics on a split of the data set it was trained on."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from latentkit.checkpoint import load_model
from latentkit.devices import resolve_device
from latentkit.data.build import as_component, build_provider
from latentkit.errors import CheckpointError, ConfigError, LatentkitError
from latentkit.plugins import Registry, get_registry


def evaluate_checkpoint(
    folder: str | os.PathLike,
    metrics: Sequence[str],
    data_root: str | os.PathLike | None,
    split: str = "test",
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
    registry: Registry | None = None,
) -> dict:
    """Run each metric on ``split`` of the checkpoint's data set (from its ``config.json``'s ``dataset`` entry).

    Returns ``{"checkpoint", "dataset", "split", "metrics": {name: {...}}}``. Metric names are checked before anything
    is loaded; every user error is a :class:`~latentkit.errors.LatentkitError`.
    """
    registry = registry or get_registry()
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise ConfigError(f"name at least one metric to evaluate; known metrics: {', '.join(registry.metrics.names())}")
    metric_fns = {name: registry.metrics.get(name) for name in metrics}  # unknown name: lists the known ones
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive whole number, got {batch_size!r}")
    dev = resolve_device(device)

    model, config = load_model(folder, registry)
    if not config.get("dataset"):
        raise CheckpointError(
            f"checkpoint {str(folder)!r} does not record the data set it was trained on (its config.json has no "
            f"'dataset'), so there is nothing to evaluate it on"
        )
    try:
        dataset = as_component(config["dataset"], "the checkpoint's dataset")
        provider = build_provider(dataset, registry)
    except LatentkitError as exc:
        raise CheckpointError(f"checkpoint {str(folder)!r} names a data set latentkit cannot load: {exc}") from None
    if tuple(provider.image_shape) != tuple(model.image_shape):
        raise CheckpointError(
            f"checkpoint {str(folder)!r} holds a model for images of shape {tuple(model.image_shape)}, but its data set "
            f"{dataset.name!r} with options {dataset.options} yields {tuple(provider.image_shape)}"
        )
    provider.check_split(split)
    data = provider.load(data_root, split)
    model.to(dev)
    results = {name: fn(model, data, batch_size=batch_size, device=dev) for name, fn in metric_fns.items()}
    return {"checkpoint": str(folder), "dataset": dataset.name, "split": split, "metrics": results}
