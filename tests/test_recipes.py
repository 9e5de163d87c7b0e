"""Every recipe builds its model and objective, with the original's parameter counts where the paper has them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentkit.assembly.build import build_model, build_objective
from latentkit.assembly.recipe import load_recipe
from latentkit.core import NetworkFamily, Objective
from latentkit.plugins import get_registry

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
    from latentkit.assembly.recipe import apply_overrides, config_from_dict, config_to_dict
    from latentkit_plugins.jointvae_recipe import JointVAEConfig
    from latentkit.errors import ConfigError

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


# --- plugins receive only their own options ---------------------------------------------------------------------------


class _BetaVAE(Objective):
    """A β-VAE objective written from scratch: it declares the context value it uses (``latent``) and its one option."""

    objective_name = "betavae_scratch"

    def __init__(self, latent, beta: float):
        self.latent, self.beta = latent, beta

    def __call__(self, x, output, step):
        recon = torch.nn.functional.binary_cross_entropy(output.reconstruction, x, reduction="sum") / x.shape[0]
        kl = sum(units.sum(1).mean() for units in self.latent.kl(output.params, output.samples).values())
        return {"loss": recon + self.beta * kl, "recon": recon, "kl/total": kl}


class _TinyNet(NetworkFamily):
    """A network with no ``hidden`` option: one linear layer each way."""

    def __init__(self, width: int = 8):
        self.width = width

    def encoder(self, image_shape, out_features):
        size = int(torch.tensor(image_shape).prod())
        return torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(size, self.width), torch.nn.ReLU(),
                                   torch.nn.Linear(self.width, out_features))

    def decoder(self, in_features, image_shape):
        size = int(torch.tensor(image_shape).prod())
        return torch.nn.Sequential(torch.nn.Linear(in_features, size), torch.nn.Unflatten(1, tuple(image_shape)),
                                   torch.nn.Sigmoid())


class _ScratchPlugin:
    def latentkit_register_objectives(self, registry):
        registry.add("betavae_scratch", lambda latent, beta=4.0: _BetaVAE(latent, beta))

    def latentkit_register_networks(self, registry):
        registry.add("tiny_scratch", _TinyNet)


def _scratch_recipe(**changes):
    from latentkit.assembly.recipe import VAEConfig
    from latentkit.train import TrainConfig
    from latentkit.specs import ChannelSpec, Component

    settings = {
        "dataset": Component("signals", {"n": 32, "length": 16}),
        "image_shape": (1, 16),
        "channels": [ChannelSpec("z", "gaussian", {"units": 2})],
        "network": Component("tiny_scratch", {"width": 8}),
        "objective": Component("betavae_scratch", {"beta": 2.0}),
        "train": TrainConfig(steps=2, batch_size=8, log_every=1, checkpoint_every=2, figures_every=0, threads=1),
    }
    return VAEConfig(**{**settings, **changes})


def test_plugins_written_from_scratch_train_through_a_recipe_with_only_their_own_options(plugins, tmp_path):
    from latentkit.assembly.checkpoint import load_model
    from latentkit.assembly.recipe import VAEConfig, apply_overrides, config_from_dict, config_to_dict
    from latentkit.assembly.session import prepare_run
    from latentkit.specs import Component

    plugins.register(_ScratchPlugin(), name="scratch")
    cfg = _scratch_recipe()
    experiment = cfg.experiment()
    assert experiment.objective.options == {"beta": 2.0} and experiment.model.network.options == {"width": 8}
    assert config_from_dict(VAEConfig, config_to_dict(cfg)) == cfg  # survives the run directory's JSON
    assert apply_overrides(cfg, ['objective.options={"beta": 3.0}']).objective.options == {"beta": 3.0}
    prepare_run(experiment, out=str(tmp_path / "run"), quiet=True).fit()
    model, saved = load_model(tmp_path / "run")
    assert saved["step"] == 2 and saved["objective"] == {"name": "betavae_scratch", "options": {"beta": 2.0}}
    assert isinstance(build_objective(Component(**saved["objective"]), model), _BetaVAE)


@pytest.mark.parametrize(("part", "component", "phrase"), [
    ("objective", {"name": "betavae_scratch", "options": {"beta": 2.0, "terms": {}}},
     r"objective 'betavae_scratch' has no option 'terms'; its options are beta"),
    ("network", {"name": "tiny_scratch", "options": {"hidden": 256}},
     r"network 'tiny_scratch' has no option 'hidden'; its options are width"),
    ("network", {"name": "jointvae_conv", "options": {"width": 3}},
     r"network 'jointvae_conv' has no option 'width'; its options are hidden"),
])
def test_an_option_a_plugin_does_not_declare_is_a_clear_error(plugins, part, component, phrase):
    from latentkit.errors import ConfigError

    plugins.register(_ScratchPlugin(), name="scratch")
    experiment = _scratch_recipe(image_shape=(1, 32, 32), **{part: component}).experiment()
    with pytest.raises(ConfigError, match=phrase):
        model = build_model(experiment.model)
        build_objective(experiment.objective, model)


def test_context_values_reach_only_factories_that_declare_them():
    from latentkit.plugins.factories import call_factory

    seen = {}

    def wants_latent(latent, weight: float = 1.0):
        seen.update(latent=latent, weight=weight)
        return "built"

    context = {"latent": "L", "image_shape": (1, 4), "registry": "R", "dataset_size": None}
    assert call_factory("objective 'x'", wants_latent, {"weight": 2.0}, context) == "built"
    assert seen == {"latent": "L", "weight": 2.0}
    with pytest.raises(Exception, match="needs dataset_size, which is not known here"):
        call_factory("objective 'y'", lambda dataset_size: None, {}, context)
    with pytest.raises(Exception, match="needs the option.s. beta"):
        call_factory("objective 'z'", lambda latent, beta: None, {}, context)


def test_jointvae_recipe_passes_hidden_only_when_set():
    from latentkit_plugins.jointvae_recipe import JointVAEConfig

    assert "hidden" not in JointVAEConfig().experiment().model.network.options  # the network's default (256)
    assert JointVAEConfig(hidden=64).experiment().model.network.options == {"hidden": 64}
    n_params = sum(p.numel() for p in build_model(JointVAEConfig().experiment().model).parameters())
    assert n_params == ORIGINAL_PARAMS["jointvae_mnist"]


def test_a_saved_model_spec_names_its_network():
    """The framework has no default network (it names no plugin): a spec without one is a ConfigError saying so."""
    from latentkit.errors import ConfigError
    from latentkit.specs import ModelSpec

    spec = {"image_shape": [1, 32, 32], "channels": [{"name": "z", "family": "gaussian", "options": {"units": 2}}]}
    with pytest.raises(ConfigError, match=r"needs 'image_shape', 'channels' and 'network'; \['network'\] missing"):
        ModelSpec.from_dict(spec)
    assert ModelSpec.from_dict({**spec, "network": "mlp"}).network.name == "mlp"


def test_no_plugin_imports_the_assembly():
    """Plugins get what they build on (another objective) from the registry their hook is handed, never from
    latentkit.assembly: a plugin package must work with whatever assembles runs."""
    import ast

    bad = []
    for path in sorted((Path(__file__).resolve().parents[1] / "plugins").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name}: {n}" for n in names if n == "latentkit.assembly" or n.startswith("latentkit.assembly.")]
    assert not bad, bad


def test_robust_mnist_recipe_is_the_invariant_one_with_heads_in_30000_steps():
    """Heads with regrouping, 30,000 steps, the continuous ramp shortened to 15,000 and the learning rate falling from
    25,000; the discrete capacity's path and everything else are the invariant recipe's."""
    import attrs

    root = Path(__file__).resolve().parents[1] / "recipes"
    robust, invariant = load_recipe(root / "jointvae_mnist_robust.py"), load_recipe(root / "jointvae_mnist_invariant.py")
    assert robust.train.steps == 30_000 and robust.objective_options["heads"] > 1
    assert robust.cont_capacity.steps == 15_000 and robust.train.lr_decay_start == 25_000
    assert robust.disc_capacity == invariant.disc_capacity
    assert robust.cont_capacity.c_max == invariant.cont_capacity.c_max
    assert robust.objective_options["regroup_every"] == robust.objective_options["regroup_start"] == 5_000
    added = ("heads", "select_every", "regroup_every", "regroup_start")
    options = {k: v for k, v in robust.objective_options.items() if k not in added}
    assert attrs.evolve(robust, objective_options=options, train=invariant.train,
                        cont_capacity=invariant.cont_capacity) == invariant


def test_dsprites_invariant_recipe_is_the_fixed_schedule_baseline_plus_canonical_code_and_code_terms():
    """The comparison's fixed-schedule JointVAE arm (benchmarks/compare_dsprites.py --schedule fixed: γ 30, 0 → 10 and
    0 → 1.1 nats over 60% of 20,000 steps) with the code read from the canonical view and the consistency and balance
    terms; nothing else differs from the paper recipe."""
    import attrs

    root = Path(__file__).resolve().parents[1] / "recipes"
    ours, paper = load_recipe(root / "jointvae_dsprites_invariant.py"), load_recipe(root / "jointvae_dsprites.py")
    assert (ours.cont_capacity.c_max, ours.disc_capacity.c_max, ours.cont_gamma, ours.disc_gamma) == (10.0, 1.1, 30, 30)
    assert ours.cont_capacity.steps == ours.disc_capacity.steps == round(0.6 * ours.train.steps) == 12_000
    assert ours.objective == "jointvae_code" and ours.objective_options["augment"]["recentre"] == 1.0
    assert ours.network == "jointvae_conv_canonical" and ours.network_options == {"canonical_features": 3}
    baseline = attrs.evolve(ours, objective="jointvae", objective_options={}, network=paper.network,
                            network_options=paper.network_options)
    assert attrs.evolve(baseline, cont_capacity=paper.cont_capacity, disc_capacity=paper.disc_capacity,
                        cont_gamma=paper.cont_gamma, disc_gamma=paper.disc_gamma, train=paper.train) == paper
