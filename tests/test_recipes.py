"""Every recipe builds its model and objective, with the original's parameter counts where the paper has them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentkit.assembly.build import build_model, build_objective
from latentkit.plugins import get_registry
from latentkit.assembly.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.py"))
#: Parameter counts of the original code's models (../shared/notes/reference-implementation.md).
ORIGINAL_PARAMS = {
    "jointvae_mnist": 687_359,
    "jointvae_dsprites": 762_704,
    "jointvae_chairs": 784_263,
    "jointvae_celeba": 788_365,
}
PAPER = {  # recipe: (cont units, disc sizes, cont (max, steps, gamma), disc (max, steps, gamma), lr)
    "jointvae_mnist": (10, [10], (5.0, 25_000, 30.0), (5.0, 25_000, 30.0), 5e-4),
    "jointvae_fashionmnist": (10, [10], (5.0, 50_000, 100.0), (10.0, 50_000, 100.0), 5e-4),
    "jointvae_chairs": (32, [2, 2, 2], (30.0, 100_000, 300.0), (5.0, 100_000, 300.0), 1e-4),
    "jointvae_celeba": (32, [10], (50.0, 100_000, 100.0), (10.0, 100_000, 100.0), 5e-4),
    "jointvae_dsprites": (6, [3], (40.0, 300_000, 150.0), (1.1, 300_000, 150.0), 5e-4),
}


def test_the_five_datasets_and_baselines_have_recipes():
    names = {p.stem for p in RECIPES}
    assert set(PAPER) <= names
    assert {"betavae_mnist", "betavae_dsprites", "annealedvae_mnist", "annealedvae_dsprites"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_builds(path):
    cfg = load_recipe(path)
    experiment = cfg.experiment()
    registry = get_registry()
    assert experiment.dataset.name in registry.datasets, experiment.dataset.name
    model = build_model(experiment.model)
    objective = build_objective(experiment.objective, model, dataset_size=1000)  # tcvae weighs batches by it
    n_params = sum(p.numel() for p in model.parameters())
    if path.stem in ORIGINAL_PARAMS:
        assert n_params == ORIGINAL_PARAMS[path.stem]
    objective.attach(model, seed=0)  # as the training task does: objectives with an augmented view need the model
    x = torch.rand(2, *experiment.model.image_shape)
    model.train()
    logs = objective(x, model(x), step=1)
    assert torch.isfinite(logs["loss"]) and logs["loss"].requires_grad


@pytest.mark.parametrize("name", sorted(PAPER))
def test_recipe_has_paper_settings(name):
    cont, disc, cont_cap, disc_cap, lr = PAPER[name]
    cfg = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py")
    assert cfg.cont_units == cont and list(cfg.disc_sizes) == disc
    assert (cfg.cont_capacity.c_max, cfg.cont_capacity.steps, cfg.cont_gamma) == cont_cap
    assert (cfg.disc_capacity.c_max, cfg.disc_capacity.steps, cfg.disc_gamma) == disc_cap
    assert cfg.train.lr == lr and cfg.train.batch_size == 64


@pytest.mark.parametrize(("variant", "paper"), [("jointvae_mnist_invariant", "jointvae_mnist"),
                                               ("jointvae_fashionmnist_invariant", "jointvae_fashionmnist")])
def test_invariant_code_recipes_are_the_paper_recipe_plus_code_terms(variant, paper):
    import attrs

    root = Path(__file__).resolve().parents[1] / "recipes"
    ours, theirs = load_recipe(root / f"{variant}.py"), load_recipe(root / f"{paper}.py")
    assert ours.objective == "jointvae_code" and ours.objective_options["augment_weight"] > 0
    assert attrs.evolve(ours, objective="jointvae", objective_options={}) == theirs


def test_mnist_recipe_is_100_epochs():
    cfg = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "jointvae_mnist.py")
    assert cfg.train.steps == 100 * 938  # ceil(60000 / 64) batches per epoch, the last one partial


def test_betavae_is_recon_plus_beta_kl():
    cfg = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "betavae_mnist.py")
    experiment = cfg.experiment()
    model = build_model(experiment.model).eval()
    objective = build_objective(experiment.objective, model)
    x = torch.rand(4, 1, 32, 32)
    logs = objective(x, model(x), step=500)
    assert torch.allclose(logs["objective"], logs["recon"] + 4.0 * logs["kl/cont"])


def test_extra_channels_and_objective_fields():
    from latentkit.errors import ConfigError
    from latentkit.assembly.recipe import JointVAEConfig, apply_overrides, config_from_dict, config_to_dict

    cfg = JointVAEConfig(extra_channels=[{"name": "bits", "family": "relaxed_bernoulli", "options": {"units": 3},
                                          "gamma": 10.0, "capacity": {"c_min": 0.0, "c_max": 2.5, "steps": 100}}])
    experiment = cfg.experiment()
    assert [c.name for c in experiment.model.channels] == ["cont", "disc", "bits"]
    assert experiment.objective.options["terms"]["bits"]["gamma"] == 10.0
    assert config_from_dict(JointVAEConfig, config_to_dict(cfg)) == cfg  # survives the run directory's JSON
    tc = apply_overrides(cfg, ["objective=tcvae", 'objective_options={"tc_weight": 3.0}']).experiment()
    assert tc.objective.name == "tcvae" and tc.objective.options["tc_weight"] == 3.0
    with pytest.raises(ConfigError, match="clashes"):
        JointVAEConfig(extra_channels=[{"name": "disc", "family": "laplace"}]).experiment()
    with pytest.raises(ConfigError, match="objective_options may not set"):
        JointVAEConfig(objective_options={"terms": {}}).experiment()
    with pytest.raises(ConfigError, match="name and a family"):
        JointVAEConfig(extra_channels=[{"family": "laplace"}])
