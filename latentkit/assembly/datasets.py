"""From a recipe's or checkpoint's ``dataset`` entry to a provider and its loaded split."""

from __future__ import annotations

import os
from collections.abc import Mapping

from latentkit.specs import Component
from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.errors import ConfigError
from latentkit.plugins import Registry, get_registry


def as_component(dataset: Component | Mapping | str, what: str = "dataset") -> Component:
    """``"mnist"``, ``{"name": "mnist", "options": {...}}`` or a :class:`Component`, as a :class:`Component`."""
    if isinstance(dataset, Component):
        return dataset
    return Component.from_dict(dataset, what)


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
