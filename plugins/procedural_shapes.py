"""``shapes``: a small procedural ground-truth data set that needs no download (the embedded default's data).

A miniature of dSprites: binary images of one of three shapes (square, ellipse, triangle) on a full factorial grid of
one discrete factor and four continuous ones — shape (3, also the class label) × scale (6) × rotation (8) × pos_x (8) ×
pos_y (8) = 9,216 images, row-major over the factors (pos_y fastest) as :class:`GroundTruthData` requires. Rotations
span [0, π/2) in steps of π/16, inside every shape's period of symmetry, so no two grid points draw the same shape
(at 32x32 pixels 8 pairs of the smallest shapes still rasterise alike). Generated in well under a second, vectorised,
identical on every machine.

Splits: a fixed, seeded fifth of the grid is held out as ``test``, the rest is ``train``. ``n`` takes a seeded random
subset of ``n`` training images (and ``max(1, n // 5)`` test images) for quick runs; ``None`` (the default) uses them
all. :meth:`Shapes.ground_truth` is the whole grid, for disentanglement metrics.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from latentkit.data.ground_truth import GroundTruthData
from latentkit.data.provider import GridDatasetProvider
from latentkit.plugins import hookimpl
from latentkit.validation import at_least, check

FACTORS = ("shape", "scale", "rotation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 8, 8, 8)
DISCRETE_FACTORS = (True, False, False, False, False)
SHAPES = ("square", "ellipse", "triangle")
#: Physical values of each factor's classes: shape index, scale and position as fractions of the image side, radians.
FACTOR_VALUES = (
    torch.arange(3, dtype=torch.float64),
    torch.linspace(0.15, 0.30, 6, dtype=torch.float64),
    torch.arange(8, dtype=torch.float64) * (math.pi / 16),
    torch.linspace(0.25, 0.75, 8, dtype=torch.float64),
    torch.linspace(0.25, 0.75, 8, dtype=torch.float64),
)


def render_shapes(factors: Tensor, size: int) -> Tensor:
    """Draw ``(N, 5)`` factor *values* (shape index, scale, rotation, x, y in image fractions) as uint8 images.

    The result is ``(N, 1, size, size)``.

    A pixel is on (255) iff its centre lies inside the shape.
    """
    factors = factors.double()
    out = torch.zeros(len(factors), 1, size, size, dtype=torch.uint8)
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    for shape_id in range(len(SHAPES)):
        rows = (factors[:, 0] == shape_id).nonzero()[:, 0]
        if not len(rows):
            continue
        _, scale, angle, px, py = factors[rows].unbind(1)
        dx = xx[None] - px[:, None, None]
        dy = yy[None] - py[:, None, None]
        c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy
        r = scale[:, None, None]
        if shape_id == 0:  # square of half side 0.8 r
            inside = (u.abs() <= r * 0.8) & (v.abs() <= r * 0.8)
        elif shape_id == 1:  # ellipse of semi-axes r and 0.55 r
            inside = (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1
        else:  # inside three half-planes of an equilateral triangle of circumradius r
            inside = torch.ones_like(u, dtype=torch.bool)
            for k in range(3):
                a = 2 * math.pi * k / 3
                inside &= u * math.cos(a) + v * math.sin(a) <= r * 0.5
        out[rows, 0] = inside.to(torch.uint8) * 255
    return out


class ShapesGroundTruth(GroundTruthData):
    """The ``shapes`` grid at ``size`` x ``size`` pixels."""

    factor_names = FACTORS
    factor_sizes = FACTOR_SIZES
    discrete_factors = DISCRETE_FACTORS

    def __init__(self, size: int = 32):
        self.size = int(size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def factor_values(self, factors: Tensor) -> Tensor:
        self.check_factors(factors)
        f = factors.long()
        return torch.stack([values[f[:, k]] for k, values in enumerate(FACTOR_VALUES)], 1)

    def images(self, factors: Tensor) -> Tensor:
        values = self.factor_values(factors)
        out = torch.empty(len(values), *self.image_shape, dtype=torch.uint8)
        chunk = max(1, 2**22 // (self.size * self.size))  # bounds the float64 temporaries to ~32 MB each
        for i in range(0, len(values), chunk):
            out[i : i + chunk] = render_shapes(values[i : i + chunk], self.size)
        return out


class Shapes(GridDatasetProvider):
    dataset_name = "shapes"

    def __init__(self, n: int | None = None, size: int = 32, seed: int = 0):
        super().__init__(n, seed)
        self.size = check("size", size, at_least(16), owner="shapes data set", example="32")  # pixels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def ground_truth(self, root: str | os.PathLike | None = None) -> ShapesGroundTruth:
        return ShapesGroundTruth(self.size)


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("shapes", Shapes)
