"""The ground-truth data protocol: a data set defined by a grid of generative factors.

Every disentanglement metric is written against this protocol, never against a concrete data set. A ground-truth data
set is a full factorial grid: factor ``k`` takes ``factor_sizes[k]`` values, and the image index is the row-major
index over the factors (the last factor varies fastest), exactly as dSprites stores its images. Factors are addressed
by their *class index* (0 .. size-1); :meth:`GroundTruthData.factor_values` gives the physical values.

Images — or any samples: a signal ``(C, L)``, a vector ``(D,)``, uint8 or float32 as :mod:`latentkit.data.provider`
describes — come from factor indices (:meth:`images`), so a procedural generator needs no storage and a stored data
set (the real dSprites npz) simply indexes its array: both are the same to a metric.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from latentkit.errors import ConfigError, DataError
from latentkit.validation import check, non_negative_int


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
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one sample: ``(C, H, W)`` for images, ``(C, L)`` for signals, ``(D,)`` for vectors."""

    @abc.abstractmethod
    def images(self, factors: Tensor) -> Tensor:
        """Samples ``(N, *image_shape)`` (uint8 images, or float32) for factor class indices ``(N, n_factors)``."""

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
        index = torch.as_tensor(index)
        if index.dim() != 1 or not _integral(index):
            raise ConfigError(
                f"image indices must be a 1-D tensor of whole numbers, got {index.dtype} {tuple(index.shape)}"
            )
        index = index.long()
        if index.numel() and (index.min() < 0 or index.max() >= len(self)):
            raise ConfigError(f"image indices must lie in [0, {len(self)}), got range [{index.min()}, {index.max()}]")
        sizes = torch.tensor(self.factor_sizes, dtype=torch.int64)
        return (index[:, None] // self._bases()) % sizes

    def check_factors(self, factors: Tensor) -> None:
        if not isinstance(factors, Tensor) or factors.dim() != 2 or factors.shape[1] != self.num_factors:
            raise ConfigError(
                f"factors must be (N, {self.num_factors}) class indices for {list(self.factor_names)}, "
                f"got shape {tuple(factors.shape) if isinstance(factors, Tensor) else type(factors).__name__}"
            )
        if not _integral(factors):
            raise ConfigError(f"factors must be whole-number class indices, got {factors.dtype} values that are not")
        sizes = torch.tensor(self.factor_sizes)
        if factors.numel() and ((factors < 0).any() or (factors >= sizes).any()):
            raise ConfigError(f"factor class indices out of range; sizes are {dict(zip(self.factor_names, self.factor_sizes))}")

    def factor_index(self, factor: int | str) -> int:
        """The position of ``factor`` (a name or an index) among the factors; else a :class:`ConfigError`."""
        if isinstance(factor, str):
            if factor not in self.factor_names:
                raise ConfigError(f"unknown factor {factor!r}; the factors are {list(self.factor_names)}")
            return self.factor_names.index(factor)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or not 0 <= factor < self.num_factors:
            raise ConfigError(
                f"factor must be a name in {list(self.factor_names)} or an index in [0, {self.num_factors}), "
                f"got {factor!r}"
            )
        return int(factor)

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` factor class-index rows drawn uniformly from the grid."""
        n = check("n", n, non_negative_int.such_as("64"))
        cols = [torch.randint(0, size, (n,), generator=generator) for size in self.factor_sizes]
        return torch.stack(cols, 1) if cols else torch.zeros(n, 0, dtype=torch.int64)

    def sample_with_fixed_factor(
        self, factor: int | str, n: int, generator: torch.Generator | None = None, value: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` factor rows sharing one random value of ``factor``, everything else random; and their images.

        One vote of the FactorVAE score is built from such a batch. ``factor`` is an index or a name; ``value`` (a class
        index) fixes the shared value instead of drawing it.
        """
        k = self.factor_index(factor)
        size = self.factor_sizes[k]
        factors = self.sample_factors(n, generator)
        if value is None:
            value = int(torch.randint(0, size, (1,), generator=generator))
        elif isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < size:
            raise ConfigError(f"value of {self.factor_names[k]!r} must be a class index in [0, {size}), got {value!r}")
        factors[:, k] = int(value)
        return factors, self.images(factors)


class ArrayGroundTruth(GroundTruthData):
    """A stored ground-truth data set: every image of the grid in memory, with each row's factor class indices.

    The rows may come in any order (a stored data set in the protocol's row-major order, such as the dSprites npz, is
    indexed directly); they must hold each grid point exactly once, else :class:`DataError`. ``values`` gives each
    factor's physical values (``values[k][class index]``); without it a class index is its own value.
    """

    def __init__(
        self,
        images: Tensor,
        factors: Tensor,
        factor_names: Sequence[str],
        factor_sizes: Sequence[int],
        discrete_factors: Sequence[bool],
        values: Sequence[Tensor] | None = None,
    ):
        self.factor_names = tuple(factor_names)
        self.factor_sizes = tuple(int(k) for k in factor_sizes)
        self.discrete_factors = tuple(bool(d) for d in discrete_factors)
        if not len(self.factor_names) == len(self.factor_sizes) == len(self.discrete_factors):
            raise ConfigError("factor_names, factor_sizes and discrete_factors must have one entry per factor")
        stored_ok = isinstance(images, Tensor) and images.dtype in (torch.uint8, torch.float32)
        if not stored_ok or not 2 <= images.dim() <= 4:
            raise DataError(
                f"samples must be a uint8 or float32 tensor (N, C, H, W), (N, C, L) or (N, D), got "
                f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}"
            )
        if images.shape[0] != len(self):
            raise DataError(
                f"a ground-truth grid of {dict(zip(self.factor_names, self.factor_sizes))} has {len(self)} images, "
                f"the data hold {images.shape[0]}"
            )
        if not isinstance(factors, Tensor) or factors.shape != (len(self), self.num_factors):
            raise DataError(f"factors must be ({len(self)}, {self.num_factors}) class indices")
        try:
            index = self.factors_to_index(factors)
        except ConfigError as exc:
            raise DataError(f"the stored factors are not class indices of the grid: {exc}") from None
        if torch.equal(index, torch.arange(len(self))):
            self._rows = None  # stored in the protocol's order
        else:
            rows = torch.full((len(self),), -1, dtype=torch.int64)
            rows[index] = torch.arange(len(self))
            if (rows < 0).any():
                raise DataError(
                    f"the stored factors do not cover the grid: {int((rows < 0).sum())} grid points are missing "
                    f"(and as many rows repeat others)"
                )
            self._rows = rows
        self._images = images
        if values is not None:
            values = [torch.as_tensor(v, dtype=torch.float64) for v in values]
            if [len(v) for v in values] != list(self.factor_sizes):
                raise ConfigError(f"values must hold {list(self.factor_sizes)} values, one list per factor")
        self._values = values

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self._images.shape[1:])

    def images(self, factors: Tensor) -> Tensor:
        index = self.factors_to_index(factors)
        return self._images[index if self._rows is None else self._rows[index]]

    def factor_values(self, factors: Tensor) -> Tensor:
        self.check_factors(factors)
        f = factors.long()
        if self._values is None:
            return f.double()
        return torch.stack([v[f[:, k]] for k, v in enumerate(self._values)], 1) if self.num_factors else f.double()


def _integral(t: Tensor) -> bool:
    """Whether a tensor holds whole numbers only (any integer dtype, or floats without fractions)."""
    if t.dtype == torch.bool or t.is_complex():
        return False
    if t.is_floating_point():
        return bool(torch.isfinite(t).all() and (t == t.round()).all())
    return True
