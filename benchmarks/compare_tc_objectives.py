"""JointVAE against JointVAE + β-TCVAE's TC term and JointVAE + FactorVAE's discriminator, on procedural dSprites.

Every arm is the paper's dSprites recipe (64x64, 6 continuous units + one 3-way categorical, Adam 5e-4, batch 64)
under one short step budget; the two TC arms add 10·TC. The paper's γ = 150 and 0 → 40 nats, compressed into a few
thousand steps (``--gamma 150 --cont-max 40 --ramp-fraction 0.868``), pushes the encoder into an input-independent
posterior that meets the capacity and carries no information (measured: MI = 0, chance-level scores); the defaults
here are the gentler settings of the procedural default recipe (γ = 30, 0 → 10 and 0 → 1.1 nats over 60% of the run). Each arm is a
``latentkit sweep`` over the seeds (restartable: run the same command again to finish or extend), evaluated with the
FactorVAE score, MIG (both on their own samples of the factor grid), and the shape accuracy of the discrete code and
the median reconstruction BCE on a fixed random 50,000 of the images. Writes OUT/summary.md and OUT/summary.json.

    python benchmarks/compare_tc_objectives.py --steps 5000 --seeds 0,1 --out runs/compare-tc --jobs 2
    python benchmarks/compare_tc_objectives.py --steps 5000 --gamma 150 --cont-max 40 --ramp-fraction 0.868 ...
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "jointvae": "recipes/jointvae_dsprites.py",
    "tcvae": "recipes/tcvae_dsprites.py",
    "factorvae": "recipes/factorvae_dsprites.py",
}
PAPER_RAMP_FRACTION = 300_000 / 345_600
METRICS = {
    "factorvae.score": "FactorVAE score",
    "mig.score": "MIG",
    "accuracy.hungarian": "shape accuracy (Hungarian)",
    "reconstruction.bce_median": "median test BCE",
}


def ramp_steps(args: argparse.Namespace) -> int:
    return max(1, round(args.steps * args.ramp_fraction))


def sweep_command(arm: str, args: argparse.Namespace) -> list[str]:
    ramp = ramp_steps(args)
    sets = [
        f"cont_capacity.steps={ramp}",
        f"disc_capacity.steps={ramp}",
        f"cont_capacity.c_max={args.cont_max}",
        f"disc_capacity.c_max={args.disc_max}",
        f"cont_gamma={args.gamma}",
        f"disc_gamma={args.gamma}",
        'dataset_options={"source": "procedural", "label_factor": "shape"}',
        "train.figures_every=0",
        f"train.checkpoint_every={max(1, args.steps // 5)}",
        "train.log_every=100",
    ]
    cmd = [sys.executable, "-m", "latentkit", "sweep", str(ROOT / ARMS[arm]), "--seeds", args.seeds,
           "--steps", str(args.steps), "--out", str(Path(args.out) / arm), "--jobs", str(args.jobs)]
    for s in sets:
        cmd += ["--set", s]
    for metric in ("factorvae", "mig", "accuracy", "reconstruction"):
        cmd += ["--metric", metric]
    cmd += ["--max-images", str(args.eval_images)]  # accuracy and reconstruction: a fixed random subset
    # FactorVAE score: fewer votes than the protocol's 10,000 / 5,000 (each encodes 64 images; the full count takes
    # ~5 min per run on 2 cores); 2,000 evaluation votes give a standard error of about 1 point.
    cmd += ["--option", f"factorvae.num_train={args.votes[0]}", "--option", f"factorvae.num_eval={args.votes[1]}"]
    return cmd


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def summarise(out: Path, arms: list[str], args: argparse.Namespace) -> dict:
    steps = args.steps
    result: dict = {"steps": steps, "gamma": args.gamma, "cont_max": args.cont_max, "disc_max": args.disc_max,
                    "ramp_steps": ramp_steps(args), "arms": {}}
    lines = [
        f"Procedural dSprites, {steps:,} steps of 64 per run; γ = {args.gamma:g}; capacities 0 → {args.cont_max:g} "
        f"(continuous) and 0 → {args.disc_max:g} nats (discrete) over {ramp_steps(args):,} steps; mean ± sd over "
        f"seeds, then each seed.",
        "",
        "| objective | runs | " + " | ".join(METRICS.values()) + " | wall min / run |",
        "| --- | --- |" + " ---: |" * (len(METRICS) + 1),
    ]
    per_seed = ["", "| objective | seed | " + " | ".join(METRICS.values()) + " |", "| --- | --- |" + " ---: |" * len(METRICS)]
    for arm in arms:
        rows = read_rows(out / arm)
        ok = [r for r in rows if r["status"] == "ok"]
        values = {k: [float(r[k]) for r in ok if r.get(k)] for k in METRICS}
        minutes = [float(r["seconds"]) / 60 for r in ok]
        result["arms"][arm] = {"runs": len(rows), "ok": len(ok), "per_seed": ok, "minutes": minutes}
        lines.append(f"| {arm} | {len(ok)}/{len(rows)} | " + " | ".join(_cell(values[k]) for k in METRICS)
                     + f" | {statistics.fmean(minutes) if minutes else math.nan:.1f} |")
        for r in ok:
            per_seed.append(f"| {arm} | {r['seed']} | " + " | ".join(
                f"{float(r[k]):.3f}" if r.get(k) else "—" for k in METRICS) + " |")
    text = "\n".join(lines + per_seed) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return {"markdown": text, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="runs/compare-tc")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (each gets CPUs / jobs threads)")
    parser.add_argument("--gamma", type=float, default=30.0, help="γ of both channels (the paper's dSprites: 150)")
    parser.add_argument("--cont-max", type=float, default=10.0, help="continuous capacity target (paper: 40)")
    parser.add_argument("--disc-max", type=float, default=1.1, help="discrete capacity target (paper: 1.1)")
    parser.add_argument("--ramp-fraction", type=float, default=0.6,
                        help=f"capacities ramp over this fraction of --steps (paper: {PAPER_RAMP_FRACTION:.3f})")
    parser.add_argument("--eval-images", type=int, default=50_000,
                        help="images (a fixed random subset of the 737,280) for shape accuracy and reconstruction")
    parser.add_argument("--votes", type=lambda t: tuple(int(v) for v in t.split(",")), default=(4000, 2000),
                        help="FactorVAE score: training and evaluation votes (default 4000,2000; the protocol 10000,5000)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {list(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for arm in arms:
        start = time.monotonic()
        cmd = sweep_command(arm, args)
        print(f"== {arm}: {' '.join(cmd)}", flush=True)
        code = subprocess.call(cmd)
        print(f"== {arm}: exit {code} after {(time.monotonic() - start) / 60:.1f} min", flush=True)
    print(summarise(out, arms, args)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
