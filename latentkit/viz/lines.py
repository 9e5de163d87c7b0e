"""Line plots of decoded samples that are not images: signals ``(C, L)`` and vectors ``(D,)``.

Why: a traversal of a signal model is a family of curves, not a strip of pictures. Each row of a traversal becomes one
panel overlaying its decoded samples, coloured from the first traversal value to the last, so a unit that moves the
phase, the frequency or the amplitude shows it at a glance. A multi-channel signal gets one panel per channel, side by
side. Built on :class:`matplotlib.figure.Figure` (no ``pyplot``: no global state, headless, thread-safe) and returned
as a PIL image, so the same writers (PNG files, TensorBoard) take it as they take an image grid.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch import Tensor

from latentkit.errors import ConfigError
from latentkit.viz.images import image_grid

#: Inches per panel (width, height) and dots per inch of a line grid.
PANEL_SIZE = (4.0, 1.1)
DPI = 80


def sample_kind(shape: Sequence[int]) -> str | None:
    """How samples of ``shape`` are drawn: ``"image"`` for ``(C, H, W)`` with 1 or 3 channels, ``"lines"`` for a
    signal ``(C, L)`` or a vector ``(D,)``, ``None`` when neither fits (an image of 2 or 4+ channels)."""
    shape = tuple(shape)
    if len(shape) == 3:
        return "image" if shape[0] in (1, 3) else None
    return "lines" if len(shape) in (1, 2) else None


def line_grid(
    rows: Sequence[Tensor], *, row_labels: Sequence[str] | None = None, title: str | None = None, dpi: int = DPI
) -> Image.Image:
    """One panel per row (per channel), each overlaying the row's samples ``(m, C, L)`` or ``(m, D)`` as curves."""
    if not rows:
        raise ConfigError("a line grid needs at least one row of samples")
    shapes = {tuple(row.shape[1:]) for row in rows}
    if len(shapes) != 1 or sample_kind(next(iter(shapes))) != "lines":
        raise ConfigError(
            f"line plots take rows of signals (m, C, L) or vectors (m, D) of one shape, got {sorted(shapes)}"
        )
    if row_labels is not None and len(row_labels) != len(rows):
        raise ConfigError(f"{len(row_labels)} row labels for {len(rows)} rows")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arrays = [row.detach().float().cpu().reshape(row.shape[0], -1, row.shape[-1]).numpy() for row in rows]
    channels = arrays[0].shape[1]
    low = min(float(a.min()) for a in arrays if a.size)
    high = max(float(a.max()) for a in arrays if a.size)
    pad = 0.05 * ((high - low) or 1.0)
    fig = Figure(figsize=(PANEL_SIZE[0] * channels, PANEL_SIZE[1] * len(rows) + (0.3 if title else 0.0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), channels, squeeze=False, sharex=True, sharey=True)
    cmap = colormaps["viridis"]
    for r, curves in enumerate(arrays):
        for c in range(channels):
            ax = axes[r, c]
            for k, curve in enumerate(curves[:, c]):
                ax.plot(np.arange(curve.shape[0]), curve, color=cmap(k / max(1, len(curves) - 1)), linewidth=0.9)
            ax.set_ylim(low - pad, high + pad)
            ax.tick_params(labelsize=6)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0 and channels > 1:
                ax.set_title(f"channel {c}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def sample_grid(
    kind: str, rows, *, row_labels: Sequence[str] | None = None, title: str | None = None, scale: int = 1
) -> Image.Image:
    """Rows of decoded samples as a picture: an image grid for ``kind == "image"``, else one line panel per row (the
    one place that chooses, for the figure commands and the training figures alike)."""
    if kind == "lines":
        return line_grid(list(rows), row_labels=row_labels, title=title)
    return image_grid(rows, row_labels=row_labels, title=title, scale=scale)
