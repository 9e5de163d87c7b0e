"""The data-set protocol: a provider loads a split as uint8 image tensors held in memory.

Images stay uint8 (``(N, C, H, W)``, values 0..255) until a batch is drawn and divided by 255 on the training device:
no per-image Python work in the hot loop. Labels (classes) and ground-truth factors are optional.
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


@attrs.frozen
class ImageData:
    images: Tensor  #: uint8, ``(N, C, H, W)``
    labels: Tensor | None = None  #: int64 class labels, ``(N,)``
    factors: Tensor | None = None  #: ground-truth factor values, ``(N, n_factors)``
    factor_names: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be a uint8 (N, C, H, W) tensor, got {self.images.dtype} {tuple(self.images.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


class DatasetProvider(abc.ABC):
    """A named data set; options (e.g. ``size``) come from the recipe."""

    dataset_name = ""
    splits: tuple[str, ...] = ("train", "test")

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images this provider yields."""

    @abc.abstractmethod
    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        """Load ``split`` from ``root``; a missing data set raises :class:`DataError` naming the files and where."""

    def ground_truth(self, root: str | os.PathLike | None) -> GroundTruthData | None:
        """The factor grid behind this data set, for disentanglement metrics; ``None`` when it has none."""
        return None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"data set {self.dataset_name!r} has splits {list(self.splits)}, not {split!r}")


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
