"""Figures of a training run: per-unit KL over training (the paper's Fig. 7a) and units ranked by KL (Fig. 7b).

Why these two: in JointVAE the capacity schedule decides how much information each channel may carry, and the units
that pick it up are the ones that encode a factor. Fig. 7a shows *when* each unit starts to carry information
(the discrete unit first, on MNIST: the digit type); Fig. 7b shows *which* units are in use and what they encode.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no global state, so they work
headless and from threads. The ``*_figure`` helpers return the figure unsaved (tests and the HTML report inspect it);
the ``plot_*`` functions render it to a PNG written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from latentkit._atomic import write_bytes
from latentkit.errors import ConfigError

__all__ = [
    "factor_scatter_figure",
    "kl_channels",
    "kl_curves_figure",
    "kl_ranking_figure",
    "kl_rise_steps",
    "plot_factor_scatter",
    "plot_kl_curves",
    "plot_kl_ranking",
    "read_metrics",
    "save_figure",
]

METRICS_FILE = "metrics.jsonl"
DEFAULT_DPI = 100
#: a unit whose final KL is below this fraction of its channel's largest is drawn light grey, as unused
_ACTIVE_FRACTION = 0.05
_GREY = "#c8c8c8"


# ----------------------------------------------------------------------------------------------------- reading
def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_metrics(source: str | os.PathLike) -> list[dict]:
    """Records of metrics.jsonl; ``source`` is the file or a run directory containing it.

    Sorted by step; a later line for the same step wins (a resumed run logs the steps after its checkpoint again).
    Lines that are not a JSON object with a numeric ``step`` — typically the last line, cut by a crash — are skipped.
    """
    path = Path(source)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        where = f"run directory {path.parent}" if path.name == METRICS_FILE else f"path {path}"
        raise ConfigError(
            f"{where} has no {METRICS_FILE}: plots need a training history, which training writes to "
            f"<run>/{METRICS_FILE}; an imported checkpoint has none — train a run first, or pass the run directory "
            f"or its {METRICS_FILE} file."
        )
    by_step: dict[float, dict] = {}
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and _is_number(rec.get("step")):
                by_step[rec["step"]] = rec
    if not by_step:
        raise ConfigError(
            f"{path} holds no valid record: each line of {METRICS_FILE} should be a JSON object with a numeric "
            f"'step' (the run may have crashed before its first log) — train longer, or point at another run."
        )
    return [by_step[s] for s in sorted(by_step)]


def _split_unit(name: str) -> tuple[str, int] | None:
    channel, dot, index = name.rpartition(".")
    if not dot or not channel or not index.isdigit():
        return None
    return channel, int(index)


def kl_channels(records: list[dict]) -> dict[str, list[str]]:
    """``{channel: [unit names in index order]}`` found in the records' keys.

    Channels come from ``kl/<ch>`` (``kl/total`` is the sum, not a channel) and from ``kl_unit/<ch>.<i>``, in the order
    they first appear; units are sorted by numeric index, so ``cont.10`` follows ``cont.9``.
    """
    units: dict[str, dict[int, str]] = {}
    for rec in records:
        for key in rec:
            if key.startswith("kl_unit/"):
                name = key[len("kl_unit/"):]
                parsed = _split_unit(name)
                if parsed is not None:
                    units.setdefault(parsed[0], {})[parsed[1]] = name
            elif key.startswith("kl/") and key != "kl/total" and len(key) > 3:
                units.setdefault(key[3:], {})
    return {ch: [found[i] for i in sorted(found)] for ch, found in units.items()}


def _series(records: list[dict], key: str) -> np.ndarray:
    """The values of ``key`` over the records, NaN where missing or not a finite number (matplotlib leaves a gap)."""
    out = np.full(len(records), np.nan)
    for i, rec in enumerate(records):
        v = rec.get(key)
        if _is_number(v) and math.isfinite(v):
            out[i] = float(v)
    return out


def _last_finite(y: np.ndarray) -> float:
    finite = y[np.isfinite(y)]
    return float(finite[-1]) if finite.size else 0.0


def kl_rise_steps(records: list[dict], threshold: float = 0.1) -> dict[str, int | None]:
    """For each unit, the first logged step at which its KL reaches ``threshold`` nats (None if never).

    Ordered by that step, ties and the units that never reach it in channel/index order, the latter last: the first
    entry is the unit the model discovers first (the paper: the discrete unit, encoding the digit type).
    """
    if not (_is_number(threshold) and math.isfinite(threshold)):
        raise ConfigError(f"threshold must be a finite number of nats, got {threshold!r}.")
    records = sorted(records, key=lambda r: r.get("step", 0))
    found: list[tuple[str, int | None]] = []
    for units in kl_channels(records).values():
        for unit in units:
            y = _series(records, f"kl_unit/{unit}")
            hit = np.flatnonzero(y >= threshold)
            found.append((unit, records[hit[0]]["step"] if hit.size else None))
    order = sorted(range(len(found)), key=lambda i: (found[i][1] is None, found[i][1] or 0, i))
    return {found[i][0]: found[i][1] for i in order}


# --------------------------------------------------------------------------------------------------- Fig. 7a
def _unit_colours(finals: dict[str, float], palette: list) -> dict[str, object]:
    """Distinct colours for the units with the largest final KL; near-zero (unused) ones light grey."""
    top = max(finals.values(), default=0.0)
    ranked = sorted(finals, key=lambda u: -finals[u])
    colours: dict[str, object] = {}
    for rank, unit in enumerate(ranked):
        active = top > 0 and finals[unit] >= _ACTIVE_FRACTION * top and rank < len(palette)
        colours[unit] = palette[rank] if active else _GREY
    return colours


def _eighths(inches: float) -> float:
    """``inches`` rounded up to 1/8 inch: exact in binary, so the PNG is exactly ``figsize × dpi`` pixels."""
    return math.ceil(inches * 8 - 1e-9) / 8


def _dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one sample each side, so a line drawn only where it holds joins up with its neighbours."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    return out


def kl_curves_figure(records: list[dict], *, title: str | None = None, log_scale: bool = False) -> Figure:
    """The figure of :func:`plot_kl_curves`, unsaved: one axes per channel, in :func:`kl_channels` order.

    Lines carry labels: the unit names, ``"total"``, ``"capacity"`` and ``"capacity target"``.
    """
    if not records:
        raise ConfigError("no metrics records to plot: the training history is empty — train a run first.")
    records = sorted(records, key=lambda r: r.get("step", 0))
    channels = kl_channels(records)
    if not channels:
        raise ConfigError(
            "the metrics records hold no KL entries ('kl/<channel>' or 'kl_unit/<channel>.<i>'): is this a JointVAE "
            "training history? Plot a run trained by latentkit."
        )
    steps = np.array([float(r["step"]) for r in records])
    import matplotlib

    palette = [c for c in matplotlib.colormaps["tab10" if max(map(len, channels.values())) <= 10 else "tab20"].colors
               if not (c[0] == c[1] == c[2] and c[0] > 0.7)]  # tab20's light grey would read as "unused"

    legend_rows = []
    for units in channels.values():
        entries = len(units) + 3
        legend_rows.append(math.ceil(entries / (1 if entries <= 16 else 2)))
    heights = [max(3.0, 0.16 * rows + 0.8) for rows in legend_rows]
    fig = Figure(figsize=(10.0, _eighths(sum(heights) + (0.4 if title else 0.0))), layout="constrained")
    axes = fig.subplots(len(channels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]

    for ax, (channel, units) in zip(axes, channels.items()):
        series = {u: _series(records, f"kl_unit/{u}") for u in units}
        colours = _unit_colours({u: _last_finite(y) for u, y in series.items()}, palette)
        # grey (unused) units first and thin, so the informative ones are drawn on top; legend by final KL
        for unit in sorted(units, key=lambda u: (colours[u] != _GREY, _last_finite(series[u]))):
            grey = colours[unit] == _GREY
            ax.plot(steps, series[unit], color=colours[unit], lw=0.9 if grey else 1.4, label=unit,
                    zorder=1 if grey else 2)
        total = _series(records, f"kl/{channel}")
        if np.isfinite(total).any():
            ax.plot(steps, total, color="black", lw=2.6, label="total", zorder=3)
        cap = _series(records, f"capacity/{channel}")
        if np.isfinite(cap).any():
            ax.plot(steps, cap, color="black", lw=1.5, ls="--", label="capacity", zorder=4)
            target = _series(records, f"capacity_target/{channel}")
            differs = np.isfinite(target) & ~np.isclose(target, cap, rtol=1e-6, atol=1e-9, equal_nan=False)
            if differs.any():
                shown = np.where(_dilate(differs) & np.isfinite(target), target, np.nan)
                ax.plot(steps, shown, color="black", lw=1.5, ls=":", label="capacity target", zorder=4)
        if log_scale:
            ax.set_yscale("log", nonpositive="mask")
        ax.set_title(f"channel {channel!r}: KL per unit", fontsize=10, loc="left")
        ax.set_xlabel("step")
        ax.set_ylabel("KL (nats)")
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        # legend: reference lines first, then units by descending final KL
        order = sorted(range(len(labels)), key=lambda i: (labels[i] in series,
                                                          -_last_finite(series[labels[i]]) if labels[i] in series
                                                          else 0.0))
        ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 if len(labels) <= 16 else 2, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, out: str | os.PathLike, dpi: int) -> Path:
    """Write ``fig`` as a PNG atomically (a crash mid-write leaves the old picture, not half a new one)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    path = Path(out)
    write_bytes(path, buf.getvalue())
    return path


def plot_kl_curves(records: list[dict], out: str | os.PathLike, *, title: str | None = None,
                   log_scale: bool = False, dpi: int = DEFAULT_DPI) -> Path:
    """The paper's Fig. 7a: per channel, each unit's KL over training steps, the channel's total KL (thick), its
    capacity (dashed) and, where clipping makes it differ (the discrete channel at Σ log K), the unclipped capacity
    target (dotted). Units with the largest final KL get distinct colours; unused ones are light grey.
    Writes a PNG of ``figsize × dpi`` pixels to ``out`` and returns its path."""
    return save_figure(kl_curves_figure(records, title=title, log_scale=log_scale), out, dpi)


# ------------------------------------------------------------------------------------- which unit rises first
def kl_rise_figure(records: list[dict], *, threshold: float = 0.1, title: str | None = None) -> Figure:
    """Left: every unit's KL over the early steps (until 1.5× the last rise, at least a tenth of training), the units
    that rise coloured in the order they rise; right: the step at which each unit's KL first reached ``threshold``
    nats, earliest on top (units that never do are listed at the bottom)."""
    rises = kl_rise_steps(records, threshold)
    if not records or not rises:
        raise ConfigError("no KL history to draw: metrics.jsonl holds no kl_unit/... values")
    records = sorted(records, key=lambda r: r.get("step", 0))
    steps = np.array([r["step"] for r in records], dtype=float)
    risen = [u for u, s in rises.items() if s is not None]
    last = max((rises[u] for u in risen), default=steps[-1])
    window = min(steps[-1], max(1.5 * last, 0.1 * steps[-1]))
    keep = steps <= window
    fig = Figure(figsize=(_eighths(11.0), _eighths(max(3.5, 0.3 * len(rises) + 1.2))), layout="constrained")
    curves, bars = fig.subplots(1, 2, width_ratios=[3, 2])
    palette = list(matplotlib.colormaps["tab10"].colors)
    for unit in rises:
        colour = palette[risen.index(unit) % len(palette)] if unit in risen else _GREY
        curves.plot(steps[keep], _series(records, f"kl_unit/{unit}")[keep], color=colour, lw=1.2,
                    label=unit if unit in risen[: len(palette)] else None)
    curves.axhline(threshold, color="black", ls=":", lw=0.8)
    curves.set_xlabel("step")
    curves.set_ylabel("KL (nats)")
    curves.set_title(f"early training: KL per unit (dotted: {threshold:g} nats)", fontsize=10, loc="left")
    curves.legend(fontsize=7, loc="upper left", frameon=False)
    curves.grid(alpha=0.3)
    names = list(rises)
    ys = np.arange(len(names))[::-1]
    values = [rises[u] if rises[u] is not None else 0 for u in names]
    colours = [palette[risen.index(u) % len(palette)] if u in risen else _GREY for u in names]
    bars.barh(ys, values, color=colours)
    for y, unit in zip(ys, names):
        text = f"{rises[unit]:,}" if rises[unit] is not None else "never"
        bars.text(values[names.index(unit)], y, f" {text}", va="center", fontsize=7)
    bars.set_yticks(ys, names, fontsize=8)
    bars.set_xlabel(f"first step with KL ≥ {threshold:g} nats")
    bars.set_xlim(0, max(values + [1]) * 1.3)
    bars.set_title("order of discovery", fontsize=10, loc="left")
    if title:
        fig.suptitle(title)
    return fig


def plot_kl_rise(records: list[dict], out: str | os.PathLike, *, threshold: float = 0.1, title: str | None = None,
                 dpi: int = DEFAULT_DPI) -> Path:
    """:func:`kl_rise_figure` as a PNG; returns its path."""
    return save_figure(kl_rise_figure(records, threshold=threshold, title=title), out, dpi)


# --------------------------------------------------------------------------------------------------- Fig. 7b
def _ranked(kl: Mapping[str, float]) -> list[tuple[str, float]]:
    if not isinstance(kl, Mapping) or len(kl) == 0:
        raise ConfigError(
            "no units to rank: `kl` should map unit names ('cont.3') to their mean KL in nats — evaluate a model "
            "first (its per-unit KL) and pass that mapping."
        )
    items = []
    for unit, value in kl.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"the KL of unit {unit!r} is {value!r}, not a number of nats.") from None
        if not math.isfinite(v):
            raise ConfigError(f"the KL of unit {unit!r} is {v}: a ranking needs finite values — was training "
                              f"diverging? Check the run's metrics.")
        items.append((str(unit), v))
    return sorted(items, key=lambda kv: -kv[1])  # stable: equal KLs keep the mapping's order


def _check_traversals(traversals: object, n: int) -> np.ndarray:
    if not isinstance(traversals, torch.Tensor):
        raise ConfigError(f"traversals must be a torch.Tensor of shape (units, m, C, H, W), got "
                          f"{type(traversals).__name__}.")
    if traversals.ndim != 5:
        raise ConfigError(
            f"traversals must have 5 dimensions (units, m, C, H, W) — one strip of m images per unit — but has shape "
            f"{tuple(traversals.shape)}; stack the strips of the ranked units (latentkit.viz.traverse gives this)."
        )
    units, m, c, h, w = traversals.shape
    if units != n:
        raise ConfigError(
            f"traversals has {units} rows but `kl` has {n} units: row i must be the traversal of the i-th unit in "
            f"descending-KL order — traverse exactly the units of the ranking."
        )
    if c not in (1, 3):
        raise ConfigError(f"traversal images must have 1 (grey) or 3 (RGB) channels, got C={c} in shape "
                          f"{tuple(traversals.shape)}.")
    if m == 0 or h == 0 or w == 0:
        raise ConfigError(f"traversals of shape {tuple(traversals.shape)} hold no pixels.")
    if not traversals.is_floating_point():
        raise ConfigError(f"traversals must be a float tensor in [0, 1], got dtype {traversals.dtype}.")
    imgs = traversals.detach().to("cpu", torch.float32).clamp(0, 1).nan_to_num(0.0)
    # (units, m, C, H, W) → (units, H, m·W, C): each unit's images side by side
    return imgs.permute(0, 3, 1, 4, 2).reshape(units, h, m * w, c).numpy()


def kl_ranking_figure(kl: Mapping[str, float], *, traversals: torch.Tensor | None = None,
                      title: str | None = None) -> Figure:
    """The figure of :func:`plot_kl_ranking`, unsaved. ``fig.axes[0]`` holds the bars, top to bottom in descending
    KL (its ``patches`` in that order); with traversals, ``fig.axes[1:]`` are the strips, one per unit, same order."""
    ranked = _ranked(kl)
    n = len(ranked)
    strips = None if traversals is None else _check_traversals(traversals, n)

    row_h = 0.35 if strips is None else 0.55
    label_w = 0.3 + 0.075 * max(len(u) for u, _ in ranked)  # inches for the unit names
    bar_w = 4.0
    strip_w = 0.0 if strips is None else min(9.0, row_h * 0.9 * strips.shape[2] / strips.shape[1])
    top_in = 0.6 if title else 0.35
    bottom_in = 0.55
    width = _eighths(label_w + bar_w + (0.25 + strip_w if strips is not None else 0.0) + 0.25)
    height = _eighths(n * row_h + top_in + bottom_in)
    fig = Figure(figsize=(width, height))
    grid = fig.add_gridspec(
        n, 2 if strips is not None else 1,
        width_ratios=[bar_w, strip_w] if strips is not None else None,
        left=label_w / width, right=1 - 0.25 / width, bottom=bottom_in / height, top=1 - top_in / height,
        wspace=0.25 / (bar_w + strip_w) * 2 if strips is not None else 0.0, hspace=0.08,
    )
    ax = fig.add_subplot(grid[:, 0])
    names = [u for u, _ in ranked]
    values = [v for _, v in ranked]
    y = np.arange(n)
    bars = ax.barh(y, values, height=0.7, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)  # highest KL on top
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - (0.05 * span if lo < 0 else 0.0), hi + 0.2 * span)
    ax.set_xlabel("KL (nats)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)

    if strips is not None:
        for i, strip in enumerate(strips):
            sax = fig.add_subplot(grid[i, 1])
            if strip.shape[2] == 1:
                sax.imshow(strip[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                sax.imshow(strip, interpolation="nearest")
            sax.set_anchor("W")
            sax.set_axis_off()
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig


def plot_kl_ranking(kl: Mapping[str, float], out: str | os.PathLike, *, traversals: torch.Tensor | None = None,
                    title: str | None = None, dpi: int = DEFAULT_DPI) -> Path:
    """The paper's Fig. 7b: units ranked by mean KL (nats), a horizontal bar each with its value printed, and — when
    ``traversals`` (units, m, C, H, W) in [0, 1] is given, row i for the i-th unit in descending-KL order — that unit's
    traversal strip beside its bar. Writes a PNG of ``figsize × dpi`` pixels to ``out`` and returns its path."""
    return save_figure(kl_ranking_figure(kl, traversals=traversals, title=title), out, dpi)


# --------------------------------------------------------------------------------------------------- Fig. 8a
def factor_scatter_figure(codes: np.ndarray, values: np.ndarray, table: Mapping, code_names: list[str],
                          factor_names: list[str], *, title: str | None = None, max_points: int = 3000) -> Figure:
    """The paper's Fig. 8a for every ordered factor of a grid: the factor's value (x) against the continuous unit
    that tracks it best (y, from :func:`latentkit.metrics.correlation.correlation_table`), one panel per factor, with
    Pearson ``r`` and Spearman ``ρ`` in the panel title. At most ``max_points`` points are drawn (the first ones)."""
    factors = list(table["unit"])
    if not factors:
        raise ConfigError("no factor to draw: the correlation table is empty")
    n = min(len(codes), max_points)
    fig = Figure(figsize=(_eighths(3.0 * len(factors)), 3.0), layout="constrained")
    axes = fig.subplots(1, len(factors), squeeze=False)[0]
    for ax, factor in zip(axes, factors):
        unit = table["unit"][factor]
        x = values[:n, factor_names.index(factor)]
        y = codes[:n, code_names.index(unit)]
        ax.scatter(x, y, s=3, alpha=0.25, color="#1f77b4", rasterized=True, linewidths=0)
        ax.set_title(f"{factor} ↔ {unit}\nr = {table['pearson'][factor]:+.2f}, ρ = {table['spearman'][factor]:+.2f}",
                     fontsize=9)
        ax.set_xlabel(factor)
        ax.set_ylabel(f"{unit} (posterior mean)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_factor_scatter(codes: np.ndarray, values: np.ndarray, table: Mapping, code_names: list[str],
                        factor_names: list[str], out: str | os.PathLike, *, title: str | None = None,
                        dpi: int = DEFAULT_DPI) -> Path:
    """:func:`factor_scatter_figure` as a PNG; returns its path."""
    return save_figure(factor_scatter_figure(codes, values, table, code_names, factor_names, title=title), out, dpi)
