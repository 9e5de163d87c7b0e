"""Data-set plugins: MNIST-style IDX sets, image folders (CelebA, chairs), the dSprites npz, and their errors."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms

from latentkit.assembly.datasets import build_provider, load_dataset
from latentkit.data.images import resize_gray_array
from latentkit.errors import ConfigError, DataError, UnknownNameError
from latentkit.plugins import get_registry

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
ORIGINAL_TRANSFORM = transforms.Compose([transforms.Resize(32), transforms.ToTensor()])


def _has_idx(root: Path, folder: str) -> bool:
    raw = root / folder / "raw"
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all((raw / n).is_file() for n in names)


needs_mnist = pytest.mark.skipif(not _has_idx(DATA, "MNIST"), reason=f"MNIST IDX files are absent from {DATA}/MNIST/raw")
needs_fashion = pytest.mark.skipif(
    not _has_idx(DATA, "FashionMNIST"), reason=f"Fashion-MNIST IDX files are absent from {DATA}/FashionMNIST/raw"
)


# --- registry ----------------------------------------------------------------------------------------------------


def test_every_dataset_is_registered():
    names = get_registry().datasets.names()
    for name in ("mnist", "fashion_mnist", "celeba", "chairs", "dsprites"):
        assert name in names


def test_image_shapes_and_options():
    assert build_provider("mnist").image_shape == (1, 32, 32)
    assert build_provider({"name": "mnist", "options": {"size": 64}}).image_shape == (1, 64, 64)
    assert build_provider("fashion_mnist").image_shape == (1, 32, 32)
    assert build_provider("celeba").image_shape == (3, 64, 64)
    assert build_provider("chairs").image_shape == (1, 64, 64)
    assert build_provider("dsprites").image_shape == (1, 64, 64)


@pytest.mark.parametrize(
    "dataset",
    [
        {"name": "mnist", "options": {"size": 0}},
        {"name": "mnist", "options": {"size": "32"}},
        {"name": "mnist", "options": {"colour": True}},
        {"name": "celeba", "options": {"crop": -1}},
        {"name": "dsprites", "options": {"label_factor": "hue"}},
    ],
)
def test_bad_options_are_config_errors(dataset):
    with pytest.raises(ConfigError):
        build_provider(dataset)


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="mnist"):
        build_provider("mnsit")


# --- resizing ----------------------------------------------------------------------------------------------------


def test_resize_is_bit_exact_to_torchvision_resize_and_to_tensor():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    images[:5] = (images[:5] > 200) * 255  # hard edges, as in digits
    out = resize_gray_array(images, 32)
    assert out.shape == (20, 1, 32, 32) and out.dtype == np.uint8
    for i in range(len(images)):
        ref = ORIGINAL_TRANSFORM(Image.fromarray(images[i]))
        assert torch.equal(torch.from_numpy(out[i]).float() / 255, ref)
        assert torch.equal((ref * 255).round().to(torch.uint8), torch.from_numpy(out[i]))


def test_resize_to_the_same_size_is_a_copy():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    np.testing.assert_array_equal(resize_gray_array(images, 28)[:, 0], images)


# --- MNIST / Fashion-MNIST ----------------------------------------------------------------------------------------


@needs_mnist
def test_mnist_loads_both_splits_fast_and_bit_exact():
    tv = torchvision.datasets.MNIST(str(DATA), train=False, download=False)
    start = time.perf_counter()
    test = load_dataset("mnist", DATA, "test")
    train = load_dataset("mnist", DATA, "train")
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"loading MNIST took {elapsed:.1f}s"
    assert test.images.shape == (10_000, 1, 32, 32) and test.images.dtype == torch.uint8
    assert train.images.shape == (60_000, 1, 32, 32)
    assert test.labels.dtype == torch.int64 and torch.equal(test.labels, tv.targets)
    assert train.labels.shape == (60_000,) and set(train.labels.unique().tolist()) == set(range(10))
    assert test.factors is None
    for i in (0, 1, 7, 1234, 9999):
        ref = ORIGINAL_TRANSFORM(Image.fromarray(tv.data[i].numpy()))
        assert torch.equal(test.images[i].float() / 255, ref), i
        assert torch.equal((ref * 255).round().to(torch.uint8), test.images[i]), i


@needs_fashion
def test_real_fashion_mnist_loads():
    test = load_dataset("fashion_mnist", DATA, "test")
    assert test.images.shape == (10_000, 1, 32, 32) and test.labels.shape == (10_000,)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_sets_on_tiny_files(tmp_path, idx_files, name, folder):
    root = idx_files(tmp_path, folder)
    tv_cls = {"MNIST": torchvision.datasets.MNIST, "FashionMNIST": torchvision.datasets.FashionMNIST}[folder]
    for split, n in (("train", 12), ("test", 5)):
        data = load_dataset(name, root, split)
        tv = tv_cls(str(root), train=split == "train", download=False)
        assert data.images.shape == (n, 1, 32, 32)
        assert torch.equal(data.labels, tv.targets)
        for i in range(n):
            assert torch.equal(data.images[i].float() / 255, ORIGINAL_TRANSFORM(Image.fromarray(tv.data[i].numpy())))
    assert load_dataset({"name": name, "options": {"size": 28}}, root, "test").images.shape == (5, 1, 28, 28)


def test_idx_missing_names_files_and_folder(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", tmp_path, "train")
    msg = str(info.value)
    assert "'fashion_mnist'" in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert str((tmp_path / "FashionMNIST" / "raw").resolve()) in msg
    assert "download=True" in msg and "\n" not in msg


def test_idx_gz_only_suggests_decompressing(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(raw / f"{n}.gz", "wb") as f:
            f.write(b"")
    with pytest.raises(DataError, match="decompress"):
        load_dataset("mnist", tmp_path, "test")


def test_idx_corrupt(tmp_path, idx_files):
    root = idx_files(tmp_path, "MNIST")
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("mnist", root, "test")


def test_unknown_split(tmp_path):
    for name, bad in (("mnist", "val"), ("chairs", "test"), ("dsprites", "test"), ("celeba", "validation")):
        with pytest.raises(DataError, match=repr(bad)):
            load_dataset(name, tmp_path, bad)


# --- image folders -----------------------------------------------------------------------------------------------


def _random_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr).save(path)


def test_celeba_image_folder(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    for i, name in enumerate(names):
        _random_image(folder / name, (178, 218), seed=i)
    data = load_dataset("celeba", tmp_path, "train")
    assert data.images.shape == (6, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.labels is None
    for i, name in enumerate(names):  # centre crop 148, resize 64, in file-name order
        with Image.open(folder / name) as img:
            ref = TF.resize(TF.center_crop(img.convert("RGB"), [148, 148]), [64, 64])
        assert torch.equal(data.images[i], TF.pil_to_tensor(ref))
    assert torch.equal(load_dataset("celeba", tmp_path, "all").images, data.images)
    # Without the partition file only train/all exist.
    with pytest.raises(DataError, match="list_eval_partition.txt"):
        load_dataset("celeba", tmp_path, "test")
    # With it, the official partition.
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in zip(names, [0, 0, 0, 1, 2, 2]))
    )
    assert torch.equal(load_dataset("celeba", tmp_path, "train").images, data.images[:3])
    assert torch.equal(load_dataset("celeba", tmp_path, "valid").images, data.images[3:4])
    assert torch.equal(load_dataset("celeba", tmp_path, "test").images, data.images[4:])
    small = load_dataset({"name": "celeba", "options": {"size": 32, "crop": None}}, tmp_path, "all")
    assert small.images.shape == (6, 3, 32, 32)


def test_chairs_image_folder(tmp_path):
    base = tmp_path / "chairs" / "rendered_chairs"
    paths = []
    for chair in ("a", "b"):
        renders = base / chair / "renders"
        renders.mkdir(parents=True)
        for j in range(3):
            path = renders / f"image_{j:03d}.{'png' if j else 'jpg'}"
            _random_image(path, (96, 96), mode="RGB" if j == 2 else "L", seed=j)
            paths.append(path)
    (base / "a" / "notes.txt").write_text("not an image")
    data = load_dataset("chairs", tmp_path, "train")
    assert data.images.shape == (6, 1, 64, 64) and data.images.dtype == torch.uint8 and data.labels is None
    for i, path in enumerate(sorted(paths)):
        with Image.open(path) as img:
            ref = TF.resize(img.convert("L"), [64, 64])
        assert torch.equal(data.images[i], TF.pil_to_tensor(ref))
    cropped = load_dataset({"name": "chairs", "options": {"crop": 80}}, tmp_path, "train")
    assert cropped.images.shape == (6, 1, 64, 64)
    with pytest.raises(DataError, match="smaller than the crop"):
        load_dataset({"name": "chairs", "options": {"crop": 120}}, tmp_path, "train")


def test_corrupt_image_names_the_file(tmp_path):
    folder = tmp_path / "chairs"
    folder.mkdir()
    _random_image(folder / "good.png", (64, 64), mode="L")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset("chairs", tmp_path, "train")


@pytest.mark.parametrize(
    "name,where,expected",
    [
        ("celeba", "celeba/img_align_celeba", "img_align_celeba"),
        ("chairs", "chairs", "rendered_chairs.tar"),
        ("dsprites", "dsprites", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"),
        ("mnist", "MNIST/raw", "t10k-images-idx3-ubyte"),
    ],
)
def test_missing_data_names_dataset_files_and_location(tmp_path, name, where, expected):
    with pytest.raises(DataError) as info:
        load_dataset(name, tmp_path, "train")
    msg = str(info.value)
    assert f"'{name}'" in msg
    assert expected in msg
    assert str((tmp_path / where).resolve()) in msg
    assert "http" in msg or "download" in msg
    assert "\n" not in msg


def test_empty_image_folder_is_missing_data(tmp_path):
    (tmp_path / "chairs" / "empty").mkdir(parents=True)
    with pytest.raises(DataError, match="not found"):
        load_dataset("chairs", tmp_path, "train")


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTKIT_DATA", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path.resolve())):
        load_dataset("dsprites", None, "train")


# --- dSprites ----------------------------------------------------------------------------------------------------


def _fake_dsprites(tmp_path: Path, n: int = 10, with_metadata: bool = True) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "dsprites"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "imgs": rng.integers(0, 2, (n, 64, 64), dtype=np.uint8),
        "latents_classes": np.stack(
            [np.zeros(n, np.int64)] + [rng.integers(0, k, n) for k in (3, 6, 40, 32, 32)], axis=1
        ),
        "latents_values": rng.random((n, 6)),
    }
    if with_metadata:  # the real file carries a pickled dict: np.load must never need to unpickle it
        arrays["metadata"] = np.array({"description": "a pickled object"}, dtype=object)
    path = folder / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    np.savez(path, **arrays)
    return path


def test_dsprites_npz(tmp_path):
    path = _fake_dsprites(tmp_path)
    with np.load(path, allow_pickle=True) as f:
        imgs, classes = f["imgs"], f["latents_classes"]
    with pytest.raises(ValueError):  # the metadata key really is pickled
        np.load(path, allow_pickle=False)["metadata"]
    data = load_dataset("dsprites", tmp_path, "train")
    assert data.images.shape == (10, 1, 64, 64) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], torch.from_numpy(imgs) * 255)
    assert set(data.images.unique().tolist()) <= {0, 255}
    assert data.factors.dtype == torch.int64 and torch.equal(data.factors, torch.from_numpy(classes))
    assert data.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert data.labels is None
    labelled = load_dataset({"name": "dsprites", "options": {"label_factor": "shape"}}, tmp_path, "train")
    assert torch.equal(labelled.labels, torch.from_numpy(classes[:, 1]))


def test_dsprites_without_metadata(tmp_path):
    _fake_dsprites(tmp_path, n=3, with_metadata=False)
    assert load_dataset("dsprites", tmp_path, "train").images.shape == (3, 1, 64, 64)


def test_dsprites_corrupt_or_wrong_npz(tmp_path):
    path = _fake_dsprites(tmp_path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("dsprites", tmp_path, "train")
    np.savez(path, pictures=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(DataError, match="imgs"):
        load_dataset("dsprites", tmp_path, "train")
    np.savez(path, imgs=np.zeros((2, 32, 32), np.uint8), latents_classes=np.zeros((2, 6), np.int64))
    with pytest.raises(DataError, match="64, 64"):
        load_dataset("dsprites", tmp_path, "train")
