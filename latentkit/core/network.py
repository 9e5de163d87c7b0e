"""The network protocol: a network plugin builds an encoder and a decoder for a data shape.

The data shape (``image_shape``, a name kept from the images the framework started with) is the shape of one sample:
``(C, H, W)`` for an image, ``(C, L)`` for a multi-channel signal, ``(D,)`` for a vector. The encoder maps a batch
``(B, *shape)`` to ``(B, out_features)`` flat features (the joint latent decides how many it consumes); the decoder
maps ``(B, in_features)`` latent vectors back to ``(B, *shape)`` — probabilities in [0, 1] for a Bernoulli likelihood,
or real values for a Gaussian one (the objective's choice; the network only has to produce the right range).
A shape the network cannot take (a convolutional network given a vector) must raise
:class:`latentkit.errors.ConfigError` when the network is built, naming the shapes it takes.

Under ``precision="bfloat16"`` (:mod:`latentkit.precision`) the networks' convolutions and linear layers run in
bfloat16; whatever dtype they hand back, :class:`~latentkit.core.JointLatentVAE` passes float32 on. A decoder ending in
a sigmoid should use :class:`Sigmoid32`: probabilities rounded to bfloat16 are coarse near 1 (steps of 2^-8), where
most of a binary image's reconstruction loss is decided.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

#: The shape of one sample: ``(C, H, W)``, ``(C, L)`` or ``(D,)``.
ImageShape = tuple[int, ...]


def float32_from_low_precision(tensor: Tensor) -> Tensor:
    """float32 for what autocast left in bfloat16 or float16; float32 and float64 untouched."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


class Sigmoid32(nn.Module):
    """``sigmoid`` computed in float32 whatever its input's precision (a float64 input stays float64).

    The same values as :class:`torch.nn.Sigmoid` in float32; under bfloat16 autocast the last layer's logits are
    bfloat16, and a float32 sigmoid keeps the probabilities near 0 and 1 that a bfloat16 one would round away."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(float32_from_low_precision(x))


class NetworkFamily(abc.ABC):
    """A network plugin: built with its options, it builds an encoder and a decoder for the shape of one sample.

    Why a builder and not a module: the same network plugin serves any joint latent and any data shape, and only the
    assembly knows both — it calls :meth:`encoder` with the joint latent's ``param_size`` and :meth:`decoder` with its
    ``sample_size``. The options are the constructor's keyword arguments and only those (checked with
    :mod:`latentkit.validation`; an option it does not declare is refused before it is called); a shape the network
    cannot take is a :class:`~latentkit.errors.ConfigError` raised when the network is built.

    Attributes:
        network_name: the name it is registered under (set by subclasses).
    """

    network_name = ""

    @abc.abstractmethod
    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """A module mapping samples ``(B, *image_shape)`` to ``out_features`` flat features."""

    @abc.abstractmethod
    def decoder(self, in_features: int, image_shape: ImageShape) -> nn.Module:
        """A module mapping latent vectors to samples ``(B, *image_shape)``."""
