"""Baseline: the annealed-capacity β-VAE of Burgess et al. (2017) on dSprites.

One channel of continuous units (JointVAE's 6), capacity raised linearly 0 → 25 nats over 100,000 steps, γ = 1000, as
Burgess et al.; JointVAE's optimiser and schedule length otherwise.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="dsprites",
        dataset_options={"source": "auto"},  # the real npz where the data root has it, else the procedural generator
        image_shape=(1, 64, 64),
        cont_units=6,
        disc_sizes=[],
        cont_capacity=Capacity(0.0, 25.0, 100_000),
        cont_gamma=1000.0,
        train=TrainConfig(steps=345_600, batch_size=64, lr=5e-4, log_every=1_000, checkpoint_every=10_000),
    )
