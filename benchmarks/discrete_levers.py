"""Measure each lever on the discrete code against the paper recipe: one table of accuracy, reconstruction and wall time.

    python benchmarks/discrete_levers.py --arms paper,marginal,augment --seeds 0,1 --steps 25000 --data-root ../shared/data
    python benchmarks/discrete_levers.py --summarise-only          # the table of every arm trained so far

Every arm is ``recipes/jointvae_mnist.py`` with a few ``--set`` overrides (listed in the table, so each row says
exactly what it trained); ``benchmarks/reproduce_mnist.py`` trains and evaluates its seeds into ``OUT/ARM/seed-N``
(restartable: a complete run is only evaluated, a partial one resumed). ``--steps`` shortens every arm alike for a
screen (the capacity ramps are the recipe's, 25,000 steps, so a screen of 25,000 steps ends where the ramps end); the
winning arm is then trained at the recipe's full 93,800 steps. Arms run one after another in this process: for two CPU
cores, start two processes on disjoint arms.

The table (``OUT/levers.md`` and ``.json``): per arm, the test-set Hungarian accuracy of the discrete code (median,
range, every seed), the median test BCE per image and its change against the ``paper`` arm of the same budget, and
the median training wall time; ``OUT/levers.png`` draws it: every seed's accuracy as a dot per arm, the median as a
bar, arms ordered by median, each labelled with its BCE change against the paper arm.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "recipes/jointvae_mnist.py"


def _code(**options) -> list[str]:
    return ["objective=jointvae_code", "objective_options=" + json.dumps(options)]


MIXTURE = ["cont_family=gaussian_mixture", 'cont_options={"components": 10}']
#: larger moves plus slant and stroke width, the nuisances the paper recipe's code splits digits by
STRONG = {"rotate": 15.0, "scale": 0.15, "shift": 0.1, "shear": 0.3, "stroke": 0.5}

#: arm name -> recipe overrides (``--set`` assignments) on the paper recipe
ARMS: dict[str, list[str]] = {
    "paper": [],
    "marginal": _code(marginal_weight=10.0, warmup=5000),
    "balance": _code(balance_weight=10.0),
    "augment": _code(augment_weight=30.0),
    "augment+balance": _code(augment_weight=30.0, balance_weight=10.0),
    "augment+marginal": _code(augment_weight=30.0, marginal_weight=10.0, warmup=5000),
    "strong-augment+balance": _code(augment_weight=30.0, balance_weight=10.0, augment=STRONG),
    "strong-augment+balance-heavy": _code(augment_weight=100.0, balance_weight=30.0, augment=STRONG),
    # the winner's ablations: without its balance term, and with the marginal-entropy term in its place
    "strong-augment-heavy": _code(augment_weight=100.0, augment=STRONG),
    "strong-augment+marginal-heavy": _code(augment_weight=100.0, marginal_weight=30.0, augment=STRONG),
    "mutual-information": _code(mutual_information_weight=30.0, augment=STRONG),
    "mutual-information-heavy": _code(mutual_information_weight=100.0, augment=STRONG),
    "anneal": ['disc_options={"anneal": {"start": 1.0, "end": 0.5, "steps": 25000}}'],
    "hard": ['disc_options={"hard": true}'],
    "mixture": MIXTURE,
    "mixture+assignment": MIXTURE + _code(assignment_weight=10.0),
    "mixture+balance": MIXTURE + _code(assignment_weight=10.0, balance_weight=10.0),
}


def run_arm(name: str, args: argparse.Namespace) -> None:
    cmd = [sys.executable, "benchmarks/reproduce_mnist.py", "--seeds", args.seeds, "--out", str(Path(args.out) / name)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    for item in ARMS[name]:
        cmd += ["--set", item]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=False)


def summarise(out: Path) -> str:
    arms = {}
    for name in ARMS:
        path = out / name / "summary.json"
        if path.is_file():
            arms[name] = json.loads(path.read_text())["seeds"]
    if not arms:
        return f"no arm of {sorted(ARMS)} has a summary under {out} yet\n"
    paper_bce = statistics.median(r["bce_median"] for r in arms["paper"].values()) if "paper" in arms else math.nan
    lines = ["| arm | seeds | Hungarian median | range | per seed | median BCE | vs paper | wall (min) | overrides |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    table = {}
    for name, seeds in arms.items():
        acc = [seeds[s]["hungarian"] for s in sorted(seeds, key=int)]
        bce = statistics.median(r["bce_median"] for r in seeds.values())
        wall = statistics.median(r["wall_min"] for r in seeds.values())
        change = (bce / paper_bce - 1) * 100 if not math.isnan(paper_bce) else math.nan
        table[name] = {"seeds": sorted(int(s) for s in seeds), "hungarian": acc, "median": statistics.median(acc),
                       "min": min(acc), "max": max(acc), "bce_median": bce, "bce_change_pct": change,
                       "wall_min": wall, "overrides": ARMS[name]}
        overrides = "; ".join(f"`{o}`" for o in ARMS[name]) or "(the recipe as published)"
        lines.append(
            f"| {name} | {len(acc)} | {table[name]['median']:.3f} | {min(acc):.3f}–{max(acc):.3f} | "
            f"{' / '.join(f'{a:.3f}' for a in acc)} | {bce:.1f} | "
            f"{'—' if math.isnan(change) else f'{change:+.1f}%'} | {wall:.1f} | {overrides} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "levers.md").write_text(text)
    (out / "levers.json").write_text(json.dumps(table, indent=2) + "\n")
    save_lever_chart(table, out / "levers.png")
    return text


def save_lever_chart(table: dict[str, dict], path: Path) -> Path:
    """Dot plot of the table: one row per arm (best median on top), a dot per seed, a bar at the median.

    Dots rather than bars because a screen has one to three seeds per arm: the reader should see how few there are
    and how far apart they fall, which a mean with an error bar would hide.
    """
    from matplotlib.figure import Figure

    from latentkit.viz.plots import save_figure

    names = sorted(table, key=lambda n: table[n]["median"])
    fig = Figure(figsize=(7.5, 0.42 * len(names) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    for row, name in enumerate(names):
        entry = table[name]
        colour = "tab:grey" if name == "paper" else "tab:blue"
        ax.scatter(entry["hungarian"], [row] * len(entry["hungarian"]), s=22, color=colour, alpha=0.8, zorder=3)
        ax.plot([entry["median"]] * 2, [row - 0.3, row + 0.3], color=colour, linewidth=2, zorder=2)
        change = entry["bce_change_pct"]
        label = "BCE —" if name == "paper" or math.isnan(change) else f"BCE {change:+.1f}%"
        ax.annotate(f"{label}, n={len(entry['hungarian'])}", (1.0, row), xycoords=("axes fraction", "data"),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    if "paper" in table:
        ax.axvline(table["paper"]["median"], color="tab:grey", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0.4, 1.0)
    ax.set_xlabel("test-set Hungarian accuracy of the discrete code (dot: one seed; bar: median)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, help="total steps of every arm (default: the recipe's 93,800)")
    parser.add_argument("--out", default="runs/levers")
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default $LATENTKIT_DATA or ./data)")
    parser.add_argument("--summarise-only", action="store_true", help="tabulate what exists, train nothing")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        for name in arms:
            run_arm(name, args)
    print(summarise(out))


if __name__ == "__main__":
    main()
