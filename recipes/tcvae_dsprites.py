"""JointVAE on dSprites with β-TCVAE's total-correlation penalty added (the paper's future work, section 5).

The paper's dSprites recipe (recipes/jointvae_dsprites.py: capacities, γ = 150, Adam 5e-4, batch 64) with the
``tcvae`` objective: reconstruction + Σ_c γ_c·|KL_c − C_c| + 10·TC, TC estimated on each batch by minibatch stratified
sampling over the joint latent (plugins/tcvae_objective.py). docs/results.md compares it with plain JointVAE and with
FactorVAE's discriminator under one short budget.
"""

from pathlib import Path

import attrs

from latentkit.assembly.recipe import load_recipe


def config():
    base = load_recipe(Path(__file__).with_name("jointvae_dsprites.py"))
    return attrs.evolve(base, objective="tcvae", objective_options={"tc_weight": 10.0, "estimator": "mss"})
