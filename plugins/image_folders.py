"""CelebA and 3D chairs from folders of image files.

* ``celeba``: RGB. Files ``ROOT/celeba/img_align_celeba/*.jpg`` (torchvision's CelebA layout; the aligned-and-cropped
  178x218 JPEGs). Each image is centre-cropped to ``crop`` x ``crop`` (148) and resized to ``size`` (64): the usual
  convention for 64x64 CelebA. Splits: ``all`` and ``train`` are every image; with ``ROOT/celeba/list_eval_partition.txt``
  present (torchvision's layout) ``train``/``valid``/``test`` follow the official partition. No labels.
* ``chairs``: grayscale. Every ``.png``/``.jpg`` under ``ROOT/chairs/`` (any depth, e.g. the rendered chairs'
  ``rendered_chairs/<id>/renders/*.png``), optionally centre-cropped to ``crop`` and resized to ``size`` (64). The
  original code read chairs already cropped and resized to 64x64; for the raw 600x600 renders ``crop=400`` is a common
  choice. Split: ``train`` (every image). No labels.

Images are decoded on a thread pool with a progress bar and held in memory as uint8.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from latentkit.data.images import find_images, load_image_files
from latentkit.data.provider import DatasetProvider, ImageData, missing_data, resolve_root
from latentkit.errors import DataError
from latentkit.plugins import hookimpl
from latentkit.validation import check, optional, positive_int

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CHAIRS_URL = "https://www.di.ens.fr/willow/research/seeing3Dchairs/"


class CelebA(DatasetProvider):
    dataset_name = "celeba"
    splits = ("train", "valid", "test", "all")
    _partition = {"train": 0, "valid": 1, "test": 2}

    def __init__(self, size: int = 64, crop: int | None = 148):
        self.size = check("size", size, positive_int, owner="celeba", example="64")
        self.crop = check("crop", crop, optional(positive_int, "no crop"), owner="celeba", example="148")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        self.check_split(split)
        root = resolve_root(root)
        base = root / "celeba"
        folder = base / "img_align_celeba"
        paths = find_images(folder, recursive=False) if folder.is_dir() else []
        if not paths:
            raise missing_data(
                "celeba",
                root,
                folder,
                ["the aligned CelebA images (000001.jpg ... 202599.jpg)"],
                f"Download img_align_celeba.zip from {CELEBA_URL} and unzip it there "
                f"(torchvision.datasets.CelebA(root, download=True) uses the same layout).",
            )
        partition_file = base / "list_eval_partition.txt"
        if split in self._partition:
            if partition_file.is_file():
                paths = _select_partition(paths, partition_file, self._partition[split])
            elif split != "train":
                raise DataError(
                    f"data set 'celeba' split {split!r} needs the official partition file "
                    f"{str(partition_file.resolve())!r} (list_eval_partition.txt from {CELEBA_URL}); without it only "
                    f"the splits 'train' and 'all' (both: every image) are available"
                )
        images = load_image_files(paths, mode="RGB", size=self.size, crop=self.crop, desc=f"celeba {split}")
        return ImageData(images=torch.from_numpy(images))


def _select_partition(paths: list[Path], partition_file: Path, wanted: int) -> list[Path]:
    keep: set[str] = set()
    n = 0
    try:
        for n, line in enumerate(partition_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            name, part = line.split()
            if int(part) == wanted:
                keep.add(name)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{str(partition_file)!r} is malformed at line {n} ({exc}); each line must read '<file name> <0|1|2>'"
        ) from None
    selected = [p for p in paths if p.name in keep]
    if not selected:
        raise DataError(f"none of the images listed for partition {wanted} in {str(partition_file)!r} is in {str(paths[0].parent)!r}")
    return selected


class Chairs(DatasetProvider):
    dataset_name = "chairs"
    splits = ("train",)

    def __init__(self, size: int = 64, crop: int | None = None):
        self.size = check("size", size, positive_int, owner="chairs", example="64")
        self.crop = check("crop", crop, optional(positive_int, "no crop"), owner="chairs", example="148")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        self.check_split(split)
        root = resolve_root(root)
        folder = root / "chairs"
        paths = find_images(folder) if folder.is_dir() else []
        if not paths:
            raise missing_data(
                "chairs",
                root,
                folder,
                ["the chair images (*.png or *.jpg, in any sub-folders)"],
                f"Download the rendered chairs (rendered_chairs.tar) from {CHAIRS_URL} and unpack it there.",
            )
        images = load_image_files(paths, mode="L", size=self.size, crop=self.crop, desc=f"chairs {split}")
        return ImageData(images=torch.from_numpy(images))


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("celeba", CelebA)
    registry.add("chairs", Chairs)
