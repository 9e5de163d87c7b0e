"""Batches as a pure function of the global step.

Epoch ``e`` visits the data in the order of a permutation seeded by ``(seed, e)``; step ``s`` (1-based, as the
original counts) takes the next slice. Because nothing depends on history, a resumed run draws exactly the batches an
uninterrupted one would, with no sampler state to save.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentkit.errors import DataError


class EpochSampler:
    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = False):
        if n <= 0:
            raise DataError("cannot train on an empty data set: it holds no samples")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.seed = seed
        self.steps_per_epoch = n // self.batch_size if drop_last else -(-n // self.batch_size)
        self._epoch = -1
        self._perm: Tensor | None = None

    def indices(self, step: int) -> Tensor:
        epoch, pos = divmod(step - 1, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=gen)
            self._epoch = epoch
        assert self._perm is not None
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]
