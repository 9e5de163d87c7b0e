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
value (factors with more than 8 values in quartile bins) and each category's distribution over the factor's values.

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
from latentkit.viz.images import image_grid, save_png  # noqa: E402
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


def factor_contents(run: str, config: dict, model, data_root: str | None, points: int) -> str:
    """Per factor of the grid: NMI(category, factor value) and each category's distribution over the factor's values."""
    from sklearn.metrics import normalized_mutual_info_score

    provider = build_provider(as_component(config["dataset"], "the checkpoint's dataset"))
    ground_truth = provider.ground_truth(data_root or config.get("data_root"))
    if ground_truth is None:
        raise SystemExit(f"the data set of {run} has no factor grid; drop --factors to read the labels instead")
    codes, is_discrete, values = sample_correlation_points(ground_truth, ModelRepresentation(model), points)
    if is_discrete.sum() != 1:
        raise SystemExit(f"{run} has {int(is_discrete.sum())} discrete variables; this script reads runs with exactly one")
    category = codes[:, is_discrete][:, 0].astype(int)
    lines = [f"{points:,} images drawn uniformly from the grid. Per factor: NMI between category and factor value, then "
             "each category's share of the images and its distribution over the factor's values (quartile bins for "
             "factors with more than 8 values).", ""]
    for j, name in enumerate(ground_truth.factor_names):
        v = values[:, j]
        levels = np.unique(v)
        if len(levels) > 8:
            edges = np.quantile(v, [0.25, 0.5, 0.75])
            bins, heads = np.searchsorted(edges, v, side="right"), ["q1", "q2", "q3", "q4"]
        else:
            bins, heads = np.searchsorted(levels, v), [f"{x:.3g}" for x in levels]
        nmi = normalized_mutual_info_score(bins, category)
        lines += [f"**{name}**: NMI {nmi:.3f}", "", "| category | images | " + " | ".join(heads) + " |",
                  "| ---: | ---: |" + " ---: |" * len(heads)]
        for c in np.unique(category):
            row = np.bincount(bins[category == c], minlength=len(heads)) / (category == c).sum()
            lines.append(f"| {c} | {(category == c).mean():.1%} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory or checkpoint folder with one discrete variable")
    parser.add_argument("--data-root", help="folder holding the data sets (default: the run's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--factors", action="store_true", help="which factor of a factor grid the categories follow")
    parser.add_argument("--points", type=int, default=10_000, help="images drawn from the grid with --factors")
    parser.add_argument("--styles", action="store_true", help="slant and ink of each label's images per category")
    parser.add_argument("--grid", action="store_true", help="a PNG of random images per category, by majority label")
    args = parser.parse_args()
    model, config = load_model(resolve_checkpoint(args.run))
    out = Path(args.run) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    if args.factors:
        text = factor_contents(args.run, config, model, args.data_root, args.points)
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
