"""dSprites from DeepMind's npz: 737,280 binary 64x64 shapes with their six ground-truth factors.

File: ``ROOT/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (keys ``imgs`` ``(N, 64, 64)`` uint8 in {0, 1},
``latents_classes`` ``(N, 6)``, ``latents_values``, and a pickled ``metadata``). It is read with
``np.load(allow_pickle=False)``: only the arrays are read, the pickled metadata never is.

Images are ``imgs * 255`` as the original code does; ``factors`` are the latent classes (int64) in the order
``color, shape, scale, orientation, posX, posY``. With ``label_factor`` (e.g. ``"shape"``) that factor also becomes the
labels, so the unsupervised accuracy of a discrete code can be measured against it. Split: ``train`` (the whole set).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import torch

from latentkit.data.provider import DatasetProvider, ImageData, missing_data, resolve_root
from latentkit.errors import ConfigError, DataError
from latentkit.plugins import hookimpl

FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://github.com/google-deepmind/dsprites-dataset/raw/master/{FILE_NAME}"
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")


class DSprites(DatasetProvider):
    dataset_name = "dsprites"
    splits = ("train",)

    def __init__(self, label_factor: str | None = None):
        if label_factor is not None and label_factor not in FACTOR_NAMES:
            raise ConfigError(f"dsprites label_factor must be one of {list(FACTOR_NAMES)} or None, got {label_factor!r}")
        self.label_factor = label_factor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 64, 64)

    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        self.check_split(split)
        root = resolve_root(root)
        path = root / "dsprites" / FILE_NAME
        if not path.is_file():
            raise missing_data(
                "dsprites",
                root,
                path.parent,
                [FILE_NAME],
                f"Download it (about 26 MB) from {URL} (the public dSprites repository) into that folder.",
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
        factors = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        labels = factors[:, FACTOR_NAMES.index(self.label_factor)].clone() if self.label_factor else None
        return ImageData(images=torch.from_numpy(imgs)[:, None], labels=labels, factors=factors, factor_names=FACTOR_NAMES)


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("dsprites", DSprites)
