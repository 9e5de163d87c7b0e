"""The trainer's own settings: what :class:`~latentkit.train.Trainer` needs, and nothing about models or recipes."""

from __future__ import annotations

import math
from typing import Any

import attrs

from latentkit.errors import ConfigError
from latentkit.precision import PRECISIONS
from latentkit.validation import integer, non_negative_int, one_of, positive_float, positive_int

DEVICES = ("auto", "cpu", "cuda")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@attrs.define
class TrainConfig:
    """Settings of the generic trainer (Adam, as the original); every value is checked when the config is made.

    The trainer applies ``threads``, ``device`` and ``memory_format`` itself, so a script driving :class:`Trainer`
    directly runs as fast as the ``latentkit`` command.

    Attributes:
        steps: optimiser steps to train for.
        batch_size: rows of each step's (global) batch.
        lr: Adam's learning rate.
        lr_decay_start: the step after which the learning rate falls, along a half cosine, to ``lr_final`` times its
            value at the last step (0: constant, the original's). Every optimiser group falls by the same factor.
        lr_final: the learning rate at the last step as a fraction of its starting value, when it decays.
        seed: the run's seed: batches, initialisation and per-sample noise follow from it.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        precision: ``"float32"`` (exact to the original's fixtures) or ``"bfloat16"``: the networks' convolutions and
            linear layers under bfloat16 autocast, on the CPU or CUDA; the loss, the KL terms, the capacity targets,
            the weights and Adam's state stay float32 (:mod:`latentkit.precision`, docs/performance.md).
        log_every: steps between logged scalars (``latentkit_step_end``).
        checkpoint_every: steps between checkpoints; ``keep_checkpoints`` of them are kept.
        eval_every: steps between ``latentkit_evaluate`` calls (0: only at the end).
        figures_every: steps between training figures (0: none).
        drop_last: drop each epoch's last, smaller batch (the original keeps it).
        memory_format: ``"auto"`` (channels_last on the CPU), ``"channels_last"`` or ``"contiguous"``.
        threads: torch intra-op threads (0: PyTorch's default); small models often run faster on one.
    """

    steps: int = attrs.field(default=93_800, validator=positive_int.such_as("93800"))
    batch_size: int = attrs.field(default=64, validator=positive_int.such_as("64"))
    lr: float = attrs.field(default=5e-4, validator=positive_float.such_as("5e-4"))
    #: the step after which the learning rate falls along a half cosine to ``lr_final`` × its value at the last step;
    #: 0: constant (the original). A function of the step alone, so resuming keeps it; extending ``steps`` stretches it.
    lr_decay_start: int = attrs.field(default=0, validator=non_negative_int.such_as("25000"))
    lr_final: float = attrs.field(default=0.1, validator=positive_float.such_as("0.1"))
    seed: int = attrs.field(default=0, validator=integer)
    device: str = attrs.field(default="auto", validator=one_of(*DEVICES))
    #: "float32" or "bfloat16" (the networks under autocast; loss, KL, weights and optimiser state stay float32)
    precision: str = attrs.field(default="float32", validator=one_of(*PRECISIONS))
    log_every: int = attrs.field(default=50, validator=positive_int.such_as("50"))
    checkpoint_every: int = attrs.field(default=5_000, validator=positive_int.such_as("5000"))
    keep_checkpoints: int = attrs.field(default=2, validator=positive_int.such_as("2"))
    eval_every: int = attrs.field(default=0, validator=non_negative_int)  #: 0: only at the end
    #: a traversal grid every N steps into RUN/figures/training and TensorBoard (0: none); drawn at the first logging
    #: step at or after each multiple, and at the end
    figures_every: int = attrs.field(default=5_000, validator=non_negative_int.such_as("5000"))
    drop_last: bool = False  #: the original keeps each epoch's last, smaller batch
    #: "auto" (channels_last on the CPU, where oneDNN's convolutions are faster in it), "channels_last", "contiguous"
    memory_format: str = attrs.field(default="auto", validator=one_of(*MEMORY_FORMATS))
    #: torch intra-op threads (0: PyTorch's default, one per core). Small models (MLPs on signals) run faster on one
    #: thread than on several that synchronise every tiny op, especially on a busy machine.
    threads: int = attrs.field(default=0, validator=non_negative_int.such_as("1"))

    def __attrs_post_init__(self) -> None:
        if self.lr_decay_start and self.lr_decay_start >= self.steps:
            raise ConfigError(
                f"train.lr_decay_start={self.lr_decay_start} is not before the last step ({self.steps}); the learning "
                f"rate would never fall. Choose a step below train.steps, or 0 for a constant learning rate"
            )
        if self.lr_final > 1:
            raise ConfigError(f"train.lr_final is the last learning rate as a fraction of the first (at most 1), "
                              f"got {self.lr_final}; e.g. 0.1")

    def learning_rate_factor(self, step: int) -> float:
        """The learning rate of step ``step`` as a fraction of ``lr`` (1 throughout when it does not decay)."""
        if not self.lr_decay_start or step <= self.lr_decay_start:
            return 1.0
        progress = min(1.0, (step - self.lr_decay_start) / (self.steps - self.lr_decay_start))
        return self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The settings a run saved (``attrs.asdict``), dropping those latentkit no longer has (:data:`RETIRED`), so
        that resuming or evaluating an older run works."""
        data = dict(data)
        if data.pop("amp", False):  # runs before `precision` trained with bfloat16 autocast on CUDA under this flag
            data.setdefault("precision", "bfloat16")
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(data) - known - set(RETIRED))
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})


#: settings older runs saved that are gone, and why: their value is ignored when such a run is read
RETIRED = {
    "amp": "replaced by precision='bfloat16' (CPU and CUDA); a run saved with amp=true reads as that",
    "batch_parts": "computing a batch in parts on threads was measured no faster (docs/performance.md) and removed",
}
