"""The figures of a model folder, written as files: what ``latentkit traverse / sample / plot / report`` produce.

Each ``write_*`` function takes a :class:`~latentkit.viz.source.FigureSource`, writes PNG (and GIF) files into a
folder and returns their paths with a one-line caption each, so the CLI can list them and the HTML report can show
them. Figures that need something the folder lacks (data for reconstructions, a training history for KL curves) are
skipped with a notice in ``source.notices``.

A model of signals ``(C, L)`` or vectors ``(D,)`` gets line plots instead of image grids (:mod:`latentkit.viz.lines`):
traversals, prior and conditional samples, reconstructions; the animated GIF and the pair grids, which only make sense
as pictures, are skipped with a notice. A shape that is neither (an image of 2 or 4+ channels) is a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import torch
from torch import Tensor

from latentkit.errors import ConfigError
from latentkit.validation import at_least, check
from latentkit.viz.images import image_grid, save_gif, save_png
from latentkit.viz.lines import line_grid, sample_grid, sample_kind
from latentkit.viz.samples import conditional_samples, prior_samples, reconstructions
from latentkit.viz.source import FigureSource
from latentkit.viz.traversal import base_latent, parse_unit, traversal_frames, traversal_rows, traverse_pair

#: How captions say where the units not moved are held by default (:func:`latentkit.viz.traversal.neutral_latent`).
NEUTRAL_CAPTION = ("other units held at their neutral value (the prior's representative: 0 for a Gaussian unit, "
                   "category 0 for a categorical one, a typical value inside the support for a bounded unit)")
#: Units per row of an animated traversal's frame.
GIF_COLUMNS = 10
#: Continuous units paired with each discrete unit by default (the most informative ones).
PAIRS_PER_DISCRETE = 3


@attrs.frozen
class Figure:
    """A figure file written by a ``write_*`` function, with the one-line caption the CLI and the report show."""

    path: Path
    caption: str


def _label(unit: str, kl: dict[str, float] | None) -> str:
    return f"{unit}  {kl[unit]:.2f}" if kl else unit


def _base(source: FigureSource, base: str, seed: int) -> Tensor | None:
    if base == "neutral":
        return None
    if base == "prior":
        return base_latent(source.model.latent, prior=True, generator=torch.Generator().manual_seed(seed))
    raise ConfigError(f"base must be 'neutral' (other units at their neutral value) or 'prior' (drawn), got {base!r}")


def _sample_kind(source: FigureSource) -> str:
    """``"image"`` or ``"lines"``: how this model's samples are drawn; a :class:`ConfigError` when neither fits."""
    shape = tuple(source.model.image_shape)
    kind = sample_kind(shape)
    if kind is None:
        raise ConfigError(
            f"this model's samples have shape {shape}: images with {shape[0]} channels, which figures cannot show "
            f"(grey images have 1 channel, colour images 3; signals (C, L) and vectors (D,) are drawn as lines)"
        )
    return kind


def _check_n(n: int, what: str = "n") -> int:
    return check(what, n, at_least(2).such_as("8"))


def default_pairs(source: FigureSource, ranked: Sequence[str], kl: dict[str, float] | None) -> list[tuple[str, str]]:
    """Each discrete unit against the most informative continuous units (the first ones if KL is unknown)."""
    latent = source.model.latent
    discrete = [u for u in ranked if latent.channels[parse_unit(latent, u).channel].is_discrete]
    continuous = [u for u in ranked if u not in discrete]
    return [(d, c) for d in discrete for c in continuous[:PAIRS_PER_DISCRETE]]


def write_traversals(
    source: FigureSource,
    out: str | os.PathLike,
    *,
    units: Sequence[str] | None = None,
    n: int = 10,
    base: str = "neutral",
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] | None = None,
    gif: bool = True,
    scale: int = 2,
) -> list[Figure]:
    """``traversals.png`` (a row per unit, most informative first, labelled with its KL), ``traversals.gif``, and
    ``pair-<row unit>-<column unit>.png`` for each pair (default: each discrete unit against the top continuous ones)."""
    _check_n(n)
    kind = _sample_kind(source)
    out = Path(out)
    model = source.model
    ranked, kl = source.units_by_kl()
    if units:
        chosen = [str(parse_unit(model.latent, u)) for u in units]
        ordered = chosen
    else:
        ordered = ranked
    held = _base(source, base, seed)
    figures = []
    rows = traversal_rows(model, ordered, n, base=held)
    where = NEUTRAL_CAPTION if base == "neutral" else f"other units from a prior draw (seed {seed})"
    image = sample_grid(kind, rows, row_labels=[_label(u, kl) for u in ordered], scale=scale)
    figures.append(Figure(save_png(image, out / "traversals.png"),
                          f"Latent traversals, a row per unit{' (by KL, nats)' if kl and not units else ''}; {where}."
                          + (" Curves coloured from the first traversal value (purple) to the last (yellow)."
                             if kind == "lines" else "")))
    if kind == "lines":
        if gif or pairs:
            source.notices.append("the animated traversal and the pair grids are drawn for images only; this model's "
                                  "samples are signals or vectors, drawn as lines in traversals.png")
        return figures
    if gif:
        frames = traversal_frames(model, ordered, n, base=held)
        cols = min(GIF_COLUMNS, len(ordered))
        pictures = []
        for frame in frames:
            cells = list(frame) + [torch.ones_like(frame[0])] * (-len(ordered) % cols)
            grid_rows = [torch.stack(cells[i : i + cols]) for i in range(0, len(cells), cols)]
            pictures.append(image_grid(grid_rows, scale=scale))
        pictures = pictures + pictures[-2:0:-1]  # forth and back
        figures.append(Figure(save_gif(pictures, out / "traversals.gif"),
                              f"Animated traversal: every unit moves at once, in the order {', '.join(ordered)}."))
    if pairs is None:
        pairs = default_pairs(source, ordered, kl) if not units else []
    for row_unit, col_unit in pairs:
        grid = traverse_pair(model, row_unit, col_unit, n, base=held)
        row_ref = parse_unit(model.latent, row_unit)
        discrete = model.latent.channels[row_ref.channel].is_discrete
        labels = [f"{row_ref}={i}" if discrete else f"{row_ref} #{i}" for i in range(grid.shape[0])]
        path = save_png(image_grid(grid, row_labels=labels, scale=scale), out / f"pair-{row_unit}-{col_unit}.png")
        figures.append(Figure(path, f"{row_unit} along the rows against {col_unit} along the columns; {where}."))
    return figures


def write_samples(
    source: FigureSource,
    out: str | os.PathLike,
    *,
    n: int = 10,
    seed: int = 0,
    recon: int = 10,
    scale: int = 2,
) -> list[Figure]:
    """``samples-prior.png`` (n×n draws), ``samples-given-<unit>.png`` per discrete unit (a row per category, the
    other units from the prior: the paper's Fig. 4a) and ``reconstructions.png`` (originals above, reconstructions
    below; needs the data set)."""
    _check_n(n)
    kind = _sample_kind(source)
    out = Path(out)
    model = source.model
    figures = []
    samples = prior_samples(model, n * n, seed=seed).reshape(n, n, *model.image_shape)
    figures.append(Figure(save_png(sample_grid(kind, samples, scale=scale), out / "samples-prior.png"),
                          f"{n * n} samples from the prior (seed {seed})."))
    for channel, family in model.latent.items():
        if not family.is_discrete:
            continue
        for unit in model.latent.unit_names()[channel]:
            grid = conditional_samples(model, unit, n, seed=seed)
            labels = [f"{unit}={k}" for k in range(grid.shape[0])]
            path = save_png(sample_grid(kind, grid, row_labels=labels, scale=scale), out / f"samples-given-{unit}.png")
            figures.append(Figure(path, f"Samples with {unit} fixed, a row per category; other units from the prior "
                                        f"(the same draws in every row)."))
    if recon:
        data = source.data()
        if data is not None:
            count = min(recon, len(data))
            index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
            pair = reconstructions(model, data.images[index].to(source.device))
            if kind == "lines":  # one panel per sample: the data (purple) and its reconstruction (yellow)
                image = line_grid(list(pair.transpose(0, 1)), row_labels=[f"#{i}" for i in range(count)])
                caption = (f"{count} random samples of the data set (seed {seed}), a panel each: the data (purple) and "
                           f"its reconstruction from the encoder's mean / most probable category (yellow).")
            else:
                image = image_grid(pair, row_labels=["data", "recon"], scale=scale)
                caption = (f"{count} random images of the data set (seed {seed}) above, their reconstructions from "
                           f"the encoder's mean / most probable category below.")
            figures.append(Figure(save_png(image, out / "reconstructions.png"), caption))
    return figures


def _pad_rows(rows: list[Tensor]) -> Tensor:
    width = max(row.shape[0] for row in rows)
    return torch.stack([torch.cat([row, row.new_ones(width - row.shape[0], *row.shape[1:])]) for row in rows])


#: images drawn from the factor grid for the factor scatter (and its correlations)
SCATTER_POINTS = 5_000


def _factor_scatter(source: FigureSource, out: Path) -> list[Figure]:
    ground_truth = source.ground_truth()
    if ground_truth is None or all(ground_truth.discrete_factors or [False]) or all(f.is_discrete for _, f in source.model.latent.items()):
        return []
    from latentkit.metrics.base import ModelRepresentation, axis_names
    from latentkit.metrics.correlation import correlation_table, sample_correlation_points
    from latentkit.viz.plots import plot_factor_scatter

    represent = ModelRepresentation(source.model, device=source.device)
    codes, is_discrete, values = sample_correlation_points(ground_truth, represent, SCATTER_POINTS)
    factor_names = list(axis_names(ground_truth.factor_names, values.shape[1], "factor"))
    table = correlation_table(codes, is_discrete, values, list(represent.names), factor_names,
                              ground_truth.discrete_factors)
    path = plot_factor_scatter(codes, values, table, list(represent.names), factor_names, out / "factor-scatter.png",
                               title=f"{source.name}: factors read off single units")
    return [Figure(path, f"Each ordered ground-truth factor against the continuous unit most correlated with it, on "
                         f"{SCATTER_POINTS:,} images drawn from the factor grid (the paper's Fig. 8a).")]


def write_plots(source: FigureSource, out: str | os.PathLike, *, n: int = 10) -> list[Figure]:
    """``kl-curves.png`` (each unit's KL over training with the capacities: the paper's Fig. 7a; needs the training
    history), ``kl-rise.png`` (which unit's KL rises first), ``kl-ranking.png`` (units ranked by KL, each with its
    traversal: Fig. 7b) and, for a data set with a factor grid (dSprites), ``factor-scatter.png`` (each ordered factor
    against the unit that tracks it best: Fig. 8a)."""
    from latentkit.viz.plots import plot_kl_curves, plot_kl_ranking, plot_kl_rise, read_metrics

    out = Path(out)
    figures = []
    if source.metrics_file is not None:
        records = read_metrics(source.metrics_file)
        path = plot_kl_curves(records, out / "kl-curves.png", title=source.name)
        figures.append(Figure(path, "KL per unit over training (nats, training batches), channel totals thick, "
                                    "capacities dashed (the unclipped schedule dotted where it differs)."))
        path = plot_kl_rise(records, out / "kl-rise.png", title=source.name)
        figures.append(Figure(path, "The order in which units start to carry information: each unit's KL early in "
                                    "training, and the first step its KL reached 0.1 nats."))
    else:
        source.notices.append(
            f"no KL curves: {str(source.folder)!r} has no metrics.jsonl (an imported or copied checkpoint has no "
            f"training history; a run directory of `latentkit train` has one)"
        )
    figures += _factor_scatter(source, out)
    kl, where = source.unit_kl()
    if kl is None:
        source.notices.append(f"no KL ranking: {where}")
    else:
        ranked = sorted(kl, key=lambda u: -kl[u])
        image_model = sample_kind(source.model.image_shape) == "image"  # signals: bars alone (`traverse` draws them)
        strips = _pad_rows(traversal_rows(source.model, ranked, n)) if image_model else None
        path = plot_kl_ranking(kl, out / "kl-ranking.png", traversals=strips, title=f"{source.name}: KL per unit")
        beside = ", each with its traversal" if image_model else ""
        figures.append(Figure(path, f"Units ranked by mean KL to the prior (from {where}){beside}."))
    return figures
