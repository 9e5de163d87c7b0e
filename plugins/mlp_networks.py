"""``mlp``: fully connected encoder and decoder for samples of any shape — vectors, signals, small images.

Why: the convolutional networks assume images; a multilayer perceptron assumes nothing about the data but its size,
so it is the network for vectors ``(D,)`` and short signals ``(C, L)`` (and a baseline on images). The encoder
flattens a sample, applies ``layers`` hidden layers of ``hidden`` units with ReLU, then one linear head for every
distribution parameter of the joint latent; the decoder mirrors it and reshapes to the sample's shape.

``output`` sets the decoder's last activation: ``"sigmoid"`` for data in [0, 1] (required by the Bernoulli
likelihood, and a good bound for data scaled into [0, 1] under a Gaussian one), ``"identity"`` for real-valued data
under the Gaussian likelihood.
"""

from __future__ import annotations

import math

from torch import nn

from latentkit.core import ImageShape, NetworkFamily, Sigmoid32
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, one_of, positive_int

OUTPUTS = ("sigmoid", "identity")


def _sample_shape(image_shape: ImageShape) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ConfigError(
            f"the mlp network needs the shape of one sample as whole numbers, got {image_shape!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise ConfigError(
            f"the mlp network needs a sample shape of positive sizes such as (64,) or (1, 64), got {shape}"
        )
    return shape


class MLP(NetworkFamily):
    """``layers`` hidden layers of ``hidden`` units with ReLU in the encoder and in the decoder; ``output`` is the
    decoder's last activation (``"sigmoid"`` or ``"identity"``)."""

    network_name = "mlp"

    def __init__(self, hidden: int = 256, layers: int = 2, output: str = "sigmoid"):
        self.hidden = check("hidden", hidden, positive_int, owner="mlp", example="256")
        self.layers = check("layers", layers, positive_int, owner="mlp", example="2")
        # 'sigmoid' for data in [0, 1], 'identity' for real-valued data
        self.output = check("output", output, one_of(*OUTPUTS), owner="mlp")

    def _stack(self, in_features: int) -> list[nn.Module]:
        """The hidden layers: Linear + ReLU, ``layers`` times, from ``in_features`` to ``hidden``."""
        modules: list[nn.Module] = []
        for i in range(self.layers):
            modules += [nn.Linear(in_features if i == 0 else self.hidden, self.hidden), nn.ReLU(inplace=True)]
        return modules

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        shape = _sample_shape(image_shape)
        return nn.Sequential(
            nn.Flatten(1),
            nn.Sequential(*self._stack(math.prod(shape))),
            nn.Linear(self.hidden, out_features),
        )

    def decoder(self, in_features: int, image_shape: ImageShape) -> nn.Module:
        shape = _sample_shape(image_shape)
        return nn.Sequential(
            nn.Sequential(*self._stack(in_features)),
            nn.Linear(self.hidden, math.prod(shape)),
            nn.Unflatten(1, shape),
            Sigmoid32() if self.output == "sigmoid" else nn.Identity(),
        )


@hookimpl
def latentkit_register_networks(registry):
    registry.add("mlp", MLP)
