"""The JointVAE objective, built from configuration through the registry, against an independent computation.

Why: the objective is where the paper's formula ``recon + Σ_c γ_c |KL_c − C_c|`` meets the original code's scaling
quirks (``/(H·W)``, the per-channel BCE mean). Every expected value below is recomputed here from
torch.nn.functional and torch.distributions, not from the objective's own helpers, so a wrong reduction, a wrong
scale, an unclipped capacity or a batch-size-dependent KL term each fails a test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence

from latentkit.assembly.build import build_objective
from latentkit.specs import Component
from latentkit.core import JointLatent, JointLatentVAE, ModelOutput
from latentkit.errors import ConfigError, UnknownNameError
from latentkit_plugins.gaussian import Gaussian
from latentkit_plugins.gumbel_softmax import GumbelSoftmax

pytestmark = pytest.mark.usefixtures("single_thread")

SIZES = [10, 3]
LOG_K = math.log(10) + math.log(3)


def _model(image_shape=(1, 8, 8), cont_units=3, sizes=SIZES) -> JointLatentVAE:
    channels = {}
    if cont_units:
        channels["cont"] = Gaussian(cont_units)
    if sizes:
        channels["disc"] = GumbelSoftmax(sizes)
    return JointLatentVAE(nn.Identity(), JointLatent(channels), nn.Identity(), image_shape)


def _term(gamma, name="linear", **options):
    return {"gamma": gamma, "capacity": {"name": name, "options": options}}


def _objective(model, terms, **options):
    return build_objective(Component("jointvae", {"terms": terms, **options}), model)


def _batch(model, batch=4, seed=0, features=None):
    gen = torch.Generator().manual_seed(seed)
    latent = model.latent
    if features is None:
        features = torch.randn(batch, latent.param_size, generator=gen)
    params = latent.split(features)
    samples = latent.sample(params, reparametrise=False)
    shape = (features.shape[0], *model.image_shape)
    x = torch.rand(shape, generator=gen)
    recon = torch.sigmoid(torch.randn(shape, generator=gen))
    return x, ModelOutput(recon, params, samples, latent.concat(samples))


def _expected_recon(x, output):
    """Bernoulli NLL summed over each image's C·H·W values, averaged over the batch."""
    r = output.reconstruction
    return -(x * torch.log(r) + (1 - x) * torch.log(1 - r)).flatten(1).sum(1).mean()


def _expected_kls(output):
    """Per-channel KL summed over units, batch-averaged, via torch.distributions (not the families)."""
    out = {}
    if "cont" in output.params:
        p = output.params["cont"]
        q = Normal(p["mean"], torch.exp(0.5 * p["logvar"]))
        out["cont"] = kl_divergence(q, Normal(0.0, 1.0)).sum(1).mean()
    if "disc" in output.params:
        total = 0.0
        for alpha in torch.split(output.params["disc"]["alpha"], SIZES, dim=-1):
            total = total + kl_divergence(Categorical(probs=alpha), Categorical(logits=torch.zeros_like(alpha)))
        out["disc"] = total.mean()
    return out


# --- the loss ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [0, 10, 50, 100, 10_000])
def test_loss_is_recon_plus_gamma_abs_kl_minus_capacity_over_pixels(step):
    model = _model()
    terms = {"cont": _term(30.0, c_max=5.0, steps=100), "disc": _term(40.0, c_min=0.5, c_max=50.0, steps=100)}
    objective = _objective(model, terms)
    x, output = _batch(model)
    logs = objective(x, output, step)
    recon, kls = _expected_recon(x, output), _expected_kls(output)
    cap_cont = min(5.0, 5.0 * step / 100)
    cap_disc = min(0.5 + 49.5 * step / 100, 50.0, LOG_K)  # clipped at Σ log K
    total = recon + 30.0 * (kls["cont"] - cap_cont).abs() + 40.0 * (kls["disc"] - cap_disc).abs()
    torch.testing.assert_close(logs["recon"], recon, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logs["kl/cont"], kls["cont"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logs["kl/disc"], kls["disc"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logs["objective"], total, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logs["loss"], total / (8 * 8), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logs["kl/total"], kls["cont"] + kls["disc"], rtol=1e-5, atol=1e-6)
    per_unit = sum(logs[f"kl_unit/disc.{i}"] for i in range(len(SIZES)))
    torch.testing.assert_close(per_unit, logs["kl/disc"])


def test_scale_none_leaves_the_loss_unscaled():
    model = _model()
    terms = {"cont": _term(1.0, c_max=1.0), "disc": _term(1.0, c_max=1.0)}
    x, output = _batch(model)
    logs = _objective(model, terms, scale="none")(x, output, 7)
    torch.testing.assert_close(logs["loss"], logs["objective"])


def test_logged_capacity_is_clipped_at_sum_log_k_while_the_target_shows_the_ask():
    model = _model()
    terms = {"cont": _term(30.0, c_max=50.0, steps=100), "disc": _term(30.0, c_max=5.0, steps=100)}
    objective = _objective(model, terms)
    x, output = _batch(model)
    for step, asked in [(0, 0.0), (20, 1.0), (60, 3.0), (100, 5.0), (1000, 5.0)]:
        logs = objective(x, output, step)
        assert logs["capacity_target/disc"].item() == pytest.approx(asked)
        assert logs["capacity/disc"].item() == pytest.approx(min(asked, LOG_K))
        assert logs["capacity/disc"].item() <= LOG_K + 1e-6
        # the Gaussian channel is unbounded: never clipped
        assert logs["capacity/cont"].item() == pytest.approx(logs["capacity_target/cont"].item())
    logs = objective(x, output, 100)
    expected = logs["recon"] + 30.0 * (logs["kl/cont"] - 50.0).abs() + 30.0 * (logs["kl/disc"] - LOG_K).abs()
    torch.testing.assert_close(logs["objective"], expected)  # the clipped capacity is the one optimised


def test_capacity_depends_only_on_the_step():
    """Schedules are pure: the same step gives the same capacity whatever was evaluated before (exact resume)."""
    model = _model()
    objective = _objective(model, {"cont": _term(1.0, c_max=5.0, steps=50), "disc": _term(1.0, c_max=1.0, steps=50)})
    x, output = _batch(model)
    first = objective(x, output, 25)
    objective(x, output, 49_999)
    objective(x, output, 3)
    again = objective(x, output, 25)
    for key in first:
        torch.testing.assert_close(first[key], again[key])


def test_channel_mean_compat_divides_recon_by_c_for_three_channel_images():
    model = _model(image_shape=(3, 8, 8))
    terms = {"cont": _term(1.0, c_max=1.0), "disc": _term(1.0, c_max=1.0)}
    x, output = _batch(model)
    default = _objective(model, terms)(x, output, 10)
    compat = _objective(model, terms, channel_mean_compat=True)(x, output, 10)
    torch.testing.assert_close(default["recon"], _expected_recon(x, output), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(compat["recon"], default["recon"] / 3, rtol=1e-6, atol=1e-5)
    # what the original computed: BCE averaged over C·B rows of H·W pixels, summed per row
    original = F.binary_cross_entropy(output.reconstruction.reshape(-1, 64), x.reshape(-1, 64), reduction="none")
    torch.testing.assert_close(compat["recon"], original.sum(1).mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(compat["loss"] - default["loss"], (compat["recon"] - default["recon"]) / 64)


def test_channel_mean_compat_changes_nothing_for_one_channel_images():
    model = _model(image_shape=(1, 8, 8))
    terms = {"cont": _term(1.0, c_max=1.0), "disc": _term(1.0, c_max=1.0)}
    x, output = _batch(model)
    default = _objective(model, terms)(x, output, 10)
    compat = _objective(model, terms, channel_mean_compat=True)(x, output, 10)
    torch.testing.assert_close(compat["loss"], default["loss"])


@pytest.mark.parametrize("beta", [1.0, 4.0, 250.0])
def test_beta_vae_is_constant_zero_capacity_with_gamma_beta(beta):
    model = _model(cont_units=5, sizes=None)
    objective = _objective(model, {"cont": {"gamma": beta, "capacity": {"name": "constant", "options": {"value": 0}}}})
    x, output = _batch(model)
    logs = objective(x, output, 123)
    expected = _expected_recon(x, output) + beta * _expected_kls(output)["cont"]
    torch.testing.assert_close(logs["objective"], expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logs["loss"], expected / 64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("repeat", [2, 7, 64])
def test_capacity_term_does_not_depend_on_batch_size(repeat):
    """The 'minibatch weight' guard: the same image repeated gives the same KL and capacity terms (and loss), i.e.
    KL is averaged over the batch, never summed or scaled by the data set size."""
    model = _model()
    terms = {"cont": _term(30.0, c_max=5.0, steps=100), "disc": _term(30.0, c_max=5.0, steps=100)}
    objective = _objective(model, terms)
    x1, out1 = _batch(model, batch=1, seed=3)
    features = torch.cat([out1.params["cont"]["mean"], out1.params["cont"]["logvar"],
                          torch.log(out1.params["disc"]["alpha"])], dim=1)
    _, out_n = _batch(model, features=features.expand(repeat, -1))
    out_n = ModelOutput(out1.reconstruction.expand(repeat, -1, -1, -1), out_n.params, out_n.samples, out_n.latent)
    one = objective(x1, out1, 50)
    many = objective(x1.expand(repeat, -1, -1, -1), out_n, 50)
    for key in ("kl/cont", "kl/disc", "recon", "objective", "loss"):
        torch.testing.assert_close(many[key], one[key], rtol=1e-5, atol=1e-5)


# --- bad configurations ----------------------------------------------------------------------------------------------
GOOD = {"cont": _term(30.0, c_max=5.0, steps=100), "disc": _term(30.0, c_max=5.0, steps=100)}


@pytest.mark.parametrize(
    ("terms", "options", "phrase"),
    [
        ({"cont": GOOD["cont"]}, {}, "missing \\['disc'\\]"),
        ({**GOOD, "extra": GOOD["cont"]}, {}, "unknown \\['extra'\\]"),
        ({**GOOD, "disc": _term(-1.0, c_max=5.0)}, {}, "gamma"),
        ({**GOOD, "disc": _term(math.nan, c_max=5.0)}, {}, "gamma"),
        ({**GOOD, "disc": _term(math.inf, c_max=5.0)}, {}, "gamma"),
        ({**GOOD, "disc": _term("30", c_max=5.0)}, {}, "gamma"),
        ({**GOOD, "disc": {"capacity": {"name": "linear"}}}, {}, "gamma"),
        ({**GOOD, "disc": {"gamma": 30.0}}, {}, "capacity"),
        ({**GOOD, "disc": {"gamma": 30.0, "capacity": "linear"}}, {}, "capacity"),
        ({**GOOD, "disc": {"gamma": 30.0, "capacity": {"options": {}}}}, {}, "name a schedule"),
        ({**GOOD, "disc": _term(30.0, c_maximum=5.0)}, {}, "c_maximum"),
        ({**GOOD, "disc": _term(30.0, c_min=6.0, c_max=5.0)}, {}, "c_min <= c_max"),
        ({**GOOD, "disc": _term(30.0, c_max=-5.0)}, {}, "non-negative"),
        ({**GOOD, "disc": _term(30.0, steps=0)}, {}, "steps"),
        ({**GOOD, "disc": _term(30.0, "constant", c_max=5.0)}, {}, "c_max"),
        ({**GOOD, "disc": {"gamma": 30.0, "capacity": {"name": "linear", "options": [1]}}}, {}, "linear"),
        (GOOD, {"scale": "per_image"}, "scale"),
        (GOOD, {"not_an_option": 1}, "not_an_option"),
    ],
)
def test_bad_configs_are_config_errors(terms, options, phrase):
    with pytest.raises(ConfigError, match=phrase):
        _objective(_model(), terms, **options)


def test_missing_terms_is_a_config_error():
    with pytest.raises(ConfigError, match="terms"):
        build_objective(Component("jointvae", {}), _model())


@pytest.mark.parametrize("where", ["terms", "options"])
def test_string_where_a_mapping_belongs_is_a_config_error(where):
    if where == "terms":
        component = Component("jointvae", {"terms": "linear"})
    else:
        component = Component("jointvae", {"terms": {**GOOD, "disc": {"gamma": 1.0, "capacity": {
            "name": "linear", "options": "c_max=5"}}}})
    with pytest.raises(ConfigError):
        build_objective(component, _model())


def test_unknown_schedule_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as info:
        _objective(_model(), {**GOOD, "disc": _term(30.0, "linaer", c_max=5.0)})
    message = str(info.value)
    assert "'linaer'" in message and "constant" in message and "linear" in message
    assert "Did you mean 'linear'?" in message


def test_unknown_objective_name_is_an_unknown_name_error():
    with pytest.raises(UnknownNameError, match="jointvae"):
        build_objective(Component("jointvea", {"terms": GOOD}), _model())
