"""The ground-truth data protocol: a data set defined by a grid of generative factors.

Every disentanglement metric is written against this protocol, never against a concrete data set. A ground-truth data
set is a full factorial grid: factor ``k`` takes ``factor_sizes[k]`` values, and the image index is the row-major
index over the factors (the last factor varies fastest), exactly as dSprites stores its images. Factors are addressed
by their *class index* (0 .. size-1); :meth:`GroundTruthData.factor_values` gives the physical values.

Images come from factor indices (:meth:`images`), so a procedural generator needs no storage and a stored data set
(the real dSprites npz) simply indexes its array: both are the same to a metric.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from latentkit.errors import ConfigError


class GroundTruthData(abc.ABC):
    """A factorial grid of generative factors and the images they generate."""

    #: names of the factors, in index order (e.g. ``("shape", "scale", "orientation", "posX", "posY")``)
    factor_names: tuple[str, ...] = ()
    #: number of values each factor takes
    factor_sizes: tuple[int, ...] = ()
    #: True where a factor is categorical (its values have no order), e.g. dSprites' shape
    discrete_factors: tuple[bool, ...] = ()

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images."""

    @abc.abstractmethod
    def images(self, factors: Tensor) -> Tensor:
        """uint8 images ``(N, C, H, W)`` for factor class indices ``(N, n_factors)``."""

    @abc.abstractmethod
    def factor_values(self, factors: Tensor) -> Tensor:
        """Physical values (float64, ``(N, n_factors)``) of factor class indices."""

    # --- derived, shared by every ground-truth data set --------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def _bases(self) -> Tensor:
        bases = [1] * self.num_factors
        for k in range(self.num_factors - 2, -1, -1):
            bases[k] = bases[k + 1] * self.factor_sizes[k + 1]
        return torch.tensor(bases, dtype=torch.int64)

    def factors_to_index(self, factors: Tensor) -> Tensor:
        """Row-major image index of factor class indices ``(N, n_factors)`` → ``(N,)``."""
        self.check_factors(factors)
        return (factors.long() * self._bases()).sum(-1)

    def index_to_factors(self, index: Tensor) -> Tensor:
        """Factor class indices ``(N, n_factors)`` of image indices ``(N,)``."""
        index = index.long()
        if index.numel() and (index.min() < 0 or index.max() >= len(self)):
            raise ConfigError(f"image indices must lie in [0, {len(self)}), got range [{index.min()}, {index.max()}]")
        sizes = torch.tensor(self.factor_sizes, dtype=torch.int64)
        return (index[:, None] // self._bases()) % sizes

    def check_factors(self, factors: Tensor) -> None:
        if factors.dim() != 2 or factors.shape[1] != self.num_factors:
            raise ConfigError(
                f"factors must be (N, {self.num_factors}) class indices for {list(self.factor_names)}, "
                f"got shape {tuple(factors.shape)}"
            )
        sizes = torch.tensor(self.factor_sizes)
        if factors.numel() and ((factors < 0).any() or (factors >= sizes).any()):
            raise ConfigError(f"factor class indices out of range; sizes are {dict(zip(self.factor_names, self.factor_sizes))}")

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` factor class-index rows drawn uniformly from the grid."""
        cols = [torch.randint(0, size, (n,), generator=generator) for size in self.factor_sizes]
        return torch.stack(cols, 1)

    def sample_with_fixed_factor(
        self, factor: int, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` factor rows sharing one random value of ``factor``, everything else random; and their images.

        One vote of the FactorVAE score is built from such a batch.
        """
        factors = self.sample_factors(n, generator)
        value = torch.randint(0, self.factor_sizes[factor], (1,), generator=generator)
        factors[:, factor] = value
        return factors, self.images(factors)
