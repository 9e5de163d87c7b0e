"""Pictures of what a model learned: latent traversals (more figures arrive with the visualisation issue)."""

from latentkit.viz.traversal import UnitRef, base_latent, parse_unit, traversal_latents, traverse

__all__ = ["UnitRef", "base_latent", "parse_unit", "traversal_latents", "traverse"]
