"""JointVAE on Fashion-MNIST with the discrete-code terms of ``jointvae_mnist_invariant.py`` on the paper's
Fashion-MNIST recipe (``jointvae_fashionmnist.py``: capacities 0 → 5 and 0 → 10 nats over 50,000 steps, γ = 100).

Not measured here (no Fashion-MNIST training data on our machines): runnable with
``latentkit train recipes/jointvae_fashionmnist_invariant.py --data-root DATA`` (DATA/FashionMNIST/raw, torchvision's
layout). The augmentation is the MNIST one with a milder rotation and no shear, which would slant garments that are
upright in every image of the data set; the stroke change (a one-pixel dilation or erosion) stands in for thicker and
thinner cloth outlines. The term weights are the MNIST recipe's.
"""

from pathlib import Path

import attrs

from latentkit.assembly.recipe import load_recipe
from latentkit_plugins.jointvae_recipe import JointVAEConfig

#: the augmented view: ±10°, ×(1 ± 0.15), ±10% shifts, no shear, and half the images one pixel thicker or thinner
AUGMENT = {"rotate": 10.0, "scale": 0.15, "shift": 0.1, "shear": 0.0, "stroke": 0.5}


def config() -> JointVAEConfig:
    here = Path(__file__).parent
    paper = load_recipe(here / "jointvae_fashionmnist.py")  # the paper recipe, unchanged
    mnist = load_recipe(here / "jointvae_mnist_invariant.py")  # its code terms, with this data set's augmentation
    return attrs.evolve(
        paper, objective=mnist.objective, objective_options={**mnist.objective_options, "augment": AUGMENT}
    )
