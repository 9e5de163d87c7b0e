"""Hypothesis strategies for encoder features, seeds and extreme values.

Two regimes, on purpose:

* *moderate* features (|x| ≤ 3) for statistical checks — posteriors stay within a few nats of the prior, so a
  Monte-Carlo estimate with 20 000 draws has a small, trustworthy standard error;
* *extreme* features (±1e4, ±1e3, 0, values that make a softmax exactly one-hot in float32) for finiteness checks — an
  encoder early in training, or a diverging one, produces such values, and a NaN in the KL then poisons the whole run.

Features are returned as torch tensors of shape ``(batch, width)``.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

#: Largest magnitude of moderate features.
MODERATE = 3.0
#: Largest magnitude of extreme features.
EXTREME = 1e4
#: Values an extreme feature is often drawn from: exactly ±1e4 makes any softmax over them exactly one-hot in float32.
EXTREME_SPECIALS = (-EXTREME, EXTREME, 0.0, -1e3, 1e3, -88.0, 88.0, 30.0, -30.0)


def moderate_values(bound: float = MODERATE) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False)


def extreme_values() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(EXTREME_SPECIALS),
        st.floats(-EXTREME, EXTREME, allow_nan=False, allow_infinity=False, width=32),
    )


def features(
    width: int,
    *,
    min_batch: int = 1,
    max_batch: int = 4,
    elements: st.SearchStrategy[float] | None = None,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """``(B, width)`` feature tensors, ``B`` in ``[min_batch, max_batch]``; moderate elements unless given."""
    elements = elements if elements is not None else moderate_values()

    def build(batch: int) -> st.SearchStrategy[Tensor]:
        return st.lists(elements, min_size=batch * width, max_size=batch * width).map(
            lambda xs: torch.tensor(xs, dtype=dtype).reshape(batch, width)
        )

    return st.integers(min_batch, max_batch).flatmap(build)


def moderate_features(width: int, **kwargs) -> st.SearchStrategy[Tensor]:
    """Float64 features with |x| ≤ 3, for statistical checks."""
    kwargs.setdefault("dtype", torch.float64)
    return features(width, elements=moderate_values(), **kwargs)


def extreme_features(width: int, **kwargs) -> st.SearchStrategy[Tensor]:
    """Float32 features mixing ±1e4, ±1e3, 0 and arbitrary values in [-1e4, 1e4], for finiteness checks.

    Besides element-wise mixtures it yields rows made only of ±1e4, whose softmax over any group is exactly one-hot.
    """
    kwargs.setdefault("dtype", torch.float32)
    return st.one_of(
        features(width, elements=extreme_values(), **kwargs),
        features(width, elements=st.sampled_from((-EXTREME, EXTREME)), **kwargs),
    )


def seeds() -> st.SearchStrategy[int]:
    """Seeds for a ``torch.Generator``: Hypothesis owns them, so a failure reproduces."""
    return st.integers(0, 2**63 - 1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
