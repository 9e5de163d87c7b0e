"""What each category of a discrete code holds: the labels behind every category, on a labelled test set.

The JointVAE paper's Appendix E: with fewer categories than digits, similar digits share one (4 and 9, 5 and 8); with
more, a digit's writing styles get categories of their own. This script makes that checkable for any run with one
discrete variable: it encodes the split (eval mode, argmax category), builds the category x label table and writes,
per category, its share of the images and its most frequent labels with their shares (at least 1%); then per label, the
categories that hold most of it. Beside it, the accuracy scores (majority, Hungarian, NMI) and ``samples-given-disc.0.png``
(``latentkit sample``) show what the categories draw.

    python benchmarks/category_contents.py runs/mnist-k5/seed-0 --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentkit.checkpoint import load_model, resolve_checkpoint  # noqa: E402
from latentkit.data.build import as_component, build_provider  # noqa: E402
from latentkit.metrics.accuracy import cluster_accuracy, contingency_table  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory or checkpoint folder with one discrete variable")
    parser.add_argument("--data-root", help="folder holding the data sets (default: the run's)")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    model, config = load_model(resolve_checkpoint(args.run))
    provider = build_provider(as_component(config["dataset"], "the checkpoint's dataset"))
    data = provider.load(args.data_root or config.get("data_root"), args.split)
    cats, sizes = encode_categories(model, data)
    if len(sizes) != 1:
        raise SystemExit(f"{args.run} has {len(sizes)} discrete variables; this script reads runs with exactly one")
    clusters = cats[:, 0].numpy()
    table, cluster_values, label_values = contingency_table(clusters, data.labels)
    result = describe(table, cluster_values, label_values)
    scores = cluster_accuracy(clusters, data.labels)
    out = Path(args.run) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result, scores)
    (out / f"category-contents-{args.split}.md").write_text(text)
    (out / f"category-contents-{args.split}.json").write_text(json.dumps({**result, "scores": scores}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
