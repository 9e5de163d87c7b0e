"""Capacity schedules: linear (the original's) and constant."""

from __future__ import annotations

from latentkit.core import CapacitySchedule
from latentkit.errors import ConfigError
from latentkit.plugins import hookimpl
from latentkit.validation import check, non_negative_float, non_negative_int, positive_int


class LinearCapacity(CapacitySchedule):
    """``min(c_max, c_min + (c_max - c_min) * (step - start) / steps)``: held at ``c_min`` until ``start`` (default 0,
    the original's ramp), raised linearly over ``steps``, then held. A late start lets one channel take its
    information after another has taken its own (CascadeVAE's order: the continuous factors first)."""

    schedule_name = "linear"

    def __init__(self, c_min: float = 0.0, c_max: float = 5.0, steps: int = 25000, start: int = 0):
        # capacities are finite, non-negative numbers of nats; steps a positive whole number
        self.c_min = check("c_min", c_min, non_negative_float, owner="linear capacity", example="0.0")
        self.c_max = check("c_max", c_max, non_negative_float, owner="linear capacity", example="5.0")
        self.steps = check("steps", steps, positive_int, owner="linear capacity", example="25000")
        self.start = check("start", start, non_negative_int, owner="linear capacity", example="10000")
        if self.c_min > self.c_max:
            raise ConfigError(f"linear capacity needs c_min <= c_max, got c_min={c_min}, c_max={c_max}")

    def __call__(self, step: int) -> float:
        step = step - self.start
        if step >= self.steps:  # exactly c_max (the ramp's formula can round one ulp below it)
            return self.c_max
        return min(self.c_max, self.c_min + (self.c_max - self.c_min) * max(step, 0) / self.steps)

    def __repr__(self) -> str:
        late = f", start={self.start}" if self.start else ""
        return f"LinearCapacity(c_min={self.c_min}, c_max={self.c_max}, steps={self.steps}{late})"


class ConstantCapacity(CapacitySchedule):
    """The same capacity at every step (``0`` turns γ·|KL − C| into a β-VAE's β·KL)."""

    schedule_name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = check("value", value, non_negative_float, owner="constant capacity", example="0.0")

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantCapacity(value={self.value})"


@hookimpl
def latentkit_register_schedules(registry):
    registry.add("linear", LinearCapacity)
    registry.add("constant", ConstantCapacity)
