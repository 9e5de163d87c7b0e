"""Specifications: plain data (attrs) naming plugins and their options, saved as JSON, built into objects by the
assembly layer (:mod:`latentkit.assembly`) through the plugin registry.

A spec names plugins and their options; it never holds code, so a checkpoint folder can be reloaded from its JSON
alone, and loading a checkpoint never executes anything from a file. Why a foundation module, not part of the
assembly: recipe configs that live in plugin packages (``latentkit_plugins.jointvae_recipe``) build these specs, and
plugins may import this module but never :mod:`latentkit.assembly`. It names no plugin: every name comes from a recipe
or a saved spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from latentkit.errors import ConfigError
from latentkit.train.config import TrainConfig  # the trainer owns its settings; an experiment composes them


def _options(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"options must be a mapping of keyword arguments, got {value!r}")
    return dict(value)


@attrs.frozen
class Component:
    """A plugin by registry name, with the keyword options it is built with."""

    name: str
    options: dict = attrs.field(factory=dict, converter=_options)

    @classmethod
    def from_dict(cls, data: Any, what: str) -> Component:
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ConfigError(f"{what} must be {{'name': ..., 'options': {{...}}}}, got {data!r}")
        unknown = set(data) - {"name", "options"}
        if unknown:
            raise ConfigError(f"{what} has unknown keys {sorted(unknown)}; allowed: name, options")
        return cls(data["name"], data.get("options"))


@attrs.frozen
class ChannelSpec:
    """One channel of the joint latent: its name, family and the family's options."""

    name: str
    family: str
    options: dict = attrs.field(factory=dict, converter=_options)

    @classmethod
    def from_dict(cls, data: Any) -> ChannelSpec:
        if not isinstance(data, Mapping) or not {"name", "family"} <= set(data):
            raise ConfigError(f"a channel must be {{'name': ..., 'family': ..., 'options': {{...}}}}, got {data!r}")
        unknown = set(data) - {"name", "family", "options"}
        if unknown:
            raise ConfigError(f"channel {data.get('name')!r} has unknown keys {sorted(unknown)}")
        return cls(str(data["name"]), str(data["family"]), data.get("options"))


#: What one sample of the data may be: a vector ``(D,)``, a multi-channel signal ``(C, L)`` or an image ``(C, H, W)``.
SAMPLE_SHAPE_HELP = "the shape of one sample: (D,) for a vector, (C, L) for a signal, (C, H, W) for an image"


def _image_shape(value: Any) -> tuple[int, ...]:
    """``image_shape`` keeps its name (checkpoints and run configs store it) but holds the shape of any sample."""
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"image_shape must be 1 to 3 whole numbers, {SAMPLE_SHAPE_HELP}; got {value!r}") from None
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ConfigError(f"image_shape must be 1 to 3 positive numbers, {SAMPLE_SHAPE_HELP}; got {value!r}")
    return shape


@attrs.frozen
class ModelSpec:
    """Everything needed to build a :class:`~latentkit.core.JointLatentVAE`: sample shape, channels in order, network.

    ``image_shape`` is the shape of one sample — ``(D,)``, ``(C, L)`` or ``(C, H, W)`` — named for the images the
    framework started with; the name stays because checkpoints and run configs store it. ``network`` has no default:
    the framework names no plugin (every saved spec has named its network since the first release).
    """

    image_shape: tuple[int, ...] = attrs.field(converter=_image_shape)
    channels: tuple[ChannelSpec, ...] = attrs.field(converter=tuple)
    network: Component

    def __attrs_post_init__(self) -> None:
        names = [c.name for c in self.channels]
        if not names:
            raise ConfigError("a model needs at least one latent channel")
        if len(set(names)) != len(names):
            raise ConfigError(f"channel names must be unique, got {names}")
        for name in names:
            if not name.isidentifier():
                raise ConfigError(f"channel name {name!r} must be an identifier such as 'cont' or 'disc'")

    def to_dict(self) -> dict:
        return attrs.asdict(self, recurse=True, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"a model spec must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"image_shape", "channels", "network"}
        if unknown:
            raise ConfigError(f"model spec has unknown keys {sorted(unknown)}; allowed: image_shape, channels, network")
        missing = [key for key in ("image_shape", "channels", "network") if key not in data]
        if missing:
            raise ConfigError(
                f"a model spec needs 'image_shape', 'channels' and 'network'; {missing} missing (the network is a "
                f"plugin by name, e.g. {{'name': 'mlp', 'options': {{'hidden': 256}}}})"
            )
        return cls(
            image_shape=data["image_shape"],
            channels=[ChannelSpec.from_dict(c) for c in data["channels"]],
            network=Component.from_dict(data["network"], "network"),
        )


@attrs.frozen
class Experiment:
    """Everything a run needs, as plain data: the model spec, the objective, the data set and the trainer's settings."""

    model: ModelSpec
    objective: Component
    dataset: Component
    train: TrainConfig

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "objective": attrs.asdict(self.objective),
            "dataset": attrs.asdict(self.dataset),
            "train": attrs.asdict(self.train),
        }
