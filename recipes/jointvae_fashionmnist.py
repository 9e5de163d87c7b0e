"""JointVAE on Fashion-MNIST with the paper's settings (appendix C.2).

10 continuous units + one 10-way discrete variable; continuous capacity 0 → 5 and discrete 0 → 10 nats over 50,000
steps (the discrete one clipped at log 10), γ = 100; Adam 5e-4, batch 64, 100 epochs = 93,800 steps; 32x32 images.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="fashion_mnist",
        image_shape=(1, 32, 32),
        cont_units=10,
        disc_sizes=[10],
        cont_capacity=Capacity(0.0, 5.0, 50_000),
        disc_capacity=Capacity(0.0, 10.0, 50_000),
        cont_gamma=100.0,
        disc_gamma=100.0,
        train=TrainConfig(steps=93_800, batch_size=64, lr=5e-4),
    )
