"""Encoding image files into latent codes, and editing images through the latent (the paper's Fig. 8b).

``latentkit encode`` and ``latentkit edit`` are thin wrappers around this module. It is not part of
:mod:`latentkit.viz` (encoding and editing images is not drawing figures), and fast batched model inference over
tensors is :mod:`latentkit.inference`. What it offers:

* :func:`load_images` reads image files into the model's uint8 ``(N, C, H, W)`` shape, converting size and colour mode
  the way data sets are prepared for training (PIL + torchvision's functional ``resize``, bilinear with antialiasing),
  and reports every conversion it made;
* :func:`encode_images` gives every channel's posterior parameters, per-unit KL, the representative latent value and,
  for categorical channels, the most probable category; :func:`save_codes` writes them to one ``.npz``;
* :func:`parse_assignments` reads ``cont.3=1.5`` / ``disc.0=7``, :func:`set_units` applies such assignments to latent
  vectors, and :func:`edit_images` encodes, edits and decodes.

Units are addressed as ``<channel>.<index>``, the names KL is logged under (see :mod:`latentkit.viz.traversal`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from latentkit._atomic import write_bytes
from latentkit.core import JointLatent
from latentkit.data.provider import as_float_batch
from latentkit.errors import ConfigError, DataError
from latentkit.validation import check, positive_int
from latentkit.viz.traversal import UnitRef, parse_unit, unit_columns

__all__ = [
    "Edit",
    "LoadedImages",
    "edit_images",
    "encode_images",
    "load_images",
    "parse_assignments",
    "save_codes",
    "set_units",
]

#: File name endings a folder given to :func:`load_images` is searched for (lower case).
FOLDER_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}
_MODE_WORDS = {"L": "grayscale", "RGB": "RGB"}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")

#: Names of a discrete family's category-probability parameter, in order of preference.
_PROBABILITY_PARAMS = ("probs", "alpha", "probabilities")


# --- loading image files ---------------------------------------------------------------------------------------------
@attrs.frozen
class LoadedImages:
    """Images read by :func:`load_images`: ``images``, uint8 ``(N, C, H, W)`` in the model's shape; ``names``, the
    file paths as given (a folder's files as ``folder/file``); ``notices``, one line per conversion made, e.g.
    ``"digit.png: 28x28 resized to 32x32"``, so the caller can tell the user what was changed."""

    images: Tensor  #: uint8 ``(N, C, H, W)``, the model's image shape
    names: list[str]  #: the file paths, as given (a folder's files as ``folder/file``)
    notices: list[str]  #: one line per conversion made, e.g. ``"digit.png: 28x28 resized to 32x32"``


def load_images(
    paths: Sequence[str | os.PathLike], image_shape: tuple[int, int, int], *, convert: bool = True
) -> LoadedImages:
    """Read image files (PNG/JPEG/anything PIL opens) into the model's shape ``(C, H, W)``.

    A folder expands to its image files (:data:`FOLDER_IMAGE_SUFFIXES`, not recursive) in sorted order. With
    ``convert`` (default) an image of another size is resized as torchvision ``Resize(H)`` + ``CenterCrop(H)`` would
    (short side to the model's size, then centre-cropped) and one of another colour mode is converted (to ``L`` for
    ``C = 1``, to ``RGB`` for ``C = 3``), each with a notice; without it any mismatch is a :class:`ConfigError`.
    """
    channels, height, width = _check_image_shape(image_shape)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ConfigError("no image files given; pass one or more image files (PNG, JPEG, ...) or folders of them")
    target_mode = _MODE_FOR_CHANNELS[channels]

    files: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"folder {str(given)!r} holds no image files (looked for {', '.join(FOLDER_IMAGE_SUFFIXES)}, "
                    f"not in sub-folders); pass the image files themselves or a folder that contains them"
                )
            files.extend(str(p) for p in found)
        elif path.exists():
            files.append(os.fspath(given))
        else:
            where = "" if path.is_absolute() else f" (relative paths are read from {os.getcwd()!r})"
            raise DataError(f"image file {str(given)!r} does not exist; check the path{where}")

    out = np.empty((len(files), channels, height, width), dtype=np.uint8)
    notices: list[str] = []
    for i, name in enumerate(files):
        arr, file_notices = _read_one(name, target_mode, height, width, convert)
        out[i] = arr
        notices.extend(file_notices)
    return LoadedImages(images=torch.from_numpy(out), names=files, notices=notices)


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"encode and edit read image files, but this model reads samples of shape {tuple(image_shape)}, not images "
            f"(channels, height, width); encode such data through its data set (latentkit.editing.encode_images "
            f"on the data set's tensors)"
        )
    if shape[0] not in _MODE_FOR_CHANNELS:
        raise ConfigError(
            f"the model reads images with {shape[0]} channels; only grayscale (1) and RGB (3) models can read image "
            f"files, so encode such data through its data set instead"
        )
    return shape  # type: ignore[return-value]


def _read_one(name: str, target_mode: str, height: int, width: int, convert: bool) -> tuple[np.ndarray, list[str]]:
    notices: list[str] = []
    try:
        with Image.open(name) as opened:
            opened.load()
            img = opened
            if getattr(opened, "n_frames", 1) > 1:
                notices.append(f"{name}: first of {opened.n_frames} frames used")
            # a photo's EXIF orientation: what viewers show is what the user means to encode
            if opened.getexif().get(0x0112, 1) != 1:
                img = ImageOps.exif_transpose(opened)
                notices.append(f"{name}: rotated as its EXIF orientation says")
            mode, (w, h) = img.mode, img.size
            if not convert and (mode != target_mode or (w, h) != (width, height)):
                raise ConfigError(
                    f"image {name!r} is {w}x{h} {_describe_mode(mode)} (mode {mode}), but the model reads "
                    f"{width}x{height} {_MODE_WORDS[target_mode]} (mode {target_mode}) images; convert the file, or "
                    f"allow conversion (drop the option that turns it off)"
                )
            if mode != target_mode:
                img = _convert_mode(img, target_mode)
                words = _MODE_WORDS[target_mode]
                if mode in _SIXTEEN_BIT and target_mode == "L":
                    words = "8-bit grayscale"
                notices.append(f"{name}: {_describe_mode(mode)} converted to {words}")
            if (w, h) != (width, height):
                img, how = _resize_crop(img, height, width)
                notices.append(f"{name}: {w}x{h} {how}")
            arr = np.asarray(img, dtype=np.uint8)
    except ConfigError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        detail = "not an image file PIL can read" if isinstance(exc, UnidentifiedImageError) else (
            f"{type(exc).__name__}: {exc}")
        raise DataError(
            f"cannot read image {name!r} ({detail}); pass a PNG or JPEG file, or replace the file"
        ) from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.shape != (len(target_mode), height, width):  # pragma: no cover - a PIL surprise, not a user error
        expected = (len(target_mode), height, width)
        raise DataError(f"image {name!r} gave shape {arr.shape} after conversion, expected {expected}")
    return arr, notices


def _describe_mode(mode: str) -> str:
    if mode in _SIXTEEN_BIT:
        return "16-bit grayscale"
    return {"L": "grayscale", "1": "black-and-white", "P": "palette", "LA": "grayscale+alpha", "PA": "palette+alpha",
            "F": "floating-point grayscale"}.get(mode, mode)


def _convert_mode(img: Image.Image, target: str) -> Image.Image:
    if img.mode in _SIXTEEN_BIT:  # PIL clips these to 255 instead of scaling
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max(initial=0) > 255 else 1.0
        img = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when such a palette image is converted straight to L/RGB
    return img if img.mode == target else img.convert(target)


def _resize_crop(img: Image.Image, height: int, width: int) -> tuple[Image.Image, str]:
    w, h = img.size
    if height == width:
        resized = TF.resize(img, height)  # torchvision Resize(int): short side to ``height``
    else:
        scale = max(height / h, width / w)
        resized = TF.resize(img, [max(height, round(h * scale)), max(width, round(w * scale))])
    if resized.size == (width, height):
        return resized, f"resized to {width}x{height}"
    rw, rh = resized.size
    return TF.center_crop(resized, [height, width]), f"resized to {rw}x{rh} and centre-cropped to {width}x{height}"


# --- encoding --------------------------------------------------------------------------------------------------------
def _as_inputs(model, images: Tensor) -> Tensor:
    """uint8 (or float in [0, 1]) images of the model's shape as float inputs in [0, 1]."""
    if not isinstance(images, Tensor):
        images = torch.as_tensor(np.asarray(images))
    shape = tuple(model.image_shape)
    if images.dim() == len(shape) and tuple(images.shape) == shape:
        images = images.unsqueeze(0)
    if images.dim() != len(shape) + 1 or tuple(images.shape[1:]) != shape:
        raise ConfigError(
            f"images of shape {tuple(images.shape)} do not fit the model, which reads "
            f"(N, {', '.join(map(str, shape))}); "
            f"read files with load_images(paths, model.image_shape)"
        )
    if images.shape[0] == 0:
        raise ConfigError("no images to encode; pass at least one image")
    if images.dtype == torch.uint8:
        return as_float_batch(images)
    if images.is_floating_point():
        if not bool(torch.isfinite(images).all()):
            raise ConfigError("the samples to encode hold NaN or infinite values; pass finite values")
        if len(shape) == 3 and (images.min() < 0 or images.max() > 1):  # signals and vectors may be real-valued
            raise ConfigError("float images must hold values in [0, 1]; pass uint8 images (0..255) or scale them")
        return images.float()
    raise ConfigError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")


def _probability_param(params: Mapping[str, Tensor]) -> str | None:
    return next((name for name in _PROBABILITY_PARAMS if name in params), None)


def encode_images(model, images: Tensor, *, batch_size: int = 256, device="cpu") -> dict[str, np.ndarray]:
    """Encode images (eval mode, no gradients) to arrays, one row per image.

    Keys are ``"<channel>/<param>"`` for every parameter of every channel (``cont/mean``, ``cont/logvar``,
    ``disc/alpha``), ``"<channel>/kl"`` (per-unit KL, ``(N, unit_count)``), ``"<channel>/representative"`` (the value
    decoded) and, for discrete channels, ``"<channel>/argmax"`` (``(N, unit_count)`` int64 category of each variable)
    and ``"<channel>/probs"`` (the category probabilities). ``"latent"`` is the concatenated representative vector
    the decoder reads, ``(N, sample_size)``. The model is moved to ``device``; its training mode is restored.
    """
    batch_size = check("batch_size", batch_size, positive_int.such_as("256"))
    x_all = _as_inputs(model, images)
    latent: JointLatent = model.latent
    parts: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: Tensor) -> None:
        parts.setdefault(key, []).append(value.detach().cpu().numpy())

    model.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, x_all.shape[0], batch_size):
                x = x_all[start : start + batch_size].to(device)
                params = model.encode(x)
                samples = latent.sample(params, reparametrise=False)
                kls = latent.kl(params, samples)
                for name, family in latent.items():
                    for pname, value in params[name].items():
                        add(f"{name}/{pname}", value)
                    add(f"{name}/kl", kls[name])
                    add(f"{name}/representative", samples[name])
                    if family.is_discrete:
                        add(f"{name}/argmax", family.categories(params[name]).long())
                        prob = _probability_param(params[name])
                        if prob is not None and prob != "probs":
                            add(f"{name}/probs", params[name][prob])
                add("latent", latent.concat(samples))
    finally:
        model.train(was_training)
    return {key: np.concatenate(chunks, axis=0) for key, chunks in parts.items()}


def save_codes(codes: Mapping[str, np.ndarray], names: Sequence[str], out: str | os.PathLike) -> Path:
    """Write ``codes`` and ``files`` (the image names) to the ``.npz`` file ``out``, atomically; returns its path."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise ConfigError(f"codes are saved as a NumPy .npz file; give an output path ending in .npz, not {str(out)!r}")
    if "files" in codes:
        raise ConfigError("the codes hold an array named 'files', which is reserved for the image names; rename it")
    names = [os.fspath(n) for n in names]
    for key, value in codes.items():
        rows = np.shape(value)[0] if np.ndim(value) else None
        if rows != len(names):
            raise ConfigError(
                f"code {key!r} has {rows} rows but {len(names)} image names were given; pass one name per image"
            )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in codes.items()}, files=np.array(names, dtype=str))
    write_bytes(out, buffer.getvalue())
    return out


# --- editing ---------------------------------------------------------------------------------------------------------
def _unit_help(latent: JointLatent) -> str:
    parts = []
    for name, family in latent.items():
        n = family.unit_count
        if family.is_discrete:
            sizes = family.unit_sizes()
            parts.extend(f"{name}.{i} (category 0..{k - 1})" for i, k in enumerate(sizes))
        else:
            units = f"{name}.0" if n == 1 else f"{name}.0..{name}.{n - 1}"
            parts.append(f"{units} (a number)")
    return "units of this model: " + ", ".join(parts)


_FORM = "assign a latent unit as <channel>.<index>=<value>, e.g. 'cont.3=1.5' or 'disc.0=7'"


def _check_value(latent: JointLatent, ref: UnitRef, raw: object) -> float | int:
    """``raw`` (a string or number) as the value ``ref`` may take, or a ConfigError saying what it may take."""
    family = latent.channels[ref.channel]
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, bool):
        text = None
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if family.is_discrete:
        k = family.unit_sizes()[ref.index]
        if number is None or not math.isfinite(number) or number != int(number) or not 0 <= number < k:
            raise ConfigError(
                f"unit {ref} is categorical with {k} categories: give a whole number from 0 to {k - 1}, got {raw!r}"
            )
        return int(number)
    width = family.unit_slice(ref.index).stop - family.unit_slice(ref.index).start
    if width != 1:
        raise ConfigError(
            f"unit {ref} is {width} columns wide in the latent vector, so one number cannot set it; "
            f"only one-column continuous units and categorical units can be assigned"
        )
    if number is None or not math.isfinite(number):
        raise ConfigError(f"unit {ref} is continuous: give a finite number such as 1.5 or -2, got {raw!r}")
    return number


def parse_assignments(latent: JointLatent, items: Sequence[str]) -> dict[UnitRef, float | int]:
    """``["cont.3=1.5", "disc.0=7"]`` → ``{UnitRef("cont", 3): 1.5, UnitRef("disc", 0): 7}``, checked.

    A categorical unit takes a category index ``0..K-1`` (``"7.0"`` is accepted); a continuous unit takes a finite
    number and must be one column wide. Every mistake is a :class:`ConfigError` naming the accepted form and units.
    """
    if isinstance(items, str):
        items = [items]
    out: dict[UnitRef, float | int] = {}
    for item in items:
        unit, eq, value = str(item).partition("=")
        if not eq or not unit.strip() or not value.strip():
            raise ConfigError(f"{_FORM}; got {str(item)!r}. {_unit_help(latent)}")
        try:
            ref = parse_unit(latent, unit.strip())
        except ConfigError as exc:
            raise ConfigError(f"{exc}; {_FORM}. {_unit_help(latent)}") from None
        if ref in out:
            raise ConfigError(f"unit {ref} is assigned twice ({item!r} and an earlier one); assign each unit once")
        out[ref] = _check_value(latent, ref, value)
    return out


def set_units(latent: JointLatent, z: Tensor, assignments: Mapping[UnitRef, float | int]) -> Tensor:
    """A copy of latent vectors ``z`` ``(B, sample_size)`` with each assigned unit's columns replaced.

    A categorical unit gets its family's encoding of the category (``traversal_values(index, K)[k]``, the one-hot for
    Gumbel-Softmax), a continuous unit the value. Keys may be :class:`UnitRef` or names such as ``"cont.3"``.
    """
    if z.dim() != 2 or z.shape[1] != latent.sample_size:
        raise ConfigError(
            f"latent vectors of shape {tuple(z.shape)} do not fit this latent, which is (batch, {latent.sample_size})"
        )
    out = z.clone()
    for key, raw in assignments.items():
        ref = parse_unit(latent, key)
        value = _check_value(latent, ref, raw)
        family = latent.channels[ref.channel]
        cols = unit_columns(latent, ref)
        if family.is_discrete:
            k = family.unit_sizes()[ref.index]
            code = family.traversal_values(ref.index, k)[int(value)]
            out[:, cols] = code.to(device=out.device, dtype=out.dtype).reshape(1, -1)
        else:
            out[:, cols] = float(value)
    return out


@attrs.frozen
class Edit:
    """The result of :func:`edit_images`, all on the CPU: ``original`` (the float inputs in [0, 1], ``(B, C, H, W)``),
    ``reconstruction`` (the decoded code, no edits), ``edited`` (the decoded edited code), ``latent`` (the
    representative latent vectors, ``(B, sample_size)``) and ``edited_latent`` (``latent`` with the assigned units
    replaced). The reconstruction is kept beside the edit because it, not the original, is what the edit changes."""

    original: Tensor  #: ``(B, C, H, W)`` float inputs in [0, 1]
    reconstruction: Tensor  #: ``decode(latent)``, no edits
    edited: Tensor  #: ``decode(edited_latent)``
    latent: Tensor  #: the representative latent vectors ``(B, sample_size)``
    edited_latent: Tensor  #: ``latent`` with the assigned units replaced


def edit_images(model, images: Tensor, assignments, *, device="cpu") -> Edit:
    """Encode ``images`` (eval mode, representative latent), change only the assigned units, decode both.

    ``assignments`` is a mapping ``{UnitRef: value}`` or a list of ``"cont.3=1.5"`` strings. The model is moved to
    ``device``; its training mode is restored.
    """
    latent: JointLatent = model.latent
    if not isinstance(assignments, Mapping):
        assignments = parse_assignments(latent, list(assignments))
    x = _as_inputs(model, images)
    model.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            xd = x.to(device)
            z = latent.concat(latent.sample(model.encode(xd), reparametrise=False))
            edited_z = set_units(latent, z, assignments)
            reconstruction = model.decode(z)
            edited = model.decode(edited_z)
    finally:
        model.train(was_training)
    return Edit(
        original=x.cpu(),
        reconstruction=reconstruction.cpu(),
        edited=edited.cpu(),
        latent=z.cpu(),
        edited_latent=edited_z.cpu(),
    )
