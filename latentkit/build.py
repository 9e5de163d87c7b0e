"""Build modules from specs through the plugin registry (the only place names become objects)."""

from __future__ import annotations

import inspect
from typing import Any

from latentkit.config import Component, ModelSpec
from latentkit.core import JointLatent, JointVAE, Objective
from latentkit.errors import ConfigError
from latentkit.plugins import Registry, get_registry


def _construct(kind: str, factory: Any, name: str, options: dict, **fixed: Any) -> Any:
    try:
        return factory(**fixed, **options)
    except TypeError as exc:
        raise ConfigError(f"{kind} {name!r} cannot be built with options {options}: {exc}") from None


def build_latent(spec: ModelSpec, registry: Registry | None = None) -> JointLatent:
    registry = registry or get_registry()
    channels = {
        ch.name: _construct("latent family", registry.families.get(ch.family), ch.family, ch.options)
        for ch in spec.channels
    }
    return JointLatent(channels)


def build_model(spec: ModelSpec, registry: Registry | None = None) -> JointVAE:
    """A freshly initialised model (PyTorch default initialisation, as the original)."""
    registry = registry or get_registry()
    latent = build_latent(spec, registry)
    network = _construct("network", registry.networks.get(spec.network.name), spec.network.name, spec.network.options)
    encoder = network.encoder(spec.image_shape, latent.param_size)
    decoder = network.decoder(latent.sample_size, spec.image_shape)
    return JointVAE(encoder, latent, decoder, spec.image_shape)


def build_objective(
    objective: Component, model: JointVAE, registry: Registry | None = None, dataset_size: int | None = None
) -> Objective:
    """Build the objective a component names. A factory that declares a ``dataset_size`` parameter (estimators of the
    aggregate posterior weigh a batch by it) receives the training set's size, when known."""
    registry = registry or get_registry()
    factory = registry.objectives.get(objective.name)
    fixed: dict[str, Any] = {"latent": model.latent, "image_shape": model.image_shape, "registry": registry}
    if dataset_size is not None and "dataset_size" not in objective.options and _accepts(factory, "dataset_size"):
        fixed["dataset_size"] = int(dataset_size)
    built = _construct("objective", factory, objective.name, objective.options, **fixed)
    if not callable(built):
        raise ConfigError(f"objective {objective.name!r} did not build a callable objective")
    return built


def _accepts(factory: Any, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
