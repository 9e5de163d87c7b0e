"""Capacity schedules: linear (the original's) and constant."""

from __future__ import annotations

from latentkit.core import CapacitySchedule
from latentkit.core.schedule import check_capacity, check_steps
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl


class LinearCapacity(CapacitySchedule):
    """``min(c_max, c_min + (c_max - c_min) * step / steps)``: raised linearly, then held."""

    schedule_name = "linear"

    def __init__(self, c_min: float = 0.0, c_max: float = 5.0, steps: int = 25000):
        self.c_min = check_capacity(c_min, "linear capacity c_min")
        self.c_max = check_capacity(c_max, "linear capacity c_max")
        self.steps = check_steps(steps, "linear capacity steps")
        if self.c_min > self.c_max:
            raise ConfigError(f"linear capacity needs c_min <= c_max, got c_min={c_min}, c_max={c_max}")

    def __call__(self, step: int) -> float:
        if step >= self.steps:  # exactly c_max (the ramp's formula can round one ulp below it)
            return self.c_max
        return min(self.c_max, self.c_min + (self.c_max - self.c_min) * max(step, 0) / self.steps)

    def __repr__(self) -> str:
        return f"LinearCapacity(c_min={self.c_min}, c_max={self.c_max}, steps={self.steps})"


class ConstantCapacity(CapacitySchedule):
    """The same capacity at every step (``0`` turns γ·|KL − C| into a β-VAE's β·KL)."""

    schedule_name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = check_capacity(value, "constant capacity value")

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantCapacity(value={self.value})"


@hookimpl
def latentkit_register_schedules(registry):
    registry.add("linear", LinearCapacity)
    registry.add("constant", ConstantCapacity)
