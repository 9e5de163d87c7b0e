"""JointVAE whose latent mixes three families: Gaussian units, a Gumbel-Softmax categorical and relaxed Bernoulli bits.

The procedural ``shapes`` set (no download, 32x32; see recipes/jointvae_shapes.py) with a third channel ``bits`` of
three binary Concrete units beside the paper's two. Each channel has its own γ and capacity; the bits' capacity asks
for 2.5 nats and is clipped at their bound 3·log 2 ≈ 2.08, as the categorical one is at log 3. The point is the
framework: any registered family joins the latent through ``extra_channels`` (a third-party family the same way).
"""

from latentkit.recipe import Capacity, ExtraChannel, JointVAEConfig, TrainConfig


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
        extra_channels=[
            ExtraChannel("bits", "relaxed_bernoulli", {"units": 3, "temperature": 0.67}, gamma=30.0,
                         capacity=Capacity(0.0, 2.5, 3_000)),
        ],
        train=TrainConfig(steps=4_000, batch_size=64, lr=5e-4, log_every=50, checkpoint_every=1_000),
    )
