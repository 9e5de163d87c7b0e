"""Experiments and recipes.

An :class:`Experiment` is everything a run needs, as plain data: the model spec, the objective, the data set and the
training settings. A *recipe* is a short Python file defining ``config()``, which returns an attrs config object with
an ``experiment()`` method; ``latentkit train RECIPE --set key=value`` edits that config object before the experiment is
built, and the config is saved as JSON in the run directory.

:class:`JointVAEConfig` is the flat, readable config every JointVAE recipe (and the β-VAE baselines, which are the
same objective with other capacities) is written with. It names plugins by registry name only, so the core imports no
plugin.
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

from latentkit.assembly.specs import ChannelSpec, Component, ModelSpec
from latentkit.errors import ConfigError
from latentkit.train.config import TrainConfig  # the trainer owns its settings; recipes compose them
from latentkit.validation import non_negative_float, optional, positive_float, positive_int


@attrs.frozen
class Experiment:
    """Everything a run needs, as plain data."""

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


@attrs.define
class Capacity:
    """A linear capacity ramp ``c_min → c_max`` over ``steps`` (a constant when ``c_min == c_max``)."""

    c_min: float = attrs.field(default=0.0, validator=non_negative_float.such_as("0.0"))
    c_max: float = attrs.field(default=5.0, validator=non_negative_float.such_as("5.0"))
    steps: int = attrs.field(default=25_000, validator=positive_int.such_as("25000"))

    def component(self) -> dict:
        if self.c_min == self.c_max:
            return {"name": "constant", "options": {"value": float(self.c_min)}}
        return {"name": "linear", "options": {"c_min": float(self.c_min), "c_max": float(self.c_max), "steps": self.steps}}


@attrs.define
class ExtraChannel:
    """A latent channel beyond JointVAEConfig's ``cont`` and ``disc``: any registered family, its options, γ and
    capacity (e.g. ``ExtraChannel("bits", "relaxed_bernoulli", {"units": 4}, gamma=30.0, capacity=Capacity(0, 2.0))``).
    """

    name: str
    family: str
    options: dict = attrs.field(factory=dict)
    gamma: float = attrs.field(default=30.0, validator=non_negative_float.such_as("30.0"))
    capacity: Capacity = attrs.field(factory=Capacity)


def _extra_channels(value: Any) -> list[ExtraChannel]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"extra_channels must be a list of ExtraChannel (or dicts with name, family, ...), got {value!r}")
    out = []
    for item in value:
        if isinstance(item, ExtraChannel):
            out.append(item)
        elif isinstance(item, dict) and {"name", "family"} <= set(item):
            item = dict(item)
            cap = item.pop("capacity", None)
            if isinstance(cap, dict):
                cap = Capacity(**cap)
            try:
                out.append(ExtraChannel(**item, **({"capacity": cap} if cap is not None else {})))
            except TypeError as exc:
                raise ConfigError(f"extra channel {item.get('name')!r}: {exc}") from None
        else:
            raise ConfigError(f"an extra channel needs at least a name and a family, got {item!r}")
    return out


def _sizes(value: Any) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"disc_sizes must be a list of category counts such as [10], got {value!r}")
    return list(value)


@attrs.define
class JointVAEConfig:
    """A JointVAE experiment: one Gaussian channel ``cont`` and one Gumbel-Softmax channel ``disc``.

    Set ``cont_units=0`` or ``disc_sizes=[]`` to drop a channel (a β-VAE is ``disc_sizes=[]`` with a constant zero
    capacity and ``cont_gamma=β``).
    """

    dataset: str = "mnist"
    dataset_options: dict = attrs.field(factory=dict)
    image_shape: tuple[int, int, int] = (1, 32, 32)
    cont_units: int = 10
    disc_sizes: list[int] = attrs.field(factory=lambda: [10], converter=_sizes)
    temperature: float = attrs.field(default=0.67, validator=positive_float.such_as("0.67"))
    #: the family of channel ``cont`` (``gaussian``; ``gaussian_mixture`` for a prior that depends on ``disc``) and its
    #: options beyond ``units`` (e.g. ``{"components": 10}``)
    cont_family: str = "gaussian"
    cont_options: dict = attrs.field(factory=dict)
    #: options of channel ``disc`` beyond ``sizes`` and ``temperature`` (e.g. an annealed temperature)
    disc_options: dict = attrs.field(factory=dict)
    cont_capacity: Capacity = attrs.field(factory=Capacity)
    disc_capacity: Capacity = attrs.field(factory=Capacity)
    cont_gamma: float = attrs.field(default=30.0, validator=non_negative_float.such_as("30.0"))
    disc_gamma: float = attrs.field(default=30.0, validator=non_negative_float.such_as("30.0"))
    network: str = "jointvae_conv"
    #: the width of the network's hidden layers, for networks with a ``hidden`` option; None: the network's own
    #: default (256 for ``jointvae_conv`` and ``mlp``, the original's), and nothing passed to a network without one
    hidden: int | None = attrs.field(default=None, validator=optional(positive_int.such_as("256"), "the network's default"))
    #: further options of the network plugin (``mlp``: ``{"layers": 3, "output": "identity"}``)
    network_options: dict = attrs.field(factory=dict)
    loss_scale: str = "pixels"
    channel_mean_compat: bool = False
    #: the reconstruction term: "bernoulli" (data in [0, 1], images) or "gaussian" (real values; docs/non-image.md)
    likelihood: str = "bernoulli"
    #: σ of the Gaussian likelihood (ignored by "bernoulli")
    sigma: float = attrs.field(default=0.1, validator=positive_float.such_as("0.1"))
    #: more channels after ``cont`` and ``disc``, of any registered family, each with its own γ and capacity
    extra_channels: list[ExtraChannel] = attrs.field(factory=list, converter=_extra_channels)
    #: the objective plugin: ``jointvae``, or one that adds a term to it (``tcvae``, ``factorvae``)
    objective: str = "jointvae"
    #: options of that objective beyond the per-channel terms (e.g. ``{"tc_weight": 10.0}``)
    objective_options: dict = attrs.field(factory=dict)
    train: TrainConfig = attrs.field(factory=TrainConfig)

    def experiment(self) -> Experiment:
        channels, terms = [], {}
        if self.cont_units:
            channels.append(ChannelSpec("cont", self.cont_family, {**self.cont_options, "units": self.cont_units}))
            terms["cont"] = {"gamma": float(self.cont_gamma), "capacity": self.cont_capacity.component()}
        if self.disc_sizes:
            channels.append(
                ChannelSpec(
                    "disc",
                    "gumbel_softmax",
                    {**self.disc_options, "sizes": list(self.disc_sizes), "temperature": self.temperature},
                )
            )
            terms["disc"] = {"gamma": float(self.disc_gamma), "capacity": self.disc_capacity.component()}
        for extra in self.extra_channels:
            if extra.name in terms:
                raise ConfigError(f"extra channel {extra.name!r} clashes with a channel of the same name; rename it")
            channels.append(ChannelSpec(extra.name, extra.family, dict(extra.options)))
            terms[extra.name] = {"gamma": float(extra.gamma), "capacity": extra.capacity.component()}
        if not channels:
            raise ConfigError("the recipe has no latent channel: set cont_units > 0 or a non-empty disc_sizes")
        reserved = {"terms", "scale", "channel_mean_compat", "likelihood", "sigma"} & set(self.objective_options)
        if reserved:
            raise ConfigError(
                f"objective_options may not set {sorted(reserved)}: they come from the recipe's own fields "
                f"(the per-channel gammas and capacities, loss_scale, channel_mean_compat, likelihood, sigma)"
            )
        return Experiment(
            model=ModelSpec(self.image_shape, channels, Component(self.network, self._network_options())),
            objective=Component(
                self.objective,
                {
                    "terms": terms,
                    "scale": self.loss_scale,
                    "channel_mean_compat": self.channel_mean_compat,
                    "likelihood": self.likelihood,
                    "sigma": float(self.sigma),
                    **self.objective_options,
                },
            ),
            dataset=Component(self.dataset, dict(self.dataset_options)),
            train=self.train,
        )


    def _network_options(self) -> dict:
        hidden = {} if self.hidden is None else {"hidden": self.hidden}
        return {**hidden, **self.network_options}


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


def _coerce(key: str, raw: str, tp: Any) -> Any:
    """Parse ``raw`` (JSON, or a bare string) and check it against the field type ``tp``."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
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
