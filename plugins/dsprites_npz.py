"""dSprites from DeepMind's npz: 737,280 binary 64x64 shapes with their six ground-truth factors — or, where the npz
is absent and asked for, the same grid drawn by the procedural generator (:mod:`latentkit_plugins.procedural_dsprites`).

File: ``ROOT/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (keys ``imgs`` ``(N, 64, 64)`` uint8 in {0, 1},
``latents_classes`` ``(N, 6)``, ``latents_values``, and a pickled ``metadata``). It is read with
``np.load(allow_pickle=False)``: only the arrays are read, the pickled metadata never is.

Images are ``imgs * 255`` as the original code does; ``factors`` are the latent classes (int64) in the order
``color, shape, scale, orientation, posX, posY``. With ``label_factor`` (e.g. ``"shape"``) that factor also becomes the
labels, so the unsupervised accuracy of a discrete code can be measured against it. Split: ``train`` (the whole set).

Options:

* ``source``: ``"npz"`` (the default: the real file, a missing one is an error that says where it goes),
  ``"procedural"`` (the generator, no file needed) or ``"auto"`` (the npz where the data root has it, else the
  generator; either way one line on stderr says which). Whatever the source, the images have the same grid, index
  order and ``factors`` columns (colour, one value, is 0).
* ``n``: a seeded random subset of ``n`` images (in index order; the same indices from either source), for quick
  runs; ``None`` (the default) loads all. ``seed`` picks the subset.

:meth:`DSprites.ground_truth` gives the factor grid for disentanglement metrics: the five factors shape (discrete),
scale, orientation, posX, posY — colour, which has one value, is left out; the image index is the npz's row
(colour's size of one leaves the row-major index unchanged).
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from latentkit.data.ground_truth import ArrayGroundTruth, GroundTruthData
from latentkit.data.provider import DatasetProvider, ImageData, missing_data, resolve_root
from latentkit.errors import DataError
from latentkit.plugins import hookimpl
from latentkit.validation import check, one_of, optional
from latentkit_plugins.procedural_dsprites import (
    DISCRETE_FACTORS,
    FACTOR_NAMES as GT_FACTOR_NAMES,
    FACTOR_SIZES as GT_FACTOR_SIZES,
    ORIENTATION_VALUES,
    POSITION_VALUES,
    SCALE_VALUES,
    SHAPE_VALUES,
    DSpritesProcedural,
    ProceduralDSprites,
    check_subset_options,
    subset_indices,
)

FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://github.com/google-deepmind/dsprites-dataset/raw/master/{FILE_NAME}"
FACTOR_NAMES = ("color",) + GT_FACTOR_NAMES  # ("color", "shape", "scale", "orientation", "posX", "posY")
SOURCES = ("npz", "procedural", "auto")


def npz_path(root: str | os.PathLike | None) -> Path:
    """Where the npz is expected under the data root."""
    return resolve_root(root) / "dsprites" / FILE_NAME


def read_npz(root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """``imgs`` as uint8 0/255 ``(N, 64, 64)`` and ``latents_classes`` as int64 ``(N, 6)``; errors name the file."""
    root = resolve_root(root)
    path = npz_path(root)
    if not path.is_file():
        raise missing_data(
            "dsprites",
            root,
            path.parent,
            [FILE_NAME],
            f"Download it (about 26 MB) from {URL} (the public dSprites repository) into that folder, or use the "
            f"procedural generator instead (dataset option source='procedural', or 'auto' to use the file where it "
            f"is).",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("imgs", "latents_classes") if k not in npz.files]
            if missing:
                raise DataError(
                    f"{str(path.resolve())!r} lacks the arrays {missing} (it has {npz.files}); it is not the "
                    f"dSprites npz — download it again from {URL}"
                )
            imgs = npz["imgs"]
            classes = npz["latents_classes"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{str(path.resolve())!r} cannot be read as the dSprites npz ({type(exc).__name__}: {exc}); it is "
            f"corrupt or truncated — download it again from {URL}"
        ) from None
    if imgs.ndim != 3 or imgs.shape[1:] != (64, 64) or classes.shape != (imgs.shape[0], len(FACTOR_NAMES)):
        raise DataError(
            f"{str(path.resolve())!r} holds imgs {imgs.shape} and latents_classes {classes.shape}; expected "
            f"(N, 64, 64) and (N, {len(FACTOR_NAMES)})"
        )
    imgs = np.ascontiguousarray(imgs, dtype=np.uint8)
    if imgs.size and imgs.max() <= 1:  # the real file holds {0, 1}; an already scaled array is kept as is
        np.multiply(imgs, 255, out=imgs)
    return imgs, np.ascontiguousarray(classes, dtype=np.int64)


def npz_ground_truth(root: str | os.PathLike | None) -> ArrayGroundTruth:
    """The npz as a :class:`GroundTruthData` over shape, scale, orientation, posX, posY (colour dropped)."""
    imgs, classes = read_npz(root)
    where = str(npz_path(root).resolve())
    if classes.shape[0] and classes[:, 0].any():
        raise DataError(f"{where!r}: colour (the first latent) must have the single class 0; the file is not dSprites")
    try:
        return ArrayGroundTruth(
            torch.from_numpy(imgs)[:, None],
            torch.from_numpy(classes[:, 1:]),
            GT_FACTOR_NAMES,
            GT_FACTOR_SIZES,
            DISCRETE_FACTORS,
            values=(SHAPE_VALUES, SCALE_VALUES, ORIENTATION_VALUES, POSITION_VALUES, POSITION_VALUES),
        )
    except DataError as exc:
        raise DataError(f"{where!r} is not the full dSprites grid: {exc}") from None


class DSprites(DatasetProvider):
    dataset_name = "dsprites"
    splits = ("train",)

    def __init__(self, label_factor: str | None = None, source: str = "npz", n: int | None = None, seed: int = 0):
        self.label_factor = check("label_factor", label_factor, optional(one_of(*FACTOR_NAMES), "no labels"),
                                  owner="dsprites")
        self.source = check("source", source, one_of(*SOURCES), owner="dsprites")
        self.n, self.seed = check_subset_options("dsprites", n, seed)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 64, 64)

    def resolved_source(self, root: str | os.PathLike | None, say: bool = True) -> str:
        """``"npz"`` or ``"procedural"``: ``source``, with ``"auto"`` decided by whether the npz is under ``root``."""
        if self.source != "auto":
            return self.source
        path = npz_path(root)
        if path.is_file():
            if say:
                print(f"dsprites: using the real data set {str(path.resolve())!r}", file=sys.stderr)
            return "npz"
        if say:
            print(
                f"dsprites: {str(path.resolve())!r} not found; using the procedural generator "
                f"(dsprites_procedural) instead",
                file=sys.stderr,
            )
        return "procedural"

    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        self.check_split(split)
        if self.resolved_source(root) == "procedural":
            data = DSpritesProcedural(n=self.n, seed=self.seed).load(root, split)
            factors = torch.cat([torch.zeros(len(data), 1, dtype=torch.int64), data.factors], 1)  # colour: class 0
            images = data.images
        else:
            imgs, classes = read_npz(root)
            index = subset_indices(self.n, self.seed, total=imgs.shape[0])
            if index is not None:
                imgs, classes = imgs[index.numpy()], classes[index.numpy()]
            images, factors = torch.from_numpy(imgs)[:, None], torch.from_numpy(classes)
        labels = factors[:, FACTOR_NAMES.index(self.label_factor)].clone() if self.label_factor else None
        return ImageData(images=images, labels=labels, factors=factors, factor_names=FACTOR_NAMES)

    def ground_truth(self, root: str | os.PathLike | None) -> GroundTruthData:
        if self.resolved_source(root) == "procedural":
            return ProceduralDSprites()
        return npz_ground_truth(root)


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("dsprites", DSprites)
