"""Baseline: a continuous-only β-VAE (β = 4) on MNIST, with JointVAE's 10 continuous units and training settings.

The JointVAE objective with one Gaussian channel, a constant capacity of 0 and γ = β is exactly recon + β·KL.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="mnist",
        image_shape=(1, 32, 32),
        cont_units=10,
        disc_sizes=[],
        cont_capacity=Capacity(0.0, 0.0, 1),
        cont_gamma=4.0,
        train=TrainConfig(steps=93_800, batch_size=64, lr=5e-4),
    )
