"""JointVAE on 3D Chairs with the paper's settings (appendix C.3 and the author's released specs).

32 continuous units + three binary discrete variables; continuous capacity 0 → 30 and discrete 0 → 5 nats over 100,000
steps (the discrete one clipped at 3·log 2 ≈ 2.08), γ = 300; Adam 1e-4, batch 64, 100 epochs of the 86,366 images =
135,000 steps; 64x64 grayscale.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="chairs",
        image_shape=(1, 64, 64),
        cont_units=32,
        disc_sizes=[2, 2, 2],
        cont_capacity=Capacity(0.0, 30.0, 100_000),
        disc_capacity=Capacity(0.0, 5.0, 100_000),
        cont_gamma=300.0,
        disc_gamma=300.0,
        train=TrainConfig(steps=135_000, batch_size=64, lr=1e-4, checkpoint_every=10_000),
    )
