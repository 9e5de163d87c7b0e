"""Data sets: the provider protocol and in-memory samples (uint8 images, float32 signals and vectors) with their
conversion to float batches. Building a provider from a registered name is the assembly's job
(:mod:`latentkit.assembly.datasets`)."""

from latentkit.data.provider import DatasetProvider, ImageData, as_float_batch, resolve_root

__all__ = ["DatasetProvider", "ImageData", "as_float_batch", "resolve_root"]
