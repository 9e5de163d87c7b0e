"""JointVAE on dSprites with FactorVAE's discriminator-based total-correlation penalty (the paper's future work).

The paper's dSprites recipe (recipes/jointvae_dsprites.py) with the ``factorvae`` objective: reconstruction
+ Σ_c γ_c·|KL_c − C_c| + 10·TC, TC estimated by a discriminator between the batch's joint codes and codes with every
unit shuffled across the batch (FactorVAE's: 6 layers of 1000, Adam 1e-4, betas (0.5, 0.9); plugins/factorvae_objective.py).
"""

from pathlib import Path

import attrs

from latentkit.assembly.recipe import load_recipe


def config():
    base = load_recipe(Path(__file__).with_name("jointvae_dsprites.py"))
    return attrs.evolve(base, objective="factorvae", objective_options={"tc_weight": 10.0})
