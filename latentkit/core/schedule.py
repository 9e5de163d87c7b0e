"""Capacity schedules: pure functions of the global step.

A schedule never keeps state: the trainer passes the step, so resuming a run or evaluating the loss at an arbitrary
step gives the same capacity. Clipping at a family's capacity bound is the objective's job, not the schedule's, so one
schedule plugin serves every family.
"""

from __future__ import annotations

import abc


class CapacitySchedule(abc.ABC):
    """``schedule(step) -> capacity in nats``: how much KL a channel is asked to carry at a global step.

    A pure function of the step (no state), so a resumed run, or a loss evaluated at any step, gets the capacity an
    uninterrupted run has; the value is finite and non-negative. The objective, not the schedule, clips it at a
    family's :meth:`~latentkit.core.LatentFamily.capacity_bound`, so one schedule serves every family. The options
    are the constructor's keyword arguments.

    Attributes:
        schedule_name: the name it is registered under (set by subclasses).
    """

    schedule_name = ""

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """The capacity asked for at global ``step`` (non-negative, finite)."""

