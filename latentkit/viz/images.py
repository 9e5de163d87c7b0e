"""Image grids, labels, PNG and GIF files: the output side of every figure.

Grids are built from rows of decoded images that may differ in length (a categorical unit has K images, a continuous
one ``n``): short rows are padded with blank cells. Labels are drawn with PIL's built-in font so that a figure needs no
font files. Every file is written atomically, so a figure that is being rewritten during training is never half there.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from latentkit._atomic import write_bytes
from latentkit.errors import ConfigError

#: Pixels between cells and around the grid.
PADDING = 2
#: Grey level of the padding (white).
PAD_VALUE = 1.0
#: Pixels of space between a label and the grid.
LABEL_GAP = 4


def to_uint8(images: Tensor) -> np.ndarray:
    """Float images in [0, 1], ``(N, C, H, W)``, to uint8 ``(N, H, W, C)`` (values outside [0, 1] are clipped)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"images must be (N, C, H, W) with C = 1 or 3, got shape {tuple(images.shape)}")
    arr = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return arr.permute(0, 2, 3, 1).numpy()


#: Label text height in pixels (Pillow's bundled font when FreeType is available, else its bitmap font).
FONT_SIZE = 12


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=_font())
    return right - left, bottom - top


def grid_array(
    rows: Sequence[Tensor] | Tensor, *, padding: int = PADDING, pad_value: float = PAD_VALUE, scale: int = 1
) -> np.ndarray:
    """Rows of images (each ``(m_i, C, H, W)``, or one ``(rows, cols, C, H, W)`` tensor) as one uint8 ``(H', W', C)``
    array: cell ``(r, c)`` starts at ``(padding + r * (H + padding), padding + c * (W + padding))``, upscaled
    ``scale`` times (nearest neighbour, so pixels stay crisp)."""
    if isinstance(rows, Tensor):
        if rows.dim() != 5:
            raise ConfigError(f"a grid tensor is (rows, cols, C, H, W), got shape {tuple(rows.shape)}")
        rows = list(rows)
    if not rows:
        raise ConfigError("a grid needs at least one row of images")
    shapes = {tuple(row.shape[1:]) for row in rows}
    if len(shapes) != 1:
        raise ConfigError(f"all images of a grid must have one shape, got {sorted(shapes)}")
    c, h, w = shapes.pop()
    if scale < 1:
        raise ConfigError(f"scale must be a positive whole number, got {scale}")
    h, w, padding = h * scale, w * scale, padding * scale
    cols = max(row.shape[0] for row in rows)
    fill = round(pad_value * 255)
    out = np.full((padding + len(rows) * (h + padding), padding + cols * (w + padding), c), fill, dtype=np.uint8)
    for r, row in enumerate(rows):
        cells = to_uint8(row)
        if scale > 1:
            cells = cells.repeat(scale, axis=1).repeat(scale, axis=2)
        for k, cell in enumerate(cells):
            y, x = padding + r * (h + padding), padding + k * (w + padding)
            out[y : y + h, x : x + w] = cell
    return out


def image_grid(
    rows: Sequence[Tensor] | Tensor,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    padding: int = PADDING,
    pad_value: float = PAD_VALUE,
    scale: int = 1,
) -> Image.Image:
    """A grid of images as a PIL image, with optional labels left of each row, above each column and a title."""
    body = grid_array(rows, padding=padding, pad_value=pad_value, scale=scale)
    n_rows = len(rows)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ConfigError(f"{len(row_labels)} row labels for {n_rows} rows")
    mode = "L" if body.shape[2] == 1 else "RGB"
    grid = Image.fromarray(body[:, :, 0] if mode == "L" else body, mode=mode)
    if not row_labels and not col_labels and not title:
        return grid
    left = max((_text_size(t)[0] for t in row_labels or []), default=0)
    left = left + LABEL_GAP if left else 0
    line = _text_size("Ag")[1] + LABEL_GAP
    top = (line if title else 0) + (line if col_labels else 0)
    canvas = Image.new(mode, (grid.width + left, grid.height + top), color=255 if mode == "L" else (255, 255, 255))
    canvas.paste(grid, (left, top))
    draw, font, ink = ImageDraw.Draw(canvas), _font(), 0 if mode == "L" else (0, 0, 0)
    if title:
        draw.text((left, 0), title, fill=ink, font=font)
    cell_h = (grid.height - padding * scale) // n_rows
    if row_labels:
        for r, text in enumerate(row_labels):
            y = top + padding * scale + r * cell_h + (cell_h - padding * scale - _text_size(text)[1]) // 2
            draw.text((0, y), text, fill=ink, font=font)
    if col_labels:
        cols = max(len(row) for row in rows)
        cell_w = (grid.width - padding * scale) // cols
        for k, text in enumerate(col_labels[:cols]):
            draw.text((left + padding * scale + k * cell_w, top - line), text, fill=ink, font=font)
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG, in memory: what :func:`save_png` writes in one atomic step (and what a caller that
    embeds or sends a picture, rather than saving it, can use)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as a PNG, atomically; returns the path."""
    path = Path(path)
    write_bytes(path, png_bytes(image))
    return path


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, *, duration_ms: int = 120) -> Path:
    """An endlessly looping animated GIF of ``frames`` (all one size), written atomically."""
    if not frames:
        raise ConfigError("an animation needs at least one frame")
    if len({f.size for f in frames}) != 1:
        raise ConfigError("all frames of an animation must have one size")
    palette = [f.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    buf = io.BytesIO()
    palette[0].save(buf, format="GIF", save_all=True, append_images=palette[1:], duration=duration_ms, loop=0)
    path = Path(path)
    write_bytes(path, buf.getvalue())
    return path
