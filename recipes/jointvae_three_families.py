"""JointVAE whose latent mixes three families: Gaussian units, a Gumbel-Softmax categorical and relaxed Bernoulli bits.

The procedural default (recipes/jointvae_shapes.py: the ``shapes`` set, 32x32, no download) with a third channel
``bits`` of three binary Concrete units beside the paper's two. Each channel has its own γ and capacity; the bits'
capacity asks for 2.5 nats and is clipped at their bound 3·log 2 ≈ 2.08, as the categorical one is at log 3. The point
is the framework: any registered family joins the latent through ``extra_channels`` (a third-party family the same way).
"""

from pathlib import Path

import attrs

from latentkit.assembly.recipe import load_recipe
from latentkit_plugins.jointvae_recipe import Capacity, ExtraChannel


def config():
    base = load_recipe(Path(__file__).with_name("jointvae_shapes.py"))
    bits = ExtraChannel("bits", "relaxed_bernoulli", {"units": 3, "temperature": 0.67}, gamma=30.0,
                        capacity=Capacity(0.0, 2.5, 3_000))
    return attrs.evolve(base, extra_channels=[bits])
