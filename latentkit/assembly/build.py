"""Build modules from specs through the plugin registry (the only place names become objects)."""

from __future__ import annotations

import inspect
from typing import Any

from latentkit.assembly.specs import Component, ModelSpec
from latentkit.core import JointLatent, JointVAE, Objective
from latentkit.errors import ConfigError
from latentkit.plugins import Registry, get_registry


def _construct(kind: str, factory: Any, name: str, options: dict, **fixed: Any) -> Any:
    try:
        return factory(**fixed, **options)
    except TypeError as exc:
        raise ConfigError(
            f"{kind} {name!r} cannot be built with options {options}: {exc} "
            f"(are some not options of the {name} {kind}?)"
        ) from None


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
    options = dict(objective.options)
    if dataset_size is not None and "dataset_size" not in options and _accepts(
        registry.objectives.get(objective.name), "dataset_size"
    ):
        options["dataset_size"] = int(dataset_size)
    return build_named_objective(objective.name, model.latent, model.image_shape, registry, options)


def build_named_objective(
    name: str, latent: JointLatent, image_shape: tuple[int, ...], registry: Registry, options: dict
) -> Objective:
    """The objective registered as ``name``, built with ``options``: the path :func:`build_objective` takes, and the one
    an objective that adds a term to another (``tcvae`` on ``jointvae``) uses to build its base — through the
    registry, never by importing another plugin."""
    factory = registry.objectives.get(name)
    built = _construct("objective", factory, name, options, latent=latent, image_shape=image_shape, registry=registry)
    if not callable(built):
        raise ConfigError(f"objective {name!r} did not build a callable objective")
    return built


def build_extension(
    base_name: str, cls: type, latent: JointLatent, image_shape: tuple[int, ...], registry: Registry, options: dict
) -> Objective:
    """An objective ``cls(base=..., latent=..., **own)`` that adds terms to the objective registered as ``base_name``:
    the options ``cls`` declares go to it, every other one builds the base (so each default is written once, in
    ``cls``)."""
    declared = set(inspect.signature(cls).parameters) - {"base", "latent"}
    own = {k: v for k, v in options.items() if k in declared}
    rest = {k: v for k, v in options.items() if k not in declared}
    base = build_named_objective(base_name, latent, image_shape, registry, rest)
    return _construct("objective", cls, cls.objective_name or cls.__name__, own, base=base, latent=latent)


def _accepts(factory: Any, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
