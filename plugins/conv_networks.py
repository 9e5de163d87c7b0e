"""The original JointVAE convolutional encoder and decoder, for 32x32 and 64x64 images of any channel count.

Follows the original *code* (and its released checkpoints), not the paper's appendix wording: for 32x32 inputs the
encoder is Conv(C→32) → Conv(32→64) → Conv(64→64); 64x64 inputs get one extra Conv(32→32) after the first. All convs
are 4x4 / stride 2 / padding 1 with ReLU; then Linear(1024→256) + ReLU, then one linear head for every distribution
parameter of the joint latent (the original's ``fc_mean``, ``fc_log_var`` and ``fc_alphas.i`` stacked in that order).

ReLUs work in place (their backward needs only their output): the same values, one activation buffer less per layer.
"""

from __future__ import annotations

from einops.layers.torch import Rearrange
from torch import nn

from latentkit.core import ImageShape, NetworkFamily, Sigmoid32
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, positive_int

SUPPORTED_SIZES = (32, 64)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)


class JointVAEConv(NetworkFamily):
    """The original code's networks; ``hidden`` is the width of the fully connected layer (256 in the original)."""

    network_name = "jointvae_conv"

    def __init__(self, hidden: int = 256):
        self.hidden = check("hidden", hidden, positive_int, owner="jointvae_conv", example="256")

    @staticmethod
    def check_image_shape(image_shape: ImageShape) -> tuple[int, int]:
        try:
            channels, height, width = (int(v) for v in image_shape)
        except (TypeError, ValueError):
            raise ConfigError(
                f"the jointvae_conv network takes images, image_shape (channels, height, width); got {image_shape!r} — "
                f"for signals (C, L) or vectors (D,) choose the mlp network"
            ) from None
        if channels < 1:
            raise ConfigError(f"image_shape needs at least one channel, got {image_shape!r}")
        if height != width or height not in SUPPORTED_SIZES:
            raise ConfigError(
                f"the jointvae_conv network takes square images of size {' or '.join(map(str, SUPPORTED_SIZES))}, "
                f"got {height}x{width}; resize the data (e.g. torchvision Resize(32)) or choose another network"
            )
        return channels, height

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        channels, size = self.check_image_shape(image_shape)
        layers: list[nn.Module] = [_conv(channels, 32), nn.ReLU(inplace=True)]
        if size == 64:
            layers += [_conv(32, 32), nn.ReLU(inplace=True)]
        layers += [_conv(32, 64), nn.ReLU(inplace=True), _conv(64, 64), nn.ReLU(inplace=True)]
        return nn.Sequential(
            nn.Sequential(*layers),
            Rearrange("b c h w -> b (c h w)"),
            nn.Sequential(nn.Linear(64 * 4 * 4, self.hidden), nn.ReLU(inplace=True)),
            nn.Linear(self.hidden, out_features),
        )

    def decoder(self, in_features: int, image_shape: ImageShape) -> nn.Module:
        channels, size = self.check_image_shape(image_shape)
        layers: list[nn.Module] = []
        if size == 64:
            layers += [_deconv(64, 64), nn.ReLU(inplace=True)]
        layers += [_deconv(64, 32), nn.ReLU(inplace=True), _deconv(32, 32), nn.ReLU(inplace=True), _deconv(32, channels), Sigmoid32()]
        return nn.Sequential(
            nn.Sequential(nn.Linear(in_features, self.hidden), nn.ReLU(inplace=True), nn.Linear(self.hidden, 64 * 4 * 4), nn.ReLU(inplace=True)),
            Rearrange("b (c h w) -> b c h w", c=64, h=4, w=4),
            nn.Sequential(*layers),
        )


@hookimpl
def latentkit_register_networks(registry):
    registry.add("jointvae_conv", JointVAEConv)
