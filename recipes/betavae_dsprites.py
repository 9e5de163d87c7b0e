"""Baseline: a continuous-only β-VAE (β = 4) on dSprites, with JointVAE's 6 continuous units and training settings."""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="dsprites",
        dataset_options={"source": "auto"},  # the real npz where the data root has it, else the procedural generator
        image_shape=(1, 64, 64),
        cont_units=6,
        disc_sizes=[],
        cont_capacity=Capacity(0.0, 0.0, 1),
        cont_gamma=4.0,
        train=TrainConfig(steps=345_600, batch_size=64, lr=5e-4, log_every=1_000, checkpoint_every=10_000),
    )
