"""Data sets: the provider protocol, in-memory samples (uint8 images, float32 signals and vectors) and their conversion
to float batches, and building providers from the registry."""

from latentkit.data.build import as_component, build_provider, load_dataset
from latentkit.data.provider import DatasetProvider, ImageData, as_float_batch, resolve_root

__all__ = [
    "DatasetProvider",
    "ImageData",
    "as_component",
    "as_float_batch",
    "build_provider",
    "load_dataset",
    "resolve_root",
]
