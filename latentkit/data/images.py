"""Turning image files and arrays into the uint8 ``(N, C, H, W)`` tensors providers return.

Every resize goes through PIL with torchvision's own functional ``resize`` (bilinear, PIL's antialiasing), once, at
load time: the stored uint8 values are exactly what ``ToTensor()(Resize(size)(pil))`` would give times 255, so dividing
a batch by 255 on the device reproduces the original code's float inputs bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from latentkit.errors import DataError

#: File name endings an image folder is searched for (lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def resize_gray_array(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, H, W)`` uint8 images to ``(N, 1, size', size')`` as torchvision ``Resize(size)`` does on PIL images.

    ``size`` is the smaller edge (torchvision's int semantics); square images become ``size x size``.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 3:
        raise DataError(f"expected grayscale images shaped (N, H, W), got {images.shape}")
    n, h, w = images.shape
    if n == 0 or min(h, w) == size and h == w:
        return images[:, None].copy()
    first = np.asarray(TF.resize(Image.fromarray(images[0]), size))
    out = np.empty((n, 1, *first.shape), dtype=np.uint8)
    out[0, 0] = first
    for i in range(1, n):
        out[i, 0] = np.asarray(TF.resize(Image.fromarray(images[i]), size))
    return out


def _centre_crop_resize(img: Image.Image, crop: int | None, size: int) -> Image.Image:
    if crop is not None:
        if min(img.size) < crop:
            raise _TooSmall(f"it is {img.size[0]}x{img.size[1]}, smaller than the crop ({crop}x{crop})")
        img = TF.center_crop(img, [crop, crop])
    if img.size != (size, size):
        img = TF.resize(img, [size, size])
    return img


class _TooSmall(ValueError):
    pass


def _open(path: Path, mode: str, crop: int | None, size: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = _centre_crop_resize(img.convert(mode), crop, size)
            arr = np.asarray(img, dtype=np.uint8)
    except _TooSmall as exc:
        raise DataError(f"cannot use image {str(path)!r}: {exc}; lower the crop option or remove the file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {str(path)!r} ({type(exc).__name__}: {exc}); remove or replace the file") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_image_files(
    paths: Sequence[Path],
    *,
    mode: str,
    size: int,
    crop: int | None = None,
    desc: str = "loading images",
    workers: int | None = None,
) -> np.ndarray:
    """Decode ``paths`` (PIL mode ``"L"`` or ``"RGB"``), centre-crop to ``crop`` if given, resize to ``size x size``.

    Returns ``(N, C, size, size)`` uint8. Decoding runs on a thread pool (PIL releases the GIL while decoding and
    resizing); a progress bar shows on terminals.
    """
    channels = {"L": 1, "RGB": 3}[mode]
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    workers = workers or min(8, os.cpu_count() or 1)

    def work(i: int) -> None:
        arr = _open(paths[i], mode, crop, size)
        if arr.shape != out.shape[1:]:
            raise DataError(
                f"image {str(paths[i])!r} gave shape {arr.shape} after cropping/resizing, expected {out.shape[1:]}"
            )
        out[i] = arr

    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(paths), desc=desc, unit="img", disable=None) as bar:
        for _ in pool.map(work, range(len(paths))):
            bar.update()
    return out


def find_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (``.png``, ``.jpg``, ``.jpeg``, any case), sorted for a stable order."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
