"""KL per latent unit on evaluation data, ranked (the JointVAE paper's Fig. 7b numbers).

Every image of the split is encoded in eval mode; ``model.latent.kl(params)`` gives each unit's KL to its prior (each
continuous dimension, each discrete variable) per image; the batch mean over the whole split is reported per unit,
ranked from most to least informative. Units with about 0 nats do not affect the output.
"""

from __future__ import annotations

import torch
from torch import nn

from latentkit.data.provider import ImageData, as_float_batch
from latentkit.errors import ConfigError
from latentkit.validation import check, positive_int


def kl_per_unit(
    model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """``{unit name: mean KL in nats}`` over ``data``, units in channel order (``cont.0``, ..., ``disc.0``, ...)."""
    batch_size = check("batch_size", batch_size, positive_int.such_as("1000"))
    if len(data) == 0:
        raise ConfigError("no images to evaluate: the data split is empty")
    unit_names = model.latent.unit_names()
    totals = {name: torch.zeros(len(units), dtype=torch.float64) for name, units in unit_names.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(data), batch_size):
                x = as_float_batch(data.images[start : start + batch_size].to(device))
                kl = model.latent.kl(model.encode(x))
                for name in totals:
                    totals[name] += kl[name].double().sum(0).cpu()
    finally:
        model.train(was_training)
    n = len(data)
    return {unit: float(totals[name][i] / n) for name, units in unit_names.items() for i, unit in enumerate(units)}


def kl_ranking(model: nn.Module, data: ImageData, batch_size: int = 1000, device: str | torch.device = "cpu") -> dict:
    """``{"ranking": [unit, ...], "kl": {unit: nats} (ranked), "total", "n_images"}``: units by descending mean KL."""
    per_unit = kl_per_unit(model, data, batch_size, device)
    ranked = sorted(per_unit.items(), key=lambda item: -item[1])  # stable: ties keep channel order
    return {
        "ranking": [unit for unit, _ in ranked],
        "kl": dict(ranked),
        "total": float(sum(per_unit.values())),
        "n_images": len(data),
    }
