"""Pictures of what a model learned: traversals, samples, plots, the HTML report.

Modules: :mod:`~latentkit.viz.traversal` (which latent vectors a traversal decodes, and the neutral values the units
not moved are held at), :mod:`~latentkit.viz.samples` (prior, conditional, reconstructions),
:mod:`~latentkit.viz.images` (grids, PNG, GIF), :mod:`~latentkit.viz.lines` (signals and vectors as line plots),
:mod:`~latentkit.viz.plots` (matplotlib: KL curves and ranking), :mod:`~latentkit.viz.source` (a model folder and its
data), :mod:`~latentkit.viz.figures` (the figure files the commands write), :mod:`~latentkit.viz.report` (the HTML
page). Encoding image files and editing them through the latent is not drawing: it is :mod:`latentkit.editing`.
"""

from latentkit.viz.traversal import (
    UnitRef,
    base_latent,
    decode_latents,
    neutral_latent,
    parse_unit,
    traversal_frames,
    traversal_latents,
    traversal_rows,
    traverse,
    traverse_pair,
)

__all__ = [
    "UnitRef",
    "base_latent",
    "decode_latents",
    "neutral_latent",
    "parse_unit",
    "traversal_frames",
    "traversal_latents",
    "traversal_rows",
    "traverse",
    "traverse_pair",
]
