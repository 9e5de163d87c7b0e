"""Evaluate a checkpoint folder with registered metrics on the data set it was trained on (or one given instead).

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
from latentkit.assembly.datasets import as_component, build_provider, check_given_dataset_fits, override_dataset
from latentkit.assembly.recipe import json_or_text
from latentkit.data.provider import DatasetProvider
from latentkit.devices import resolve_device
from latentkit.errors import CheckpointError, ConfigError, LatentkitError
from latentkit.precision import autocast, check_precision
from latentkit.plugins import Registry, get_registry
from latentkit.specs import Component
from latentkit.validation import check, optional, positive_int

RESULTS_FOLDER = "evaluation"


def needs_ground_truth(metric: Any) -> bool:
    """Whether ``metric`` reads the data set's factor grid (it then gets ``ground_truth=``); default no."""
    return bool(getattr(metric, "needs_ground_truth", False))


def needs_data(metric: Any) -> bool:
    """Whether ``metric`` reads a data split (default yes); one that does not is called with ``None`` for the data, and
    the split is not loaded for it."""
    return bool(getattr(metric, "needs_data", True))


def metric_options(metric: Any) -> dict[str, Any]:
    """The options a metric declares, ``{name: default}`` (none for a plain function)."""
    return dict(getattr(metric, "options", None) or {})


def results_file(
    folder: str | os.PathLike, metric_name: str, metric: Any, split: str, precision: str = "float32"
) -> Path:
    """Where the results of ``metric_name`` evaluated on ``folder`` are written (a bfloat16 evaluation beside the
    float32 one, ``NAME[-SPLIT]-bfloat16.json``, so neither overwrites the other)."""
    stem = metric_name if needs_ground_truth(metric) and not needs_data(metric) else f"{metric_name}-{split}"
    suffix = "" if precision == "float32" else f"-{precision}"
    return Path(folder) / RESULTS_FOLDER / f"{stem}{suffix}.json"


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
        value = json_or_text(raw)
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
    dataset: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    precision: str = "float32",
) -> dict:
    """Run each metric on the checkpoint's data set (from its ``config.json``'s ``dataset`` entry), or on the one
    ``dataset`` and ``dataset_options`` make of it.

    ``split``: the data split of metrics that read images (accuracy, kl-ranking, reconstruction); ``None`` takes
    ``test`` where the data set has one, else its first split (dSprites has only ``train``: the paper, like
    disentanglement_lib, scores on the training images). ``max_images``: metrics that read images see a seeded random
    subset of at most that many (the 737,280 dSprites images take minutes to encode on a CPU); ``None``: all.
    ``options`` maps a metric name to the options it declares. ``dataset`` (another registered data set's name) and
    ``dataset_options`` (``{key: value}``) override the recorded entry as
    :func:`~latentkit.assembly.datasets.override_dataset` says — e.g. ``dataset_options={"source": "procedural"}``
    scores a dSprites checkpoint trained on the npz on the procedural grid, with no edit of its ``config.json``.
    ``precision``: ``"float32"`` (exact) or ``"bfloat16"`` (the networks under autocast, codes and reconstructions
    handed on in float32; :mod:`latentkit.precision`) — recorded with each result and in its file name.
    Returns ``{"checkpoint", "dataset", "dataset_options", "split", "images", "metrics": {name: {...}}, "options":
    {name: {...}}, "seconds": {name: s}, "files": {name: path}}`` and, with ``save``, writes each metric's results into
    ``folder`` (see the module docstring).

    The work goes in named steps, each failing before the costlier next one: the metric names and options are checked
    before anything is loaded (:func:`resolve_metrics`), the results folder is checked writable right after the model
    is loaded (:func:`load_checkpoint_model`), the data set and its split or factor grid are loaded only for metrics
    that read them (:func:`load_evaluation_data`), then each metric runs (:func:`run_metric`) and its record is written
    atomically (:func:`write_result`) before the next starts, so a long evaluation keeps what it finished. Every user
    error is a :class:`~latentkit.errors.LatentkitError`.
    """
    registry = registry or get_registry()
    plan = resolve_metrics(metrics, registry, options, batch_size=batch_size, device=device, max_images=max_images,
                           precision=precision)
    model, config = load_checkpoint_model(folder, registry, save=save)
    inputs = load_evaluation_data(folder, config, model, registry, plan, data_root=data_root, split=split,
                                  dataset=dataset, dataset_options=dataset_options)
    model.to(plan.device)

    report: dict[str, Any] = {
        "checkpoint": str(folder),
        "dataset": inputs.dataset.name,
        "dataset_options": inputs.dataset.options,
        "split": inputs.split if inputs.data is not None else None,
        "images": len(inputs.data) if inputs.data is not None else None,
        "precision": plan.precision,
        "metrics": {},
        "options": {},
        "seconds": {},
        "files": {},
    }
    for name, fn in plan.metric_fns.items():
        outcome = run_metric(name, fn, model, inputs, plan)
        report["metrics"][name] = outcome.results
        report["options"][name] = outcome.options
        report["seconds"][name] = outcome.seconds
        if save:
            report["files"][name] = str(write_result(folder, config, outcome, inputs, plan))
    return report


# --- the steps of evaluate_checkpoint ---------------------------------------------------------------------------------
@attrs.frozen
class EvaluationPlan:
    """What :func:`evaluate_checkpoint` will run, checked before anything is loaded (see :func:`resolve_metrics`).

    ``metric_fns``: metric name -> the registered metric, in the order asked for; ``options``: metric name -> the
    options given for it (only metrics given some); ``batch_size`` and ``device``: what every metric runs with;
    ``max_images``: at most this many images of the split (a seeded subset), None for all; ``precision``: what the
    networks compute in (:mod:`latentkit.precision`)."""

    metric_fns: dict[str, Any]
    options: dict[str, dict[str, Any]]
    batch_size: int
    device: torch.device
    max_images: int | None
    precision: str = "float32"

    def needing_data(self) -> list[str]:
        """Names of the metrics that read a data split."""
        return [name for name, fn in self.metric_fns.items() if needs_data(fn)]

    def needing_ground_truth(self) -> list[str]:
        """Names of the metrics that read the data set's factor grid."""
        return [name for name, fn in self.metric_fns.items() if needs_ground_truth(fn)]


@attrs.frozen
class EvaluationData:
    """What the metrics read (see :func:`load_evaluation_data`).

    ``dataset``: the data set the checkpoint records; ``split``: the split data-reading metrics use (resolved even
    when none reads it, since it names result files); ``data``: the split's images (a seeded subset with
    ``max_images``), None when no metric reads images; ``ground_truth``: the factor grid, None when no metric needs
    one."""

    dataset: Component
    split: str
    data: Any
    ground_truth: Any


@attrs.frozen
class MetricOutcome:
    """One metric's run (see :func:`run_metric`): its ``name``, the registered ``metric``, the ``results`` it returned
    (a JSON-able dict), every option it ran with (``options``: its declared defaults updated by those given) and the
    ``seconds`` it took."""

    name: str
    metric: Any
    results: Any
    options: dict[str, Any]
    seconds: float


def resolve_metrics(
    metrics: Sequence[str] | str,
    registry: Registry,
    options: Mapping[str, Mapping[str, Any]] | None,
    *,
    batch_size: int,
    device: str | torch.device,
    max_images: int | None,
    precision: str = "float32",
) -> EvaluationPlan:
    """Step 1: metric names to registered metrics, and every setting checked, as an :class:`EvaluationPlan`.

    Why first: loading a model and encoding a data set take seconds to minutes, so a misspelt metric, an option no
    metric declares or a bad batch size must fail before that, with a :class:`ConfigError` that lists what is known."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise ConfigError(f"name at least one metric to evaluate; known metrics: {', '.join(registry.metrics.names())}")
    metric_fns = {name: registry.metrics.get(name) for name in metrics}  # unknown name: lists the known ones
    checked = _check_options(metric_fns, options)
    batch_size = check("batch size", batch_size, positive_int.such_as("256"))
    max_images = check("max_images", max_images, optional(positive_int, "all images"))
    return EvaluationPlan(metric_fns, checked, batch_size, resolve_device(device), max_images,
                          check_precision(precision))


def load_checkpoint_model(folder: str | os.PathLike, registry: Registry, *, save: bool) -> tuple[Any, dict]:
    """Step 2: the checkpoint's model and its ``config.json``; with ``save``, the results folder is checked writable.

    Why here: the model load is what proves ``folder`` is a checkpoint (a clear :class:`CheckpointError` otherwise), and
    a read-only folder must fail before any metric runs, not after minutes of work whose results cannot be kept."""
    model, config = load_model(folder, registry)
    if save:
        _check_writable(Path(folder) / RESULTS_FOLDER)
    return model, config


def load_evaluation_data(
    folder: str | os.PathLike,
    config: Mapping[str, Any],
    model: Any,
    registry: Registry,
    plan: EvaluationPlan,
    *,
    data_root: str | os.PathLike | None,
    split: str | None,
    dataset: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> EvaluationData:
    """Step 3: the data set the checkpoint records (``dataset`` and ``dataset_options`` override it, see
    :func:`evaluate_checkpoint`), and what of it the metrics read, as :class:`EvaluationData`.

    The split is loaded only when some metric reads images and the factor grid only when some metric needs ground
    truth (a dSprites split is 737,280 images). ``split=None`` takes ``test`` where the data set has one, else its first
    split. Why the checks: a checkpoint that names no data set, one that cannot be built, or one whose samples do not
    fit the model, and a ground-truth metric on a data set without a factor grid, are each a clear error naming the
    checkpoint or the metric, not a failure deep inside a metric. Only the split asked for is loaded: evaluating
    ``test`` needs the test files alone."""
    dataset, provider = _checkpoint_provider(folder, config, model, registry, dataset, dataset_options)

    def no_ground_truth(name: str) -> ConfigError:
        return ConfigError(
            f"metric {name!r} needs a data set with ground-truth factors; {dataset.name!r} has none (data sets with a "
            f"factor grid, such as dsprites, provide one)"
        )

    gt_metrics, data_metrics = plan.needing_ground_truth(), plan.needing_data()
    if gt_metrics and not _has_ground_truth_method(provider):
        raise no_ground_truth(gt_metrics[0])
    if split is None:
        split = "test" if "test" in provider.splits else provider.splits[0]
    if data_metrics:
        provider.check_split(split)
    ground_truth = provider.ground_truth(data_root) if gt_metrics else None
    if gt_metrics and ground_truth is None:
        raise no_ground_truth(gt_metrics[0])
    data = provider.load(data_root, split) if data_metrics else None
    if data is not None and plan.max_images is not None and len(data) > plan.max_images:
        data = random_subset(data, plan.max_images)
    return EvaluationData(dataset, split, data, ground_truth)


def _checkpoint_provider(
    folder: str | os.PathLike, config: Mapping[str, Any], model: Any, registry: Registry,
    name: str | None = None, options: Mapping[str, Any] | None = None,
) -> tuple[Component, DatasetProvider]:
    """The checkpoint's data set entry (with the ``--dataset`` ``name`` and ``--dataset-option`` ``options`` given, if
    any) and its provider, checked to yield samples of the model's shape.

    Why two kinds of error: a bad recorded entry is the checkpoint's fault (:class:`CheckpointError`), a bad name or
    option given on the command line is the user's, reported as the registry words it (an unknown option lists the
    options the data set has)."""
    if not config.get("dataset") and name is None:
        raise CheckpointError(
            f"checkpoint {str(folder)!r} does not record the data set it was trained on (its config.json has no "
            f"'dataset'); name one to evaluate it on with --dataset NAME"
        )
    overridden = name is not None or bool(options)
    try:
        dataset = override_dataset(config.get("dataset"), name, options)
        provider = build_provider(dataset, registry)
    except LatentkitError as exc:
        if overridden:
            raise
        raise CheckpointError(f"checkpoint {str(folder)!r} names a data set latentkit cannot load: {exc}") from None
    if overridden:
        check_given_dataset_fits(dataset, provider, model.image_shape, str(folder))
    if tuple(provider.image_shape) != tuple(model.image_shape):
        raise CheckpointError(
            f"checkpoint {str(folder)!r} holds a model for samples of shape {tuple(model.image_shape)}, but its data "
            f"set {dataset.name!r} with options {dataset.options} yields {tuple(provider.image_shape)}"
        )
    return dataset, provider


def run_metric(name: str, fn: Any, model: Any, inputs: EvaluationData, plan: EvaluationPlan) -> MetricOutcome:
    """Step 4: one metric on what it declares it reads (the split, the factor grid, neither), timed.

    Why the protocol is read here and nowhere else: a metric gets ``data`` only if it ``needs_data``, ``ground_truth=``
    only if it ``needs_ground_truth``, and only the options it declares, so a metric plugin written from scratch needs
    no ``**kwargs`` to absorb another metric's settings."""
    given = plan.options.get(name, {})
    kwargs: dict[str, Any] = dict(given)
    if needs_ground_truth(fn):
        kwargs["ground_truth"] = inputs.ground_truth
    start = time.perf_counter()
    with autocast(plan.precision, plan.device):
        result = fn(model, inputs.data if needs_data(fn) else None, batch_size=plan.batch_size, device=plan.device,
                    **kwargs)
    seconds = time.perf_counter() - start
    return MetricOutcome(name, fn, result, {**metric_options(fn), **given}, seconds)


def write_result(
    folder: str | os.PathLike, config: Mapping[str, Any], outcome: MetricOutcome, inputs: EvaluationData,
    plan: EvaluationPlan,
) -> Path:
    """Step 5: one metric's record written atomically to :func:`results_file`; returns its path.

    Why a record per metric and atomic: an evaluation may be stopped half-way, and a results file is either the whole
    record of a finished metric or absent — never half a JSON file that a later report would misread. The record says
    what was evaluated with which settings (options, data set, split, image count, checkpoint file and step, batch
    size, device, version, time) so a number read months later can be traced and reproduced."""
    fn = outcome.metric
    reads_data = needs_data(fn) and inputs.data is not None
    path = results_file(folder, outcome.name, fn, inputs.split, plan.precision)
    record = {
        "metric": outcome.name,
        "results": outcome.results,
        "options": outcome.options,
        "seconds": outcome.seconds,
        "dataset": {"name": inputs.dataset.name, "options": inputs.dataset.options},
        **_recorded_dataset(config, inputs.dataset),
        "split": inputs.split if needs_data(fn) else None,
        "images": len(inputs.data) if reads_data else None,
        "ground_truth": needs_ground_truth(fn),
        "checkpoint": str(resolve_checkpoint(folder)),
        "step": config.get("step"),
        "batch_size": plan.batch_size,
        "device": str(plan.device),
        "precision": plan.precision,
        "latentkit_version": latentkit.__version__,
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        write_json(path, record)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return path


def _recorded_dataset(config: Mapping[str, Any], used: Component) -> dict[str, Any]:
    """``{"checkpoint_dataset": {...}}`` when the data set evaluated on is not the one the checkpoint records (given
    with --dataset or --dataset-option), else nothing: a record says what the model was trained on beside what it
    was scored on."""
    recorded = config.get("dataset")
    entry = as_component(recorded, "the checkpoint's dataset") if recorded else None
    if entry == used:
        return {}
    return {"checkpoint_dataset": None if entry is None else {"name": entry.name, "options": entry.options}}


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
