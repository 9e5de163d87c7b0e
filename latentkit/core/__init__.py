"""Protocols of latentkit's core. Imports no plugin, no trainer, no CLI."""

from latentkit.core.family import (
    LOGVAR_LIMIT,
    DiagonalGaussianPosterior,
    LatentContext,
    LatentFamily,
    OneColumnPerUnit,
    Params,
)
from latentkit.core.joint import JointLatent
from latentkit.core.model import JointLatentVAE, ModelOutput
from latentkit.core.network import ImageShape, NetworkFamily, Sigmoid32
from latentkit.core.noise import SampleNoise
from latentkit.core.objective import Objective, StatisticsObjective
from latentkit.core.schedule import CapacitySchedule

__all__ = [
    "CapacitySchedule",
    "DiagonalGaussianPosterior",
    "LOGVAR_LIMIT",
    "ImageShape",
    "JointLatent",
    "JointLatentVAE",
    "LatentContext",
    "LatentFamily",
    "OneColumnPerUnit",
    "ModelOutput",
    "NetworkFamily",
    "Objective",
    "StatisticsObjective",
    "Params",
    "SampleNoise",
    "Sigmoid32",
]
