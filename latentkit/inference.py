"""Model inference on many images, fast: :func:`reconstruct` runs the eval-mode forward pass (encoder, representative
latent, decoder) with no autograd, in batches sized for the cache, channels_last on the CPU.

This module is about running a model over tensors quickly (the reconstruction metric and the figures use it); reading
image *files* into latent codes and editing them through the latent is :mod:`latentkit.editing`.

The original code's evaluation runs in eval mode with autograd still recording (its ``volatile=True`` has been a no-op
since PyTorch 0.4), at the training batch of 64. Here, :func:`torch.inference_mode` skips autograd altogether, batches
of :data:`DEFAULT_BATCH` images keep oneDNN's convolutions busy while the activations still fit in the caches of a
small CPU (256 measured faster than both 64 and 1,000 on 2 cores; ``benchmarks/throughput.py``), and the model runs in
``channels_last`` on the CPU as the trainer does. Values are the same float32 computation as a plain forward pass;
``precision="bfloat16"`` trades exactness for speed where the hardware computes bfloat16 (docs/performance.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentkit.data.provider import as_float_batch
from latentkit.devices import use_channels_last
from latentkit.precision import autocast

#: Images per forward pass for inference on the CPU.
DEFAULT_BATCH = 256


def reconstruct(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = DEFAULT_BATCH,
    device: str | torch.device | None = None,
    channels_last: bool | None = None,
    precision: str = "float32",
) -> Tensor:
    """Decode each image's representative latent (the encoder's mean, the most probable category), ``(N, C, H, W)``
    float32 on the CPU. ``images`` are uint8 (0..255) or float in [0, 1]; the model's mode is restored afterwards.

    With ``channels_last`` (default: on the CPU) the model's 4-D weights are put in that layout — their values are
    unchanged, and a second call finds them ready. ``precision="bfloat16"`` runs the networks under bfloat16 autocast
    (:mod:`latentkit.precision`; the result is still float32); ``"float32"`` adds nothing, so a caller's own autocast
    region still applies."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if channels_last is None:
        channels_last = use_channels_last("auto", device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode(), autocast(precision, device):
            for start in range(0, images.shape[0], batch_size):
                x = as_float_batch(images[start : start + batch_size].to(device))
                x = x.contiguous(memory_format=fmt if x.dim() == 4 else torch.contiguous_format)
                params = model.encode(x)
                z = model.latent.concat(model.latent.sample(params, reparametrise=False))
                out.append(model.decode(z).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[1:]), dtype=torch.float32)
