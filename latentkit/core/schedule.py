"""Capacity schedules: pure functions of the global step.

A schedule never keeps state: the trainer passes the step, so resuming a run or evaluating the loss at an arbitrary
step gives the same capacity. Clipping at a family's capacity bound is the objective's job, not the schedule's, so one
schedule plugin serves every family.
"""

from __future__ import annotations

import abc
import math
import numbers

from latentkit.errors import ConfigError


class CapacitySchedule(abc.ABC):
    """``schedule(step) -> capacity in nats``."""

    schedule_name = ""

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """The capacity asked for at global ``step`` (non-negative, finite)."""


def check_capacity(value: object, what: str) -> float:
    """Validate a capacity given by the user: a finite, non-negative number of nats."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what} must be a number of nats, got {value!r} ({type(value).__name__}); e.g. 5.0")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} must be a finite, non-negative number of nats, got {value!r}")
    return value


def check_steps(value: object, what: str) -> int:
    """Validate a step count: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ConfigError(f"{what} must be a positive whole number of steps, got {value!r}")
    return int(value)
