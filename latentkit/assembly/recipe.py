"""Recipes: loading them, ``--set`` overrides, and the generic :class:`VAEConfig`.

An :class:`~latentkit.specs.Experiment` is everything a run needs, as plain data: the model spec, the objective, the
data set and the training settings. A *recipe* is a short Python file defining ``config()``, which returns an attrs
config object with an ``experiment()`` method; ``latentkit train RECIPE --set key=value`` edits that config object
before the experiment is built, and the config is saved as JSON in the run directory (with its class's import path,
:func:`config_class_path`, so it can be rebuilt with :func:`config_from_dict`).

This module names no plugin. :class:`VAEConfig` names every part by the recipe's choice; configs written for one model
live beside its plugins (JointVAE's flat ``JointVAEConfig`` is :mod:`latentkit_plugins.jointvae_recipe`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from latentkit.errors import ConfigError
from latentkit.specs import ChannelSpec, Component, Experiment, ModelSpec
from latentkit.train.config import TrainConfig  # the trainer owns its settings; recipes compose them


def _component(what: str) -> Any:
    def convert(value: Any) -> Component:
        return value if isinstance(value, Component) else Component.from_dict(value, what)

    return convert


def _channels(value: Any) -> list[ChannelSpec]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(
            f"channels must be a list of ChannelSpec (or dicts with name, family and options) such as "
            f"[{{'name': 'z', 'family': 'gaussian', 'options': {{'units': 10}}}}], got {value!r}"
        )
    return [c if isinstance(c, ChannelSpec) else ChannelSpec.from_dict(c) for c in value]


@attrs.define
class VAEConfig:
    """Any model, named by its parts: the latent channels, the network and the objective are plugins, each given its
    own options and nothing else (a recipe for an objective other than JointVAE's says only what that objective uses).

    ``VAEConfig(dataset="mnist", image_shape=(1, 32, 32), channels=[ChannelSpec("z", "gaussian", {"units": 10})],
    network=Component("mlp", {"hidden": 128}), objective=Component("betavae", {"beta": 4.0}))``; ``--set`` reaches
    every part (``--set objective.options='{"beta": 2.0}'``, ``--set network.name=mlp``).
    """

    dataset: Component = attrs.field(converter=_component("dataset"))
    image_shape: tuple[int, ...] = attrs.field(converter=tuple)
    channels: list[ChannelSpec] = attrs.field(converter=_channels)
    network: Component = attrs.field(converter=_component("network"))
    objective: Component = attrs.field(converter=_component("objective"))
    train: TrainConfig = attrs.field(factory=TrainConfig)

    def experiment(self) -> Experiment:
        return Experiment(
            model=ModelSpec(self.image_shape, self.channels, self.network),
            objective=self.objective,
            dataset=self.dataset,
            train=self.train,
        )


# --- loading recipe files --------------------------------------------------------------------------------------------


def load_recipe(path: str | Path) -> Any:
    """Execute a recipe file and return its ``config()``.

    A recipe is code the user chose to run (like a Python script); checkpoints, by contrast, are never code.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist; pass a recipe file such as recipes/jointvae_mnist.py")
    name = f"latentkit_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"recipe {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "config", None)):
        raise ConfigError(f"recipe {str(path)!r} defines no config() function returning the recipe's config")
    cfg = module.config()
    if not attrs.has(type(cfg)) or not callable(getattr(cfg, "experiment", None)):
        raise ConfigError(f"config() of recipe {str(path)!r} must return an attrs object with an experiment() method")
    return cfg


# --- --set key=value -------------------------------------------------------------------------------------------------


def config_keys(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every settable key (nested attrs fields joined with dots) and its type."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(type(cfg))
    for field in attrs.fields(type(cfg)):
        value = getattr(cfg, field.name)
        key = prefix + field.name
        if attrs.has(type(value)):
            out.update(config_keys(value, key + "."))
        else:
            out[key] = hints.get(field.name, type(value))
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def json_or_text(raw: str) -> Any:
    """A command-line value (``--set``, ``--option``, ``--dataset-option``): JSON (``1000``, ``0.5``, ``true``,
    ``null``, ``[10]``, ``"text"``) when it parses, else the text itself, so ``source=procedural`` needs no quotes."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(key: str, raw: str, tp: Any) -> Any:
    """Parse ``raw`` (:func:`json_or_text`) and check it against the field type ``tp``."""
    value = json_or_text(raw)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        value = raw if not isinstance(value, str) else value
        ok = True
    elif origin in (list, tuple) or tp in (list, tuple):
        ok = isinstance(value, list)
        elem = args[0] if args else None
        if ok and elem in (int, float):
            ok = all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and (elem is float or isinstance(v, int))
                for v in value
            )
        if ok and (origin is tuple or tp is tuple):
            value = tuple(value)
    elif origin is dict or tp is dict:
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"--set {key}={raw}: expected a value of type {_type_name(tp)}, e.g. {_example(tp)}")
    return value


def _example(tp: Any) -> str:
    return {bool: "true", int: "100", float: "0.5", str: "name"}.get(tp, "[10]" if typing.get_origin(tp) is list else "{}")


def apply_overrides(cfg: Any, assignments: Sequence[str]) -> Any:
    """Return ``cfg`` with each ``key=value`` applied; unknown keys and wrong types are errors listing valid keys."""
    keys = config_keys(cfg)
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set expects key=value, got {assignment!r}; valid keys: {', '.join(keys)}")
        key, raw = assignment.split("=", 1)
        key = key.strip()
        if key not in keys:
            raise ConfigError(f"--set: unknown key {key!r} for {type(cfg).__name__}; valid keys: {', '.join(keys)}")
        value = _coerce(key, raw, keys[key])
        cfg = _set_path(cfg, key.split("."), value)
    return cfg


def _set_path(obj: Any, path: list[str], value: Any) -> Any:
    head = path[0]
    new = value if len(path) == 1 else _set_path(getattr(obj, head), path[1:], value)
    try:
        return attrs.evolve(obj, **{head: new})
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--set {'.'.join(path)}: {exc}") from None


def config_class_path(cfg: Any) -> str:
    """The import path of ``cfg``'s class (``latentkit_plugins.jointvae_recipe.JointVAEConfig``), which new runs record
    as ``recipe_class`` beside ``recipe_config``: what to import to rebuild that JSON with :func:`config_from_dict`.
    Runs saved before it was recorded used ``latentkit.recipe.JointVAEConfig`` or
    ``latentkit.assembly.recipe.JointVAEConfig``, both now ``latentkit_plugins.jointvae_recipe.JointVAEConfig``."""
    return f"{type(cfg).__module__}.{type(cfg).__qualname__}"


def config_to_dict(cfg: Any) -> dict:
    return attrs.asdict(cfg, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)


def config_from_dict(cls: type, data: dict) -> Any:
    """Rebuild a recipe config from its JSON (nested attrs classes included)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in attrs.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        tp = hints.get(field.name)
        if isinstance(tp, type) and attrs.has(tp) and isinstance(value, dict):
            value = config_from_dict(tp, value)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)
