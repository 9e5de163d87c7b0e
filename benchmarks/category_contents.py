"""What each category of a discrete code holds: the labels behind every category, on a labelled test set.

The JointVAE paper's Appendix E: with fewer categories than digits, similar digits share one (4 and 9, 5 and 8); with
more, a digit's writing styles get categories of their own. This script makes that checkable for any run with one
discrete variable: it encodes the split (eval mode, argmax category), builds the category x label table and writes,
per category, its share of the images and its most frequent labels with their shares (at least 1%); then per label, the
categories that hold most of it. Beside it, the accuracy scores (majority, Hungarian, NMI) and ``samples-given-disc.0.png``
(``latentkit sample``) show what the categories draw.

    python benchmarks/category_contents.py runs/mnist-k5/seed-0 --data-root ../shared/data

For a data set with a factor grid (dSprites), ``--factors`` asks instead which *factor* the categories follow: it draws
images uniformly from the grid and writes, per factor, the normalised mutual information between category and factor
value (factors with more than 8 values in quartile bins) and each category's distribution over the factor's values;
``evaluation/category-factors.png`` draws it: one row per category, about 10 of its images, then a bar chart per factor
of its distribution over the factor's values (NMI in the column titles, the category's share in the row label).

    python benchmarks/category_contents.py runs/compare-dsprites-fixed/jointvae/seed-0 --factors

``--styles`` adds, for every label spread over several categories (each holding at least 15% of it), the median slant
and ink of the label's images in each: slant is how far the strokes drift sideways per row down the image (the
intensity-weighted covariance of column and row over the variance of the row; 0 upright, negative leaning right) and
ink the sum of the pixel values (stroke width and length). A code that splits a digit by handwriting style shows it
here.

    python benchmarks/category_contents.py runs/levers/paper/seed-0 --data-root ../shared/data --styles

``--grid`` draws it: ``evaluation/category-grid-SPLIT.png``, one row per category of randomly chosen images the code
puts there, rows ordered by their most frequent label and captioned with it and its share of the category.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentkit.assembly.checkpoint import load_model, resolve_checkpoint  # noqa: E402
from latentkit.assembly.datasets import as_component, build_provider  # noqa: E402
from latentkit.data.provider import as_float_batch  # noqa: E402
from latentkit.metrics.accuracy import cluster_accuracy, contingency_table  # noqa: E402
from latentkit.metrics.base import ModelRepresentation  # noqa: E402
from latentkit.metrics.correlation import sample_correlation_points  # noqa: E402
from latentkit.viz.images import grid_array, image_grid, save_png  # noqa: E402
from plugins.metrics import encode_categories  # noqa: E402


def describe(table: np.ndarray, clusters: np.ndarray, labels: np.ndarray, top: int = 3) -> dict:
    total = table.sum()
    per_category = []
    for i, c in enumerate(clusters):
        row = table[i]
        order = np.argsort(-row)[:top]
        per_category.append({"category": int(c), "share": float(row.sum() / total),
                             "labels": [(int(labels[j]), float(row[j] / row.sum())) for j in order if row[j] >= 0.01 * row.sum()]})
    per_label = []
    for j, lab in enumerate(labels):
        col = table[:, j]
        order = np.argsort(-col)[:top]
        per_label.append({"label": int(lab), "categories": [(int(clusters[i]), float(col[i] / col.sum()))
                                                            for i in order if col[i] >= 0.01 * col.sum()]})
    return {"per_category": per_category, "per_label": per_label}


def markdown(result: dict, scores: dict) -> str:
    lines = [f"Accuracy: majority {scores['majority']:.3f}, Hungarian {scores['hungarian']:.3f}, NMI {scores['nmi']:.3f}"
             f" ({scores['n_clusters_used']} categories used).", "",
             "| category | images | labels (share of the category) |", "| ---: | ---: | --- |"]
    for c in sorted(result["per_category"], key=lambda c: -c["share"]):
        labs = ", ".join(f"{lab} ({share:.0%})" for lab, share in c["labels"])
        lines.append(f"| {c['category']} | {c['share']:.1%} | {labs} |")
    lines += ["", "| label | categories (share of the label) |", "| ---: | --- |"]
    for lab in result["per_label"]:
        cats = ", ".join(f"{c} ({share:.0%})" for c, share in lab["categories"])
        lines.append(f"| {lab['label']} | {cats} |")
    return "\n".join(lines) + "\n"


def slant_and_ink(images) -> tuple[np.ndarray, np.ndarray]:
    """Per image of ``images`` (N, 1, H, W; uint8 or in [0, 1]): the slant (column drift per row about the centre of
    mass) and the ink (the sum of the pixel values in [0, 1])."""
    import torch

    x = as_float_batch(images)[:, 0]
    h, w = x.shape[1:]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ink = x.sum((1, 2)).clamp_min(1e-8)
    dr = rows[None] - ((x * rows).sum((1, 2)) / ink)[:, None, None]
    dc = cols[None] - ((x * cols).sum((1, 2)) / ink)[:, None, None]
    slant = (x * dc * dr).sum((1, 2)) / (x * dr * dr).sum((1, 2)).clamp_min(1e-8)
    return slant.numpy(), ink.numpy()


def style_splits(clusters: np.ndarray, labels: np.ndarray, slant: np.ndarray, ink: np.ndarray, share: float = 0.15) -> str:
    """Markdown: for each label spread over several categories, the median slant and ink of its images in each."""
    lines = ["| label | category (share of the label): median slant, median ink |", "| ---: | --- |"]
    for label in np.unique(labels):
        mine = labels == label
        cats, counts = np.unique(clusters[mine], return_counts=True)
        big = [(c, n) for c, n in zip(cats, counts) if n >= share * mine.sum()]
        if len(big) > 1:
            cells = "; ".join(
                f"{c} ({n / mine.sum():.0%}): {np.median(slant[mine & (clusters == c)]):+.2f}, "
                f"{np.median(ink[mine & (clusters == c)]):.0f}" for c, n in big
            )
            lines.append(f"| {label} | {cells} |")
    return "\n".join(lines) + "\n"


def category_rows(clusters: np.ndarray, labels: np.ndarray, per_row: int = 12, seed: int = 0) -> list[dict]:
    """Per category: up to ``per_row`` indices of images it holds (drawn at random), its most frequent label and that
    label's share of it; ordered by that label, then by the category's size, so a clean code reads 0, 1, ..., 9."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        values, counts = np.unique(labels[members], return_counts=True)
        top = int(np.argmax(counts))
        rows.append({"category": int(c), "label": int(values[top]), "share": float(counts[top] / len(members)),
                     "size": len(members),
                     "indices": rng.choice(members, size=min(per_row, len(members)), replace=False)})
    return sorted(rows, key=lambda r: (r["label"], -r["size"]))


def draw_category_grid(images, rows: list[dict], title: str, path: Path) -> Path:
    """One row of images per entry of :func:`category_rows`, labelled "category: label (share)" (the figures' own
    grid and atomic PNG writer, as ``latentkit sample`` uses)."""
    import torch

    x = as_float_batch(images)
    grid = image_grid([x[torch.as_tensor(r["indices"])] for r in rows], title=title, scale=2,
                      row_labels=[f"{r['category']}: {r['label']} ({r['share']:.0%})" for r in rows])
    return save_png(grid, path)


def factor_bins(v: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bin indices of a factor's values and the bins' headings: quartile bins (q1 … q4) for a factor with more than 8
    values, else one bin per value."""
    levels = np.unique(v)
    if len(levels) > 8:
        edges = np.quantile(v, [0.25, 0.5, 0.75])
        return np.searchsorted(edges, v, side="right"), ["q1", "q2", "q3", "q4"]
    return np.searchsorted(levels, v), [f"{x:.3g}" for x in levels]


def factor_tables(category: np.ndarray, values: np.ndarray, factor_names) -> dict:
    """What ``--factors`` reports, as numbers: ``categories`` (the categories used, ascending), ``shares`` (each one's
    share of the images) and per factor its ``name``, bin ``heads``, ``nmi`` (category vs. binned value) and ``table``
    (categories x bins: each category's distribution over the bins; rows sum to 1)."""
    from sklearn.metrics import normalized_mutual_info_score

    categories = np.unique(category)
    factors = []
    for j, name in enumerate(factor_names):
        bins, heads = factor_bins(values[:, j])
        table = np.stack([np.bincount(bins[category == c], minlength=len(heads)) / (category == c).sum()
                          for c in categories])
        factors.append({"name": name, "heads": heads, "nmi": float(normalized_mutual_info_score(bins, category)),
                        "table": table})
    return {"categories": categories, "shares": np.array([(category == c).mean() for c in categories]),
            "factors": factors}


def factor_markdown(tables: dict, points: int) -> str:
    lines = [(f"{points:,} images drawn uniformly from the grid. Per factor: NMI between category and factor value, "
              "then each category's share of the images and its distribution over the factor's values (quartile bins "
              "for factors with more than 8 values)."), ""]
    for factor in tables["factors"]:
        heads = factor["heads"]
        lines += [f"**{factor['name']}**: NMI {factor['nmi']:.3f}", "", "| category | images | " + " | ".join(heads) + " |",
                  "| ---: | ---: |" + " ---: |" * len(heads)]
        for c, share, row in zip(tables["categories"], tables["shares"], factor["table"]):
            lines.append(f"| {c} | {share:.1%} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
        lines.append("")
    return "\n".join(lines)


def factor_points(run: str, ground_truth, model, points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(category, factor values, factor class indices)`` of the ``points`` images the correlation metric draws from
    the grid (:func:`sample_correlation_points`, seed ``seed``); the class indices are drawn again from a generator of
    the same seed, so that :func:`category_samples` renders exactly the images that were encoded."""
    import torch

    codes, is_discrete, values = sample_correlation_points(ground_truth, ModelRepresentation(model), points, seed=seed)
    if is_discrete.sum() != 1:
        raise SystemExit(f"{run} has {int(is_discrete.sum())} discrete variables; this script reads runs with exactly one")
    factors = ground_truth.sample_factors(points, torch.Generator().manual_seed(seed))
    if not np.array_equal(ground_truth.factor_values(factors).numpy(), values):
        raise RuntimeError("the factors drawn again differ from the ones the metric drew; the picture would not match")
    return codes[:, is_discrete][:, 0].astype(int), values, factors


def category_samples(category: np.ndarray, factors, ground_truth, per_row: int = 10, seed: int = 0) -> list:
    """Per category used (ascending): up to ``per_row`` of its images, chosen at random and rendered from their
    factors, as floats in [0, 1]."""
    import torch

    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(category):
        members = np.flatnonzero(category == c)
        picked = np.sort(rng.choice(members, size=min(per_row, len(members)), replace=False))
        rows.append(as_float_batch(ground_truth.images(factors[torch.as_tensor(picked)])))
    return rows


#: inches per category row, for the title and column headings, and per factor's bar chart in the factor picture
FACTOR_ROW_INCHES, FACTOR_HEAD_INCHES, FACTOR_FOOT_INCHES, FACTOR_BAR_INCHES = 0.8, 0.9, 0.35, 1.4
FACTOR_DPI = 100


def factor_figure_inches(n_categories: int, n_factors: int, per_row: int = 10) -> tuple[float, float]:
    """Width and height of the factor picture: one row per category, so its height grows with their number."""
    return (1.0 + per_row * FACTOR_ROW_INCHES * 0.95 + n_factors * FACTOR_BAR_INCHES,
            FACTOR_HEAD_INCHES + FACTOR_FOOT_INCHES + n_categories * FACTOR_ROW_INCHES)


def factor_figure(tables: dict, samples: list, title: str, per_row: int = 10):
    """One row per category: a strip of its images (labelled "category: share of the images"), then per factor a bar
    chart of its distribution over the factor's bins (the rows of :func:`factor_tables`, column titled with the NMI)."""
    from matplotlib.figure import Figure

    n, factors = len(tables["categories"]), tables["factors"]
    width, height = factor_figure_inches(n, len(factors), per_row)
    fig = Figure(figsize=(width, height))
    strip = per_row * FACTOR_ROW_INCHES * 0.95
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.1 / width, top=1 - FACTOR_HEAD_INCHES / height,
                        bottom=FACTOR_FOOT_INCHES / height, hspace=0.25, wspace=0.35)
    axes = fig.subplots(n, 1 + len(factors), squeeze=False,
                        gridspec_kw={"width_ratios": [strip] + [FACTOR_BAR_INCHES - 0.35] * len(factors)})
    for r, (c, share) in enumerate(zip(tables["categories"], tables["shares"])):
        ax = axes[r, 0]
        ax.imshow(grid_array([samples[r]])[:, :, 0], cmap="gray", vmin=0, vmax=255, aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"{c}: {share:.1%}", rotation=0, ha="right", va="center", fontsize=9)
        for k, factor in enumerate(factors):
            ax = axes[r, 1 + k]
            heads = factor["heads"]
            ax.bar(np.arange(len(heads)), factor["table"][r], color="tab:blue", width=0.8)
            ax.set_ylim(0, 1)
            ax.set_yticks([0, 1] if k == 0 else [])
            ax.tick_params(labelsize=6, length=2)
            ax.set_xticks(np.arange(len(heads)))
            ax.set_xticklabels(heads if r == n - 1 else [], fontsize=6, rotation=90 if len(heads) > 4 else 0)
            if r == 0:
                ax.set_title(f"{factor['name']}\nNMI {factor['nmi']:.3f}", fontsize=8)
    axes[0, 0].set_title(f"{per_row} images per category", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def factor_contents(run: str, config: dict, model, data_root: str | None, points: int,
                    picture: Path | None = None) -> str:
    """Per factor of the grid: NMI(category, factor value) and each category's distribution over the factor's values;
    with ``picture``, also the PNG of :func:`factor_figure` there (its path ends the text)."""
    provider = build_provider(as_component(config["dataset"], "the checkpoint's dataset"))
    ground_truth = provider.ground_truth(data_root or config.get("data_root"))
    if ground_truth is None:
        raise SystemExit(f"the data set of {run} has no factor grid; drop --factors to read the labels instead")
    category, values, factors = factor_points(run, ground_truth, model, points)
    tables = factor_tables(category, values, ground_truth.factor_names)
    text = factor_markdown(tables, points)
    if picture is not None:
        from latentkit.viz.plots import save_figure

        fig = factor_figure(tables, category_samples(category, factors, ground_truth),
                            f"{run}: what each category holds ({points:,} images drawn from the grid)")
        save_figure(fig, picture, FACTOR_DPI)
        text += f"\nImages and factor distributions per category: {picture}\n"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory or checkpoint folder with one discrete variable")
    parser.add_argument("--data-root", help="folder holding the data sets (default: the run's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--factors", action="store_true",
                        help="which factor of a factor grid the categories follow (markdown and a PNG)")
    parser.add_argument("--points", type=int, default=10_000, help="images drawn from the grid with --factors")
    parser.add_argument("--styles", action="store_true", help="slant and ink of each label's images per category")
    parser.add_argument("--grid", action="store_true", help="a PNG of random images per category, by majority label")
    args = parser.parse_args(argv)
    model, config = load_model(resolve_checkpoint(args.run))
    out = Path(args.run) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    if args.factors:
        text = factor_contents(args.run, config, model, args.data_root, args.points, out / "category-factors.png")
        (out / "category-factors.md").write_text(text)
        print(text)
        return 0
    provider = build_provider(as_component(config["dataset"], "the checkpoint's dataset"))
    data = provider.load(args.data_root or config.get("data_root"), args.split)
    cats, sizes = encode_categories(model, data)
    if len(sizes) != 1:
        raise SystemExit(f"{args.run} has {len(sizes)} discrete variables; this script reads runs with exactly one")
    clusters = cats[:, 0].numpy()
    table, cluster_values, label_values = contingency_table(clusters, data.labels)
    result = describe(table, cluster_values, label_values)
    scores = cluster_accuracy(clusters, data.labels)
    text = markdown(result, scores)
    if args.styles:
        slant, ink = slant_and_ink(data.images)
        text += "\nLabels split over categories, by handwriting style:\n\n"
        text += style_splits(clusters, np.asarray(data.labels), slant, ink)
    if args.grid:
        grid = out / f"category-grid-{args.split}.png"
        draw_category_grid(data.images, category_rows(clusters, np.asarray(data.labels)),
                           f"{args.run}: Hungarian {scores['hungarian']:.3f} ({args.split} set)", grid)
        text += f"\nImages per category: {grid}\n"
    (out / f"category-contents-{args.split}.md").write_text(text)
    (out / f"category-contents-{args.split}.json").write_text(json.dumps({**result, "scores": scores}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
