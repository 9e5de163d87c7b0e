"""JointVAE on Fashion-MNIST with the discrete-code terms of ``jointvae_mnist_invariant.py`` on the paper's
Fashion-MNIST recipe (``jointvae_fashionmnist.py``: capacities 0 → 5 and 0 → 10 nats over 50,000 steps, γ = 100).

Not measured here (no Fashion-MNIST training data on our machines): runnable with
``latentkit train recipes/jointvae_fashionmnist_invariant.py --data-root DATA`` (DATA/FashionMNIST/raw, torchvision's
layout). The augmentation is the MNIST one without the shear, which would slant garments that are upright in every
image of the data set; the stroke change (a one-pixel dilation or erosion) stands in for thicker and thinner cloth
outlines. The term weights are the MNIST recipe's.
"""

from latentkit.recipe import Capacity, JointVAEConfig, TrainConfig

AUGMENT = {"rotate": 10.0, "scale": 0.15, "shift": 0.1, "shear": 0.0, "stroke": 0.5}


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
        objective="jointvae_code",
        objective_options={"augment_weight": 100.0, "balance_weight": 30.0, "augment": AUGMENT},
        train=TrainConfig(steps=93_800, batch_size=64, lr=5e-4),
    )
