"""JointVAE on MNIST with the paper's settings (appendix C.1 and the author's released specs).

10 continuous units + one 10-way discrete variable; both capacities 0 → 5 nats over 25,000 steps, γ = 30 (the discrete
one ends clipped at log 10 ≈ 2.30); Adam 5e-4, batch 64, 100 epochs = 93,800 steps (938 batches per epoch, the last
of each epoch holding 32 images, as the original's DataLoader). Images: MNIST resized to 32x32.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="mnist",
        image_shape=(1, 32, 32),
        cont_units=10,
        disc_sizes=[10],
        cont_capacity=Capacity(0.0, 5.0, 25_000),
        disc_capacity=Capacity(0.0, 5.0, 25_000),
        cont_gamma=30.0,
        disc_gamma=30.0,
        train=TrainConfig(steps=93_800, batch_size=64, lr=5e-4),
    )
