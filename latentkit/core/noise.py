"""Training noise keyed per sample: what a row draws depends only on that row, never on the rest of the batch.

Why: a batch may be computed on one process or split across several (``torchrun``), and a run may be resumed. If a row's
noise came from one generator shared by the whole batch, a row's draw would depend on how many values the rows before
it consumed — which is fixed for ``torch.randn`` but not for a rejection sampler (Gamma → Beta, Dirichlet, von Mises),
so results would change with the split. Here every value is a pure function of

    (run seed, training step, stream, global sample index, draw, column)

computed with a counter-based hash (integer arithmetic only, the same on every device and machine). A *stream* names
one consumer (each channel of a joint latent gets its own, :meth:`SampleNoise.stream`); a *draw* numbers repeated
attempts of a rejection sampler, so a row that needs a fourth attempt takes draw 3 of its own stream whatever the
other rows did.

A family's :meth:`~latentkit.core.LatentFamily.rsample` receives a :class:`SampleNoise` with one key per row of its
parameters and takes all its randomness from it::

    eps = noise.normal(self.units, dtype=mean.dtype, device=mean.device)   # (B, units)
    u = noise.uniform(k, draw=attempt)                                      # (B, k), a fresh draw per attempt
    sub = noise.select(still_rejected)                                      # the same keys, fewer rows
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
# lowbias32 (C. Wellons' hash prospector): a 32-bit finaliser with low bias; multiplications split in 16-bit halves so
# every intermediate fits a signed 64-bit integer (no reliance on overflow behaviour).
_M1, _M2 = 0x7FEB352D, 0x846CA68B
_GOLDEN = 0x9E3779B9


def _mul32(x: Tensor, c: int) -> Tensor:
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: Tensor) -> Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, _M1)
    x = x ^ (x >> 15)
    x = _mul32(x, _M2)
    return x ^ (x >> 16)


def _fold(key: Tensor, value: int | Tensor) -> Tensor:
    """Fold a whole number (any size, or a tensor of values < 2**32) into 32-bit keys."""
    if isinstance(value, Tensor):
        return _mix32(key ^ ((value + _GOLDEN) & _MASK32))
    value = int(value)
    parts = [value & _MASK32, (value >> 32) & _MASK32, 1 if value < 0 else 0] if not 0 <= value < 2**32 else [value]
    for part in parts:
        key = _mix32(key ^ ((part + _GOLDEN) & _MASK32))
    return key


def _stream_id(name: str) -> int:
    return zlib.crc32(name.encode())


class SampleNoise:
    """Keys for ``len(self)`` rows; each row's values are a pure function of its key, the draw and the column.

    Build it with :meth:`for_rows` (the trainer does: run seed, step, and the global index of each row of this
    process's share of the batch) or :meth:`fresh` (outside training: keys from torch's global RNG or a generator).
    Draw with :meth:`normal`, :meth:`uniform`, :meth:`gumbel` or :meth:`bits` (``draw=t`` for attempt ``t`` of a
    rejection sampler); :meth:`select` keeps some rows' keys, :meth:`stream` derives an independent stream.

    Why: a latent family's ``rsample`` must follow the row rule — a row's draw depends only on that row's parameters
    and key — so that a batch split across processes, or resumed, draws what one pass over it draws (module docstring).

    Attributes:
        keys: ``(B,)`` int64, one 32-bit key per row.
    """

    def __init__(self, keys: Tensor):
        if keys.dim() != 1 or keys.dtype != torch.int64:
            raise ValueError("SampleNoise keys must be a 1-D int64 tensor, one key per row")
        self.keys = keys

    # --- construction ------------------------------------------------------------------------------------------------
    @classmethod
    def for_rows(
        cls, seed: int, step: int, rows: Tensor | Sequence[int] | range, device: torch.device | str | None = None
    ) -> SampleNoise:
        """Noise for the rows ``rows`` (global sample indices within the step's batch) of step ``step`` of a run
        seeded with ``seed``."""
        index = torch.as_tensor(list(rows) if isinstance(rows, range) else rows, dtype=torch.int64, device=device)
        if index.dim() != 1:
            raise ValueError("rows must be a 1-D sequence of sample indices")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= 2**32):
            raise ValueError("sample indices must lie in [0, 2**32)")
        key = torch.zeros((), dtype=torch.int64, device=index.device)
        key = _fold(_fold(key, seed), step)
        return cls(_fold(key.expand_as(index), index))

    @classmethod
    def fresh(
        cls, count: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> SampleNoise:
        """Noise for ``count`` rows with keys drawn from ``generator`` (torch's global RNG when ``None``): for
        sampling outside a training run, where no (seed, step) keys the draw."""
        gen_device = generator.device if generator is not None else torch.device("cpu")
        keys = torch.randint(0, 2**32, (count,), generator=generator, dtype=torch.int64, device=gen_device)
        return cls(keys.to(device) if device is not None else keys)

    # --- deriving ----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.keys.shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def stream(self, name: str) -> SampleNoise:
        """An independent stream for one consumer (a channel, an objective's augmentation), keyed by its name."""
        return SampleNoise(_fold(self.keys, _stream_id(name)))

    def select(self, index: Tensor) -> SampleNoise:
        """The rows ``index`` (a boolean mask or integer indices): the same keys, so the same values, for those rows."""
        return SampleNoise(self.keys[index.to(self.keys.device)])

    # --- drawing -----------------------------------------------------------------------------------------------------
    def bits(self, *shape: int, draw: int = 0, device: torch.device | str | None = None) -> Tensor:
        """Uniform 32-bit integers ``(B, *shape)`` (int64 holding values in ``[0, 2**32)``)."""
        width = math.prod(shape)
        keys = self.keys if device is None else self.keys.to(device)
        base = _fold(keys, draw).unsqueeze(1)
        cols = torch.arange(width, dtype=torch.int64, device=keys.device).unsqueeze(0)
        return _fold(base.expand(-1, width), cols.expand(len(self), -1)).reshape(len(self), *shape)

    def uniform(
        self, *shape: int, draw: int = 0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> Tensor:
        """Uniform values in the open interval (0, 1), ``(B, *shape)``: never exactly 0 or 1, so logs stay finite."""
        bits = self.bits(*shape, draw=draw, device=device)
        u = (bits.to(torch.float64) + 0.5) * (1.0 / 2**32)
        if dtype == torch.float64:
            return u
        tiny = torch.finfo(dtype).eps / 2
        return u.clamp(tiny, 1 - tiny).to(dtype)

    def normal(
        self, *shape: int, draw: int = 0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> Tensor:
        """Standard normal values ``(B, *shape)`` (Box–Muller on two uniforms per value)."""
        u = self.uniform(2, *shape, draw=draw, dtype=torch.float64, device=device)
        z = torch.sqrt(-2.0 * torch.log(u[:, 0])) * torch.cos(2 * math.pi * u[:, 1])
        return z.to(dtype)

    def gumbel(
        self, *shape: int, draw: int = 0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> Tensor:
        """Standard Gumbel values ``(B, *shape)``: ``-log(-log u)``."""
        u = self.uniform(*shape, draw=draw, dtype=torch.float64, device=device)
        return (-torch.log(-torch.log(u))).to(dtype)

    def __repr__(self) -> str:
        return f"SampleNoise(rows={len(self)}, device={self.device})"
