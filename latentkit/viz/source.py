"""What figures are drawn from: a model folder (run directory or checkpoint folder), its data, its KL per unit.

Every figure command takes the same kind of folder. A run directory (``latentkit train``) has a training history
(``metrics.jsonl``) and records the data root it trained on; an imported or copied checkpoint folder has neither. Data
is optional for most figures: what needs it (reconstructions, test-set KL) is skipped with a notice when the data set
cannot be loaded, rather than failing the whole command.

KL per unit — used to order traversal rows and for the ranking figure — is taken from the best source available:
a saved ``kl-ranking`` evaluation, else the data set's test split (computed now), else the last KL logged in training.

The data set is the one the checkpoint's config records, unless the command names another or changes its options
(``--dataset``, ``--dataset-option``: see :func:`open_source`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from latentkit.assembly.checkpoint import load_model, resolve_checkpoint
from latentkit.core import JointLatentVAE
from latentkit.assembly.datasets import as_component, build_provider, check_given_dataset_fits, override_dataset
from latentkit.data.provider import DatasetProvider, ImageData
from latentkit.devices import resolve_device
from latentkit.errors import CheckpointError, LatentkitError
from latentkit.specs import Component

RUN_CONFIG = "config.json"
METRICS_FILE = "metrics.jsonl"
#: Images used when KL per unit is computed for ordering figures (the whole split of MNIST; a sample of dSprites).
KL_IMAGES = 10_000


@attrs.define(eq=False)
class FigureSource:
    """A loaded model and what belongs with it: the folder named, its checkpoint and config, where its data lives.

    Built by :func:`open_source`; every figure function takes one. Data, the factor grid and KL per unit are loaded
    on first use and kept, so the commands that draw several figures read each only once, and what could not be
    loaded is said in :attr:`notices` instead of failing the figures that do not need it.

    Fields: ``folder`` (the folder the user named, run directory or checkpoint folder), ``checkpoint`` (the checkpoint
    folder the weights come from), ``model``, ``config`` (the checkpoint's config.json), ``data_root``, ``device``,
    ``dataset`` (the data set entry given on the command line; None: the one ``config`` records), ``notices`` (what
    was skipped or approximated, for the user)."""

    folder: Path  #: the folder the user named (run directory or checkpoint folder)
    checkpoint: Path  #: the checkpoint folder the weights come from
    model: JointLatentVAE
    config: dict  #: the checkpoint's config.json
    data_root: str | None
    device: torch.device
    dataset: Component | None = None  #: the data set given on the command line; None: the checkpoint's
    notices: list[str] = attrs.field(factory=list)  #: what was skipped or approximated, for the user
    _splits: dict = attrs.field(factory=dict)
    _kl: tuple | None = None

    @property
    def name(self) -> str:
        """The folder's name, for titles (``run-mnist`` of ``runs/run-mnist/``)."""
        return self.folder.resolve().name

    @property
    def metrics_file(self) -> Path | None:
        """The run's training history (``metrics.jsonl``), or None for a folder without one (an imported checkpoint)."""
        path = self.folder / METRICS_FILE
        return path if path.is_file() else None

    @property
    def step(self) -> int | None:
        """The training step the checkpoint was saved at, as its config records (None if it does not)."""
        return self.config.get("step")

    def provider(self) -> DatasetProvider:
        """The provider of the data set figures read: :attr:`dataset`, else the checkpoint's (``KeyError`` when the
        config records none, a :class:`~latentkit.errors.LatentkitError` when it cannot be built)."""
        return build_provider(self.dataset or as_component(self.config["dataset"], "the checkpoint's dataset"))

    def data(self, split: str | None = None) -> ImageData | None:
        """The test split (else train, else the named ``split``) or ``None`` with a notice when it cannot be loaded."""
        splits = [split] if split else ["test", "train"]
        key = tuple(splits)
        if key in self._splits:
            return self._splits[key]
        result, error = None, None
        try:
            provider = self.provider()
            for name in splits:
                if name in provider.splits:
                    result = provider.load(self.data_root, name)
                    break
        except (LatentkitError, KeyError, TypeError) as exc:
            error = exc
        if result is None:
            recorded = self.config.get("dataset")
            what = self.dataset.name if self.dataset else recorded.get("name", "?") if isinstance(recorded, dict) else "?"
            self.notices.append(
                f"data set {what!r} could not be loaded ({error or 'no such split'}); figures that need images were "
                f"skipped — pass --data-root FOLDER, or --dataset / --dataset-option for another source of the data "
                f"set, to include them"
            )
        self._splits[key] = result
        return result

    def ground_truth(self):
        """The data set's factor grid (:class:`~latentkit.data.ground_truth.GroundTruthData`), or ``None`` when it has
        none (MNIST, CelebA: silently) or it cannot be loaded (with a notice)."""
        if "ground_truth" in self._splits:
            return self._splits["ground_truth"]
        result = None
        try:  # the base provider's ground_truth is None: only data sets with a factor grid give one
            result = self.provider().ground_truth(self.data_root)
        except (LatentkitError, KeyError, TypeError) as exc:
            self.notices.append(f"the data set's factor grid could not be loaded ({exc}); no factor scatter")
        self._splits["ground_truth"] = result
        return result

    def unit_kl(self) -> tuple[dict[str, float] | None, str]:
        """``({unit: KL in nats}, where it came from)``, or ``(None, why)`` when there is no source."""
        if self._kl is None:
            self._kl = self._find_unit_kl()
        return self._kl

    def _find_unit_kl(self) -> tuple[dict[str, float] | None, str]:
        for folder in dict.fromkeys([self.folder, self.checkpoint]):
            for split in ("test", "train"):
                path = folder / "evaluation" / f"kl-ranking-{split}.json"
                try:
                    kl = json.loads(path.read_text())["results"]["kl"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if set(kl) == set(self._unit_names()):
                    return {k: float(v) for k, v in kl.items()}, f"{path} ({split} split)"
        data = self.data()
        if data is not None:
            from latentkit.metrics.kl import kl_per_unit

            n = min(len(data), KL_IMAGES)
            subset = data if n == len(data) else attrs.evolve(data, images=data.images[_spread(len(data), n)],
                                                              labels=None, factors=None)
            return kl_per_unit(self.model, subset, device=self.device), f"{n} images of the data set"
        if self.metrics_file is not None:
            from latentkit.viz.plots import read_metrics

            last = read_metrics(self.metrics_file)[-1]
            kl = {name: float(last[f"kl_unit/{name}"]) for name in self._unit_names() if f"kl_unit/{name}" in last}
            if len(kl) == len(self._unit_names()):
                return kl, f"the training batch KL logged at step {last['step']}"
        return None, "no KL source (no kl-ranking evaluation, data set or training history)"

    def _unit_names(self) -> list[str]:
        return [unit for units in self.model.latent.unit_names().values() for unit in units]

    def units_by_kl(self) -> tuple[list[str], dict[str, float] | None]:
        """All unit names, most informative first when KL is known (else in channel order), and the KL."""
        kl, source = self.unit_kl()
        names = self._unit_names()
        if kl is None:
            self.notices.append(f"units are in channel order: {source}")
            return names, None
        return sorted(names, key=lambda u: -kl[u]), kl


def _spread(total: int, n: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``range(total)`` (deterministic, covers a grid-ordered data set)."""
    return torch.linspace(0, total - 1, n).round().long()


def open_source(
    folder: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
    dataset: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> FigureSource:
    """Load the model of a run directory or checkpoint folder; ``data_root`` defaults to the one the run trained on.

    ``dataset`` (a registered data set's name) and ``dataset_options`` override the checkpoint's recorded data set as
    :func:`~latentkit.assembly.datasets.override_dataset` says. Why they are checked here: a data set the checkpoint
    records and cannot be loaded only skips the figures that need images (with a notice), but a name or option the
    user gave that is wrong, or samples that do not fit the model, is an error before any figure is drawn."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"no such run directory or checkpoint folder: {str(folder)!r}")
    checkpoint = resolve_checkpoint(folder)
    model, config = load_model(folder)
    entry = None
    if dataset is not None or dataset_options:
        entry = override_dataset(config.get("dataset"), dataset, dataset_options)
        # an unknown name or option: the registry's error lists the known ones
        check_given_dataset_fits(entry, build_provider(entry), model.image_shape, str(folder))
    dev = resolve_device(device)
    model.to(dev)
    if data_root is None:
        try:
            data_root = json.loads((folder / RUN_CONFIG).read_text()).get("data_root")
        except (OSError, ValueError, AttributeError):
            data_root = None
    return FigureSource(
        folder=folder,
        checkpoint=checkpoint,
        model=model,
        config=config,
        data_root=None if data_root is None else str(data_root),
        device=dev,
        dataset=entry,
    )
