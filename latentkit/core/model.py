"""A VAE over a joint latent: encoder → joint latent → decoder, with one output type.

Nothing here is specific to JointVAE: the objective (a plugin) decides what is minimised.
"""

from __future__ import annotations

import attrs
from torch import Tensor, nn

from latentkit.core.family import Params
from latentkit.core.joint import JointLatent
from latentkit.core.network import float32_from_low_precision
from latentkit.core.noise import SampleNoise


@attrs.frozen
class ModelOutput:
    """Everything one forward pass produces (the same type for every model, as pythae does)."""

    reconstruction: Tensor  #: ``(B, C, H, W)`` pixel probabilities
    params: dict[str, Params]  #: each channel's distribution parameters
    samples: dict[str, Tensor]  #: each channel's sample (training) or representative (eval)
    latent: Tensor  #: the concatenated latent vector the decoder read


class JointLatentVAE(nn.Module):
    """Encoder, joint latent and decoder: a variational autoencoder whose latent is a :class:`JointLatent`.

    Named for what it is, not for one objective: JointVAE, a β-VAE, β-TCVAE or FactorVAE are this model trained with
    different objectives (plugins).

    ``forward(x, noise=None)`` returns a :class:`ModelOutput`: in training mode each channel samples with the
    per-row :class:`~latentkit.core.SampleNoise` given (the trainer keys it by seed, step and global row), in eval
    mode each channel's representative is decoded and no noise is drawn. The networks come from a
    :class:`~latentkit.core.NetworkFamily` plugin and the channels from latent-family plugins; the model itself names
    none of them.

    Attributes:
        encoder: ``(B, *image_shape)`` to ``(B, latent.param_size)`` features.
        latent: the :class:`~latentkit.core.JointLatent`.
        decoder: ``(B, latent.sample_size)`` to ``(B, *image_shape)``.
        image_shape: the shape of one sample.
    """

    def __init__(self, encoder: nn.Module, latent: JointLatent, decoder: nn.Module, image_shape: tuple[int, int, int]):
        super().__init__()
        self.encoder = encoder
        self.latent = latent
        self.decoder = decoder
        self.image_shape = tuple(image_shape)

    def encode(self, x: Tensor) -> dict[str, Params]:
        """Images to each channel's posterior parameters, in float32 even when the encoder ran in bfloat16 (the
        latent families' KL terms and samples are computed in float32; :mod:`latentkit.precision`)."""
        return self.latent.split(float32_from_low_precision(self.encoder(x)))

    def decode(self, latent: Tensor) -> Tensor:
        """A latent vector (channels concatenated) to pixel probabilities, float32 even when the decoder ran in
        bfloat16 (the reconstruction loss is computed in float32)."""
        return float32_from_low_precision(self.decoder(latent))

    def forward(self, x: Tensor, noise: SampleNoise | None = None) -> ModelOutput:
        """In training mode every channel samples with ``noise`` (one key per row of ``x``; ``None``: fresh keys from
        torch's global RNG, see :meth:`JointLatent.sample`); in eval mode no noise is drawn."""
        params = self.encode(x)
        samples = self.latent.sample(params, reparametrise=self.training, noise=noise)
        z = self.latent.concat(samples)
        return ModelOutput(reconstruction=self.decode(z), params=params, samples=samples, latent=z)
