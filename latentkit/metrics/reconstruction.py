"""Reconstruction quality on evaluation data: each image's Bernoulli negative log-likelihood (BCE summed over its
pixels, in nats) when decoded from its representative latent (the encoder's mean, the most probable category).

The median is the headline (a few badly reconstructed images move the mean); it is comparable across runs of the same
data set and image size, and it is the reconstruction term the JointVAE objective trains, without sampling noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentkit.data.provider import ImageData, as_float_batch
from latentkit.errors import ConfigError
from latentkit.inference import reconstruct
from latentkit.validation import check, positive_int


def reconstruction(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu") -> dict:
    """``{"bce_median", "bce_mean", "bce_p10", "bce_p90", "n_images"}``: per-image BCE sums in nats."""
    batch_size = check("batch_size", batch_size, positive_int.such_as("1000"))
    if len(data) == 0:
        raise ConfigError("no images to evaluate: the data split is empty")
    per_image = []
    for start in range(0, len(data), batch_size):
        x = as_float_batch(data.images[start : start + batch_size])
        recon = reconstruct(model, x, batch_size=min(batch_size, 256), device=device)
        if recon.min() < 0 or recon.max() > 1 or x.min() < 0 or x.max() > 1:
            raise ConfigError(
                "the reconstruction metric scores a Bernoulli likelihood and needs data and decoder outputs in [0, 1]; "
                "this model or data set has values outside it (a real-valued decoder, e.g. mlp with output='identity')"
            )
        per_image.append(F.binary_cross_entropy(recon, x, reduction="none").flatten(1).sum(1).double())
    bce = torch.cat(per_image)
    q = torch.quantile(bce, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"bce_median": float(q[1]), "bce_mean": float(bce.mean()), "bce_p10": float(q[0]), "bce_p90": float(q[2]),
            "n_images": len(data)}
