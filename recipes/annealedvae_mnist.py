"""Baseline: the annealed-capacity β-VAE of Burgess et al. (2017) on MNIST.

Burgess et al. give no MNIST setting; we choose the one that isolates the discrete channel's contribution: JointVAE's
10 continuous units alone, capacity raised linearly 0 → 7.3 nats (JointVAE's total, 5 continuous + log 10 discrete)
over the same 25,000 steps, and the same γ = 30 (γ = 1000 on 32x32 images overwhelms the reconstruction term).
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="mnist",
        image_shape=(1, 32, 32),
        cont_units=10,
        disc_sizes=[],
        cont_capacity=Capacity(0.0, 7.3, 25_000),
        cont_gamma=30.0,
        train=TrainConfig(steps=93_800, batch_size=64, lr=5e-4),
    )
