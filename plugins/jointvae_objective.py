"""The JointVAE objective: reconstruction + Σ_c γ_c·|KL_c − C_c(step)|.

* Reconstruction: Bernoulli negative log-likelihood (binary cross-entropy) summed over an image's pixels, averaged
  over the batch.
* KL_c: channel c's KL summed over its units, averaged over the batch.
* C_c(step): the channel's capacity schedule, clipped at the family's capacity bound (Σ log K for categoricals); both
  the asked-for and the clipped value are logged, so the clipping is visible.
* ``loss`` (what the optimiser sees) is divided by H·W, as the original code does; the logged ``objective``,
  ``recon`` and KL terms are unscaled.

With ``channel_mean_compat=True`` the reconstruction term reproduces the original code's quirk for multi-channel
images: it summed BCE over rows of H·W pixels and averaged over C·B rows, i.e. the true per-image sum divided by C.
The default sums over all C·H·W values of an image, which is the Bernoulli log-likelihood; the two agree for 1-channel
images.

Special cases on the same machinery: a β-VAE is one Gaussian channel with ``constant`` capacity 0 and γ = β; the
annealed-capacity β-VAE of Burgess et al. is one Gaussian channel with a ``linear`` schedule.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from latentkit.core import CapacitySchedule, JointLatent, ModelOutput, StatisticsObjective
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl

SCALES = ("pixels", "none")


class JointVAEObjective(StatisticsObjective):
    objective_name = "jointvae"

    def __init__(
        self,
        latent: JointLatent,
        image_shape: tuple[int, int, int],
        terms: Mapping[str, tuple[float, CapacitySchedule]],
        scale: str = "pixels",
        channel_mean_compat: bool = False,
    ):
        missing = [name for name in latent.names if name not in terms]
        extra = [name for name in terms if name not in latent.names]
        if missing or extra:
            raise ConfigError(
                f"the jointvae objective needs one term (gamma and capacity) per latent channel; channels are "
                f"{latent.names}, terms given for {list(terms)} (missing {missing}, unknown {extra})"
            )
        for name, (gamma, _) in terms.items():
            if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0 <= gamma < math.inf:
                raise ConfigError(f"gamma of channel {name!r} must be a finite non-negative number, got {gamma!r}")
        if scale not in SCALES:
            raise ConfigError(f"jointvae scale must be one of {SCALES}, got {scale!r}")
        channels, height, width = image_shape
        self.latent = latent
        self.terms = {name: (float(terms[name][0]), terms[name][1]) for name in latent.names}
        self.bounds = latent.capacity_bounds()
        self.unit_names = latent.unit_names()
        self.pixels = height * width
        # Per-image sum = mean over all values x this factor.
        self.recon_factor = height * width * (1 if channel_mean_compat else channels)
        self.divisor = float(self.pixels) if scale == "pixels" else 1.0

    def capacity(self, name: str, step: int) -> tuple[float, float]:
        """(asked-for, effective) capacity of channel ``name`` at ``step``; effective is clipped at the bound."""
        asked = self.terms[name][1](step)
        return asked, min(asked, self.bounds[name])

    def statistics(self, x: Tensor, output: ModelOutput) -> dict[str, Tensor]:
        """``recon``: the batch mean of each image's BCE sum; ``kl/<channel>``: each unit's batch-mean KL."""
        # BCE is unsafe under autocast: compute it in float32 whatever precision the forward pass ran in.
        with torch.autocast(x.device.type, enabled=False):
            recon = F.binary_cross_entropy(output.reconstruction.float(), x.float(), reduction="mean") * self.recon_factor
        kl_units = self.latent.kl(output.params, output.samples)
        return {"recon": recon, **{f"kl/{name}": units.mean(0) for name, units in kl_units.items()}}

    def from_statistics(self, stats: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        recon = stats["recon"]
        logs: dict[str, Tensor] = {"recon": recon}
        total = recon
        kl_total = recon.new_zeros(())
        for name in self.latent.names:
            gamma, _ = self.terms[name]
            per_unit = stats[f"kl/{name}"]
            kl = per_unit.sum()
            asked, capacity = self.capacity(name, step)
            total = total + gamma * (kl - capacity).abs()
            kl_total = kl_total + kl
            logs[f"kl/{name}"] = kl
            logs[f"capacity/{name}"] = recon.new_tensor(capacity)
            logs[f"capacity_target/{name}"] = recon.new_tensor(asked)
            for unit_name, value in zip(self.unit_names[name], per_unit.unbind(0)):
                logs[f"kl_unit/{unit_name}"] = value
        logs["kl/total"] = kl_total
        logs["objective"] = total
        logs["loss"] = total / self.divisor
        return logs


def build_jointvae_objective(
    latent: JointLatent,
    image_shape: tuple[int, int, int],
    registry,
    terms: Mapping[str, Mapping],
    scale: str = "pixels",
    channel_mean_compat: bool = False,
) -> JointVAEObjective:
    """Build from JSON-like options: ``terms = {channel: {"gamma": γ, "capacity": {"name": ..., "options": {...}}}}``."""
    if not isinstance(terms, Mapping):
        raise ConfigError(
            f"jointvae terms must map each channel name to {{'gamma': ..., 'capacity': ...}}, got {terms!r}"
        )
    built = {}
    for name, term in terms.items():
        if not isinstance(term, Mapping) or "gamma" not in term or "capacity" not in term:
            raise ConfigError(
                f"jointvae term for channel {name!r} must look like "
                f"{{'gamma': 30.0, 'capacity': {{'name': 'linear', 'options': {{'c_max': 5.0, 'steps': 25000}}}}}}, "
                f"got {term!r}"
            )
        cap = term["capacity"]
        if not isinstance(cap, Mapping) or "name" not in cap:
            raise ConfigError(f"capacity of channel {name!r} must name a schedule, e.g. {{'name': 'linear'}}, got {cap!r}")
        options = cap.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"options of capacity schedule {cap['name']!r} of channel {name!r} must be a mapping such as {{'c_max': 5.0, 'steps': 25000}}, "
                f"got {options!r}"
            )
        schedule_cls = registry.schedules.get(cap["name"])
        try:
            schedule = schedule_cls(**options)
        except TypeError as exc:
            raise ConfigError(f"capacity schedule {cap['name']!r} of channel {name!r}: {exc}") from None
        built[name] = (term["gamma"], schedule)
    return JointVAEObjective(latent, image_shape, built, scale=scale, channel_mean_compat=channel_mean_compat)


@hookimpl
def latentkit_register_objectives(registry):
    registry.add("jointvae", build_jointvae_objective)
