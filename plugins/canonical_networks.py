"""``jointvae_conv_canonical``: the original's networks, with the last latent parameters read from a canonical view.

Why: on dSprites a 3-way code left to the reconstruction loss holds the object's size or position, not its shape — they
move the most pixels — and a consistency term alone did not move it (docs/results.md, issue 21). Position and size are
exact symmetries of how such data is made, so instead of asking a network to learn to ignore them, this one never sees
them: its second encoder reads the image *canonicalised* — the ink's centroid moved to the centre and its area scaled to
a fixed fraction of the frame (``canonical_size``²) — and computes the last ``canonical_features`` outputs from it. With
the JointVAE latent's order (continuous parameters first, then each categorical's logits), ``canonical_features`` equal
to the categories' count gives the discrete code from the canonical view and everything else, from the image as it is.
What the canonical view still shows is the shape and its rotation; a consistency term under rotation
(``jointvae_code``'s ``augment``) can then remove the rotation.

Both encoders are the original's (``jointvae_conv``), the same decoder; the canonicalisation has no parameters and
passes no gradient to the image (the image needs none). A blank image is left as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentkit.core import ImageShape, NetworkFamily
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, non_negative_int, positive_float, positive_int
from latentkit_plugins.code_objective import ink_centroid
from latentkit_plugins.conv_networks import JointVAEConv


def canonicalise(x: Tensor, size: float) -> Tensor:
    """``x`` (B, C, H, W) with each image's ink centred and scaled to an area of ``size``² of the frame (bilinear).

    The centroid is intensity-weighted over all channels and the area is the intensity's sum over its peak (pixels of
    a binary image, whatever the intensity scale); ``size`` is the side of a square of the same
    area as the ink, as a fraction of the frame's side. A blank image is returned unchanged."""
    with torch.no_grad():
        b, _, h, w = x.shape
        xf = x.float()
        peak = xf.amax((1, 2, 3))
        inked = peak > 0
        area = xf.sum((1, 2, 3)) / peak.clamp_min(1e-12)  # in pixels, whatever the intensity scale
        # affine_grid maps output to input coordinates: input = s·output + centroid, s the input's span per output unit
        s = torch.where(inked, torch.sqrt(area / (size * size * h * w)), torch.ones_like(area))
        centre = torch.where(inked[:, None], ink_centroid(xf), torch.zeros(b, 2, device=x.device))
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = s
        theta[:, 1, 1] = s
        theta[:, :, 2] = centre
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        return F.grid_sample(xf, grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)


class CanonicalSplitEncoder(nn.Module):
    """The outputs at ``positions`` from ``canonical(canonicalise(x))``, every other output from ``main(x)``."""

    def __init__(self, main: nn.Module, canonical: nn.Module, size: float, positions: list[int], out_features: int):
        super().__init__()
        self.main = main
        self.canonical = canonical
        self.size = size
        taken = set(positions)
        rest = [i for i in range(out_features) if i not in taken]
        # cat([main, canonical]) holds outputs rest + positions in that order; this index puts them back in place
        self.register_buffer("order", torch.argsort(torch.tensor(rest + list(positions))), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        joined = torch.cat([self.main(x), self.canonical(canonicalise(x, self.size))], 1)
        return joined.index_select(1, self.order)


class JointVAEConvCanonical(NetworkFamily):
    """``jointvae_conv`` whose last ``canonical_features`` encoder outputs come from a second encoder on the canonical
    view (module docstring). Options: ``canonical_features`` (required: e.g. 3 for one 3-way code after the continuous
    units; or a list of output positions, e.g. ``[5, 11, 12, 13, 14]`` for a 6-unit Gaussian channel's last unit —
    its mean at 5, its log-variance at 11 — and a 3-way code after it, so that unit too can hold only what the
    canonical view shows: shape and rotation), ``canonical_size`` (the ink's side after canonicalisation, a fraction of the frame; default 0.35, a large
    dSprites shape), ``hidden`` (both encoders' and the decoder's hidden width, 256 as in the original)."""

    network_name = "jointvae_conv_canonical"

    def __init__(self, canonical_features: int | list[int] | None = None, canonical_size: float = 0.35,
                 hidden: int = 256):
        owner = "jointvae_conv_canonical"
        if canonical_features is None:
            raise ConfigError(
                "the jointvae_conv_canonical network needs canonical_features: how many of the encoder's last outputs "
                "come from the canonical view — the categories' count for a JointVAE latent's discrete code, e.g. "
                'network_options={"canonical_features": 3} for disc_sizes=[3] — or a list of output positions'
            )
        if isinstance(canonical_features, (list, tuple)):
            if (not canonical_features or not all(non_negative_int.test(i) for i in canonical_features)
                    or len(set(canonical_features)) != len(canonical_features)):
                raise ConfigError(f"{owner} canonical_features as a list holds distinct output positions (whole "
                                  f"numbers from 0), got {canonical_features!r}; e.g. [5, 11, 12, 13, 14]")
            self.canonical_features: int | list[int] = [int(i) for i in canonical_features]
        else:
            self.canonical_features = check("canonical_features", canonical_features, positive_int, owner=owner,
                                            example="3")
        self.canonical_size = check("canonical_size", canonical_size, positive_float, owner=owner, example="0.35")
        if self.canonical_size > 1:
            raise ConfigError(f"{owner} canonical_size is a fraction of the frame's side (at most 1), got {canonical_size}")
        self.conv = JointVAEConv(hidden=hidden)

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        if isinstance(self.canonical_features, list):
            positions = self.canonical_features
            if max(positions) >= out_features:
                raise ConfigError(
                    f"jointvae_conv_canonical canonical_features {positions} names positions beyond the latent's "
                    f"{out_features} parameters (0 to {out_features - 1})"
                )
        else:
            positions = list(range(out_features - self.canonical_features, out_features))
        if len(positions) >= out_features:
            raise ConfigError(
                f"jointvae_conv_canonical canonical_features={self.canonical_features} leaves nothing for the main "
                f"encoder: the latent has {out_features} parameters in all; give the canonical view only the discrete "
                f"code's logits (the categories' count)"
            )
        main = self.conv.encoder(image_shape, out_features - len(positions))
        canonical = self.conv.encoder(image_shape, len(positions))
        return CanonicalSplitEncoder(main, canonical, self.canonical_size, positions, out_features)

    def decoder(self, in_features: int, image_shape: ImageShape) -> nn.Module:
        return self.conv.decoder(in_features, image_shape)


@hookimpl
def latentkit_register_networks(registry):
    registry.add("jointvae_conv_canonical", JointVAEConvCanonical)
