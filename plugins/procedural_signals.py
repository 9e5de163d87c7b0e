"""``signals``: a procedural ground-truth set of 1-D signals, for training on data that is not images.

Why: it shows that nothing in the trainer, the objective or the metrics assumes images, with a ground truth as small
and fast as the ``shapes`` set: single-channel signals of ``length`` points (64 by default) on a full factorial grid
of one discrete factor and three continuous ones — waveform (3: sine, square, sawtooth; also the class label) ×
frequency (8: 1.0 … 1.4 cycles per window) × phase (16: ``π k / 64``, up to a ninth of a period) × amplitude (6:
0.5 … 0.9) = 2,304 signals, row-major over the factors (amplitude fastest) as :class:`GroundTruthData` requires.

Why these ranges: the waveform is to be the grid's dominant structure, as the digit is MNIST's, and the continuous
factors variations within it. Over wide frequency and phase ranges the opposite holds — two sines of different
frequency differ more than a sine and a square wave of the same frequency — and a 3-way discrete code then splits
frequency into bands instead of finding the waveform (measured with the signals recipe: accuracy at chance, 0.35–0.40,
with 1 … 3.8 cycles and phases over half a period). Phase stays within a fraction of a period, so it is an interval a
Gaussian unit can encode, not a circle.

A signal is ``0.5 + 0.5 · amplitude · wave(2π · frequency · t + phase)``, values in [0.05, 0.95], with ``wave`` a
unit sine, a square wave (+1 while the sine is non-negative) or a sawtooth rising through 0 where the sine does;
point ``i`` averages the wave over ``t ∈ [(i − ½)/length, (i + ½)/length)`` (anti-aliased), so that a jump that moves
by less than a point still changes the point it falls in and every grid point gives a different signal (tested at 16
and 64 points; sampled without it, 342 of the square waves would repeat a neighbouring phase at 64 points). Why a
sawtooth and not a triangle wave: a triangle differs from a sine of the same amplitude by only 0.15 of it (root mean
square), about a well-trained decoder's error, so the waveform would hardly be a factor; every pair of these three
differs by at least 0.44. Stored float32 ``(N, 1, length)``, used as is (no 1/255 scaling). Computed in float64,
vectorised, the whole grid in well under a second, identical on every machine; no download.

Splits, as ``shapes``: a fixed, seeded fifth of the grid is held out as ``test``, the rest is ``train``; ``n`` takes a
seeded random subset of ``n`` training signals (and ``max(1, n // 5)`` test signals). :meth:`Signals.ground_truth` is
the whole grid, for the disentanglement metrics (``latentkit evaluate --metric factorvae --metric mig``).
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from latentkit.data.ground_truth import GroundTruthData
from latentkit.data.provider import GridDatasetProvider
from latentkit.plugins import hookimpl
from latentkit.validation import at_least, check

FACTORS = ("waveform", "frequency", "phase", "amplitude")
FACTOR_SIZES = (3, 8, 16, 6)
DISCRETE_FACTORS = (True, False, False, False)
WAVEFORMS = ("sine", "square", "sawtooth")
#: Physical values of each factor's classes: waveform index, cycles per window, radians, amplitude.
FACTOR_VALUES = (
    torch.arange(3, dtype=torch.float64),
    torch.linspace(1.0, 1.4, 8, dtype=torch.float64),
    torch.arange(16, dtype=torch.float64) * (math.pi / 64),
    torch.linspace(0.5, 0.9, 6, dtype=torch.float64),
)
NUM_SIGNALS = math.prod(FACTOR_SIZES)
SUBSAMPLES = 16  #: sub-samples averaged into each point (anti-aliasing: :func:`render_signals`)
MIN_LENGTH = 16  #: the shortest signal that still shows each waveform's shape (11 points per cycle at 1.4 cycles)


def render_signals(values: Tensor, length: int) -> Tensor:
    """float32 signals ``(N, 1, length)`` in [0, 1] from ``(N, 4)`` factor *values* (waveform index, cycles per
    window, phase in radians, amplitude).

    Point ``i`` is the wave's mean over its sampling interval ``[(i − ½)/length, (i + ½)/length)`` (from
    :data:`SUBSAMPLES` evenly spaced sub-samples), as an anti-aliased renderer draws an edge: a jump of the square wave
    or the sawtooth that moves by less than a point still changes the signal.
    """
    values = values.double()
    waveform, frequency, phase, amplitude = (v[:, None, None] for v in values.unbind(1))
    offsets = (torch.arange(SUBSAMPLES, dtype=torch.float64) + 0.5) / SUBSAMPLES - 0.5
    t = (torch.arange(length, dtype=torch.float64)[:, None] + offsets[None]) / length  # (length, SUBSAMPLES)
    angle = 2 * math.pi * frequency * t[None] + phase
    cycle = torch.remainder(angle / (2 * math.pi), 1.0)  # position within the period, [0, 1)
    sine = torch.sin(angle)
    square = torch.where(cycle < 0.5, 1.0, -1.0).double()
    sawtooth = 2 * torch.remainder(cycle + 0.5, 1.0) - 1
    wave = torch.where(waveform == 0, sine, torch.where(waveform == 1, square, sawtooth)).mean(-1)
    return (0.5 + 0.5 * amplitude[:, :, 0] * wave).float().unsqueeze(1)


class SignalsGroundTruth(GroundTruthData):
    """The ``signals`` grid at ``length`` points per signal."""

    factor_names = FACTORS
    factor_sizes = FACTOR_SIZES
    discrete_factors = DISCRETE_FACTORS

    def __init__(self, length: int = 64):
        self.length = int(length)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (1, self.length)

    def factor_values(self, factors: Tensor) -> Tensor:
        self.check_factors(factors)
        f = factors.long()
        return torch.stack([values[f[:, k]] for k, values in enumerate(FACTOR_VALUES)], 1)

    def images(self, factors: Tensor) -> Tensor:
        """The signals of factor class indices, float32 ``(N, 1, length)`` (the protocol's name for samples)."""
        return render_signals(self.factor_values(factors), self.length)


class Signals(GridDatasetProvider):
    """Options: ``length`` (points per signal, default 64, at least 16), ``n`` (a seeded subset of the training
    signals; default all 1,844) and ``seed`` (of the split and the subset)."""

    dataset_name = "signals"

    def __init__(self, n: int | None = None, length: int = 64, seed: int = 0):
        super().__init__(n, seed)
        self.length = check("length", length, at_least(MIN_LENGTH), owner="signals data set", example="64")  # points

    @property
    def image_shape(self) -> tuple[int, int]:
        return (1, self.length)

    def ground_truth(self, root: str | os.PathLike | None = None) -> SignalsGroundTruth:
        return SignalsGroundTruth(self.length)


@hookimpl
def latentkit_register_datasets(registry):
    registry.add("signals", Signals)
