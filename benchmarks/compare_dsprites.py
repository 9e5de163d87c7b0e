"""JointVAE against other objectives on procedural dSprites under one step budget, several seeds each.

Arms (each a recipe of ``recipes/``, 64x64, Adam 5e-4, batch 64, 6 continuous units):

* ``jointvae`` — the paper's dSprites recipe (+ one 3-way categorical);
* ``betavae`` — continuous only, β = 4 (capacity 0, γ = β);
* ``annealedvae`` — continuous only, Burgess et al.'s annealed capacity (0 → 25 nats, γ = 1000);
* ``tcvae`` / ``factorvae`` — JointVAE + β-TCVAE's TC term / FactorVAE's discriminator (10·TC);
* ``jointvae-invariant`` — JointVAE whose discrete code cannot see position or size and is asked to ignore rotation
  (``recipes/jointvae_dsprites_invariant.py``: the fixed schedule below, the code read from a canonical view of the
  image, plus consistency and balance terms).
* ``NAME=PATH`` — any recipe file of one's own (e.g. ``mine=runs/tune/my_recipe.py``), run and scored as the others
  under the same schedule, seeds and metrics: how a new recipe is set beside the baselines without editing this file.

Schedules (``--schedule``):

* ``proportional`` (default): every capacity ramp of every recipe is compressed in proportion to the step budget —
  ramp steps × (``--steps`` / the recipe's own step count) —, targets and γ as the recipes have them. With 20,000 steps
  the JointVAE ramps (300,000 of 345,600) become 17,361 steps, the annealed β-VAE's (100,000) 5,787.
* ``fixed``: γ, targets and ramp fraction given on the command line (``--gamma 30 --cont-max 10 --disc-max 1.1
  --ramp-fraction 0.6``, the gentler procedural settings); for the arms with a discrete channel only.

Runs go seed by seed (every arm of seed 0, then of seed 1, ...), so an interrupted job leaves comparable pairs; each
run is ``OUT/ARM/seed-N``, trained and evaluated with the ``latentkit`` commands exactly as a user runs them
(:func:`latentkit.assembly.sweep.execute`). Restartable: a complete run with results is skipped, an interrupted one resumed.
Metrics: the FactorVAE score (disentanglement_lib's protocol and the paper's convention for the categorical column:
10,000 / 5,000 votes of 64 images; its standard error over the votes beside each seed's figure), MIG, DCI
disentanglement and SAP (each on its own samples of the factor grid), the shape accuracy of the discrete
code (Hungarian) and of a 3-means of the continuous means (``kmeans-accuracy``, every arm), and the median
reconstruction BCE — accuracy and BCE on a fixed random 50,000 of the 737,280 images. Writes OUT/summary.md, .json.

    python benchmarks/compare_dsprites.py --arms jointvae,betavae,annealedvae --steps 20000 --seeds 0,1 \\
        --out runs/compare-dsprites --jobs 2
    python benchmarks/compare_dsprites.py --arms jointvae,tcvae,factorvae --schedule fixed --steps 5000 \\
        --seeds 0,1 --out runs/compare-tc --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentkit.assembly.recipe import load_recipe  # noqa: E402
from latentkit.assembly.sweep import SweepRun, SweepSpec, execute, thread_env  # noqa: E402

ARMS = {
    "jointvae": "recipes/jointvae_dsprites.py",
    "betavae": "recipes/betavae_dsprites.py",
    "annealedvae": "recipes/annealedvae_dsprites.py",
    "tcvae": "recipes/tcvae_dsprites.py",
    "factorvae": "recipes/factorvae_dsprites.py",
    "jointvae-invariant": "recipes/jointvae_dsprites_invariant.py",
}
METRICS = {
    "factorvae.score": "FactorVAE score",
    "mig.score": "MIG",
    "dci.disentanglement": "DCI dis.",
    "sap.score": "SAP",
    "accuracy.hungarian": "shape acc. (discrete code)",
    "kmeans-accuracy.hungarian": "shape acc. (3-means of cont. means)",
    "reconstruction.bce_median": "median BCE",
}
RESULT_FILE = "comparison-result.json"


def channel_settings(recipe, args: argparse.Namespace) -> list[str]:
    """The ``--set`` items of one arm's capacity schedules under the chosen schedule mode."""
    channels = [("cont", recipe.cont_capacity, recipe.cont_units > 0), ("disc", recipe.disc_capacity,
                                                                       bool(recipe.disc_sizes))]
    sets = []
    if args.schedule == "proportional":
        scale = args.steps / recipe.train.steps
        for name, cap, present in channels:
            if present and cap.steps > 1:
                sets.append(f"{name}_capacity.steps={max(1, round(cap.steps * scale))}")
        return sets
    if not recipe.disc_sizes:
        raise SystemExit("--schedule fixed sets both channels' capacities; use it with jointvae, tcvae, factorvae only")
    ramp = max(1, round(args.steps * args.ramp_fraction))
    for name, target in (("cont", args.cont_max), ("disc", args.disc_max)):
        sets += [f"{name}_capacity.steps={ramp}", f"{name}_capacity.c_max={target}", f"{name}_gamma={args.gamma}"]
    return sets


def parse_arms(text: str) -> dict[str, Path]:
    """``--arms`` to ``{arm: recipe file}``: each item a name of :data:`ARMS` or ``NAME=PATH`` to a recipe file."""
    arms: dict[str, Path] = {}
    for item in (a.strip() for a in text.split(",")):
        if not item:
            continue
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep:
            if name not in ARMS:
                raise ValueError(f"unknown arm {name!r}; choose from {', '.join(ARMS)}, or give NAME=PATH to a recipe file")
            recipe = ROOT / ARMS[name]
        else:
            recipe = Path(path).expanduser().resolve()
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"arm {item!r}: NAME=PATH needs a plain name before '=' (a folder under --out)")
            if not recipe.is_file():
                raise ValueError(f"arm {name!r}: no recipe file at {recipe}")
        if name in arms:
            raise ValueError(f"arm {name!r} is given twice")
        arms[name] = recipe
    if not arms:
        raise ValueError("--arms names no arm")
    return arms


def arm_spec(arm: str, args: argparse.Namespace, threads: int) -> tuple[SweepSpec, list[str]]:
    recipe_file = args.arm_recipes[arm]
    recipe = load_recipe(recipe_file)
    metrics = ["factorvae", "mig", "dci", "sap", "kmeans-accuracy", "reconstruction"]
    if recipe.disc_sizes:
        metrics.insert(2, "accuracy")
    options = (f"factorvae.num_train={args.votes[0]}", f"factorvae.num_eval={args.votes[1]}")
    spec = SweepSpec(recipe=str(recipe_file), out=Path(args.out) / arm, steps=args.steps,
                     metrics=tuple(metrics), threads=threads, eval_options=options, max_images=args.eval_images)
    sets = channel_settings(recipe, args) + [
        'dataset_options={"source": "procedural", "label_factor": "shape"}',
        "train.figures_every=0",
        f"train.checkpoint_every={max(1, args.steps // 10)}",
        "train.log_every=100",
    ] + list(args.set)
    return spec, sets


def run_one(arm: str, seed: int, args: argparse.Namespace, threads: int) -> dict:
    spec, sets = arm_spec(arm, args, threads)
    folder = spec.out / f"seed-{seed}"
    stored = folder / RESULT_FILE
    if stored.is_file() and (folder / "final" / "config.json").is_file():
        return json.loads(stored.read_text())
    run = SweepRun(f"seed-{seed}", seed, tuple(tuple(s.split("=", 1)) for s in sets))
    env = thread_env(threads, 1)
    print(f"== {arm} seed {seed}: settings {sets}", flush=True)
    result = execute(spec, run, env)
    record = {"arm": arm, "seed": seed, "status": result.status, "seconds": result.seconds,
              "metrics": result.metrics, "error": result.error, "settings": sets}
    if result.status == "ok":
        stored.write_text(json.dumps(record, indent=1) + "\n")
    print(f"== {arm} seed {seed}: {result.status} after {result.seconds / 60:.1f} min {result.error}", flush=True)
    return record


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def _seed_cell(metrics: dict, key: str) -> str:
    if key not in metrics:
        return "—"
    se = metrics.get(key + "_se")
    return f"{metrics[key]:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def summarise(out: Path, arms: list[str], seeds: list[int], args: argparse.Namespace) -> str:
    records = {(a, s): json.loads(p.read_text()) for a in arms for s in seeds
               if (p := out / a / f"seed-{s}" / RESULT_FILE).is_file()}
    schedule = ("each recipe's capacity ramps compressed in proportion to the step budget, targets and γ as the "
                "recipes'" if args.schedule == "proportional" else
                f"γ = {args.gamma:g}; capacities 0 → {args.cont_max:g} / 0 → {args.disc_max:g} nats over "
                f"{args.ramp_fraction:.0%} of the run")
    lines = [f"Procedural dSprites, {args.steps:,} steps of 64 per run; {schedule}. Mean ± sd over seeds, then each "
             f"seed (FactorVAE ± its standard error over the {args.votes[1]:,} evaluation votes); wall minutes per "
             "run include evaluation.", "",
             "| objective | runs | " + " | ".join(METRICS.values()) + " | wall min / run |",
             "| --- | --- |" + " ---: |" * (len(METRICS) + 1)]
    per_seed = ["", "| objective | seed | " + " | ".join(METRICS.values()) + " |",
                "| --- | --- |" + " ---: |" * len(METRICS)]
    for arm in arms:
        done = [records[(arm, s)] for s in seeds if (arm, s) in records]
        values = {k: [r["metrics"][k] for r in done if k in r["metrics"]] for k in METRICS}
        minutes = [r["seconds"] / 60 for r in done]
        lines.append(f"| {arm} | {len(done)}/{len(seeds)} | " + " | ".join(_cell(values[k]) for k in METRICS)
                     + f" | {statistics.fmean(minutes) if minutes else math.nan:.0f} |")
        for r in done:
            per_seed.append(f"| {arm} | {r['seed']} | " + " | ".join(_seed_cell(r["metrics"], k) for k in METRICS) + " |")
    text = "\n".join(lines + per_seed) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"steps": args.steps, "schedule": args.schedule,
                                                  "runs": list(records.values())}, indent=1) + "\n")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", default="jointvae,betavae,annealedvae", help=f"comma-separated, of {', '.join(ARMS)}, or NAME=PATH to a recipe file")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="runs/compare-dsprites")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (each gets CPUs / jobs threads)")
    parser.add_argument("--threads", type=int, help="torch threads per training (default CPUs / jobs)")
    parser.add_argument("--schedule", choices=("proportional", "fixed"), default="proportional")
    parser.add_argument("--gamma", type=float, default=30.0, help="fixed schedule: γ of both channels")
    parser.add_argument("--cont-max", type=float, default=10.0, help="fixed schedule: continuous capacity target")
    parser.add_argument("--disc-max", type=float, default=1.1, help="fixed schedule: discrete capacity target")
    parser.add_argument("--ramp-fraction", type=float, default=0.6, help="fixed schedule: ramp over this fraction")
    parser.add_argument("--eval-images", type=int, default=50_000,
                        help="images (a fixed random subset of the 737,280) for the accuracies and reconstruction")
    parser.add_argument("--votes", type=lambda t: tuple(int(v) for v in t.split(",")), default=(10_000, 5_000),
                        help="FactorVAE score: training and evaluation votes (default the protocol's 10000,5000)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a further recipe override for every run (e.g. 'train.precision=\"bfloat16\"')")
    parser.add_argument("--summarise-only", action="store_true", help="tabulate the stored results, train nothing")
    args = parser.parse_args()
    try:
        args.arm_recipes = parse_arms(args.arms)
    except ValueError as exc:
        parser.error(str(exc))
    arms = list(args.arm_recipes)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # seed-major order, at most --jobs at once
            list(pool.map(lambda job: run_one(*job, args, threads), [(a, s) for s in seeds for a in arms]))
        print(f"== all runs done after {(time.monotonic() - start) / 60:.1f} min", flush=True)
    print(summarise(out, arms, seeds, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
