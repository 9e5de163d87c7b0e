"""JointVAE on the procedural ``shapes`` set: the embedded default (no download, a few minutes on 2 CPU cores).

A ground-truth grid of three shapes (a 3-way discrete factor) × 6 scales × 8 rotations × 8 × 8 positions (continuous
factors), 32x32: 7,373 training images, the rest of the 9,216 held out for ``test``. Add ``"n": 256`` to
``dataset_options`` for a tiny run.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="shapes",
        dataset_options={"size": 32},
        image_shape=(1, 32, 32),
        cont_units=6,
        disc_sizes=[3],
        cont_capacity=Capacity(0.0, 10.0, 3_000),
        disc_capacity=Capacity(0.0, 1.1, 3_000),
        cont_gamma=30.0,
        disc_gamma=30.0,
        train=TrainConfig(steps=4_000, batch_size=64, lr=5e-4, log_every=50, checkpoint_every=1_000),
    )
