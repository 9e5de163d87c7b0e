"""The data-set protocol: a provider loads a split as tensors of samples held in memory.

A sample is an image ``(C, H, W)``, a multi-channel signal ``(C, L)`` or a vector ``(D,)``; a split is ``(N, *shape)``.
Images stay uint8 (values 0..255) until a batch is drawn and divided by 255 on the training device: no per-image
Python work in the hot loop, and a quarter of the memory. Real-valued data (signals, vectors) is stored float32 and
used as is. :func:`as_float_batch` is the one place stored samples become model inputs, so every consumer (trainer,
metrics, figures, inference) agrees on it. Labels (classes) and ground-truth factors are optional.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import attrs
import torch
from torch import Tensor

from latentkit.data.ground_truth import GroundTruthData
from latentkit.errors import DataError
from latentkit.validation import check, integer, optional, positive_int

#: dtypes a data set may store its samples in: uint8 (scaled by 1/255 when drawn) or float32 (used as is)
SAMPLE_DTYPES = (torch.uint8, torch.float32)


def as_float_batch(samples: Tensor) -> Tensor:
    """Stored samples as the float32 batch a model reads: uint8 divided by 255, floating point as float32.

    A float32 input is returned as is (no copy: callers that change the batch in place must copy it first); a uint8
    input gives a new tensor, computed as ``samples.float().div_(255)`` so that the values are bit-identical to
    torchvision's ``ToTensor`` and to every earlier run.
    """
    if samples.dtype == torch.uint8:
        return samples.float().div_(255.0)
    if samples.is_floating_point():
        return samples.float()
    raise DataError(
        f"samples must be uint8 (images, 0..255) or floating point (used as is), got {samples.dtype}; convert the "
        f"data set's tensors to one of {[str(d).replace('torch.', '') for d in SAMPLE_DTYPES]}"
    )


@attrs.frozen
class ImageData:
    """A loaded split. ``images`` holds the samples, ``(N, *shape)``: images, signals or vectors (the name stays from
    the image data sets the framework started with)."""

    images: Tensor  #: uint8 (0..255) or float32, ``(N, C, H, W)``, ``(N, C, L)`` or ``(N, D)``
    labels: Tensor | None = None  #: int64 class labels, ``(N,)``
    factors: Tensor | None = None  #: ground-truth factor values, ``(N, n_factors)``
    factor_names: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.images.dtype not in SAMPLE_DTYPES or not 2 <= self.images.dim() <= 4:
            raise DataError(
                f"samples must be a uint8 or float32 tensor of shape (N, C, H, W), (N, C, L) or (N, D), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one sample: ``(C, H, W)``, ``(C, L)`` or ``(D,)``."""
        return tuple(self.images.shape[1:])


class DatasetProvider(abc.ABC):
    """A named data set; options (e.g. ``size``) come from the recipe."""

    dataset_name = ""
    splits: tuple[str, ...] = ("train", "test")

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one sample this provider yields: ``(C, H, W)``, ``(C, L)`` or ``(D,)``."""

    @abc.abstractmethod
    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        """Load ``split`` from ``root``; a missing data set raises :class:`DataError` naming the files and where."""

    def ground_truth(self, root: str | os.PathLike | None) -> GroundTruthData | None:
        """The factor grid behind this data set, for disentanglement metrics; ``None`` when it has none."""
        return None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"data set {self.dataset_name!r} has splits {list(self.splits)}, not {split!r}")


class GridDatasetProvider(DatasetProvider):
    """A data set that is a whole procedural factor grid (:meth:`ground_truth`): a seeded fifth of the grid is
    ``test``, the rest ``train``; ``n`` takes a seeded subset of the training samples (and a fifth as many test ones);
    the label is the first factor. Subclasses validate their own options and give :meth:`ground_truth`."""

    splits = ("train", "test")
    test_fraction = 5  #: one grid point in this many is held out for ``test``

    def __init__(self, n: int | None = None, seed: int = 0):
        self.n = check("n", n, optional(positive_int.such_as("1000"), "the whole grid"), owner=self.dataset_name)
        self.seed = check("seed", seed, integer, owner=self.dataset_name)

    def split_indices(self, grid: GroundTruthData, split: str) -> Tensor:
        """Grid indices of ``split``, in increasing order."""
        order = torch.randperm(len(grid), generator=torch.Generator().manual_seed(self.seed))
        n_test = len(grid) // self.test_fraction
        part = order[:n_test] if split == "test" else order[n_test:]
        if self.n is not None:
            part = part[: (max(1, self.n // 5) if split == "test" else self.n)]
        return part.sort().values

    def load(self, root: str | os.PathLike | None = None, split: str = "train") -> ImageData:
        self.check_split(split)
        grid = self.ground_truth(root)
        factors = grid.index_to_factors(self.split_indices(grid, split))
        return ImageData(images=grid.images(factors), labels=factors[:, 0].clone(), factors=factors,
                         factor_names=tuple(grid.factor_names))

    @abc.abstractmethod
    def ground_truth(self, root: str | os.PathLike | None = None) -> GroundTruthData:
        """The factor grid (procedural: ``root`` is unused)."""


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The data root: the given one, else $LATENTKIT_DATA, else ./data."""
    return Path(root or os.environ.get("LATENTKIT_DATA") or "data")


def missing_data(dataset: str, root: Path, folder: Path, files: list[str] | tuple[str, ...], how: str) -> DataError:
    """The :class:`DataError` for a data set that is not where it should be: names it, the files, where they go."""
    return DataError(
        f"data set {dataset!r} was not found: expected {', '.join(files)} in {str(Path(folder).resolve())!r} "
        f"(under the data root {str(Path(root).resolve())!r}). {how} To use another data root, pass --data-root or set "
        f"$LATENTKIT_DATA."
    )
