"""Could regrouping rescue this code? Over-cluster a trained trunk's features and merge along the augmentation graph.

For a run of the ``jointvae_code`` objective with heads (e.g. ``recipes/jointvae_mnist_robust.py``), at any of its
checkpoints: takes ``--bank`` random training images, encodes them, clusters the encoder's last hidden features into
``--clusters`` clusters, moves each image ``--views`` times with the run's own ``augment`` transforms and merges the
clusters into K groups by the spectral cut of the graph of moves (``plugins/code_regroup.py``, exactly what
``regroup_every`` does in training), then fits a fresh linear head to the groups. Prints, on the labelled test split,
the Hungarian accuracy of the code, of each of the run's heads and of the regrouped head, with the share of moves that
stayed within a group — so a failed code (a split-and-merge optimum every head shares) can be checked for whether its
trunk still separates the classes. Labels are read only to score; the regrouping never sees them.

    python benchmarks/regroup_probe.py runs/tune28/robust-decay-control/seed-101/checkpoints/step-00015000 \\
        --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentkit.assembly.checkpoint import load_model, resolve_checkpoint  # noqa: E402
from latentkit.assembly.datasets import as_component, build_provider  # noqa: E402
from latentkit.data.provider import as_float_batch  # noqa: E402
from latentkit.metrics.accuracy import cluster_accuracy  # noqa: E402
from latentkit.train.checkpoints import read_tensors  # noqa: E402
from plugins.code_heads import FeatureTap, final_linear  # noqa: E402
from plugins.code_objective import DEFAULT_AUGMENT, random_affine  # noqa: E402
from plugins.metrics import encode_categories  # noqa: E402
from plugins.code_regroup import encode_features, fit_linear, regroup  # noqa: E402


def features_of(model: torch.nn.Module):
    """A function of a chunk of images giving the encoder's last hidden features — what the heads read (the same tap
    as in training)."""
    tap = FeatureTap(final_linear(model.encoder, model.latent.param_size))

    def run(chunk: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            model.encode(chunk)
        return tap.take(chunk.shape[0])

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint folder (or run directory) of a jointvae_code run with heads")
    parser.add_argument("--data-root", help="folder holding the data sets (default: the run's)")
    parser.add_argument("--bank", type=int, default=8192, help="training images regrouped (regroup_bank)")
    parser.add_argument("--clusters", type=int, default=0, help="clusters before merging (0: 4 per category)")
    parser.add_argument("--views", type=int, default=2, help="moved views per image (regroup_views)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = resolve_checkpoint(args.checkpoint)
    model, config = load_model(folder)
    model.eval()
    options = config["objective"]["options"]
    heads_file = folder / "objective.safetensors"
    if config["objective"]["name"] != "jointvae_code" or not heads_file.is_file():
        raise SystemExit(f"{folder} is not a jointvae_code run with heads (no objective.safetensors); train one with "
                         f"objective_options heads >= 2, e.g. recipes/jointvae_mnist_robust.py")
    state = read_tensors(heads_file)
    categories = int(state["heads.0.weight"].shape[0])
    clusters = args.clusters or 4 * categories
    augment = {**DEFAULT_AUGMENT, **options.get("augment", {})}
    provider = build_provider(as_component(config["dataset"], "the checkpoint's dataset"))
    root = args.data_root or config.get("data_root")
    train, test = provider.load(root, "train"), provider.load(root, "test")
    generator = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(train.images), generator=generator)[: args.bank]
    bank = as_float_batch(torch.as_tensor(train.images[pick]))
    encode = features_of(model)
    features = encode_features(encode, bank)
    moved = [encode_features(encode, random_affine(bank, generator, **augment)) for _ in range(args.views)]
    groups, within = regroup(features, moved, clusters, categories, generator)
    regrouped = torch.nn.Linear(features.shape[1], categories)
    fitted = fit_linear(regrouped, features, groups, moved)
    test_features = encode_features(encode, as_float_batch(torch.as_tensor(test.images)))
    labels = test.labels
    heads = sorted(int(k.split(".")[1]) for k in state if k.startswith("heads.") and k.endswith(".weight"))
    codes, _ = encode_categories(model, test)
    scores = {"code": cluster_accuracy(codes[:, 0].numpy(), labels)["hungarian"]}
    for j in heads:
        logits = test_features @ state[f"heads.{j}.weight"].float().T + state[f"heads.{j}.bias"].float()
        scores[f"head {j}"] = cluster_accuracy(logits.argmax(1).numpy(), labels)["hungarian"]
    with torch.no_grad():
        scores["regrouped"] = cluster_accuracy(regrouped(test_features).argmax(1).numpy(), labels)["hungarian"]
    result = {"checkpoint": str(folder), "bank": len(bank), "clusters": clusters, "views": args.views,
              "moves_within_groups": round(within, 4), "fit": round(fitted, 4),
              "teacher": int(state["teacher"]), "hungarian": {k: round(float(v), 4) for k, v in scores.items()}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
