"""Samples from the prior, samples conditioned on one discrete unit (the paper's Fig. 4a), reconstructions.

Conditioning goes through :meth:`JointLatent.prior_sample` with the category's channel given, so channels whose prior
depends on that category (a mixture prior) are drawn from the right component; with a product prior, every row of a
conditional grid reuses the same continuous draws (one generator seed per row), so a column shows one "style" across
categories, as in the paper's figure.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentkit.core import JointLatentVAE
from latentkit.data.provider import as_float_batch
from latentkit.errors import ConfigError
from latentkit.viz.traversal import UnitRef, decode_latents, parse_unit


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def prior_samples(model: JointLatentVAE, n: int = 64, *, seed: int = 0) -> Tensor:
    """``n`` decoded draws from the prior, ``(n, C, H, W)``."""
    if n < 1:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    z = model.latent.concat(model.latent.prior_sample(n, _generator(seed)))
    return decode_latents(model, z)


def conditional_latents(model: JointLatentVAE, unit: str | UnitRef, n: int = 8, *, seed: int = 0) -> Tensor:
    """Latent vectors ``(K, n, sample_size)``: row ``k`` fixes the discrete ``unit`` at category ``k`` and draws every
    other unit from the prior given it."""
    latent = model.latent
    ref = parse_unit(latent, unit)
    family = latent.channels[ref.channel]
    if not family.is_discrete:
        raise ConfigError(
            f"samples are conditioned on a discrete unit (a category); {ref} belongs to the continuous channel "
            f"{ref.channel!r} — traverse it instead (`latentkit traverse --units {ref}`)"
        )
    values = family.traversal_values(ref.index, n)  # one row per category
    columns = family.unit_slice(ref.index)
    rows = []
    for value in values:
        channel_value = latent.prior_sample(n, _generator(seed))[ref.channel].clone()
        channel_value[:, columns] = value.to(channel_value.dtype)
        rows.append(latent.concat(latent.prior_sample(n, _generator(seed), given={ref.channel: channel_value})))
    return torch.stack(rows)


def conditional_samples(model: JointLatentVAE, unit: str | UnitRef, n: int = 8, *, seed: int = 0) -> Tensor:
    """Decoded :func:`conditional_latents`, ``(K, n, C, H, W)``: a row per category."""
    z = conditional_latents(model, unit, n, seed=seed)
    images = decode_latents(model, z.reshape(-1, z.shape[-1]))
    return images.reshape(z.shape[0], n, *images.shape[1:])


def reconstructions(model: JointLatentVAE, images: Tensor) -> Tensor:
    """Originals and their reconstructions from the representative latent (eval mode), ``(2, N, C, H, W)``.

    ``images`` are float in [0, 1] or uint8, ``(N, C, H, W)``.
    """
    from latentkit.inference import reconstruct

    originals = as_float_batch(images)
    return torch.stack([originals.cpu(), reconstruct(model, images)])
