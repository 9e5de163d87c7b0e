"""Train a recipe from scratch for several seeds, evaluate the discrete code, and tabulate median and spread.

    python benchmarks/reproduce_mnist.py --seeds 0,1,2,3,4 --data-root ../shared/data
    nohup python benchmarks/reproduce_mnist.py --seeds 0,1,2,3,4 --data-root ../shared/data > runs/repro.log 2>&1 &

Each seed trains into ``OUT/seed-N`` (default ``runs/reproduce-mnist``) with the ``latentkit`` command exactly as a user
runs it (the paper's recipe as published: 100 epochs = 93,800 steps). The script is restartable: a seed whose run is
complete is only evaluated, one with checkpoints is resumed (``latentkit train --resume``), so a job cut by the end of
a session continues where it stopped when started again with the same arguments. Seeds run one after another, or
``--jobs N`` at a time, each training then given CPUs / N threads (``--threads`` to choose); a seed that fails does not
stop the others, and the table holds every seed that completed.

Per seed, on the test set: the discrete code's accuracy with a one-to-one (Hungarian) map of categories to digits — the
headline —, with the majority map and the normalised mutual information beside it; the Hungarian accuracy of a
10-means of the continuous means (``kmeans-accuracy``: what a continuous-only recipe such as
``recipes/betavae_mnist.py`` is scored by, the discrete columns then left empty); and the median reconstruction BCE
per image (nats, summed over pixels). The table (``OUT/summary.md``, ``.csv``, ``.json``) gives every seed, the median
and the range, and each run's training wall time (summed over resumes). Seeds accumulate: running ``--seeds 1,2`` into
an OUT whose table already holds seed 0 keeps seed 0's row (while ``OUT/seed-0`` is still a complete run), so a spread
can be grown a few seeds per session.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentkit.assembly.sweep import set_aside_unstarted, thread_env as sweep_thread_env  # noqa: E402
COLUMNS = [("hungarian", "accuracy (Hungarian)"), ("majority", "accuracy (majority)"), ("nmi", "NMI"),
           ("kmeans_hungarian", "k-means of cont. means (Hungarian)"), ("bce_median", "median test BCE / image"),
           ("wall_min", "training wall (min)")]


def latentkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "latentkit.cli", *args]


def state_of(run: Path) -> str:
    if (run / "final" / "config.json").is_file():
        return "complete"
    if any(run.glob("checkpoints/step-*/config.json")):
        return "partial"
    return "new"


class SeedFailed(Exception):
    """A seed's training or evaluation stopped; the message says which and how to go on. ``stopped``: by a signal."""

    def __init__(self, message: str, stopped: bool = False):
        super().__init__(message)
        self.stopped = stopped


def thread_env(args: argparse.Namespace) -> dict[str, str] | None:
    """The environment of each training: CPUs / jobs intra-op threads when several run at once, else inherited."""
    if args.threads is None and args.jobs == 1:
        return None
    return sweep_thread_env(args.threads, args.jobs)


def train(run: Path, seed: int, args: argparse.Namespace) -> None:
    state = state_of(run)
    if state == "complete":
        return
    if state == "partial":
        cmd = latentkit("train", "--resume", str(run), "--quiet")
        if args.steps:
            cmd += ["--steps", str(args.steps)]
    else:
        moved = set_aside_unstarted(run)  # killed before its first checkpoint: start again
        if moved:
            print(f"seed {seed}: {run} held no checkpoint; moved to {moved} and starting again", flush=True)
        cmd = latentkit("train", args.recipe, "--seed", str(seed), "--out", str(run), "--quiet")
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        for item in args.set or []:
            cmd += ["--set", item]
    print(f"seed {seed}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=thread_env(args))
    wall = time.monotonic() - t0
    log = run / "wall.json"
    spent = json.loads(log.read_text())["seconds"] if log.is_file() else 0.0
    run.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"seconds": spent + wall}) + "\n")
    if proc.returncode != 0:
        raise SeedFailed(f"seed {seed}: training stopped with status {proc.returncode}; run this script again to resume",
                         stopped=proc.returncode < 0 or proc.returncode in (130, 143))


def has_discrete_code(run: Path) -> bool:
    from latentkit.assembly.checkpoint import load_model, resolve_checkpoint

    model, _ = load_model(resolve_checkpoint(run))
    return any(family.is_discrete for _, family in model.latent.items())


def evaluate(run: Path, args: argparse.Namespace) -> dict:
    discrete = has_discrete_code(run)
    metrics_wanted = (["accuracy"] if discrete else []) + ["kmeans-accuracy", "reconstruction"]
    cmd = latentkit("evaluate", str(run), "--json")
    for metric in metrics_wanted:
        cmd += ["--metric", metric]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=thread_env(args))
    if proc.returncode != 0:
        raise SeedFailed(f"evaluating {run} failed:\n{proc.stderr}")
    metrics = json.loads(proc.stdout)["metrics"]
    wall = json.loads((run / "wall.json").read_text())["seconds"] if (run / "wall.json").is_file() else float("nan")
    acc = metrics["accuracy"] if discrete else {"hungarian": math.nan, "majority": math.nan, "nmi": math.nan}
    return {"hungarian": acc["hungarian"], "majority": acc["majority"], "nmi": acc["nmi"],
            "kmeans_hungarian": metrics["kmeans-accuracy"]["hungarian"],
            "bce_median": metrics["reconstruction"]["bce_median"], "wall_min": wall / 60}


def merge_earlier_rows(rows: dict[int, dict], out: Path) -> list[int]:
    """Add the rows of ``OUT/summary.json`` for seeds not evaluated now whose runs are still complete; return them.

    Without this, a second invocation on new seeds would overwrite the table with only its own seeds and silently drop
    the earlier ones. A row whose run folder is gone or no longer complete is not carried over.
    """
    path = out / "summary.json"
    if not path.is_file():
        return []
    try:
        earlier = json.loads(path.read_text())["seeds"]
    except (json.JSONDecodeError, KeyError, TypeError):
        print(f"note: {path} is not a summary this script wrote; its rows are not carried over", flush=True)
        return []
    kept = []
    for key, row in earlier.items():
        seed = int(key)
        if seed not in rows and state_of(out / f"seed-{seed}") == "complete":
            rows[seed] = row
            kept.append(seed)
    return sorted(kept)


def summarise(rows: dict[int, dict], out: Path, recipe: str) -> str:
    lines = [f"Recipe `{recipe}`, {len(rows)} seeds; test set.", "",
             "| seed | " + " | ".join(title for _, title in COLUMNS) + " |",
             "| --- |" + " ---: |" * len(COLUMNS)]
    for seed, row in sorted(rows.items()):
        lines.append(f"| {seed} | " + " | ".join(_fmt(key, row[key]) for key, _ in COLUMNS) + " |")
    stats = {}
    for key, _ in COLUMNS:
        values = [row[key] for row in rows.values() if not math.isnan(row[key])]
        if not values:  # a continuous-only recipe has no discrete code
            stats[key] = dict.fromkeys(("median", "min", "max", "mean", "std"), math.nan)
            continue
        stats[key] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                      "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    lines.append("| **median** | " + " | ".join(f"**{_fmt(k, stats[k]['median'])}**" for k, _ in COLUMNS) + " |")
    lines.append("| range | " + " | ".join(f"{_fmt(k, stats[k]['min'])}–{_fmt(k, stats[k]['max'])}"
                                           for k, _ in COLUMNS) + " |")
    lines.append("| mean ± sd | " + " | ".join(f"{_fmt(k, stats[k]['mean'])} ± {_fmt(k, stats[k]['std'])}"
                                               for k, _ in COLUMNS) + " |")
    table = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(table)
    (out / "summary.json").write_text(json.dumps({"recipe": recipe, "seeds": rows, "stats": stats}, indent=2) + "\n")
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seed"] + [key for key, _ in COLUMNS])
        for seed, row in sorted(rows.items()):
            writer.writerow([seed] + [row[key] for key, _ in COLUMNS])
    return table


def _fmt(key: str, value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return f"{value:.1f}" if key in ("bce_median", "wall_min") else f"{value:.3f}"


def run_one_seed(seed: int, out: Path, args: argparse.Namespace) -> dict | None:
    """Train (or resume) and evaluate one seed; its table row, or None while its run is not complete."""
    run = out / f"seed-{seed}"
    if not args.evaluate_only:
        train(run, seed, args)
    if state_of(run) != "complete":
        print(f"seed {seed}: not complete ({state_of(run)}); skipped in the table", flush=True)
        return None
    row = evaluate(run, args)
    print(f"seed {seed}: " + ", ".join(f"{k} {_fmt(k, v)}" for k, v in row.items()), flush=True)
    return row


def run_seeds(seeds: list[int], out: Path, args: argparse.Namespace) -> tuple[dict[int, dict], list[str]]:
    """Every seed, ``args.jobs`` at a time: the rows of those complete, in seed order, and a message per failed seed.

    A seed that fails leaves the others running; a training stopped by a signal (the end of a session, Ctrl-C) or an
    interrupt here starts no further seed, so what is stopped stays stopped and resumes when the script runs again."""
    stop = threading.Event()

    def job(seed: int) -> tuple[int, dict | None, str | None]:
        if stop.is_set():
            return seed, None, f"seed {seed}: not started (the job was stopped)"
        try:
            return seed, run_one_seed(seed, out, args), None
        except SeedFailed as exc:
            if exc.stopped:
                stop.set()
            return seed, None, str(exc)

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futures = [pool.submit(job, seed) for seed in seeds]
        results = [future.result() for future in futures]
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    rows = {seed: row for seed, row, _ in results if row is not None}
    return rows, [error for _, _, error in results if error]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0..4)")
    parser.add_argument("--recipe", default="recipes/jointvae_mnist.py")
    parser.add_argument("--out", default="runs/reproduce-mnist", help="folder of the seeds' run directories")
    parser.add_argument("--data-root", help="folder holding the recipe's data (MNIST/raw, FashionMNIST/raw; default $LATENTKIT_DATA or ./data)")
    parser.add_argument("--steps", type=int, help="total steps (default: the recipe's)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="a recipe override for new runs")
    parser.add_argument("--evaluate-only", action="store_true", help="tabulate the complete runs, train nothing")
    parser.add_argument("--jobs", type=int, default=1, help="seeds at once (default 1; each gets CPUs / jobs threads)")
    parser.add_argument("--threads", type=int, help="torch threads per training (default CPUs / jobs when jobs > 1)")
    args = parser.parse_args()
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads are counts of at least 1, e.g. --jobs 2 --threads 1")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = run_seeds(seeds, out, args)
    kept = merge_earlier_rows(rows, out)
    if kept:
        print(f"seeds {', '.join(map(str, kept))}: kept from the earlier table in {out / 'summary.json'}", flush=True)
    if rows:
        print(summarise(rows, out, args.recipe))
    if failures:
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    main()
