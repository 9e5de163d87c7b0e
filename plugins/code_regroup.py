"""Over-cluster, then merge by the augmentation graph: a partition that a split-and-merge optimum cannot hold.

Why: a discrete code trained for invariance can settle where one class is split in two by style and two classes share
one category, and every head on the same trunk settles there with it (issue 21: MNIST tuning seeds 101 and 102, code
and heads at 0.54–0.86). Yet the trunk's features still separate the classes finely, in clusters finer than the
classes. What the trunk cannot do is *group* the clusters, and that is where the augmentation prior
helps: an image and its moved view (the same transforms as the consistency term) fall into clusters of the same class
far more often than into clusters of another, so the clusters of one class form a well-connected block of the graph
whose edge weights count those moves. Cutting that graph into K parts (normalised spectral clustering) and fitting a
head to the parts gave 0.974–0.986 on the failed runs' checkpoints (``benchmarks/regroup_probe.py``, docs/results.md).
No label is used: only the features, the
augmentations already assumed to keep the class, and K.

The functions here are that computation on fixed features; :mod:`code_heads` turns the partition into a head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

#: Lloyd iterations of the k-means (features of one trunk: it converges in far fewer)
KMEANS_ITERATIONS = 25
#: the refitted head's L2 penalty (on standardised features): separable banks must not give unbounded logits
WEIGHT_DECAY = 1e-3
#: restarts of the k-means of the features (the best is kept)
FEATURE_RESTARTS = 4
#: restarts of the k-means that groups the spectral embedding (tiny: K_over points in K dimensions)
EMBEDDING_RESTARTS = 10


def kmeans(
    points: Tensor, k: int, generator: torch.Generator, iterations: int = KMEANS_ITERATIONS, restarts: int = 1,
) -> Tensor:
    """``(k, D)`` centroids of ``points`` (N, D): k-means++ seeding, then Lloyd's iterations; of ``restarts`` runs,
    the one with the lowest sum of squared distances (one run can leave two clusters in one centroid). Float32."""
    points = points.detach().float()
    runs = [_kmeans_once(points, k, generator, iterations) for _ in range(restarts)]
    return min(runs, key=lambda centres: float(torch.cdist(points, centres).min(1).values.pow(2).sum()))


def _kmeans_once(points: Tensor, k: int, generator: torch.Generator, iterations: int) -> Tensor:
    n = points.shape[0]
    if n < k:
        raise ValueError(f"k-means of {n} points into {k} clusters: need at least as many points as clusters")
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [points[first]]
    nearest = (points - points[first]).pow(2).sum(1)
    for _ in range(1, k):
        weights = nearest.clamp_min(0)
        total = float(weights.sum())
        index = int(torch.multinomial(weights / total, 1, generator=generator)) if total > 0 else int(
            torch.randint(n, (1,), generator=generator))
        centroids.append(points[index])
        nearest = torch.minimum(nearest, (points - points[index]).pow(2).sum(1))
    centres = torch.stack(centroids)
    for _ in range(iterations):
        labels = assign(points, centres)
        sums = torch.zeros_like(centres).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=k).float().unsqueeze(1)
        empty = counts.squeeze(1) == 0
        centres = torch.where(empty.unsqueeze(1), centres, sums / counts.clamp_min(1))
    return centres


def assign(points: Tensor, centres: Tensor) -> Tensor:
    """The index of each point's nearest centre."""
    return torch.cdist(points.float(), centres.float()).argmin(1)


def transition_counts(labels: Tensor, moved_labels: Tensor, k: int) -> Tensor:
    """``(k, k)``: how many images of cluster i had their moved view in cluster j."""
    flat = labels.long() * k + moved_labels.long()
    return torch.bincount(flat, minlength=k * k).view(k, k).double()


def spectral_groups(transitions: Tensor, groups: int, generator: torch.Generator) -> Tensor:
    """Each cluster's group: the normalised spectral clustering (Ng, Jordan & Weiss) of the symmetrised graph of moves
    between clusters, self-moves left out. Clusters no move ever left or reached get a group like any other."""
    a = (transitions + transitions.T).double().clone()
    a.fill_diagonal_(0)
    a = a + 1e-9  # keeps every degree positive, so an isolated cluster does not give a division by zero
    degree = a.sum(1)
    scaled = a / degree.sqrt().unsqueeze(1) / degree.sqrt().unsqueeze(0)
    values, vectors = torch.linalg.eigh(scaled)  # ascending
    embedding = vectors[:, -groups:]
    embedding = embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return assign(embedding.float(), kmeans(embedding.float(), groups, generator, restarts=EMBEDDING_RESTARTS))


def within_share(transitions: Tensor, cluster_groups: Tensor) -> float:
    """The share of moves that stay within a group: how well the grouping agrees with the augmentation prior."""
    same = cluster_groups.unsqueeze(1) == cluster_groups.unsqueeze(0)
    total = float(transitions.sum())
    return float(transitions[same].sum()) / total if total else float("nan")


def regroup(
    features: Tensor, moved_features: Sequence[Tensor], clusters: int, groups: int, generator: torch.Generator,
) -> tuple[Tensor, float]:
    """The group of every row of ``features`` and the share of moves kept within a group.

    ``moved_features``: the features of the same images moved (one tensor per draw of the transforms)."""
    centres = kmeans(features, clusters, generator, restarts=FEATURE_RESTARTS)
    labels = assign(features, centres)
    counts = sum(transition_counts(labels, assign(moved, centres), clusters) for moved in moved_features)
    cluster_groups = spectral_groups(counts, groups, generator)
    return cluster_groups[labels], within_share(counts, cluster_groups)


def fit_linear(
    layer: torch.nn.Linear, features: Tensor, labels: Tensor, moved_features: Sequence[Tensor] = (), steps: int = 300,
    lr: float = 0.05,
) -> float:
    """Sets ``layer``'s weights to a softmax regression of ``labels`` on ``features`` and on the moved views' features
    (each view keeps its image's label: the head is fitted to be invariant, as the consistency term trains it), then
    softens the logits by the temperature (1 to 10) that fits the moved views best, so the head is no more confident
    than the augmentations allow — an over-confident head would pay for it in its consistency loss and never be
    chosen. Returns the share of the images whose label the head gives. The layer's parameters keep their identity (the run's
    optimiser holds them)."""
    x = torch.cat([features, *moved_features]).detach().float()
    target = labels.long().repeat(1 + len(moved_features))
    # centred and divided by one overall scale, not per feature: a ReLU feature that hardly varies must not get a
    # weight that blows its noise up, so the fitted weights stay of the features' own size
    mean = x.mean(0)
    scale = float((x - mean).pow(2).mean().sqrt()) + 1e-12
    z = (x - mean) / scale
    weight = torch.zeros(layer.out_features, x.shape[1], requires_grad=True)
    bias = torch.zeros(layer.out_features, requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=lr, weight_decay=WEIGHT_DECAY)
    with torch.enable_grad():
        for _ in range(steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, target)
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        logits = z @ weight.T + bias
        moved_rows = slice(features.shape[0], None) if moved_features else slice(None)
        temperatures = torch.logspace(0.0, 1.0, 21)  # only ever softened: a sharper head than fitted gains nothing
        costs = [float(torch.nn.functional.cross_entropy(logits[moved_rows] / t, target[moved_rows]))
                 for t in temperatures]
        temperature = float(temperatures[int(torch.tensor(costs).argmin())])
        w = weight / scale / temperature  # undo the standardisation: w·(x − m)/s + b = (w/s)·x + (b − w·m/s)
        layer.weight.copy_(w.to(layer.weight))
        layer.bias.copy_((bias / temperature - w @ mean).to(layer.bias))
        own = layer(features.float().to(layer.weight)).argmax(1).cpu()
        return float((own == labels.long().cpu()).float().mean())


def encode_features(encode: Callable[[Tensor], Tensor], images: Tensor, chunk: int = 1024) -> Tensor:
    """Features of ``images`` in chunks (``encode`` returns one chunk's features), float32 on the CPU."""
    with torch.no_grad():
        return torch.cat([encode(images[i: i + chunk]).float().cpu() for i in range(0, images.shape[0], chunk)])
