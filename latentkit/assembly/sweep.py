"""Seed and hyper-parameter sweeps: every combination trained into its own run directory, evaluated, tabulated.

    latentkit sweep recipes/jointvae_mnist.py --seeds 0,1,2 --set train.lr=5e-4,1e-4 --steps 5000 \\
        --metric accuracy --metric reconstruction --out runs/sweep-lr

Each combination of a seed and one value of every ``--set KEY=V1,V2,...`` (values are split at top-level commas, so
``--set 'disc_sizes=[10],[20]'`` gives two values) runs ``latentkit train`` in its own process into
``OUT/<seed-N__key-value...>``, then ``latentkit evaluate`` with the chosen metrics. The summary — ``OUT/summary.csv``
and ``OUT/summary.md``, one row per run and, per setting (all but the seed), the mean and spread of every metric — lists
failed runs with the end of their error; the others go on. A sweep is restartable: complete runs are only evaluated
again, interrupted ones resumed.

Backends: ``local`` (default) runs at most ``--jobs`` trainings at once on this machine, giving each an equal share of
the CPU threads; ``ray`` hands each run to an existing Ray cluster (``RAY_ADDRESS``, or a local instance), so sweeps span
machines without a scheduler of our own (``pip install 'latentkit[ray]'``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from latentkit.errors import ConfigError

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"


@attrs.frozen
class SweepRun:
    name: str
    seed: int
    settings: tuple[tuple[str, str], ...]  #: (key, value as given) for each --set


@attrs.define
class RunResult:
    run: SweepRun
    status: str  #: "ok", "failed", "evaluation failed"
    seconds: float = 0.0
    metrics: dict[str, float] = attrs.field(factory=dict)
    error: str = ""


def split_values(text: str) -> list[str]:
    """``"1e-4,5e-4"`` → two values; commas inside brackets, braces or quotes do not split (``"[10],[20]"``)."""
    values, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    values.append("".join(current).strip())
    if any(not v for v in values) or depth != 0 or quote:
        raise ConfigError(f"cannot read the values {text!r}: give KEY=V1,V2 with balanced brackets and no empty value")
    return values


MAX_NAME = 120  #: characters of a run's folder name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")[:60] or "x"


def plan(seeds: Sequence[int], sets: Sequence[str]) -> list[SweepRun]:
    """Every combination of a seed and one value per ``KEY=V1,V2`` item, in a stable order with unique names."""
    if not seeds:
        raise ConfigError("give at least one seed, e.g. --seeds 0,1,2")
    axes: list[list[tuple[str, str]]] = []
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=V1,V2,... (e.g. train.lr=1e-4,5e-4), got {item!r}")
        axes.append([(key.strip(), v) for v in split_values(raw)])
    runs = []
    varied = [len(axis) > 1 for axis in axes]  # a setting with one value applies to every run: not in the names
    for combo in itertools.product(*axes):
        for seed in seeds:
            parts = [f"{_slug(k)}-{_slug(v)}" for (k, v), named in zip(combo, varied) if named]
            name = "__".join([f"seed-{seed}"] + parts)
            if len(name) > MAX_NAME:  # folder names have limits (255 bytes): keep a readable start and a digest
                digest = hashlib.sha1(repr(combo).encode()).hexdigest()[:10]
                name = f"{name[: MAX_NAME - 12]}__{digest}"
            runs.append(SweepRun(name, int(seed), tuple(combo)))
    if len({r.name for r in runs}) != len(runs):
        raise ConfigError("two combinations have the same run name; make the values differ in letters or digits")
    return runs


@attrs.frozen
class SweepSpec:
    recipe: str
    out: Path
    steps: int | None = None
    metrics: tuple[str, ...] = ("reconstruction",)
    data_root: str | None = None
    threads: int | None = None  #: torch threads per training (default: the machine's share)
    eval_options: tuple[str, ...] = ()  #: ``metric.name=value`` options passed to ``latentkit evaluate --option``
    max_images: int | None = None  #: passed to ``latentkit evaluate --max-images``


def _latentkit() -> list[str]:
    return [sys.executable, "-m", "latentkit"]


def set_aside_unstarted(folder: Path) -> Path | None:
    """Move a run folder that holds no checkpoint (a training killed before its first one) to
    ``<name>.interrupted[-N]`` so the run can start again; returns where it went, or ``None`` when nothing was moved.
    Nothing is deleted: its log and metrics stay readable there."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    if (folder / "final" / "config.json").is_file() or any(folder.glob("checkpoints/step-*/config.json")):
        return None
    target, n = folder.with_name(folder.name + ".interrupted"), 1
    while target.exists():
        target, n = folder.with_name(f"{folder.name}.interrupted-{n}"), n + 1
    folder.rename(target)
    return target


def train_command(spec: SweepSpec, run: SweepRun) -> list[str]:
    folder = spec.out / run.name
    if (folder / "final" / "config.json").is_file():
        return []
    if any(folder.glob("checkpoints/step-*/config.json")):
        cmd = _latentkit() + ["train", "--resume", str(folder), "--quiet"]
        return cmd + (["--steps", str(spec.steps)] if spec.steps else [])
    set_aside_unstarted(folder)  # killed before its first checkpoint: start again, keeping what it wrote
    cmd = _latentkit() + ["train", spec.recipe, "--seed", str(run.seed), "--out", str(folder), "--quiet"]
    for key, value in run.settings:
        cmd += ["--set", f"{key}={value}"]
    if spec.steps:
        cmd += ["--steps", str(spec.steps)]
    if spec.data_root:
        cmd += ["--data-root", spec.data_root]
    return cmd


def evaluate_command(spec: SweepSpec, run: SweepRun) -> list[str]:
    cmd = _latentkit() + ["evaluate", str(spec.out / run.name), "--json"]
    for metric in spec.metrics:
        cmd += ["--metric", metric]
    for option in spec.eval_options:
        cmd += ["--option", option]
    if spec.max_images:
        cmd += ["--max-images", str(spec.max_images)]
    return cmd + (["--data-root", spec.data_root] if spec.data_root else [])


def flatten_metrics(results: dict) -> dict[str, float]:
    """``{"accuracy": {"hungarian": 0.7, ...}}`` → ``{"accuracy.hungarian": 0.7}`` (numbers only)."""
    flat = {}
    for metric, values in results.items():
        for key, value in values.items():
            counts = key.startswith("n_images") or key.endswith("images_encoded")  # sizes, not results
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not counts:
                flat[f"{metric}.{key}"] = float(value)
    return flat


def execute(spec: SweepSpec, run: SweepRun, env: dict[str, str]) -> RunResult:
    """Train (or resume, or skip when complete) and evaluate one run; never raises for a failed run."""
    start = time.monotonic()
    cmd = train_command(spec, run)
    if cmd:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return RunResult(run, "failed", time.monotonic() - start, error=_tail(proc.stderr or proc.stdout))
    proc = subprocess.run(evaluate_command(spec, run), env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        return RunResult(run, "evaluation failed", seconds, error=_tail(proc.stderr or proc.stdout))
    return RunResult(run, "ok", seconds, flatten_metrics(json.loads(proc.stdout)["metrics"]))


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(no output)"


def thread_env(threads: int | None, jobs: int) -> dict[str, str]:
    """The environment of one of ``jobs`` trainings run at once: ``threads`` intra-op threads, or CPUs / jobs."""
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def run_local(spec: SweepSpec, runs: Sequence[SweepRun], jobs: int, progress=print) -> list[RunResult]:
    env = thread_env(spec.threads, jobs)
    results: list[RunResult] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(lambda r: execute(spec, r, env), runs):
            progress(f"{result.run.name}: {result.status} ({result.seconds:.0f} s)")
            results.append(result)
    return results


def run_ray(spec: SweepSpec, runs: Sequence[SweepRun], progress=print) -> list[RunResult]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'latentkit[ray]' (or pip install ray)") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True, log_to_driver=False)
    threads = spec.threads or 1
    env = thread_env(threads, 1)
    remote = ray.remote(num_cpus=threads)(execute)
    pending = {remote.remote(spec, r, env): r for r in runs}
    results = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        result = ray.get(done[0])
        pending.pop(done[0])
        progress(f"{result.run.name}: {result.status} ({result.seconds:.0f} s)")
        results.append(result)
    order = {r.name: i for i, r in enumerate(runs)}
    return sorted(results, key=lambda res: order[res.run.name])


def _fmt(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def summarise(results: Sequence[RunResult], out: Path) -> str:
    """Write ``summary.csv`` and ``summary.md``; returns the markdown."""
    keys = sorted({k for r in results for k in r.metrics})
    set_keys = [k for k, _ in results[0].run.settings] if results else []
    with open(out / SUMMARY_CSV, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "seed", *set_keys, "status", "seconds", *keys, "error"])
        for r in results:
            writer.writerow([r.run.name, r.run.seed, *[v for _, v in r.run.settings], r.status, f"{r.seconds:.1f}",
                             *[r.metrics.get(k, "") for k in keys], r.error])
    lines = ["| run | status | " + " | ".join(keys) + " |", "| --- | --- |" + " ---: |" * len(keys)]
    for r in results:
        status = r.status if r.status == "ok" else f"**{r.status}**: {r.error}"
        lines.append(f"| {r.run.name} | {status} | " + " | ".join(_fmt(r.metrics.get(k)) for k in keys) + " |")
    groups: dict[tuple, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.run.settings, []).append(r)
    lines += ["", "Per setting (over seeds): mean ± standard deviation [min, max], runs that finished / runs.", "",
              "| setting | runs | " + " | ".join(keys) + " |", "| --- | --- |" + " ---: |" * len(keys)]
    for settings, group in groups.items():
        ok = [r for r in group if r.status == "ok"]
        cells = []
        for k in keys:
            values = [r.metrics[k] for r in ok if k in r.metrics]
            if not values:
                cells.append("")
                continue
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4g} ± {sd:.2g} [{min(values):.4g}, {max(values):.4g}]")
        label = ", ".join(f"{k}={v}" for k, v in settings) or "(recipe)"
        lines.append(f"| {label} | {len(ok)}/{len(group)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / SUMMARY_MD).write_text(text)
    return text
