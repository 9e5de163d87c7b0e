"""JointVAE on dSprites with the paper's settings (appendix C.5).

6 continuous units + one 3-way discrete variable (the shape); continuous capacity 0 → 40 and discrete 0 → 1.1 nats over
300,000 steps (the discrete one clipped at log 3 ≈ 1.0986), γ = 150; Adam 5e-4, batch 64, about 30 epochs of the
737,280 images = 345,600 steps; 64x64 images. About 8 hours on 2 CPU cores: use the GPU or a shorter --steps.

Data: the real npz where the data root has it (``dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``), else the
procedural generator with the same grid (``source="auto"``; one line on stderr says which). ``"source": "npz"`` in
``dataset_options`` insists on the real file, ``"n": 20000`` trains on a seeded subset (a quick run:
``--set 'dataset_options={"source": "auto", "label_factor": "shape", "n": 2000}' --steps 20``). The shape is the
label, so ``latentkit evaluate --metric accuracy`` measures the discrete code against it.
"""

from latentkit.train import TrainConfig
from latentkit_plugins.jointvae_recipe import Capacity, JointVAEConfig


def config() -> JointVAEConfig:
    return JointVAEConfig(
        dataset="dsprites",
        dataset_options={"source": "auto", "label_factor": "shape"},
        image_shape=(1, 64, 64),
        cont_units=6,
        disc_sizes=[3],
        cont_capacity=Capacity(0.0, 40.0, 300_000),
        disc_capacity=Capacity(0.0, 1.1, 300_000),
        cont_gamma=150.0,
        disc_gamma=150.0,
        train=TrainConfig(steps=345_600, batch_size=64, lr=5e-4, log_every=1_000, checkpoint_every=10_000),
    )
