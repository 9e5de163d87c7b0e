"""The trainer's own settings: what :class:`~latentkit.train.Trainer` needs, and nothing about models or recipes."""

from __future__ import annotations

import math
import numbers
from typing import Any

import attrs

from latentkit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def _positive_int(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{attribute.name} must be a positive whole number, got {value!r}")


def _non_negative_int(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{attribute.name} must be a whole number >= 0 (0 turns it off), got {value!r}")


def _positive_float(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ConfigError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative_float(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ConfigError(f"{attribute.name} must be a finite non-negative number, got {value!r}")


def _device(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in DEVICES:
        raise ConfigError(f"{attribute.name} must be one of {DEVICES}, got {value!r}")


@attrs.define
class TrainConfig:
    """Settings of the generic trainer (Adam, as the original)."""

    steps: int = attrs.field(default=93_800, validator=_positive_int)
    batch_size: int = attrs.field(default=64, validator=_positive_int)
    lr: float = attrs.field(default=5e-4, validator=_positive_float)
    seed: int = 0
    device: str = attrs.field(default="auto", validator=_device)
    amp: bool = False  #: bfloat16 autocast on CUDA (ignored on CPU)
    log_every: int = attrs.field(default=50, validator=_positive_int)
    checkpoint_every: int = attrs.field(default=5_000, validator=_positive_int)
    keep_checkpoints: int = attrs.field(default=2, validator=_positive_int)
    eval_every: int = attrs.field(default=0)  #: 0: only at the end
    #: a traversal grid every N steps into RUN/figures/training and TensorBoard (0: none); drawn at the first logging
    #: step at or after each multiple, and at the end
    figures_every: int = attrs.field(default=5_000, validator=_non_negative_int)
    drop_last: bool = False  #: the original keeps each epoch's last, smaller batch
    #: "auto" (channels_last on the CPU, where oneDNN's convolutions are faster in it), "channels_last", "contiguous"
    memory_format: str = attrs.field(default="auto", validator=attrs.validators.in_(MEMORY_FORMATS))
    #: torch intra-op threads (0: PyTorch's default, one per core). Small models (MLPs on signals) run faster on one
    #: thread than on several that synchronise every tiny op, especially on a busy machine.
    threads: int = attrs.field(default=0, validator=_non_negative_int)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The settings a run saved (``attrs.asdict``), dropping those latentkit no longer has (:data:`RETIRED`), so
        that resuming or evaluating an older run works."""
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(data) - known - set(RETIRED))
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})


#: settings older runs saved that are gone, and why: their value is ignored when such a run is read
RETIRED = {
    "batch_parts": "computing a batch in parts on threads was measured no faster (docs/performance.md) and removed",
}
