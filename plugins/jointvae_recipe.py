"""JointVAE's recipe config: the flat, readable :class:`JointVAEConfig` every JointVAE recipe (and the β-VAE
baselines, which are the same objective with other capacities) is written with, and its :class:`Capacity` and
:class:`ExtraChannel`.

Why here and not in the framework: it names JointVAE's plugins (``gaussian``, ``gumbel_softmax``, ``jointvae_conv``,
``jointvae``, the ``linear`` and ``constant`` schedules) as its defaults, and the framework names no plugin. It is a
plain module of the built-in plugin package, registered by no entry point: recipes import it
(``from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig``), and it builds only the plain-data specs
of :mod:`latentkit.specs`, which :mod:`latentkit.assembly` turns into objects. A model written from scratch needs
none of it (:class:`latentkit.assembly.recipe.VAEConfig` names every part).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from latentkit.errors import ConfigError
from latentkit.specs import ChannelSpec, Component, Experiment, ModelSpec
from latentkit.train import TrainConfig
from latentkit.validation import non_negative_float, non_negative_int, optional, positive_float, positive_int


@attrs.define
class Capacity:
    """A linear capacity ramp ``c_min → c_max`` over ``steps`` from step ``start`` (a constant when ``c_min == c_max``)."""

    c_min: float = attrs.field(default=0.0, validator=non_negative_float.such_as("0.0"))
    c_max: float = attrs.field(default=5.0, validator=non_negative_float.such_as("5.0"))
    steps: int = attrs.field(default=25_000, validator=positive_int.such_as("25000"))
    start: int = attrs.field(default=0, validator=non_negative_int.such_as("10000"))

    def component(self) -> dict:
        if self.c_min == self.c_max:
            return {"name": "constant", "options": {"value": float(self.c_min)}}
        options = {"c_min": float(self.c_min), "c_max": float(self.c_max), "steps": self.steps}
        if self.start:  # only when set: every saved spec without it stays as it was
            options["start"] = self.start
        return {"name": "linear", "options": options}


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
