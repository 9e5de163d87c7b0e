"""JointVAE on CelebA with the paper's settings (appendix C.4 and the author's released specs).

32 continuous units + one 10-way discrete variable; continuous capacity 0 → 50 and discrete 0 → 10 nats over 100,000
steps (the discrete one clipped at log 10), γ = 100; Adam 5e-4, batch 64, 100 epochs of the 202,599 images = 316,600
steps; RGB 64x64 (centre crop 148, resized). The reconstruction term sums BCE over all 3·64·64 values of an image;
``channel_mean_compat=True`` reproduces the original's sum over 64·64 (a third of it), which rescales γ's effect.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="celeba",
        image_shape=(3, 64, 64),
        cont_units=32,
        disc_sizes=[10],
        cont_capacity=Capacity(0.0, 50.0, 100_000),
        disc_capacity=Capacity(0.0, 10.0, 100_000),
        cont_gamma=100.0,
        disc_gamma=100.0,
        train=TrainConfig(steps=316_600, batch_size=64, lr=5e-4, checkpoint_every=10_000),
    )
