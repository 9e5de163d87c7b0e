"""Build modules from specs through the plugin registry (the only place names become objects)."""

from __future__ import annotations

from latentkit.core import JointLatent, JointLatentVAE, Objective
from latentkit.plugins import Registry, get_registry
from latentkit.specs import Component, ModelSpec


def build_latent(spec: ModelSpec, registry: Registry | None = None) -> JointLatent:
    registry = registry or get_registry()
    return JointLatent({ch.name: registry.families.build(ch.family, ch.options) for ch in spec.channels})


def build_model(spec: ModelSpec, registry: Registry | None = None) -> JointLatentVAE:
    """A freshly initialised model (PyTorch default initialisation, as the original)."""
    registry = registry or get_registry()
    latent = build_latent(spec, registry)
    network = registry.networks.build(spec.network.name, spec.network.options)
    encoder = network.encoder(spec.image_shape, latent.param_size)
    decoder = network.decoder(latent.sample_size, spec.image_shape)
    return JointLatentVAE(encoder, latent, decoder, spec.image_shape)


def build_objective(
    objective: Component, model: JointLatentVAE, registry: Registry | None = None, dataset_size: int | None = None
) -> Objective:
    """Build the objective a component names, with its own options and the context values its factory declares
    (``latent``, ``image_shape``, ``registry``; ``dataset_size``, the training set's size when known, for estimators of
    the aggregate posterior that weigh a batch by it)."""
    registry = registry or get_registry()
    return registry.build_objective(
        objective.name, objective.options, latent=model.latent, image_shape=model.image_shape,
        dataset_size=None if dataset_size is None else int(dataset_size),
    )

