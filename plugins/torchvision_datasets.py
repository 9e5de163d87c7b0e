"""MNIST and Fashion-MNIST through torchvision, resized as the original JointVAE code does.

Files: torchvision's layout, ``ROOT/MNIST/raw/*-ubyte`` and ``ROOT/FashionMNIST/raw/*-ubyte`` (the uncompressed IDX
files; ``torchvision.datasets.MNIST(ROOT, download=True)`` puts them there). Nothing is downloaded here.

Each image goes once, at load time, through torchvision's ``resize`` on the PIL image (``Resize(size)``, bilinear with
PIL's antialiasing) and is kept as uint8: ``images.float() / 255`` equals ``ToTensor()(Resize(size)(pil))`` exactly.
The 70,000 images of MNIST load in about two seconds. A split needs only its own two files (``t10k-*`` for ``test``,
``train-*`` for ``train``): evaluating on the test set does not demand the training files.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import torch
import torchvision
from torchvision.datasets.mnist import read_image_file, read_label_file

from latentkit.data.images import resize_gray_array
from latentkit.data.provider import DatasetProvider, ImageData, missing_data, resolve_root
from latentkit.errors import DataError
from latentkit.plugins import hookimpl
from latentkit.validation import check, positive_int


class TorchvisionDigits(DatasetProvider):
    """A 28x28 grayscale IDX data set read by a torchvision dataset class; ``size`` is the side after resizing."""

    tv_class: type = torchvision.datasets.MNIST
    splits = ("train", "test")

    def __init__(self, size: int = 32):
        self.size = check("size", size, positive_int, owner=self.dataset_name, example="32")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def _files(self) -> list[str]:
        return [os.path.splitext(os.path.basename(url))[0] for url, _ in self.tv_class.resources]

    def _split_files(self, split: str) -> tuple[str, str]:
        """The images and labels files of ``split`` (torchvision's names: ``train-*``, ``t10k-*`` for test)."""
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    def load(self, root: str | os.PathLike | None, split: str = "train") -> ImageData:
        self.check_split(split)
        root = resolve_root(root)
        raw = root / self.tv_class.__name__ / "raw"
        files = self._split_files(split)  # only this split's: torchvision's class would demand all four
        if not all((raw / f).is_file() for f in files):
            gz = [f + ".gz" for f in files if (raw / (f + ".gz")).is_file() and not (raw / f).is_file()]
            hint = f" The folder holds {', '.join(gz)}: decompress them (gunzip)." if gz else ""
            raise missing_data(
                self.dataset_name,
                root,
                raw,
                files,
                f"The split {split!r} reads these two of the {self.tv_class.__name__} database's uncompressed IDX "
                f"files ({', '.join(self._files())}).{hint} To fetch them "
                f"run `python -c \"import torchvision; torchvision.datasets.{self.tv_class.__name__}("
                f"{str(root.resolve())!r}, download=True)\"` (needs internet; downloads from "
                f"{self.tv_class.mirrors[0]}).",
            )
        try:
            images, labels = (read_image_file(str(raw / files[0])), read_label_file(str(raw / files[1])))
        except (RuntimeError, ValueError, OSError, EOFError, AssertionError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"data set {self.dataset_name!r}: the IDX files in {str(raw.resolve())!r} cannot be read "
                f"({type(exc).__name__}: {exc}); they are corrupt or truncated — delete them and download them again"
            ) from None
        if images.dtype != torch.uint8 or images.dim() != 3 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"data set {self.dataset_name!r}: the IDX files in {str(raw.resolve())!r} hold images of "
                f"{images.dtype} {tuple(images.shape)} and {labels.shape[0]} labels, not N 2-d uint8 images and N labels"
            )
        resized = resize_gray_array(images.numpy(), self.size)
        return ImageData(images=torch.from_numpy(resized), labels=labels.to(torch.int64))


class MNIST(TorchvisionDigits):
    """Handwritten digits, 60,000 train / 10,000 test, labels 0-9."""

    dataset_name = "mnist"
    tv_class = torchvision.datasets.MNIST


class FashionMNIST(TorchvisionDigits):
    """Zalando's clothing images, 60,000 train / 10,000 test, labels 0-9."""

    dataset_name = "fashion_mnist"
    tv_class = torchvision.datasets.FashionMNIST


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("mnist", MNIST)
    registry.add("fashion_mnist", FashionMNIST)
