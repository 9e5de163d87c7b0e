"""The network protocol: a network plugin builds an encoder and a decoder for a data shape.

The data shape (``image_shape``, a name kept from the images the framework started with) is the shape of one sample:
``(C, H, W)`` for an image, ``(C, L)`` for a multi-channel signal, ``(D,)`` for a vector. The encoder maps a batch
``(B, *shape)`` to ``(B, out_features)`` flat features (the joint latent decides how many it consumes); the decoder
maps ``(B, in_features)`` latent vectors back to ``(B, *shape)`` — probabilities in [0, 1] for a Bernoulli likelihood,
or real values for a Gaussian one (the objective's choice; the network only has to produce the right range).
A shape the network cannot take (a convolutional network given a vector) must raise
:class:`latentkit.errors.ConfigError` when the network is built, naming the shapes it takes.
"""

from __future__ import annotations

import abc

from torch import nn

#: The shape of one sample: ``(C, H, W)``, ``(C, L)`` or ``(D,)``.
ImageShape = tuple[int, ...]


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
