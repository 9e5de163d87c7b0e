"""The network protocol: a network plugin builds an encoder and a decoder for an image shape.

The encoder maps ``(B, C, H, W)`` images to ``(B, out_features)`` flat features (the joint latent decides how many it
consumes); the decoder maps ``(B, in_features)`` latent vectors to ``(B, C, H, W)`` pixel probabilities in [0, 1].
An image shape the network cannot take must raise :class:`latentkit.errors.ConfigError` when the network is built.
"""

from __future__ import annotations

import abc

from torch import nn

ImageShape = tuple[int, int, int]


class NetworkFamily(abc.ABC):
    network_name = ""

    @abc.abstractmethod
    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """A module mapping images to ``out_features`` flat features."""

    @abc.abstractmethod
    def decoder(self, in_features: int, image_shape: ImageShape) -> nn.Module:
        """A module mapping latent vectors to pixel probabilities."""
