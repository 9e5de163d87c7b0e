"""``shapes``: a small procedural data set that needs no download (the embedded default's data).

Binary images of one of three shapes (square, ellipse, triangle) at a random scale, rotation and position — a
miniature of dSprites with one discrete factor (the shape, also given as the class label) and four continuous ones.
Generated in a fraction of a second from a seed, vectorised, identical on every machine.
"""

from __future__ import annotations

import math
import numbers

import torch

from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl

FACTORS = ("shape", "scale", "rotation", "pos_x", "pos_y")
SHAPES = ("square", "ellipse", "triangle")


def render_shapes(factors: torch.Tensor, size: int) -> torch.Tensor:
    """Draw ``(N, 5)`` factors (shape index, scale, rotation, x, y in image fractions) as uint8 ``(N, 1, size, size)``."""
    shape, scale, angle, px, py = factors.double().unbind(1)
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    dx = xx[None] - px[:, None, None]
    dy = yy[None] - py[:, None, None]
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = c * dx + s * dy, -s * dx + c * dy
    r = scale[:, None, None]
    square = (u.abs() <= r * 0.8) & (v.abs() <= r * 0.8)
    ellipse = (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1
    triangle = torch.ones_like(square)
    for k in range(3):  # inside three half-planes of an equilateral triangle of circumradius r
        a = 2 * math.pi * k / 3
        triangle &= u * math.cos(a) + v * math.sin(a) <= r * 0.5
    masks = torch.stack([square, ellipse, triangle], 1)
    picked = masks.gather(1, shape.long()[:, None, None, None].expand(-1, 1, size, size))
    return picked.to(torch.uint8) * 255


class Shapes(DatasetProvider):
    dataset_name = "shapes"
    splits = ("train", "test")

    def __init__(self, n: int = 20_000, size: int = 32, seed: int = 0):
        for key, value in (("n", n), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"shapes data set option {key} must be a positive whole number, got {value!r}")
        if size < 16:
            raise ConfigError(f"shapes images need size >= 16 pixels, got {size}")
        self.n, self.size, self.seed = int(n), int(size), int(seed)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def load(self, root=None, split: str = "train") -> ImageData:
        self.check_split(split)
        gen = torch.Generator().manual_seed(self.seed * 2 + (split == "test"))
        n = self.n if split == "train" else max(1, self.n // 5)
        shape = torch.randint(0, 3, (n,), generator=gen).double()
        scale = 0.15 + 0.15 * torch.rand(n, generator=gen, dtype=torch.float64)
        angle = math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
        pos = 0.25 + 0.5 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
        factors = torch.stack([shape, scale, angle, pos[:, 0], pos[:, 1]], 1)
        images = render_shapes(factors, self.size)
        return ImageData(images=images, labels=shape.long(), factors=factors.float(), factor_names=FACTORS)


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("shapes", Shapes)
