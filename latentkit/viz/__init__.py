"""Pictures of what a model learned: traversals, samples, plots, encoding and editing, the HTML report.

Modules: :mod:`~latentkit.viz.traversal` (which latent vectors a traversal decodes), :mod:`~latentkit.viz.samples`
(prior, conditional, reconstructions), :mod:`~latentkit.viz.images` (grids, PNG, GIF), :mod:`~latentkit.viz.plots`
(matplotlib: KL curves and ranking), :mod:`~latentkit.editing` (encode and edit image files),
:mod:`~latentkit.viz.source` (a model folder and its data), :mod:`~latentkit.viz.figures` (the figure files the
commands write), :mod:`~latentkit.viz.report` (the HTML page).
"""

from latentkit.viz.traversal import (
    UnitRef,
    base_latent,
    decode_latents,
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
    "parse_unit",
    "traversal_frames",
    "traversal_latents",
    "traversal_rows",
    "traverse",
    "traverse_pair",
]
