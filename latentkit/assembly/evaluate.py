"""Evaluate a checkpoint folder with registered metrics on the data set it was trained on.

Metrics follow the protocol of :mod:`latentkit.metrics.base`: a metric that ``needs_ground_truth`` receives the data
set's factor grid (``provider.ground_truth(data_root)``); one whose ``needs_data`` is false is not given a split (the
split is loaded only when some metric needs it); one that declares ``options`` accepts them as keyword arguments.

Results are written into the folder evaluated (a run directory or a checkpoint folder), one JSON file per metric,
replaced atomically::

    FOLDER/evaluation/<metric>-<split>.json   metrics on a data split (accuracy, kl-ranking)
    FOLDER/evaluation/<metric>.json           metrics on the ground-truth factor grid (factorvae, mig, dci, sap)

each holding ``{"metric", "results", "options", "seconds", "dataset", "split", "checkpoint", "step", ...}``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

import latentkit
from latentkit._atomic import write_json
from latentkit.assembly.checkpoint import load_model, resolve_checkpoint
from latentkit.assembly.datasets import as_component, build_provider
from latentkit.data.provider import DatasetProvider
from latentkit.devices import resolve_device
from latentkit.errors import CheckpointError, ConfigError, LatentkitError
from latentkit.plugins import Registry, get_registry

RESULTS_FOLDER = "evaluation"


def needs_ground_truth(metric: Any) -> bool:
    return bool(getattr(metric, "needs_ground_truth", False))


def needs_data(metric: Any) -> bool:
    return bool(getattr(metric, "needs_data", True))


def metric_options(metric: Any) -> dict[str, Any]:
    """The options a metric declares, ``{name: default}`` (none for a plain function)."""
    return dict(getattr(metric, "options", None) or {})


def results_file(folder: str | os.PathLike, metric_name: str, metric: Any, split: str) -> Path:
    """Where the results of ``metric_name`` evaluated on ``folder`` are written."""
    stem = metric_name if needs_ground_truth(metric) and not needs_data(metric) else f"{metric_name}-{split}"
    return Path(folder) / RESULTS_FOLDER / f"{stem}.json"


def parse_option_strings(
    items: Sequence[str], metric_fns: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """``["factorvae.num_train=2000", "seed=3"]`` to ``{metric: {option: value}}``.

    ``METRIC.KEY=VALUE`` sets one metric's option; ``KEY=VALUE`` sets it for every chosen metric that has that option
    (a metric's own setting wins whatever the order). Values are JSON (``2000``, ``0.1``, ``true``, ``"text"``),
    anything else a string.
    """
    general: dict[str, dict[str, Any]] = {name: {} for name in metric_fns}
    specific: dict[str, dict[str, Any]] = {name: {} for name in metric_fns}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"metric option {item!r} must look like METRIC.KEY=VALUE or KEY=VALUE (e.g. factorvae.num_train=2000)"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        metric, dot, option = key.rpartition(".")
        if dot and metric:
            if metric not in metric_fns:
                raise ConfigError(
                    f"metric option {item!r} names metric {metric!r}, which is not among the metrics evaluated "
                    f"({', '.join(metric_fns)})"
                )
            specific[metric][option] = value
            continue
        option = key
        targets = [name for name, fn in metric_fns.items() if option in metric_options(fn)]
        if not targets:
            listing = "; ".join(
                f"{name}: {', '.join(sorted(metric_options(fn))) or '(none)'}" for name, fn in metric_fns.items()
            )
            raise ConfigError(f"no metric evaluated has an option {option!r}; their options are {listing}")
        for name in targets:
            general[name][option] = value
    return {name: {**general[name], **specific[name]} for name in metric_fns}


def _check_options(metric_fns: Mapping[str, Any], options: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict]:
    options = {name: dict(opts) for name, opts in (options or {}).items() if opts}
    for name, opts in options.items():
        if name not in metric_fns:
            raise ConfigError(
                f"options were given for metric {name!r}, which is not evaluated ({', '.join(metric_fns)})"
            )
        known = metric_options(metric_fns[name])
        unknown = sorted(set(opts) - set(known))
        if unknown:
            raise ConfigError(
                f"metric {name!r} has no option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; its options "
                f"are: {', '.join(sorted(known)) or '(none)'}"
            )
    return options


def _unwritable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write evaluation results to {str(path)!r} ({exc.strerror or exc}); evaluate a copy of the folder you "
        f"can write to, or pass --no-save to only print them"
    )


def _check_writable(results_dir: Path) -> None:
    """Fail before any work when the results cannot be saved."""
    where = results_dir if results_dir.is_dir() else results_dir.parent  # creates nothing yet
    try:
        probe = where / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise _unwritable(results_dir, exc) from None


def _has_ground_truth_method(provider: DatasetProvider) -> bool:
    return type(provider).ground_truth is not DatasetProvider.ground_truth


def evaluate_checkpoint(
    folder: str | os.PathLike,
    metrics: Sequence[str],
    data_root: str | os.PathLike | None,
    split: str | None = None,
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
    registry: Registry | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    save: bool = True,
    max_images: int | None = None,
) -> dict:
    """Run each metric on the checkpoint's data set (from its ``config.json``'s ``dataset`` entry).

    ``split``: the data split of metrics that read images (accuracy, kl-ranking, reconstruction); ``None`` takes
    ``test`` where the data set has one, else its first split (dSprites has only ``train``: the paper, like
    disentanglement_lib, scores on the training images). ``max_images``: metrics that read images see a seeded random
    subset of at most that many (the 737,280 dSprites images take minutes to encode on a CPU); ``None``: all. ``options`` maps a metric name to the options it declares. Returns ``{"checkpoint", "dataset", "split",
    "metrics": {name: {...}}, "options": {name: {...}}, "seconds": {name: s}, "files": {name: path}}`` and, with
    ``save``, writes each metric's results into ``folder`` (see the module docstring). Metric names and options are
    checked before anything is loaded; every user error is a :class:`~latentkit.errors.LatentkitError`.
    """
    registry = registry or get_registry()
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise ConfigError(f"name at least one metric to evaluate; known metrics: {', '.join(registry.metrics.names())}")
    metric_fns = {name: registry.metrics.get(name) for name in metrics}  # unknown name: lists the known ones
    options = _check_options(metric_fns, options)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive whole number, got {batch_size!r}")
    dev = resolve_device(device)

    model, config = load_model(folder, registry)
    if save:
        _check_writable(Path(folder) / RESULTS_FOLDER)
    if not config.get("dataset"):
        raise CheckpointError(
            f"checkpoint {str(folder)!r} does not record the data set it was trained on (its config.json has no "
            f"'dataset'), so there is nothing to evaluate it on"
        )
    try:
        dataset = as_component(config["dataset"], "the checkpoint's dataset")
        provider = build_provider(dataset, registry)
    except LatentkitError as exc:
        raise CheckpointError(f"checkpoint {str(folder)!r} names a data set latentkit cannot load: {exc}") from None
    if tuple(provider.image_shape) != tuple(model.image_shape):
        raise CheckpointError(
            f"checkpoint {str(folder)!r} holds a model for samples of shape {tuple(model.image_shape)}, but its data "
            f"set {dataset.name!r} with options {dataset.options} yields {tuple(provider.image_shape)}"
        )

    def no_ground_truth(name: str) -> ConfigError:
        return ConfigError(
            f"metric {name!r} needs a data set with ground-truth factors; {dataset.name!r} has none (data sets with a "
            f"factor grid, such as dsprites, provide one)"
        )

    gt_metrics = [name for name, fn in metric_fns.items() if needs_ground_truth(fn)]
    if gt_metrics and not _has_ground_truth_method(provider):
        raise no_ground_truth(gt_metrics[0])
    data_metrics = [name for name, fn in metric_fns.items() if needs_data(fn)]
    if split is None:
        split = "test" if "test" in provider.splits else provider.splits[0]
    if data_metrics:
        provider.check_split(split)
    ground_truth = provider.ground_truth(data_root) if gt_metrics else None
    if gt_metrics and ground_truth is None:
        raise no_ground_truth(gt_metrics[0])
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise ConfigError(f"max_images must be a positive whole number (or None for all), got {max_images!r}")
    data = provider.load(data_root, split) if data_metrics else None
    if data is not None and max_images is not None and len(data) > max_images:
        data = random_subset(data, max_images)
    model.to(dev)

    report: dict[str, Any] = {
        "checkpoint": str(folder),
        "dataset": dataset.name,
        "split": split if data_metrics else None,
        "images": len(data) if data is not None else None,
        "metrics": {},
        "options": {},
        "seconds": {},
        "files": {},
    }
    for name, fn in metric_fns.items():
        kwargs: dict[str, Any] = dict(options.get(name, {}))
        if needs_ground_truth(fn):
            kwargs["ground_truth"] = ground_truth
        start = time.perf_counter()
        result = fn(model, data if needs_data(fn) else None, batch_size=batch_size, device=dev, **kwargs)
        seconds = time.perf_counter() - start
        used = {**metric_options(fn), **options.get(name, {})}
        report["metrics"][name] = result
        report["options"][name] = used
        report["seconds"][name] = seconds
        if save:
            path = results_file(folder, name, fn, split)
            record = {
                "metric": name,
                "results": result,
                "options": used,
                "seconds": seconds,
                "dataset": {"name": dataset.name, "options": dataset.options},
                "split": split if needs_data(fn) else None,
                "images": len(data) if needs_data(fn) and data is not None else None,
                "ground_truth": needs_ground_truth(fn),
                "checkpoint": str(resolve_checkpoint(folder)),
                "step": config.get("step"),
                "batch_size": batch_size,
                "device": str(dev),
                "latentkit_version": latentkit.__version__,
                "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            try:
                write_json(path, record)
            except OSError as exc:
                raise _unwritable(path, exc) from None
            report["files"][name] = str(path)
    return report


def random_subset(data: Any, count: int, seed: int = 0) -> Any:
    """``count`` items of ``data`` drawn without replacement by a seeded generator, kept in index order (the same
    subset every time, so runs evaluated with it are compared on the same images)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    pick = {"images": data.images.index_select(0, order)}
    for field in ("labels", "factors"):
        value = getattr(data, field, None)
        if value is not None:
            pick[field] = value.index_select(0, order)
    return attrs.evolve(data, **pick)


# --- the table the CLI prints -----------------------------------------------------------------------------------------
def _format_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, float):
        return f"{value:.3e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
        return ", ".join(_format_value(v) or "" for v in value) or "-"
    return None


def table_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, quantity, value)`` rows: scalars, lists and one level of nested values (deeper ones: the file)."""
    rows = []
    for metric, values in report["metrics"].items():
        for key, value in values.items():
            text = _format_value(value)
            if text is not None:
                rows.append((metric, key, text))
            elif isinstance(value, Mapping):
                for sub, inner in value.items():
                    inner_text = _format_value(inner)
                    if inner_text is not None:
                        rows.append((metric, f"{key}.{sub}", inner_text))
        if metric in report.get("seconds", {}):
            rows.append((metric, "seconds", f"{report['seconds'][metric]:.1f}"))
    return rows


def format_table(report: Mapping[str, Any]) -> str:
    """The report as an aligned table: metric, quantity, value (numbers right-aligned)."""
    rows = table_rows(report)
    header = ("metric", "quantity", "value")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    number = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?$")
    num_width = max((len(r[2]) for r in rows if number.match(r[2])), default=0)
    lines = [f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]}"]
    lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}")
    previous = None
    for metric, key, value in rows:
        shown = metric if metric != previous else ""
        previous = metric
        value_text = f"{value:>{num_width}}" if number.match(value) else value
        lines.append(f"{shown:<{widths[0]}}  {key:<{widths[1]}}  {value_text}".rstrip())
    return "\n".join(lines)
