"""``dsprites_procedural``: dSprites drawn from its factors — no download, the same grid and index order as the npz.

The grid is the real data set's, colour left out (it has one value): shape (3: square, ellipse, heart), scale (6:
0.5 … 1.0), orientation (40: ``linspace(0, 2π, 40)``, so the last value repeats the first image), posX and posY (32
each: ``linspace(0, 1, 32)``); 737,280 binary 64x64 images, row-major over the factors with posY fastest, so image
``i`` here is row ``i`` of ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.

Geometry (measured from the 320 frames of the data set's ``dsprites.gif``; ``../shared/notes/dsprites-geometry.md``):

* a pixel (column ``i``, row ``j``) is on iff its centre ``(i + 0.5, j + 0.5)`` lies inside the shape;
* the shape's centre is ``(16 + 32 * posX, 16 + 32 * posY)`` px: posX moves it along columns (left to right), posY
  along rows, **posY = 0 at the top row** — an assumption (LÖVE's y-down screen), not yet checked against the npz;
* orientation ``θ`` turns the shape **counter-clockwise as displayed** (row 0 at the top) about its centre — the
  sense the GIF's rotation sweeps show, an assumption as far as the npz is concerned; ``θ = 2π`` is drawn as ``θ = 0``
  so that the first and the last orientation give identical images; ``scale`` scales about the centre;
* square: side ``19.2 * scale`` px, axis-aligned at ``θ = 0``; ellipse: semi-axes ``12.76 * scale`` (horizontal at
  ``θ = 0``) and ``7.22 * scale`` px;
* heart (point down at ``θ = 0``): the polygon :data:`HEART_OUTLINE`, mirrored about the vertical axis. How it was
  derived: in the GIF's position sweeps the unrotated scale-1 heart moves in steps of 32/31 px, so the pixel centres
  of those frames sample it at 1/31-px spacing along every pixel-centre row and column; the boundary crossings along
  those lines (to ±0.016 px, mirror-symmetric to the last digit) give the vertices, the tip and the notch were
  extrapolated to the axis, and then each vertex was moved along its radius (steps of 0.04 … 0.005 px) while that
  lowered the count of wrong pixels over all 192 heart frames (rotations and smaller scales too). Fitting on the even
  orientations alone also lowered the wrong pixels on the odd ones (22 → 10), so the refinement generalises.

Mean intersection-over-union against the GIF (frames' factors fitted by search, ``tests/test_procedural_dsprites.py``):
squares 0.9997, ellipses 0.9991, hearts 0.9993 (the notes' disc-and-square heart: about 0.95).

Generation is vectorised by pixel rows: every row of an image meets a shape in at most two runs of pixels, computed in
closed form (ellipse) or by crossing the polygon's edges (square, heart); runs become pixels by indexing a table of all
64-pixel runs. The whole grid (:meth:`ProceduralDSprites.all_images`) reuses one row set per (shape, scale,
orientation, posY) for the 32 values of posX; ``benchmarks/bench_dsprites_generation.py`` times it.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from latentkit.data.ground_truth import GroundTruthData
from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, integer, optional, positive_int

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
DISCRETE_FACTORS = (True, False, False, False, False)
SHAPES = ("square", "ellipse", "heart")
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737,280
RESOLUTION = 64

#: Physical factor values, as the npz's ``latents_values`` (shape stored as 1, 2, 3).
SHAPE_VALUES = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
SCALE_VALUES = torch.linspace(0.5, 1.0, 6, dtype=torch.float64)
ORIENTATION_VALUES = torch.linspace(0.0, 2 * math.pi, 40, dtype=torch.float64)
POSITION_VALUES = torch.linspace(0.0, 1.0, 32, dtype=torch.float64)

SQUARE_HALF_SIDE = 9.6  #: px at scale 1 (side 19.2 = 0.3 of the image width)
ELLIPSE_SEMI_AXES = (12.76, 7.22)  #: px at scale 1, horizontal and vertical at orientation 0

#: The heart's right half at scale 1, orientation 0, in px about the shape's centre (``u`` right, ``v`` **up**): from
#: the tip on the axis, up the right side and over the right lobe, down to the notch on the axis. Mirrored for the
#: left half. Derivation: module docstring.
HEART_OUTLINE = (
    (0.000, -9.667),
    (0.065, -9.500),
    (0.452, -8.500),
    (0.498, -8.379),
    (1.094, -7.480),
    (1.500, -6.968),
    (1.871, -6.500),
    (2.496, -5.830),
    (2.806, -5.500),
    (3.500, -4.806),
    (3.839, -4.500),
    (4.500, -3.871),
    (4.903, -3.500),
    (5.500, -2.935),
    (5.935, -2.500),
    (6.500, -1.935),
    (6.903, -1.500),
    (7.500, -0.806),
    (7.752, -0.501),
    (8.452, 0.500),
    (8.500, 0.548),
    (9.000, 1.500),
    (9.393, 2.510),
    (9.500, 3.065),
    (9.548, 3.500),
    (9.581, 4.500),
    (9.500, 5.097),
    (9.419, 5.500),
    (9.040, 6.506),
    (8.500, 7.355),
    (8.387, 7.500),
    (7.500, 8.355),
    (7.290, 8.500),
    (6.506, 8.944),
    (5.520, 9.292),
    (4.500, 9.323),
    (3.500, 9.161),
    (2.506, 8.729),
    (2.194, 8.500),
    (1.500, 7.903),
    (1.164, 7.520),
    (0.519, 6.540),
    (0.500, 6.452),
    (0.129, 5.500),
    (0.000, 5.169),
)


def _heart_polygon() -> Tensor:
    right = torch.tensor(HEART_OUTLINE, dtype=torch.float64)
    left = right[1:-1].flip(0) * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    return torch.cat([right, left])


def _square_polygon() -> Tensor:
    h = SQUARE_HALF_SIDE
    return torch.tensor([[h, -h], [h, h], [-h, h], [-h, -h]], dtype=torch.float64)


_POLYGONS = {0: _square_polygon(), 2: _heart_polygon()}
#: farthest point of each shape from its centre at the largest scale, px (bounds the rows a shape can reach)
_RADII = (
    float(_POLYGONS[0].norm(dim=1).max()),
    max(ELLIPSE_SEMI_AXES),
    float(_POLYGONS[2].norm(dim=1).max()),
)
_MAX_RUNS = 3  #: runs of on-pixels per row: one for the convex shapes, two where a row crosses the heart's notch (three
#: where a row at an angle off the grid grazes a slight wiggle of the outline)
_CHUNK = 2048  #: images per chunk of the per-image path (bounds the polygon-crossing temporaries to ~100 MB)


def _run_table() -> Tensor:
    """``(65 * 65, 64)`` uint8: row ``lo * 65 + hi + 1`` has 255 on the columns ``lo … hi`` (none when ``hi < lo``)."""
    lo = torch.arange(RESOLUTION + 1)[:, None, None]
    hi = torch.arange(-1, RESOLUTION)[None, :, None]
    col = torch.arange(RESOLUTION)[None, None, :]
    return (((col >= lo) & (col <= hi)).to(torch.uint8) * 255).reshape(-1, RESOLUTION)


_RUNS = _run_table()


def angle_of(orientation: Tensor) -> Tensor:
    """The drawing angle (radians) of orientation class indices: ``2π k / 39`` with the last one (2π) drawn as 0."""
    return (orientation.long() % (FACTOR_SIZES[2] - 1)).double() * (2 * math.pi / (FACTOR_SIZES[2] - 1))


def centre_of(position: Tensor) -> Tensor:
    """Pixel coordinate of the shape's centre for position class indices: ``16 + 32 * linspace(0, 1, 32)[k]``."""
    return 16 + 32 * POSITION_VALUES[position.long()]


def row_runs(shape: Tensor, scale: Tensor, angle: Tensor, cy: Tensor) -> Tensor:
    """Where each pixel row meets the shape: ``(N, 64, 3, 2)`` intervals ``[x0, x1]`` in px relative to the centre.

    ``shape`` holds class indices, ``scale`` and ``angle`` (radians) physical values and ``cy`` the centre's row
    coordinate, each ``(N,)``. Row ``j`` is the line ``y = j + 0.5``; an empty interval is ``[inf, -inf]``. Only the
    rows a shape can reach (a window about its centre) are computed.
    """
    n = shape.shape[0]
    scale, cy = scale.double(), cy.double()
    cos, sin = torch.cos(angle.double()), torch.sin(angle.double())
    runs = torch.empty(n, RESOLUTION, _MAX_RUNS, 2, dtype=torch.float64)
    runs[..., 0], runs[..., 1] = math.inf, -math.inf
    shape = shape.long()
    for shape_id, radius in enumerate(_RADII):
        rows = (shape == shape_id).nonzero()[:, 0]
        if not len(rows):
            continue
        radius = radius * max(1.0, float(scale[rows].abs().max()))
        width = min(RESOLUTION, math.ceil(2 * radius) + 3)
        first = (torch.floor(cy[rows] - radius) - 1).long().clamp_(0, RESOLUTION - width)
        lines = first[:, None] + torch.arange(width)  # (n, width) pixel rows
        ys = lines.double() + 0.5 - cy[rows, None]  # y down, relative to the centre
        if shape_id == 1:
            window = torch.full((len(rows), width, _MAX_RUNS, 2), math.inf, dtype=torch.float64)
            window[..., 1] = -math.inf
            window[:, :, 0] = _ellipse_runs(scale[rows], cos[rows], sin[rows], ys)
        else:
            window = _polygon_runs(_POLYGONS[shape_id], scale[rows], cos[rows], sin[rows], ys)
        runs[rows[:, None], lines] = window
    return runs


def _ellipse_runs(scale: Tensor, cos: Tensor, sin: Tensor, ys: Tensor) -> Tensor:
    # A screen offset (dx, dy), y down, is the shape point u = dx cos - dy sin, v = -dx sin - dy cos (v up); inside
    # iff (u/a)^2 + (v/b)^2 <= 1, a quadratic  al dx^2 + 2 be dx + ga <= 0  in dx on each row.
    a2 = (ELLIPSE_SEMI_AXES[0] * scale[:, None]) ** 2
    b2 = (ELLIPSE_SEMI_AXES[1] * scale[:, None]) ** 2
    c, s = cos[:, None], sin[:, None]
    al = c**2 / a2 + s**2 / b2
    be = ys * c * s * (1 / b2 - 1 / a2)
    ga = ys**2 * (s**2 / a2 + c**2 / b2) - 1
    disc = be**2 - al * ga
    root = disc.clamp_min(0).sqrt()
    hit = disc >= 0
    x0 = torch.where(hit, (-be - root) / al, math.inf)
    x1 = torch.where(hit, (-be + root) / al, -math.inf)
    return torch.stack([x0, x1], -1)


def _polygon_runs(polygon: Tensor, scale: Tensor, cos: Tensor, sin: Tensor, ys: Tensor) -> Tensor:
    u, v = polygon[:, 0][None], polygon[:, 1][None]
    c, s, k = cos[:, None], sin[:, None], scale[:, None]
    ax = k * (u * c - v * s)  # vertices on screen, (N, V), y down
    ay = -k * (u * s + v * c)
    bx, by = ax.roll(-1, 1), ay.roll(-1, 1)
    slope = (bx - ax) / (by - ay)  # inf/nan on horizontal edges, which never cross a row (half-open rule below)
    n, rows = ys.shape
    crosses = (ay[:, None] <= ys[:, :, None]) != (by[:, None] <= ys[:, :, None])  # (N, rows, V)
    img, row, edge = crosses.nonzero(as_tuple=True)  # in row-major order: a row's crossings are consecutive
    xs = ax[img, edge] + (ys[img, row] - ay[img, edge]) * slope[img, edge]
    line = img * rows + row
    count = torch.bincount(line, minlength=n * rows)
    slot = torch.arange(len(line)) - (count.cumsum(0) - count)[line]  # rank of a crossing within its row
    if len(slot) and int(slot.max()) >= 2 * _MAX_RUNS:
        raise ValueError(f"a row crosses the outline more than {2 * _MAX_RUNS} times")  # not on any angle tried
    table = torch.full((n * rows, 2 * _MAX_RUNS), math.inf, dtype=torch.float64)
    table[line, slot] = xs
    table = table.sort(-1).values.view(n, rows, 2 * _MAX_RUNS)  # inf-padded
    lo, hi = table[..., 0::2], table[..., 1::2]
    return torch.stack([lo, torch.where(torch.isinf(hi), -math.inf, hi)], -1)


def _run_index(x0: Tensor, x1: Tensor) -> Tensor:
    """Row of :data:`_RUNS` for the columns ``ceil(x0) … floor(x1)`` (``x0``, ``x1``: column coordinates minus 0.5)."""
    lo = x0.clamp_(-1, RESOLUTION).ceil_().clamp_(0, RESOLUTION)
    hi = x1.clamp_(-2, RESOLUTION).floor_().clamp_(-1, RESOLUTION - 1)
    return lo.mul_(RESOLUTION + 1).add_(hi).add_(1).long()


def runs_to_pixels(runs: Tensor, cx: Tensor, out: Tensor | None = None) -> Tensor:
    """uint8 ``(N, 64, 64)`` images (0/255) from :func:`row_runs` and the centres' column coordinates ``cx`` ``(N,)``.

    Column ``i`` is on iff ``x0 <= i + 0.5 - cx <= x1`` for one of its row's runs.
    """
    n = runs.shape[0]
    shift = cx.double()[:, None] - 0.5
    if out is None:
        out = torch.empty(n, RESOLUTION, RESOLUTION, dtype=torch.uint8)
    flat = out.view(n * RESOLUTION, RESOLUTION)
    index = _run_index(runs[:, :, 0, 0] + shift, runs[:, :, 0, 1] + shift)
    torch.index_select(_RUNS, 0, index.view(-1), out=flat)
    for r in range(1, runs.shape[2]):  # the rare further runs: only the rows that have one
        x0, x1 = runs[:, :, r, 0].reshape(-1), runs[:, :, r, 1].reshape(-1)
        line = torch.isfinite(x0).nonzero()[:, 0]
        if len(line):
            s = shift[line // RESOLUTION, 0]
            flat[line] |= _RUNS[_run_index(x0[line] + s, x1[line] + s)]
    return out


class ProceduralDSprites(GroundTruthData):
    """dSprites from its factors: :meth:`images` draws any batch of factor rows; :meth:`all_images` the whole grid."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    discrete_factors = DISCRETE_FACTORS

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, RESOLUTION, RESOLUTION)

    def factor_values(self, factors: Tensor) -> Tensor:
        self.check_factors(factors)
        f = factors.long()
        tables = (SHAPE_VALUES, SCALE_VALUES, ORIENTATION_VALUES, POSITION_VALUES, POSITION_VALUES)
        return torch.stack([table[f[:, k]] for k, table in enumerate(tables)], 1)

    def images(self, factors: Tensor) -> Tensor:
        self.check_factors(factors)
        f = factors.long()
        out = torch.empty(len(f), 1, RESOLUTION, RESOLUTION, dtype=torch.uint8)
        for start in range(0, len(f), _CHUNK):
            part = f[start : start + _CHUNK]
            runs = row_runs(part[:, 0], SCALE_VALUES[part[:, 1]], angle_of(part[:, 2]), centre_of(part[:, 4]))
            runs_to_pixels(runs, centre_of(part[:, 3]), out=out[start : start + _CHUNK, 0])
        return out

    def all_images(self, out: Tensor | None = None) -> Tensor:
        """The whole grid, uint8 ``(737280, 1, 64, 64)`` in index order (3 GB; pass ``out`` to fill a given tensor).

        The same pixels as :meth:`images` (a test checks it), faster: the row runs of each (shape, scale,
        orientation, posY) are computed once for the 32 values of posX, which only move them along the rows.
        """
        shape_ = (NUM_IMAGES, 1, RESOLUTION, RESOLUTION)
        if out is None:
            out = torch.empty(shape_, dtype=torch.uint8)
        if tuple(out.shape) != shape_ or out.dtype != torch.uint8 or not out.is_contiguous():
            raise ConfigError(f"out must be a contiguous uint8 tensor of shape {shape_}")
        _, _, n_o, n_x, n_y = FACTOR_SIZES
        orient, pos_y = torch.meshgrid(torch.arange(n_o), torch.arange(n_y), indexing="ij")
        orient, pos_y = orient.reshape(-1), pos_y.reshape(-1)
        shift = (centre_of(torch.arange(n_x)) - 0.5).view(1, n_x, 1, 1)
        block = n_o * n_x * n_y
        for shape in range(FACTOR_SIZES[0]):
            for scale in range(FACTOR_SIZES[1]):
                runs = row_runs(
                    torch.full_like(orient, shape), SCALE_VALUES[torch.full_like(orient, scale)], angle_of(orient),
                    centre_of(pos_y),
                ).view(n_o, 1, n_y, RESOLUTION, _MAX_RUNS, 2)
                start = (shape * FACTOR_SIZES[1] + scale) * block
                flat = out[start : start + block].view(n_o, n_x, n_y, RESOLUTION, RESOLUTION)
                index = _run_index(runs[..., 0, 0] + shift, runs[..., 0, 1] + shift)  # (n_o, n_x, n_y, rows)
                torch.index_select(_RUNS, 0, index.view(-1), out=flat.view(-1, RESOLUTION))
                for r in range(1, _MAX_RUNS):
                    o, _, y, row = torch.isfinite(runs[..., r, 0]).nonzero(as_tuple=True)
                    if len(o):
                        o, y, row = (t[:, None].expand(-1, n_x).reshape(-1) for t in (o, y, row))
                        x = torch.arange(n_x).repeat(len(o) // n_x)
                        s = shift.view(-1)[x]
                        extra = _RUNS[_run_index(runs[o, 0, y, row, r, 0] + s, runs[o, 0, y, row, r, 1] + s)]
                        flat[o, x, y, row] |= extra
        return out


def subset_indices(n: int | None, seed: int, total: int = NUM_IMAGES) -> Tensor | None:
    """``None`` for all images, else ``n`` distinct image indices drawn with ``seed``, in increasing order."""
    if n is None or n >= total:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=gen)[:n].sort().values


def check_subset_options(dataset: str, n: object, seed: object) -> tuple[int | None, int]:
    n = check("n", n, optional(positive_int, "all images"), owner=dataset, example="1000")
    return n, check("seed", seed, integer, owner=dataset)


class DSpritesProcedural(DatasetProvider):
    """The procedural dSprites as a data set: all 737,280 images (3 GB of uint8), or a seeded subset of ``n``.

    ``factors`` are the class indices of :data:`FACTOR_NAMES`; with ``label_factor`` (e.g. ``"shape"``) that factor
    is also the labels. Split: ``train`` (the whole set, as the real data set).
    """

    dataset_name = "dsprites_procedural"
    splits = ("train",)

    def __init__(self, n: int | None = None, seed: int = 0, label_factor: str | None = None):
        self.n, self.seed = check_subset_options(self.dataset_name, n, seed)
        if label_factor is not None and label_factor not in FACTOR_NAMES:
            raise ConfigError(
                f"{self.dataset_name} label_factor must be one of {list(FACTOR_NAMES)} or None, got {label_factor!r}"
            )
        self.label_factor = label_factor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, RESOLUTION, RESOLUTION)

    def load(self, root: str | os.PathLike | None = None, split: str = "train") -> ImageData:
        self.check_split(split)
        gt = ProceduralDSprites()
        index = subset_indices(self.n, self.seed)
        if index is None:
            images, factors = gt.all_images(), gt.index_to_factors(torch.arange(NUM_IMAGES))
        else:
            factors = gt.index_to_factors(index)
            images = gt.images(factors)
        labels = factors[:, FACTOR_NAMES.index(self.label_factor)].clone() if self.label_factor else None
        return ImageData(images=images, labels=labels, factors=factors, factor_names=FACTOR_NAMES)

    def ground_truth(self, root: str | os.PathLike | None = None) -> ProceduralDSprites:
        return ProceduralDSprites()


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("dsprites_procedural", DSpritesProcedural)
