"""Import of checkpoints written by the original JointVAE code (Dupont, 2018).

The original saves a plain ``state_dict`` (``model.pt``) and a ``specs.json``. The weights map one-to-one onto the
``jointvae_conv`` network; the original's separate heads (``fc_mean``, ``fc_log_var``, ``fc_alphas.i``) are stacked,
in that order, into the encoder's single output layer, which is the order the joint latent reads them in
(continuous channel: means then log-variances; discrete channel: each variable's logits).

``model.pt`` is read with ``torch.load(weights_only=True)``: no code from the file is executed.

This is the one framework module that names plugins (``gaussian``, ``gumbel_softmax``, ``jointvae_conv``, ``jointvae``,
``linear``): it translates the original code's checkpoints *into* those plugins, so the names are what it means, not a
default imposed on other models (tests/test_import_rules.py allows them here and nowhere else under ``latentkit/``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from latentkit.assembly.build import build_model
from latentkit.assembly.checkpoint import checkpoint_config, load_weights, save_model_checkpoint
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.errors import CheckpointError

#: Image shape of each data set the original code trains on.
DATASET_SHAPES = {
    "mnist": (1, 32, 32),
    "fashion_mnist": (1, 32, 32),
    "dsprites": (1, 64, 64),
    "chairs": (1, 64, 64),
    "celeba": (3, 64, 64),
}
_DATASET_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist"}
TEMPERATURE = 0.67


def _read_specs(src: Path) -> dict:
    path = src / "specs.json"
    if not path.is_file():
        raise CheckpointError(f"{str(src)!r} has no specs.json; an original JointVAE folder holds model.pt and specs.json")
    try:
        specs = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc})") from None
    for key in ("latent_spec", "dataset"):
        if key not in specs:
            raise CheckpointError(f"{str(path)!r} lacks {key!r}; is it a specs.json written by the original JointVAE code?")
    return specs


def _read_state_dict(src: Path) -> dict[str, torch.Tensor]:
    path = src / "model.pt"
    if not path.is_file():
        raise CheckpointError(f"{str(src)!r} has no model.pt; an original JointVAE folder holds model.pt and specs.json")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises anything (IndexError, KeyError, ...) on garbage
        raise CheckpointError(
            f"{str(path)!r} cannot be read as a plain state_dict ({type(exc).__name__}); it is corrupt, or holds "
            "pickled objects other than tensors, which latentkit refuses to execute"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state_dict (a mapping of names to tensors)")
    return state


def model_spec_from_original(specs: dict, state: dict[str, torch.Tensor]) -> tuple[ModelSpec, str]:
    """The latentkit model spec equivalent to an original ``specs.json``; returns ``(spec, dataset name)``."""
    dataset = str(specs["dataset"]).lower()
    dataset = _DATASET_ALIASES.get(dataset, dataset)
    latent = specs["latent_spec"]
    n_cont = int(latent.get("cont", 0) or 0)
    disc = [int(k) for k in latent.get("disc", []) or []]
    try:
        in_channels = int(state["img_to_features.0.weight"].shape[1])
    except KeyError:
        raise CheckpointError("model.pt lacks 'img_to_features.0.weight'; it is not an original JointVAE state_dict") from None
    size = 64 if "img_to_features.6.weight" in state else 32
    expected = DATASET_SHAPES.get(dataset)
    if expected is not None and expected != (in_channels, size, size):
        raise CheckpointError(
            f"specs.json says dataset {dataset!r} ({expected}), but model.pt was built for {(in_channels, size, size)}"
        )
    channels = []
    if n_cont:
        channels.append(ChannelSpec("cont", "gaussian", {"units": n_cont}))
    if disc:
        channels.append(ChannelSpec("disc", "gumbel_softmax", {"sizes": disc, "temperature": TEMPERATURE}))
    if not channels:
        raise CheckpointError("specs.json has neither continuous nor discrete latents")
    return ModelSpec((in_channels, size, size), channels, Component("jointvae_conv", {"hidden": 256})), dataset


def objective_from_original(specs: dict, spec: ModelSpec) -> Component:
    """The jointvae objective with the original's capacities, γ and loss convention (C-channel quirk included)."""
    terms = {}
    for channel, key in (("cont", "cont_capacity"), ("disc", "disc_capacity")):
        if channel in {c.name for c in spec.channels} and key in specs:
            c_min, c_max, steps, gamma = specs[key]
            terms[channel] = {
                "gamma": float(gamma),
                "capacity": {"name": "linear", "options": {"c_min": float(c_min), "c_max": float(c_max), "steps": int(steps)}},
            }
    return Component("jointvae", {"terms": terms, "scale": "pixels", "channel_mean_compat": spec.image_shape[0] > 1})


def convert_state_dict(state: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Rename the original's weights to the ``jointvae_conv`` layout, stacking the heads."""
    size = spec.image_shape[1]
    conv_ids = (0, 2, 4, 6) if size == 64 else (0, 2, 4)
    out: dict[str, torch.Tensor] = {}
    for i in conv_ids:
        for p in ("weight", "bias"):
            out[f"encoder.0.{i}.{p}"] = state[f"img_to_features.{i}.{p}"]
            out[f"decoder.2.{i}.{p}"] = state[f"features_to_img.{i}.{p}"]
    for p in ("weight", "bias"):
        out[f"encoder.2.0.{p}"] = state[f"features_to_hidden.0.{p}"]
        out[f"decoder.0.0.{p}"] = state[f"latent_to_features.0.{p}"]
        out[f"decoder.0.2.{p}"] = state[f"latent_to_features.2.{p}"]
        heads = []
        names = [c.name for c in spec.channels]
        if "cont" in names:
            heads += [state[f"fc_mean.{p}"], state[f"fc_log_var.{p}"]]
        if "disc" in names:
            n_disc = len(next(c for c in spec.channels if c.name == "disc").options["sizes"])
            heads += [state[f"fc_alphas.{i}.{p}"] for i in range(n_disc)]
        out[f"encoder.3.{p}"] = torch.cat(heads, dim=0)
    return out


def import_original(src: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Convert an original JointVAE folder (``model.pt`` + ``specs.json``) into a latentkit checkpoint folder."""
    src = Path(src)
    if not src.is_dir():
        raise CheckpointError(f"{str(src)!r} is not a folder; pass the folder holding the original's model.pt and specs.json")
    specs = _read_specs(src)
    state = _read_state_dict(src)
    spec, dataset = model_spec_from_original(specs, state)
    model = build_model(spec)
    try:
        converted = convert_state_dict(state, spec)
    except KeyError as exc:
        raise CheckpointError(f"model.pt lacks weight {exc.args[0]!r} that specs.json implies; the two do not match") from None
    load_weights(
        model, converted, str(src / "model.pt"),
        hint="specs.json and model.pt describe different models — check that both come from the same training run",
    )
    config = checkpoint_config(
        spec,
        objective=objective_from_original(specs, spec),
        dataset=Component(dataset),
        step=0,
        imported_from={"source": str(src.resolve()), "format": "jointvae-original", "specs": specs},
    )
    save_model_checkpoint(out, model, config)
    return config
