"""Time the procedural dSprites: the whole 737,280-image grid at once, and images drawn lazily by index.

Run from the repository root (installed with ``pip install -e .``)::

    python benchmarks/bench_dsprites_generation.py [--threads N] [--repeat R] [--lazy-chunk C]

Prints seconds and images per second for :meth:`ProceduralDSprites.all_images` (target: under 30 s on 2 cores; into a
fresh tensor, as ``load()`` does, and into one already allocated) and for :meth:`ProceduralDSprites.images` over the
whole grid in chunks of random indices (the metrics' path). Needs about 7 GB of memory. The best of ``--repeat`` runs is reported; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from latentkit_plugins.procedural_dsprites import NUM_IMAGES, ProceduralDSprites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is reported")
    parser.add_argument("--lazy-chunk", type=int, default=8192, help="images per images() call in the lazy pass")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gt = ProceduralDSprites()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    first = _timed(gt.all_images)  # as a data set loads it: a fresh 3 GB tensor, first touched while drawing
    print(f"all_images, fresh output: {NUM_IMAGES} images in {first:.2f} s ({NUM_IMAGES / first:,.0f} images/s)")
    out = torch.zeros(NUM_IMAGES, 1, 64, 64, dtype=torch.uint8)  # touched once, outside the timing
    best = min(_timed(lambda: gt.all_images(out)) for _ in range(args.repeat))
    print(f"all_images into a given tensor: {NUM_IMAGES} images in {best:.2f} s ({NUM_IMAGES / best:,.0f} images/s)")

    order = torch.randperm(NUM_IMAGES, generator=torch.Generator().manual_seed(0))

    def lazy() -> None:
        for start in range(0, NUM_IMAGES, args.lazy_chunk):
            gt.images(gt.index_to_factors(order[start : start + args.lazy_chunk]))

    best = min(_timed(lazy) for _ in range(args.repeat))
    print(f"images() by random index, chunks of {args.lazy_chunk}: {NUM_IMAGES} images in {best:.2f} s "
          f"({NUM_IMAGES / best:,.0f} images/s)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
