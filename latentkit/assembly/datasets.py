"""From a recipe's or checkpoint's ``dataset`` entry to a provider and its loaded split."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from latentkit.assembly.recipe import json_or_text
from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.errors import ConfigError
from latentkit.plugins import Registry, get_registry
from latentkit.specs import Component


def as_component(dataset: Component | Mapping | str, what: str = "dataset") -> Component:
    """``"mnist"``, ``{"name": "mnist", "options": {...}}`` or a :class:`Component`, as a :class:`Component`."""
    if isinstance(dataset, Component):
        return dataset
    return Component.from_dict(dataset, what)


def parse_dataset_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["source=procedural", "n=1000"]`` (``--dataset-option``, repeatable) to ``{"source": "procedural", "n": 1000}``.

    Values are JSON (``1000``, ``0.5``, ``true``, ``null``, ``"text"``), anything else a string, as with ``--set``; a
    later setting of the same key wins. Whether the data set accepts the keys is checked when it is built
    (:func:`build_provider`), which lists the options it has."""
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier():
            raise ConfigError(
                f"data-set option {item!r} must look like KEY=VALUE with a JSON or plain-text value, e.g. "
                f"--dataset-option source=procedural or --dataset-option n=1000"
            )
        options[key] = json_or_text(raw)
    return options


def override_dataset(
    recorded: Component | Mapping | str | None,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    what: str = "the checkpoint's dataset",
) -> Component | None:
    """The data set entry ``recorded`` (a checkpoint's or recipe's) with a command line's ``--dataset NAME`` and
    ``--dataset-option KEY=VALUE`` applied; ``None`` when nothing is recorded and no name is given.

    Why the rule: the same ``name`` (or none) keeps the recorded options and updates them with ``options`` (e.g.
    ``source=procedural`` for a dSprites checkpoint trained on the npz); another ``name`` starts from ``options``
    alone, since the recorded options belong to another data set's provider and would be rejected by this one."""
    base = as_component(recorded, what) if recorded else None
    if name is not None and (base is None or name != base.name):
        return Component(name, dict(options or {}))
    if base is None:
        if options:
            raise ConfigError(f"data-set options {dict(options)} were given, but {what} names no data set: "
                              f"name one with --dataset NAME")
        return None
    return Component(base.name, {**base.options, **dict(options or {})})


def build_provider(dataset: Component | Mapping | str, registry: Registry | None = None) -> DatasetProvider:
    """The registered provider named by ``dataset``, built with its options (unknown name or option: a clear error)."""
    registry = registry or get_registry()
    component = as_component(dataset)
    provider = registry.datasets.build(component.name, component.options)
    if not isinstance(provider, DatasetProvider):
        raise ConfigError(f"data set {component.name!r} did not build a DatasetProvider (got {type(provider).__name__})")
    return provider


def load_dataset(
    dataset: Component | Mapping | str,
    root: str | os.PathLike | None,
    split: str = "train",
    registry: Registry | None = None,
) -> ImageData:
    """Build the provider and load ``split`` from ``root`` (see :func:`latentkit.data.provider.resolve_root`)."""
    provider = build_provider(dataset, registry)
    provider.check_split(split)
    return provider.load(root, split)


def check_given_dataset_fits(dataset: Component, provider: DatasetProvider, model_shape: tuple[int, ...],
                             where: str) -> None:
    """A :class:`ConfigError` when a data set given on the command line (``--dataset``, ``--dataset-option``) yields
    samples of another shape than the model of ``where`` (a folder) reads: the user's choice to fix, said before any
    work."""
    shape = tuple(provider.image_shape)
    if shape != tuple(model_shape):
        raise ConfigError(
            f"data set {dataset.name!r} with options {dataset.options} yields samples of shape {shape}, but "
            f"{where!r} holds a model for {tuple(model_shape)}; choose a data set (--dataset) or options "
            f"(--dataset-option) that fit it"
        )
