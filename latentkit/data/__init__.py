"""Data sets: the provider protocol, in-memory uint8 image data, and building providers from the registry."""

from latentkit.data.build import as_component, build_provider, load_dataset
from latentkit.data.provider import DatasetProvider, ImageData, resolve_root

__all__ = ["DatasetProvider", "ImageData", "as_component", "build_provider", "load_dataset", "resolve_root"]
