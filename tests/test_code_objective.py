"""The ``jointvae_code`` objective: levers on how a categorical channel uses its categories (plugins/code_objective.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hypothesis
import hypothesis.strategies as st
import pytest
import torch

from latentkit import cli
from latentkit.assembly.build import build_model, build_objective
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.core import SampleNoise
from latentkit.errors import ConfigError
from latentkit_plugins.code_objective import balanced_assignment, pair_mutual_information, random_affine

pytestmark = pytest.mark.usefixtures("single_thread")

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
K = 4
TERMS = {
    "cont": {"gamma": 30.0, "capacity": {"name": "linear", "options": {"c_max": 5.0, "steps": 100}}},
    "disc": {"gamma": 30.0, "capacity": {"name": "linear", "options": {"c_max": 1.0, "steps": 100}}},
}


def small_model(disc_sizes=(K,)):
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 3}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": list(disc_sizes)})],
                     Component("jointvae_conv"))
    torch.manual_seed(0)
    return build_model(spec)


def objective(model, **options):
    built = build_objective(Component("jointvae_code", {"terms": TERMS, **options}), model)
    built.attach(model, seed=3)
    return built


def batch(n=16, seed=1):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- the balanced assignment -------------------------------------------------------------------------------------------


@hypothesis.settings(max_examples=40)
@hypothesis.given(b=st.integers(2, 40), k=st.integers(2, 8), seed=st.integers(0, 2**16), scale=st.floats(0.1, 8.0))
def test_balanced_assignment_gives_every_category_an_equal_share(b, k, seed, scale):
    logits = torch.randn(b, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    q = balanced_assignment(torch.log_softmax(logits, 1), iterations=300, epsilon=0.5)
    assert torch.allclose(q.sum(1), torch.ones(b, dtype=q.dtype), atol=1e-6)  # the last scaling is by image
    assert torch.allclose(q.sum(0), torch.full((k,), b / k, dtype=q.dtype), rtol=1e-2)


def test_balancing_moves_the_images_whose_second_choice_is_the_empty_category():
    """Every image prefers category 0; the balanced targets send to category 1 the images likeliest to be in it."""
    second = torch.linspace(-4.0, -1.0, 8)  # image 7 is the likeliest 1
    log_probs = torch.stack([torch.zeros(8), second], 1).log_softmax(1)
    q = balanced_assignment(log_probs, iterations=200, epsilon=0.05)
    assert q[:, 1].argsort()[-4:].tolist() == [4, 5, 6, 7]
    assert (q[4:, 1] > 0.5).all() and (q[:4, 0] > 0.5).all()


def test_balanced_assignment_keeps_an_already_balanced_confident_code():
    labels = torch.arange(12) % 3
    log_probs = torch.nn.functional.one_hot(labels, 3).double().mul(8).log_softmax(1)
    assert torch.equal(balanced_assignment(log_probs).argmax(1), labels)


# --- the random affine view --------------------------------------------------------------------------------------------


def test_random_affine_with_zero_ranges_is_the_identity():
    x = batch(4)
    out = random_affine(x, torch.Generator().manual_seed(0), rotate=0.0, scale=0.0, shift=0.0)
    assert torch.allclose(out, x, atol=1e-5)


def test_random_affine_moves_images_reproducibly_and_by_a_bounded_amount():
    x = torch.zeros(32, 1, 32, 32)
    x[:, :, 12:20, 12:20] = 1.0
    a = random_affine(x, torch.Generator().manual_seed(5), rotate=10.0, scale=0.1, shift=0.1)
    b = random_affine(x, torch.Generator().manual_seed(5), rotate=10.0, scale=0.1, shift=0.1)
    c = random_affine(x, torch.Generator().manual_seed(6), rotate=10.0, scale=0.1, shift=0.1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().sum() > 0
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    mass = a.sum((1, 2, 3))
    centre_x = (a[:, 0] * xs).sum((1, 2)) / mass
    assert ((centre_x - 15.5).abs() <= 0.1 * 32 + 0.5).all()  # shifted at most 10% of the side
    assert ((mass / 64) - 1).abs().max() < 0.25  # scaled by at most 10% per side


# --- the objective -----------------------------------------------------------------------------------------------------


def test_all_weights_zero_is_the_base_objective_and_logs_category_use():
    model = small_model()
    x = batch()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    base = build_objective(Component("jointvae", {"terms": TERMS}), model)(x, output, 40)
    code = objective(model)(x, output, 40)
    assert float(code["loss"]) == float(base["loss"])
    alpha = output.params["disc"]["alpha"].double()
    mean = alpha.mean(0)
    assert float(code["code/marginal_kl"]) == pytest.approx(float((mean * (mean * K).log()).sum()), rel=1e-4, abs=1e-7)
    used = (torch.bincount(alpha.argmax(1), minlength=K) >= 0.01 * len(x)).sum()
    assert float(code["code/categories_used"]) == float(used)


@pytest.mark.parametrize("term", ["marginal", "balance", "augment"])
def test_each_term_adds_its_weight_times_its_value_ramped_over_warmup(term):
    model = small_model()
    x = batch()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    base = build_objective(Component("jointvae", {"terms": TERMS}), model)(x, output, 40)
    logged = "code/marginal_kl" if term == "marginal" else f"code/{term}"
    code = objective(model, **{f"{term}_weight": 7.0, "warmup": 80})
    logs = code(x, output, 40)  # half-way through the warm-up
    added = 7.0 * 0.5 * float(logs[logged])
    assert float(logs[logged]) > 0
    assert float(logs["objective"]) == pytest.approx(float(base["objective"]) + added, rel=1e-5)
    assert float(logs["loss"]) == pytest.approx(float(base["loss"]) + added / (32 * 32), rel=1e-5)
    full, base_late = code(x, output, 500), build_objective(Component("jointvae", {"terms": TERMS}), model)(x, output, 500)
    assert float(full["objective"]) - float(base_late["objective"]) == pytest.approx(7.0 * float(full[logged]), rel=1e-4, abs=1e-4)


def test_marginal_term_is_zero_for_balanced_use_and_log_k_for_one_category():
    model = small_model()
    code = objective(model, marginal_weight=1.0)
    x = batch(8)
    output = model(x)
    for alpha, expected in ((torch.full((8, K), 1 / K), 0.0), (torch.eye(K)[[0] * 8], math.log(K))):
        output.params["disc"]["alpha"] = alpha
        assert float(code(x, output, 10)["code/marginal_kl"]) == pytest.approx(expected, abs=1e-6)


def test_consistency_is_zero_for_the_identity_transform_and_trains_the_encoder():
    model = small_model()
    x = batch()
    still = objective(model, augment_weight=1.0, augment={"rotate": 0.0, "scale": 0.0, "shift": 0.0})
    model.eval()  # one deterministic encoding, so q(c|T(x)) = q(c|x) exactly when T is the identity
    assert float(still(x, model(x), 5)["code/augment"]) == pytest.approx(0.0, abs=1e-5)
    model.train()
    moving = objective(model, augment_weight=1.0)
    logs = moving(x, model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0))), 5)
    assert float(logs["code/augment"]) > 0
    model.zero_grad()
    (logs["code/augment"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())  # only the encoder sees the augmented view


def test_augmentation_noise_depends_on_seed_and_step_only():
    model = small_model()
    model.eval()
    x = batch()
    output = model(x)
    a, b = objective(model, augment_weight=1.0), objective(model, augment_weight=1.0)
    assert float(a(x, output, 17)["code/augment"]) == float(b(x, output, 17)["code/augment"])
    assert float(a(x, output, 17)["code/augment"]) != float(a(x, output, 18)["code/augment"])


# --- errors ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "sizes", "message"),
    [
        ({"channel": "nope"}, (K,), "not a channel"),
        ({}, (3, 2), "one categorical variable"),
        ({"marginal_weight": -1.0}, (K,), "non-negative"),
        ({"warmup": 2.5}, (K,), "warmup"),
        ({"augment": {"tilt": 3}}, (K,), "augment must be a mapping"),
        ({"sinkhorn_epsilon": 0.0}, (K,), "sinkhorn_epsilon"),
        ({"assignment_weight": 1.0}, (K,), "mixture"),
    ],
)
def test_bad_options_are_config_errors(options, sizes, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(Component("jointvae_code", {"terms": TERMS, **options}), small_model(sizes))


def test_augmenting_without_an_attached_model_says_how_to_attach_it():
    model = small_model()
    code = build_objective(Component("jointvae_code", {"terms": TERMS, "augment_weight": 1.0}), model)
    with pytest.raises(ConfigError, match="attach"):
        code(batch(), model(batch()), 1)


# --- end to end --------------------------------------------------------------------------------------------------------


def test_a_recipe_trains_with_every_lever_and_logs_them(tmp_path):
    out = tmp_path / "levers"
    options = json.dumps({"marginal_weight": 5.0, "balance_weight": 2.0, "augment_weight": 3.0, "warmup": 10})
    args = ["train", str(RECIPES / "jointvae_shapes.py"), "--set", 'dataset_options={"n": 256, "size": 32}',
            "--set", "objective=jointvae_code", "--set", f"objective_options={options}",
            "--set", "train.log_every=5", "--set", "train.checkpoint_every=10", "--set", "train.batch_size=32",
            "--set", "train.figures_every=0", "--quiet", "--steps", "20", "--out", str(out)]
    assert cli.main(args) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"code/marginal_kl", "code/balance", "code/augment", "code/categories_used"} <= set(last)
    assert all(math.isfinite(last[k]) for k in ("code/balance", "code/augment", "loss"))
    # Resuming rebuilds the objective from the run's config, the levers included.
    assert cli.main(["train", "--resume", str(out), "--steps", "25", "--quiet"]) == 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 25


def test_assignment_pulls_the_code_toward_the_mixture_component_the_continuous_code_implies():
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian_mixture", {"units": 3, "components": K}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [K]})], Component("jointvae_conv"))
    torch.manual_seed(0)
    model = build_model(spec)
    x = batch()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    logs = objective(model, assignment_weight=2.0)(x, output, 40)
    family = model.latent.channels["cont"]
    resp = family.responsibilities(output.params["cont"]).detach()
    expected = -(resp * torch.log(output.params["disc"]["alpha"] + 1e-12)).sum(1).mean()
    assert float(logs["code/assignment"]) == pytest.approx(float(expected), rel=1e-5)
    # The gradient reaches the encoder through q(c|x) only: the responsibilities are a fixed target.
    model.zero_grad()
    logs["code/assignment"].backward()
    assert family.mu.grad is None or float(family.mu.grad.abs().sum()) == 0.0


def test_every_arm_of_the_lever_benchmark_builds(monkeypatch):
    """The benchmark's overrides are valid recipe settings: each arm builds its model and objective (no data)."""
    import importlib.util

    from latentkit.assembly.recipe import apply_overrides, load_recipe

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "discrete_levers.py"
    spec = importlib.util.spec_from_file_location("discrete_levers", path)
    levers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(levers)
    for name, overrides in levers.ARMS.items():
        cfg = apply_overrides(load_recipe(RECIPES / "jointvae_mnist.py"), overrides)
        experiment = cfg.experiment()
        model = build_model(experiment.model)
        built = build_objective(experiment.objective, model)
        assert callable(built), name


def test_shear_slants_an_image_by_the_drawn_factor_and_is_off_by_default():
    # a vertical bar sheared by s leans: its column moves by s * (row offset from the centre) * half-width
    x = torch.zeros(1, 1, 33, 33)
    x[..., 4:29, 16] = 1.0
    plain = random_affine(x, torch.Generator().manual_seed(1), rotate=0.0, scale=0.0, shift=0.0)
    assert torch.allclose(plain, x, atol=1e-6)
    sheared = random_affine(x, torch.Generator().manual_seed(1), rotate=0.0, scale=0.0, shift=0.0, shear=0.5)
    top, bottom = sheared[0, 0, 6], sheared[0, 0, 26]
    centre = lambda row: float((row * torch.arange(33.0)).sum() / row.sum())
    assert abs(centre(top) - centre(bottom)) > 2  # the bar leans
    assert abs(centre(sheared[0, 0, 16]) - 16) < 0.5  # about the centre
    # the draws that exist without shear are unchanged by it: same rotation etc. for the same seed
    a = random_affine(x, torch.Generator().manual_seed(3), rotate=10.0, scale=0.1, shift=0.1)
    b = random_affine(x, torch.Generator().manual_seed(3), rotate=10.0, scale=0.1, shift=0.1, shear=0.0, stroke=0.0)
    assert torch.equal(a, b)


def test_stroke_thickens_or_thins_with_the_given_probability():
    x = torch.zeros(400, 1, 16, 16)
    x[:, :, 4:12, 7:9] = 1.0  # a two-pixel-wide bar
    out = random_affine(x, torch.Generator().manual_seed(0), rotate=0.0, scale=0.0, shift=0.0, stroke=0.5)
    mass = out.sum((1, 2, 3))
    thicker, thinner, same = (mass > 17).float().mean(), (mass < 15).float().mean(), ((mass - 16).abs() < 1e-4).float().mean()
    assert 0.15 < thicker < 0.35 and 0.15 < thinner < 0.35 and 0.4 < same < 0.6
    assert float(thicker + thinner + same) == pytest.approx(1.0)


def test_stroke_probability_above_one_is_refused():
    from latentkit.errors import ConfigError

    model = small_model()
    with pytest.raises(ConfigError, match="stroke"):
        objective(model, augment_weight=1.0, augment={"stroke": 1.5})


# --- the pair's mutual information (IIC) -------------------------------------------------------------------------------


def test_pair_information_is_log_k_for_an_agreeing_balanced_code_and_zero_for_independent_views():
    one_hot = torch.eye(K)[torch.arange(4 * K) % K]
    assert float(pair_mutual_information(one_hot, one_hot)) == pytest.approx(math.log(K), rel=1e-5)
    # confident but unrelated views: every pair of categories equally often
    shuffled = torch.eye(K)[(torch.arange(K * K) // K) % K]
    other = torch.eye(K)[torch.arange(K * K) % K]
    assert float(pair_mutual_information(shuffled, other)) == pytest.approx(0.0, abs=1e-5)
    # one category for everything: agreement without information
    same = torch.eye(K)[[0] * 12]
    assert float(pair_mutual_information(same, same)) == pytest.approx(0.0, abs=1e-5)


@hypothesis.settings(max_examples=40)
@hypothesis.given(b=st.integers(2, 40), k=st.integers(2, 8), seed=st.integers(0, 2**16), scale=st.floats(0.1, 8.0))
def test_pair_information_lies_between_zero_and_log_k_and_is_symmetric(b, k, seed, scale):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(b, k, generator=g) * scale).softmax(1)
    c = (torch.randn(b, k, generator=g) * scale).softmax(1)
    mi = float(pair_mutual_information(a, c))
    assert -1e-5 <= mi <= math.log(k) + 1e-5
    assert mi == pytest.approx(float(pair_mutual_information(c, a)), abs=1e-6)


def test_mutual_information_term_subtracts_its_weight_times_the_information_and_trains_both_views():
    model = small_model()
    x = batch()
    output = model(x, noise=SampleNoise.fresh(len(x), torch.Generator().manual_seed(0)))
    base = build_objective(Component("jointvae", {"terms": TERMS}), model)(x, output, 40)
    logs = objective(model, mutual_information_weight=5.0)(x, output, 40)
    mi = float(logs["code/mutual_information"])
    assert -1e-5 < mi <= math.log(K)  # about 0 for an untrained encoder's near-uniform q(c|x)
    assert float(logs["objective"]) == pytest.approx(float(base["objective"]) - 5.0 * mi, rel=1e-6, abs=1e-5)
    # the clean view's posterior gets a gradient (unlike augment's fixed target), and so does the encoder through the
    # augmented view
    (clean,) = torch.autograd.grad(logs["code/mutual_information"], output.params["disc"]["alpha"], retain_graph=True)
    assert clean.abs().sum() > 0
    model.zero_grad()
    (-logs["code/mutual_information"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_mutual_information_term_reaches_log_k_for_an_agreeing_balanced_pair():
    model = small_model()
    x = batch(4 * K)
    output = model(x)
    output.params["disc"]["alpha"] = torch.eye(K)[torch.arange(4 * K) % K]
    code = objective(model, mutual_information_weight=5.0)
    code._moved_alpha = lambda _x, _step: output.params["disc"]["alpha"]  # the augmented view agrees exactly
    base = build_objective(Component("jointvae", {"terms": TERMS}), model)(x, output, 40)
    logs = code(x, output, 40)
    assert float(logs["code/mutual_information"]) == pytest.approx(math.log(K), rel=1e-5)
    assert float(logs["objective"]) == pytest.approx(float(base["objective"]) - 5.0 * math.log(K), rel=1e-5)


def test_the_fashion_mnist_invariant_recipe_trains_and_evaluates_on_fashion_mnist_files(tmp_path, idx_files):
    """Fashion-MNIST is not on this machine; the recipe must still run as shipped on files in torchvision's layout."""
    root = idx_files(tmp_path / "data", "FashionMNIST", n_train=64, n_test=20)
    out = tmp_path / "run"
    args = ["train", str(RECIPES / "jointvae_fashionmnist_invariant.py"), "--data-root", str(root), "--steps", "3",
            "--set", "train.batch_size=32", "--set", "train.figures_every=0", "--set", "train.log_every=1", "--quiet",
            "--out", str(out)]
    assert cli.main(args) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"code/augment", "code/balance"} <= set(last) and math.isfinite(last["loss"])
    assert cli.main(["evaluate", str(out), "--metric", "accuracy", "--data-root", str(root), "--json"]) == 0
    scores = json.loads((out / "evaluation" / "accuracy-test.json").read_text())["results"]
    assert scores["n_images"] == 20 and 0.0 <= scores["hungarian"] <= 1.0


# --- auxiliary heads and the teacher (plugins/code_heads.py) -----------------------------------------------------------

HEADS = {"balance_weight": 3.0, "augment_weight": 5.0}


def _hidden_features(model, x):
    """The input of the encoder's final linear layer, computed without the tap."""
    with torch.no_grad():
        return model.encoder[:-1](x)


def test_heads_read_the_encoders_last_hidden_features_and_leave_the_global_rng_alone():
    model = small_model()
    before = torch.random.get_rng_state()
    code = objective(model, heads=3, overcluster=6, **HEADS)
    assert torch.equal(torch.random.get_rng_state(), before)
    state = code.trainable()
    assert len(state.heads) == 2 and state.overcluster.out_features == 6
    model.eval()
    x = batch()
    model(x)
    assert torch.equal(code.tap.take(len(x)), _hidden_features(model, x))
    with pytest.raises(ConfigError, match="same batch"):
        code.tap.take(len(x))  # taken once: a second objective call without a forward pass is an error


def test_heads_depend_on_the_seed_only():
    a, b = objective(small_model(), heads=2, **HEADS), objective(small_model(), heads=2, **HEADS)
    assert torch.equal(a.trainable().heads[0].weight, b.trainable().heads[0].weight)
    model = small_model()
    c = build_objective(Component("jointvae_code", {"terms": TERMS, "heads": 2, **HEADS}), model)
    c.attach(model, seed=4)
    assert not torch.equal(a.trainable().heads[0].weight, c.trainable().heads[0].weight)


def test_heads_add_their_own_terms_train_only_the_encoder_and_themselves():
    model = small_model()
    x = batch()
    noise = SampleNoise.fresh(len(x), torch.Generator().manual_seed(0))
    plain = objective(model, **HEADS)
    output = model(x, noise=noise)
    without = plain(x, output, 500)
    code = objective(model, heads=3, overcluster=6, **HEADS)
    output = model(x, noise=noise)
    logs = code(x, output, 500)
    # the code's own terms are unchanged while it is its own teacher; the heads' terms come on top
    assert float(logs["code/balance"].detach()) == pytest.approx(float(without["code/balance"].detach()), rel=1e-5)
    assert float(logs["code/augment"].detach()) == pytest.approx(float(without["code/augment"].detach()), rel=1e-5)
    assert float(logs["objective"].detach()) > float(without["objective"].detach())
    assert float(logs["code/teacher"]) == 0.0
    model.zero_grad()
    heads = code.trainable()
    (logs["objective"] - without["objective"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_candidate_losses_are_the_heads_weighted_balance_and_consistency_terms():
    model = small_model()
    model.eval()
    x = batch()
    code = objective(model, heads=2, balance_weight=3.0)  # no augmentation: the balance term alone
    output = model(x)
    logs = code(x, output, 1)
    features = _hidden_features(model, x)
    log_probs = torch.log_softmax(code.trainable().heads[0](features), dim=1)
    target = balanced_assignment(log_probs, 3, 0.05)
    expected = 3.0 * float(-(target * log_probs).sum(1).mean())
    assert float(logs["code/candidate_loss.1"]) == pytest.approx(expected, rel=1e-5)
    assert float(logs["code/candidate_loss.0"]) == pytest.approx(3.0 * float(logs["code/balance"]), rel=1e-5)


def test_the_lowest_average_loss_teaches_from_the_next_multiple_of_select_every():
    model = small_model()
    model.eval()
    x = batch()
    code = objective(model, heads=3, select_every=4, **HEADS)
    state = code.trainable()
    for step in range(3):
        code(x, model(x), step)
        assert int(state.teacher) == 0  # not a multiple of 4 yet (step 2 chooses for step 3)
    state.loss_ema.copy_(torch.tensor([5.0, 9.0, 1.0]))
    state.decay = 1.0  # hold the averages where they were set
    code(x, model(x), 3)  # chooses for step 4
    assert int(state.teacher) == 2
    logs = code(x, model(x), 4)
    # the code's balance target is now head 2's balanced assignment with its categories renamed to the code's
    features = _hidden_features(model, x)
    target = balanced_assignment(torch.log_softmax(state.heads[1](features), dim=1), 3, 0.05)
    renamed = state.aligned(1, target)
    log_alpha = torch.log(model(x).params["disc"]["alpha"].float() + 1e-12)
    assert float(logs["code/balance"]) == pytest.approx(float(-(renamed * log_alpha).sum(1).mean()), rel=1e-5)
    assert float(logs["code/teacher"]) == 2.0


def test_alignment_renames_a_heads_categories_to_the_codes_by_their_agreement():
    from latentkit_plugins.code_heads import CodeHeads

    state = CodeHeads(hidden=8, categories=4, extra=1, overcluster=0, select_every=10, seed=0)
    permutation = torch.tensor([2, 0, 3, 1])  # code category i is head category permutation[i]
    state.agreement[0] = torch.eye(4)[permutation] * 0.25  # agreement[i, permutation[i]] is the high one
    target = torch.eye(4)[torch.tensor([0, 1, 2, 3, 2])]  # head categories of five images
    renamed = state.aligned(0, target)
    assert torch.equal(renamed.argmax(1), torch.argsort(permutation)[target.argmax(1)])


def _last_rows_straight_and_resumed(tmp_path, options: dict, steps: int) -> tuple[dict, dict]:
    """The last logged row of a run trained ``steps`` steps at once, and of the same run stopped at step 5 (a
    checkpoint) and resumed."""
    common = ["--set", 'dataset_options={"n": 128, "size": 32}', "--set", "objective=jointvae_code",
              "--set", f"objective_options={json.dumps(options)}", "--set", "train.log_every=1",
              "--set", "train.batch_size=16", "--set", "train.checkpoint_every=5", "--set", "train.figures_every=0",
              "--quiet", "--seed", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    recipe = str(RECIPES / "jointvae_shapes.py")
    assert cli.main(["train", recipe, *common, "--steps", str(steps), "--out", str(straight)]) == 0
    assert cli.main(["train", recipe, *common, "--steps", "5", "--out", str(resumed)]) == 0
    assert cli.main(["train", "--resume", str(resumed), "--steps", str(steps), "--quiet"]) == 0
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == again[-1]["step"] == steps
    return rows[-1], again[-1]


def test_a_run_with_heads_resumes_as_if_never_stopped(tmp_path):
    options = {"balance_weight": 2.0, "augment_weight": 3.0, "heads": 3, "overcluster": 6, "select_every": 3}
    straight, resumed = _last_rows_straight_and_resumed(tmp_path, options, 12)
    assert {"code/teacher", "code/candidate_loss.2"} <= set(straight)
    assert straight == resumed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heads": 0, **HEADS}, "heads"),
        ({"heads": 3}, "balance_weight or augment_weight"),
        ({"overcluster": 1, **HEADS}, "at least 2"),
        ({"select_every": 0, "heads": 2, **HEADS}, "select_every"),
    ],
)
def test_bad_head_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(Component("jointvae_code", {"terms": TERMS, **options}), small_model())


def test_heads_on_an_encoder_without_a_final_linear_layer_say_what_is_needed():
    from latentkit_plugins.code_heads import final_linear

    with pytest.raises(ConfigError, match="final nn.Linear"):
        final_linear(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), 10)


# --- placement augmentation (dSprites) ---------------------------------------------------------------------------------


def _blob(size=64, row=10, col=50, radius=4):
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((y - row) ** 2 + (x - col) ** 2) <= radius**2).float()[None, None]


def test_recentre_places_the_inks_centroid_at_the_drawn_point_wherever_the_object_was():
    from latentkit_plugins.code_objective import ink_centroid

    image = torch.cat([_blob(row=10, col=50), _blob(row=45, col=12)])
    still = random_affine(image, torch.Generator().manual_seed(0), rotate=0.0, scale=0.0, shift=0.0, recentre=1.0)
    assert torch.allclose(ink_centroid(still), torch.zeros(2, 2), atol=1 / 32)  # both at the centre, within a pixel
    assert torch.allclose(still[0].sum(), image[0].sum(), rtol=0.02)  # moved, not cut
    draw = lambda images: random_affine(images, torch.Generator().manual_seed(1), rotate=180.0, scale=0.0,  # noqa: E731
                                        shift=0.25, recentre=1.0)
    first, second = ink_centroid(draw(image[:1].repeat(64, 1, 1, 1))), ink_centroid(draw(image[1:].repeat(64, 1, 1, 1)))
    assert first.abs().max() <= 0.5 + 1 / 32 and first.abs().max() > 0.3  # anywhere within ±0.25 of the size
    # the placement does not depend on where the object was: under the same draws both objects land at the same points
    assert torch.allclose(first, second, atol=1 / 16)


def test_binarise_makes_the_moved_view_binary_and_draws_no_noise():
    image = _blob(radius=8)
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    grey = random_affine(image, generator(), rotate=30.0, scale=0.2, shift=0.1)
    binary = random_affine(image, generator(), rotate=30.0, scale=0.2, shift=0.1, binarise=0.5)
    assert ((grey > 0) & (grey < 1)).any()
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binary, (grey >= 0.5).float())


@pytest.mark.parametrize(("augment", "message"), [({"recentre": 0.5}, "recentre"), ({"resize": 2.0}, "resize"), ({"binarise": 1.0}, "binarise")])
def test_bad_placement_options_are_config_errors(augment, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(Component("jointvae_code", {"terms": TERMS, "augment": augment}), small_model())


def test_resize_gives_each_view_the_ink_area_of_another_image_of_the_batch():
    images = torch.cat([_blob(radius=r) for r in (3, 5, 8, 11)])  # areas 29 to 377 px
    mass = images.sum((1, 2, 3))
    views = random_affine(images, torch.Generator().manual_seed(0), rotate=0.0, scale=0.0, shift=0.0, recentre=1.0,
                          resize=1.0)
    moved = views.sum((1, 2, 3))
    nearest = (moved[:, None] / mass[None] - 1).abs().min(1).values
    assert nearest.max() < 0.15  # every view has (up to resampling) the area of one of the batch's images
    sizes = torch.stack([random_affine(images, torch.Generator().manual_seed(s), rotate=0.0, scale=0.0, shift=0.0,
                                       recentre=1.0, resize=1.0).sum((1, 2, 3)) for s in range(20)])
    small = sizes[:, 0]
    assert small.max() > 5 * mass[0]  # the smallest object is sometimes given the largest size
    blank = random_affine(torch.zeros(2, 1, 16, 16), torch.Generator().manual_seed(0), 0.0, 0.0, 0.0, resize=1.0)
    assert torch.equal(blank, torch.zeros(2, 1, 16, 16))  # no division by an empty image's area


def test_detached_heads_train_themselves_but_not_the_encoder():
    model = small_model()
    model.eval()  # one deterministic encoding per pass: the objectives below see identical values
    x = batch()
    encoder = [p for p in model.encoder.parameters()]

    def encoder_gradients(objective_fn):
        logs = objective_fn(x, model(x), 500)
        grads = torch.autograd.grad(logs["objective"], encoder + heads, allow_unused=True)
        return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, encoder + heads)]

    heads = []
    plain = encoder_gradients(objective(model, **HEADS))[: len(encoder)]
    for detach in (True, False):
        code = objective(model, heads=3, detach_heads=detach, **HEADS)
        heads = list(code.trainable().parameters())
        grads = encoder_gradients(code)
        assert all(g.abs().sum() > 0 for g in grads[len(encoder):])  # the heads learn either way
        same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-7 * float(a.abs().max())) for a, b in zip(plain, grads))
        assert same == detach  # only undetached heads reach the encoder
    with pytest.raises(ConfigError, match="detach_heads"):
        objective(small_model(), heads=2, detach_heads="yes", **HEADS)


# --- assignment by reconstruction (CascadeVAE) -------------------------------------------------------------------------


def test_reconstruction_assignment_gives_each_image_the_category_that_decodes_it_best():
    model = small_model()
    model.eval()
    n = 4 * K
    truth = torch.arange(n) % K  # image i is best explained by category i % K
    prototypes = torch.rand(K, 1, 32, 32, generator=torch.Generator().manual_seed(5)).round()
    x = prototypes[truth]
    cont = model.latent.sample_slices()["cont"].stop

    def decode(latent):  # the one-hot category picks a prototype, blurred a little; the continuous code is ignored
        return (0.8 * prototypes[latent[:, cont:].argmax(1)] + 0.1).clamp(0, 1)

    model.decode = decode
    code = objective(model, reconstruction_assignment_weight=2.0, sinkhorn_iterations=10)
    target = code._reconstruction_assignment(x, model(x))
    assert torch.equal(target.argmax(1), truth)
    assert torch.allclose(target.sum(0), torch.full((K,), n / K), rtol=1e-3)  # balanced
    logs = code(x, model(x), 500)
    log_alpha = torch.log(model(x).params["disc"]["alpha"].float() + 1e-12)
    assert float(logs["code/reconstruction_assignment"]) == pytest.approx(float(-(target * log_alpha).sum(1).mean()), rel=1e-5)


def test_reconstruction_assignment_needs_the_model():
    model = small_model()
    code = build_objective(Component("jointvae_code", {"terms": TERMS, "reconstruction_assignment_weight": 1.0}), model)
    with pytest.raises(ConfigError, match="attach"):
        code(batch(), model(batch()), 1)


def test_reconstruction_assignment_stays_finite_when_categories_are_thousands_of_nats_apart():
    model = small_model()
    model.eval()
    x = torch.ones(2 * K, 1, 32, 32)
    cont = model.latent.sample_slices()["cont"].stop

    def decode(latent):  # category 0 reconstructs all-ones images almost perfectly, the others as badly as possible
        best = (latent[:, cont:].argmax(1) == 0).float()[:, None, None, None]
        return best * 0.999999 + (1 - best) * 1e-6 + torch.zeros(len(latent), 1, 32, 32)

    model.decode = decode
    code = objective(model, reconstruction_assignment_weight=1.0, sinkhorn_iterations=10)
    target = code._reconstruction_assignment(x, model(x))
    assert torch.isfinite(target).all()
    assert torch.allclose(target.sum(0), torch.full((K,), 2.0), rtol=1e-3)  # still balanced: images share the others


def test_terms_start_late_when_asked_and_capacities_can_too():
    from latentkit_plugins.schedules import LinearCapacity

    code = objective(small_model(), marginal_weight=1.0, start=100, warmup=50)
    assert [code.ramp(s) for s in (0, 99, 100, 125, 150, 400)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    late = LinearCapacity(0.0, 1.1, steps=6000, start=8000)
    assert [late(s) for s in (0, 8000, 11000, 14000, 99999)] == [0.0, 0.0, pytest.approx(0.55), 1.1, 1.1]
    assert LinearCapacity(0.0, 5.0, 25000)(12500) == LinearCapacity(0.0, 5.0, 25000, start=0)(12500) == 2.5


def test_heads_weight_scales_what_the_heads_add():
    model = small_model()
    model.eval()
    x = batch()
    plain = float(objective(model, **HEADS)(x, model(x), 500)["objective"].detach())
    full = float(objective(model, heads=3, **HEADS)(x, model(x), 500)["objective"].detach())
    quarter = float(objective(model, heads=3, heads_weight=0.25, **HEADS)(x, model(x), 500)["objective"].detach())
    assert full > plain
    assert quarter - plain == pytest.approx(0.25 * (full - plain), rel=1e-4)


# --- regrouping: over-cluster, merge along the augmentation graph, refit a head (plugins/code_regroup.py) ---------------


def _styled_classes(per_style=60, seed=0):
    """Four classes of two styles each in 2-D; a style sits nearer a style of *another* class than its own class's
    other style, so grouping by distance alone mixes classes. A moved view of a point is a point of the same class in
    either style (the augmentation changes the style, never the class)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    styles = [centres[c] + torch.tensor([2.0, 0.0]) * (1 if s else -1) for c in range(4) for s in range(2)]
    # class c's style 1 is moved next to class (c + 1) % 4's style 0
    for c in range(4):
        styles[2 * c + 1] = styles[2 * ((c + 1) % 4)] + torch.tensor([0.0, 2.5])
    features, labels, style_of = [], [], []
    for index, centre in enumerate(styles):
        features.append(centre + 0.3 * torch.randn(per_style, 2, generator=g))
        labels += [index // 2] * per_style
        style_of += [index] * per_style
    features, labels = torch.cat(features), torch.tensor(labels)

    def moved_view():
        other = torch.tensor([int(torch.randint(2, (1,), generator=g)) for _ in labels]) + 2 * labels
        return torch.stack(styles)[other] + 0.3 * torch.randn(len(labels), 2, generator=g)

    return features, labels, [moved_view() for _ in range(2)]


def _agreement(a, b, k):
    from scipy.optimize import linear_sum_assignment

    table = torch.zeros(k, k)
    table.index_put_((a, b), torch.ones(len(a)), accumulate=True)
    rows, cols = linear_sum_assignment(table.numpy(), maximize=True)
    return float(table[rows, cols].sum()) / len(a)


def test_regrouping_recovers_classes_that_distance_alone_mixes():
    from latentkit_plugins.code_regroup import assign, kmeans, regroup

    features, labels, moved = _styled_classes()
    groups, within = regroup(features, moved, clusters=8, groups=4, generator=torch.Generator().manual_seed(1))
    assert _agreement(groups, labels, 4) == 1.0
    assert within > 0.95  # every move stays in its class's group
    plain = assign(features, kmeans(features, 4, torch.Generator().manual_seed(1), restarts=4))
    assert _agreement(plain, labels, 4) < 0.9  # the control: k-means into 4 groups by distance mixes the classes


def test_fit_linear_reproduces_the_groups_and_is_no_more_confident_than_the_moved_views_allow():
    from latentkit_plugins.code_regroup import fit_linear

    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 16, generator=g)
    labels = torch.arange(4).repeat_interleave(50)
    features = centres[labels] + torch.randn(200, 16, generator=g)
    moved = [centres[labels] + 2 * torch.randn(200, 16, generator=g) for _ in range(2)]  # noisier: some cross over
    layer = torch.nn.Linear(16, 4)
    before = layer.weight
    share = fit_linear(layer, features, labels, moved)
    assert layer.weight is before  # the parameter the optimiser holds is kept, only its values change
    assert share == pytest.approx(float((layer(features).argmax(1) == labels).float().mean()))
    assert share > 0.95
    # the temperature: softening the fitted logits further fits the moved views no better
    cost = lambda t: float(torch.nn.functional.cross_entropy(layer(torch.cat(moved)).detach() / t, labels.repeat(2)))  # noqa: E731,E501
    assert cost(1.0) <= min(cost(1.25), cost(2.0)) + 1e-4


REGROUP = {"heads": 3, "regroup_every": 3, "regroup_bank": 48, "regroup_clusters": 8, **HEADS}


def test_the_bank_keeps_the_latest_images_in_a_ring():
    code = objective(small_model(), **REGROUP)
    state = code.trainable()
    for i in range(4):
        state.remember(torch.full((20, 1, 32, 32), float(i)))
    assert int(state.bank_filled) == 48 and int(state.bank_next) == 80 % 48
    # the latest 48 of the 80 images: all of batches 3 and 2, the last 8 of batch 1, written round the ring
    assert state.bank.float().flatten(1)[:, 0].tolist() == [2.0] * 12 + [3.0] * 20 + [1.0] * 8 + [2.0] * 8


def test_regrouping_refits_the_worst_head_at_its_steps_and_restarts_its_average():
    model = small_model()
    model.eval()
    code = objective(model, **REGROUP)
    state = code.trainable()
    for step in range(3):  # steps 0, 1, 2 fill the bank (48 images); nothing is refitted before step 3
        x = batch(16, seed=step)
        logs = code(x, model(x), step)
        assert math.isnan(float(logs["code/regroup_fit"]))
    state.loss_ema.copy_(torch.tensor([1.0, 2.0, 9.0]))  # head 1 (candidate 2) is the worst
    kept, refitted = state.heads[0].weight.clone(), state.heads[1].weight.clone()
    x = batch(16, seed=3)
    logs = code(x, model(x), 3)
    assert torch.equal(state.heads[0].weight, kept) and not torch.equal(state.heads[1].weight, refitted)
    assert 0.0 <= float(logs["code/regroup_fit"]) <= 1.0 and 0.0 <= float(logs["code/regroup_within"]) <= 1.0
    x = batch(16, seed=4)
    logs = code(x, model(x), 4)
    # the refitted head's average starts again from this step's loss; the others carry on
    assert float(state.loss_ema[2]) == pytest.approx(float(logs["code/candidate_loss.2"]))
    assert float(state.loss_ema[2]) != pytest.approx(9.0 * state.decay, rel=1e-3)


def test_the_teacher_is_never_the_head_refitted():
    from latentkit_plugins.code_heads import CodeHeads

    state = CodeHeads(hidden=8, categories=4, extra=3, overcluster=0, select_every=10, seed=0)
    state.loss_ema.copy_(torch.tensor([5.0, 1.0, 7.0, 3.0]))
    assert state.worst_head() == 1  # candidate 2
    state.teacher.fill_(2)  # head 1 teaches: the worst of the others is refitted instead
    assert state.worst_head() == 2


def test_a_run_that_regroups_resumes_as_if_never_stopped(tmp_path):
    options = {"balance_weight": 2.0, "augment_weight": 3.0, "heads": 3, "select_every": 3, "regroup_every": 4,
               "regroup_start": 4, "regroup_bank": 64, "regroup_clusters": 8}
    straight, resumed = _last_rows_straight_and_resumed(tmp_path, options, 10)
    assert math.isfinite(straight["code/regroup_fit"])  # regrouped at steps 4 and 8, the bank saved at step 5
    assert straight == resumed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"regroup_every": 100, **HEADS}, "heads to 2 or more"),
        ({"regroup_every": 100, "heads": 3, "balance_weight": 3.0}, "augment_weight"),
        ({"regroup_every": 100, "regroup_clusters": 4, "heads": 3, **HEADS}, "more than the code's 4"),
        ({"regroup_every": 100, "regroup_bank": 20, "heads": 3, **HEADS}, "too few images"),
    ],
)
def test_bad_regroup_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(Component("jointvae_code", {"terms": TERMS, **options}), small_model())
