"""JointVAE on the procedural ``shapes`` set with a ``beta`` channel beside the Gaussian and categorical ones.

The procedural default (recipes/jointvae_shapes.py: the ``shapes`` set, 32x32, no download) with a third channel
``beta`` of four Beta units on (0, 1) under the uniform prior Beta(1, 1). Why: the Beta family draws its training
samples by rejection (Marsaglia–Tsang Gamma draws), so this recipe is the one that shows a rejection sampler giving the
same run whichever way the batch is split — one process or two under ``torchrun`` — because every row's noise is keyed
by (run seed, step, global sample index). A tiny comparison run::

    latentkit train recipes/beta_shapes.py --set train.steps=20 --set 'dataset_options={"n": 256, "size": 32}'
"""

from pathlib import Path

import attrs

from latentkit.assembly.recipe import load_recipe
from latentkit_plugins.jointvae_recipe import Capacity, ExtraChannel


def config():
    base = load_recipe(Path(__file__).with_name("jointvae_shapes.py"))
    beta = ExtraChannel("beta", "beta", {"units": 4, "prior_a": 1.0, "prior_b": 1.0}, gamma=30.0,
                        capacity=Capacity(0.0, 5.0, 3_000))
    return attrs.evolve(base, extra_channels=[beta])
