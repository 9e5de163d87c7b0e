"""A joint latent: an ordered product of channels.

The latent vector the decoder reads is the channels' samples concatenated in declaration order. JointVAE recipes
declare the continuous channel first and the discrete one after it, which is the original code's order (continuous
sample, then each discrete variable's one-hot in order).

For independent channels the joint KL is the sum of the channels' KLs; a channel whose prior depends on another
channel receives that channel's parameters and samples through :class:`LatentContext`, so the sum is still right
(the dependent channel's ``kl`` returns the expected conditional KL).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from latentkit.core.family import LatentContext, LatentFamily, Params
from latentkit.core.noise import SampleNoise
from latentkit.errors import ConfigError


class JointLatent(nn.Module):
    """The latent code of a model: named channels (configured :class:`LatentFamily` instances), in order.

    It splits the encoder's flat features among the channels (each takes its ``param_size``), draws each channel's
    sample from its own noise stream (:meth:`sample`), concatenates the samples in channel order for the decoder
    (:meth:`concat`), and gives every channel's per-unit KL (:meth:`kl`: the joint KL is their sum) and prior draws in
    dependency order (:meth:`prior_sample`). Why one object: the order of channels is the layout of the latent vector
    (JointVAE's ``cont`` then ``disc``, as the original's checkpoints expect), and channels whose prior depends on
    another (``depends_on``) need the others' parameters, which only the whole latent holds.

    Attributes:
        names: the channel names, in order; ``param_size`` and ``sample_size`` are the sums over channels.
    """

    def __init__(self, channels: Mapping[str, LatentFamily]):
        super().__init__()
        if not channels:
            raise ConfigError("a joint latent needs at least one channel; add e.g. a 'gaussian' channel to the recipe")
        for name, family in channels.items():
            if not isinstance(family, LatentFamily):
                raise ConfigError(f"channel {name!r} is a {type(family).__name__}, not a LatentFamily")
            unknown = [d for d in family.depends_on if d not in channels or d == name]
            if unknown:
                raise ConfigError(
                    f"channel {name!r} depends on {unknown}, which are not other channels of this latent "
                    f"(channels: {list(channels)})"
                )
        self.channels = nn.ModuleDict(dict(channels))
        self._prior_order = _dependency_order(channels)

    # --- sizes -------------------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.channels.keys())

    def items(self) -> Iterator[tuple[str, LatentFamily]]:
        return iter(self.channels.items())  # type: ignore[arg-type]

    @property
    def param_size(self) -> int:
        return sum(f.param_size for f in self.channels.values())

    @property
    def sample_size(self) -> int:
        return sum(f.sample_size for f in self.channels.values())

    def sample_slices(self) -> dict[str, slice]:
        """Where each channel's sample sits in the latent vector."""
        out, start = {}, 0
        for name, family in self.items():
            out[name] = slice(start, start + family.sample_size)
            start += family.sample_size
        return out

    def unit_names(self) -> dict[str, list[str]]:
        """``{"cont": ["cont.0", ...], ...}``: the names KL-per-unit is logged under."""
        return {name: [f"{name}.{i}" for i in range(f.unit_count)] for name, f in self.items()}

    def capacity_bounds(self) -> dict[str, float]:
        return {name: f.capacity_bound() for name, f in self.items()}

    def at_step(self, step: int) -> None:
        """Tell every channel the global training step (see :meth:`LatentFamily.at_step`); the trainer calls this
        before each training step's forward pass."""
        for family in self.channels.values():
            family.at_step(step)

    # --- the forward pass --------------------------------------------------------------------------------------------
    def split(self, features: Tensor) -> dict[str, Params]:
        """Encoder features ``(B, param_size)`` to each channel's parameters."""
        if features.dim() != 2 or features.shape[1] != self.param_size:
            raise ConfigError(
                f"the encoder produced features of shape {tuple(features.shape)}, but this joint latent consumes "
                f"(batch, {self.param_size}); build the encoder with out_features={self.param_size}"
            )
        params, start = {}, 0
        for name, family in self.items():
            params[name] = family.params_from_features(features[:, start : start + family.param_size])
            start += family.param_size
        return params

    def sample(
        self, params: Mapping[str, Params], *, reparametrise: bool, noise: SampleNoise | None = None
    ) -> dict[str, Tensor]:
        """Each channel's training sample (``reparametrise=True``) or evaluation representative (no noise drawn).

        ``noise`` holds one key per row (the trainer keys rows by run seed, step and global sample index, so a row
        draws the same whichever process or batch part computes it); channel ``name`` draws from
        ``noise.stream(name)``. ``None`` in training: fresh keys from torch's global RNG.
        """
        if not reparametrise:
            return {name: f.representative(params[name]) for name, f in self.items()}
        first = next(iter(next(iter(params.values())).values()))
        if noise is None:
            noise = SampleNoise.fresh(first.shape[0], device=first.device)
        elif len(noise) != first.shape[0]:
            raise ConfigError(
                f"the noise has keys for {len(noise)} rows but the batch has {first.shape[0]}: build it for exactly "
                f"these rows (SampleNoise.for_rows(seed, step, rows) with one global index per row)"
            )
        return {name: f.rsample(params[name], noise.stream(name)) for name, f in self.items()}

    def concat(self, samples: Mapping[str, Tensor]) -> Tensor:
        """The latent vector the decoder reads, channels in declaration order."""
        return torch.cat([samples[name] for name in self.names], dim=-1)

    def kl(self, params: Mapping[str, Params], samples: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Per-unit KL of every channel, ``{name: (B, unit_count)}``."""
        ctx = LatentContext(params=params, samples=samples or {})
        return {name: f.kl(params[name], ctx) for name, f in self.items()}

    def prior_sample(
        self, n: int, generator: torch.Generator | None = None, given: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Ancestral prior samples: a channel is drawn after the channels it depends on.

        ``given`` fixes some channels' values (``{name: (n, sample_size)}``): they are not drawn, and channels that
        depend on them are drawn conditionally on them — samples conditioned on a category, as the paper's Fig. 4a,
        stay correct for a prior that is not a product (a mixture prior whose component is the category).
        """
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise ConfigError(f"prior_sample: no channel {unknown}; channels are {self.names}")
        samples: dict[str, Tensor] = {}
        for name in self._prior_order:
            family = self.channels[name]
            if name in given:
                value = given[name]
                if tuple(value.shape) != (n, family.sample_size):
                    raise ConfigError(
                        f"prior_sample: the value given for channel {name!r} has shape {tuple(value.shape)}, "
                        f"expected {(n, family.sample_size)}"
                    )
                samples[name] = value
                continue
            samples[name] = family.prior_sample(n, LatentContext(params={}, samples=dict(samples)), generator)
        return {name: samples[name] for name in self.names}


def _dependency_order(channels: Mapping[str, LatentFamily]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(f"channel dependencies form a cycle through {name!r}; a prior cannot depend on itself")
        visiting.add(name)
        for dep in channels[name].depends_on:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in channels:
        visit(name)
    return order
