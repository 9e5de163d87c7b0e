"""The JointVAE objective: reconstruction + Σ_c γ_c·|KL_c − C_c(step)|.

* Reconstruction: a negative log-likelihood summed over all values of a sample (every pixel of every channel of an
  image, every point of a signal, every entry of a vector), averaged over the batch. ``likelihood="bernoulli"`` (the
  default, the paper's) is binary cross-entropy against decoder outputs in [0, 1]; ``likelihood="gaussian"`` is the
  NLL of N(x; x̂, σ²) per value, ``(x − x̂)²/(2σ²) + ½·log(2πσ²)``, with a fixed ``sigma`` — the constant is included,
  so the logged ``recon`` is a true NLL in nats, comparable across σ and with other models.
* KL_c: channel c's KL summed over its units, averaged over the batch.
* C_c(step): the channel's capacity schedule, clipped at the family's capacity bound (Σ log K for categoricals); both
  the asked-for and the clipped value are logged, so the clipping is visible.
* ``spread/<channel>``: the batch variance of the channel's deterministic code (Gaussian means, argmax one-hots),
  summed over its columns — not part of the loss; near 0 with a KL near capacity means a collapsed channel.
* ``<key>/<channel>``: each family's :meth:`~latentkit.core.LatentFamily.diagnostics` of its training sample (a
  Gumbel-Softmax channel: ``temperature/disc``, ``sample_max/disc``, ``alpha_max/disc``) — batch means, not part of
  the loss.
* ``loss`` (what the optimiser sees) is divided by the number of values per channel (``scale="pixels"``): H·W for an
  image ``(C, H, W)``, as the original code does; L for a signal ``(C, L)``; D for a vector ``(D,)``. The logged
  ``objective``, ``recon`` and KL terms are unscaled.

Choosing σ: it fixes how many nats a reconstruction error costs — (x − x̂)²/(2σ²) per value — and so, against the
capacity terms, how much detail the latent is pushed to carry, as β does in a β-VAE. The default, 0.1, suits data
scaled to [0, 1]: an error of a tenth of the range costs half a nat per value, enough for the decoder to follow the
shape of a signal while noise well below that scale is left to the likelihood. Use the data's own noise level when it
is known.

With ``channel_mean_compat=True`` the reconstruction term reproduces the original code's quirk for multi-channel
images: it summed BCE over rows of H·W pixels and averaged over C·B rows, i.e. the true per-image sum divided by C.
The default sums over all C·H·W values of an image, which is the Bernoulli log-likelihood; the two agree for 1-channel
images.

Special cases on the same machinery: a β-VAE is one Gaussian channel with ``constant`` capacity 0 and γ = β; the
annealed-capacity β-VAE of Burgess et al. is one Gaussian channel with a ``linear`` schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from latentkit.core import CapacitySchedule, JointLatent, ModelOutput, StatisticsObjective
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, non_negative_float, one_of, positive_float

SCALES = ("pixels", "none")
LIKELIHOODS = ("bernoulli", "gaussian")
#: σ of the Gaussian likelihood when none is given (module docstring: why 0.1)
DEFAULT_SIGMA = 0.1


def values_per_channel(image_shape: tuple[int, ...]) -> int:
    """What ``scale="pixels"`` divides the loss by: prod(shape[1:]) (H·W of an image, L of a signal), or D for a
    vector ``(D,)``, which has no channel axis."""
    shape = tuple(int(v) for v in image_shape)
    return math.prod(shape[1:]) if len(shape) >= 2 else math.prod(shape)


class JointVAEObjective(StatisticsObjective):
    objective_name = "jointvae"

    def __init__(
        self,
        latent: JointLatent,
        image_shape: tuple[int, ...],
        terms: Mapping[str, tuple[float, CapacitySchedule]],
        scale: str = "pixels",
        channel_mean_compat: bool = False,
        likelihood: str = "bernoulli",
        sigma: float = DEFAULT_SIGMA,
    ):
        missing = [name for name in latent.names if name not in terms]
        extra = [name for name in terms if name not in latent.names]
        if missing or extra:
            raise ConfigError(
                f"the jointvae objective needs one term (gamma and capacity) per latent channel; channels are "
                f"{latent.names}, terms given for {list(terms)} (missing {missing}, unknown {extra})"
            )
        for name, (gamma, _) in terms.items():
            check("gamma", gamma, non_negative_float, owner=f"jointvae term of channel {name!r}", example="30.0")
        check("scale", scale, one_of(*SCALES), owner="jointvae")
        # 'bernoulli' for data in [0, 1] such as images, 'gaussian' for real-valued data
        check("likelihood", likelihood, one_of(*LIKELIHOODS), owner="jointvae")
        # the Gaussian likelihood's standard deviation
        check("sigma", sigma, positive_float, owner="jointvae", example=str(DEFAULT_SIGMA))
        shape = tuple(int(v) for v in image_shape)
        self.latent = latent
        self.terms = {name: (float(terms[name][0]), terms[name][1]) for name in latent.names}
        self.bounds = latent.capacity_bounds()
        self.unit_names = latent.unit_names()
        self.likelihood, self.sigma = likelihood, float(sigma)
        self.pixels = values_per_channel(shape)
        # Per-sample sum = mean over all values x this factor (the original's quirk divides it by C: module docstring).
        self.recon_factor = math.prod(shape) if not channel_mean_compat else self.pixels
        self.divisor = float(self.pixels) if scale == "pixels" else 1.0

    def capacity(self, name: str, step: int) -> tuple[float, float]:
        """(asked-for, effective) capacity of channel ``name`` at ``step``; effective is clipped at the bound."""
        asked = self.terms[name][1](step)
        return asked, min(asked, self.bounds[name])

    def reconstruction_nll(self, reconstruction: Tensor, x: Tensor) -> Tensor:
        """The batch mean of each sample's negative log-likelihood, summed over its values (float32 inputs)."""
        if self.likelihood == "gaussian":
            per_value = F.mse_loss(reconstruction, x, reduction="mean") / (2 * self.sigma**2)
            return (per_value + (math.log(self.sigma) + 0.5 * math.log(2 * math.pi))) * self.recon_factor
        return F.binary_cross_entropy(reconstruction, x, reduction="mean") * self.recon_factor

    def statistics(self, x: Tensor, output: ModelOutput) -> dict[str, Tensor]:
        """``recon``: the batch mean of each sample's NLL sum; ``kl/<channel>``: each unit's batch-mean KL."""
        # BCE is unsafe under autocast: compute it in float32 whatever precision the forward pass ran in.
        with torch.autocast(x.device.type, enabled=False):
            recon = self.reconstruction_nll(output.reconstruction.float(), x.float())
        kl_units = self.latent.kl(output.params, output.samples)
        stats = {"recon": recon, **{f"kl/{name}": units.mean(0) for name, units in kl_units.items()}}
        # How much each channel's deterministic code varies over the batch (logged as spread/<channel>): a channel
        # whose KL meets its capacity while its code is the same for every input carries no information — the
        # collapse that a large γ with a fast capacity ramp can cause (plugins/collapse_watch.py warns about it).
        with torch.no_grad():
            for name, family in self.latent.items():
                rep = family.representative(output.params[name]).detach().double().flatten(1)  # E[x²]−E[x]²: float64
                stats[f"rep_mean/{name}"] = rep.mean(0)
                stats[f"rep_sq/{name}"] = (rep * rep).mean(0)
                # The family's own batch means about its training sample (logged as <key>/<channel>).
                for key, value in family.diagnostics(output.params[name], output.samples[name]).items():
                    stats[f"diag/{key}/{name}"] = value.detach()
        return stats

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
            if f"rep_mean/{name}" in stats:
                mean = stats[f"rep_mean/{name}"]
                logs[f"spread/{name}"] = (stats[f"rep_sq/{name}"] - mean * mean).clamp_min(0).sum()
        logs.update({key[len("diag/"):]: value for key, value in stats.items() if key.startswith("diag/")})
        logs["kl/total"] = kl_total
        logs["objective"] = total
        logs["loss"] = total / self.divisor
        return logs


def build_jointvae_objective(
    latent: JointLatent,
    image_shape: tuple[int, ...],
    registry,
    terms: Mapping[str, Mapping],
    scale: str = "pixels",
    channel_mean_compat: bool = False,
    likelihood: str = "bernoulli",
    sigma: float = DEFAULT_SIGMA,
) -> JointVAEObjective:
    """Build from JSON-like options: ``terms = {channel: {"gamma": γ, "capacity": {"name": ..., "options": {...}}}}``;
    ``likelihood`` (``"bernoulli"`` or ``"gaussian"``) and its ``sigma`` choose the reconstruction term."""
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
        try:
            schedule = registry.schedules.build(cap["name"], options)
        except ConfigError as exc:
            raise ConfigError(f"channel {name!r}: {exc}") from None
        built[name] = (term["gamma"], schedule)
    return JointVAEObjective(
        latent, image_shape, built, scale=scale, channel_mean_compat=channel_mean_compat, likelihood=likelihood,
        sigma=sigma,
    )


@hookimpl
def latentkit_register_objectives(registry):
    registry.add("jointvae", build_jointvae_objective)
