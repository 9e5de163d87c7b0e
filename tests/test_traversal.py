"""Latent traversals: the values swept, what is held, and the decoded grid's layout."""

from __future__ import annotations

import pytest
import torch

from latentkit.assembly.build import build_model
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.errors import ConfigError, LatentkitError
from latentkit.viz import UnitRef, base_latent, neutral_latent, parse_unit, traversal_latents, traverse, traverse_pair


@pytest.fixture(scope="module")
def model(two_channel_model):
    return two_channel_model


def test_neutral_base_is_zero_and_category_zero(model):
    """The original's figures: Gaussian units at 0 and categorical variables at category 0 (one-hot), which is what
    the built-in families' neutral values are."""
    base = base_latent(model.latent)
    expected = torch.tensor([[0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]], dtype=base.dtype)
    assert torch.equal(base, expected)
    assert torch.equal(neutral_latent(model.latent), expected)


@pytest.fixture(scope="module")
def bernoulli_model():
    """Gaussian cont.0..1 (columns 0, 1) beside three relaxed Bernoulli units bern.0..2 (columns 2, 3, 4)."""
    torch.manual_seed(0)
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 2}),
                                   ChannelSpec("bern", "relaxed_bernoulli", {"units": 3})], Component("jointvae_conv"))
    return build_model(spec).eval()


def test_units_not_moved_are_held_at_what_their_family_names(bernoulli_model, monkeypatch):
    """The held value is read from each family's ``neutral_value()``, not assumed to be 0: a family that names
    other values gets them, in traversals, pair grids and decoded rows alike."""
    latent = bernoulli_model.latent
    chosen = torch.tensor([0.25, 0.5, 0.75])
    monkeypatch.setattr(latent.channels["bern"], "neutral_value", lambda: chosen.clone())
    z = traversal_latents(latent, "bern.1", n=6)
    assert torch.equal(z[:, 3], torch.tensor([0.0, 1.0]))  # the unit moved: each category in turn
    assert torch.equal(z[:, [2, 4]], chosen[[0, 2]].expand(2, -1))
    assert torch.equal(z[:, :2], torch.zeros(2, 2))  # the Gaussian units at their neutral value, 0
    pair = traverse_pair(bernoulli_model, "bern.0", "cont.1", n=3)
    with torch.no_grad():
        row = traversal_latents(latent, "cont.1", n=3, base=traversal_latents(latent, "bern.0")[1])
        torch.testing.assert_close(pair[1], bernoulli_model.decode(row))
    assert torch.equal(row[:, 2:], torch.tensor([[1.0, 0.5, 0.75]]).expand(3, -1))


def test_bounded_units_are_held_at_their_family_neutral_value_not_0(bernoulli_model):
    """Why: a relaxed Bernoulli's values lie in (0, 1), so 0 is an edge of its support, not a typical code; the units
    not moved are held at the built-in family's neutral value (the prior's representative) instead."""
    latent = bernoulli_model.latent
    neutral = latent.channels["bern"].neutral_value()
    assert neutral.shape == (3,) and bool((neutral > 0).all() and (neutral < 1).all()), neutral
    z = traversal_latents(latent, "cont.0", n=4)
    assert torch.equal(z[:, 2:], neutral.to(z.dtype).expand(4, -1))


def test_beta_units_are_held_at_their_prior_mean_inside_the_support():
    """A Beta(2, 5) prior: the units not moved are held at its mean 2/7, not at the edge 0 of (0, 1)."""
    torch.manual_seed(0)
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 1}),
                                   ChannelSpec("beta", "beta", {"units": 3, "prior_a": 2.0, "prior_b": 5.0})],
                     Component("jointvae_conv"))
    latent = build_model(spec).eval().latent
    z = traversal_latents(latent, "beta.2", n=5)
    assert torch.equal(z[:, 3], latent.channels["beta"].traversal_values(2, 5)[:, 0])
    torch.testing.assert_close(z[:, 1:3], torch.full((5, 2), 2 / 7), rtol=1e-6, atol=0)
    assert torch.equal(z[:, 0], torch.zeros(5))


def test_a_neutral_value_of_the_wrong_shape_names_the_channel(bernoulli_model, monkeypatch):
    family = bernoulli_model.latent.channels["bern"]
    monkeypatch.setattr(family, "neutral_value", lambda: torch.zeros(1, 3))
    with pytest.raises(LatentkitError, match=r"channel 'bern'.*shape \(1, 3\).*shape \(3,\)"):
        base_latent(bernoulli_model.latent)


def test_continuous_traversal_uses_normal_quantiles_and_holds_the_rest(model):
    z = traversal_latents(model.latent, "cont.2", n=5)
    expected = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 5))
    torch.testing.assert_close(z[:, 2], expected)
    assert abs(z[0, 2] + 1.6449) < 1e-3 and abs(z[-1, 2] - 1.6449) < 1e-3
    others = torch.cat([z[:, :2], z[:, 3:]], dim=1)
    assert torch.equal(others, base_latent(model.latent, 5)[:, [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]])


def test_discrete_traversal_visits_each_category_of_that_variable_only(model):
    z = traversal_latents(model.latent, "disc.1", n=8)
    assert z.shape == (5, 12)
    assert torch.equal(z[:, 7:12], torch.eye(5))
    assert torch.equal(z[:, 4:7], torch.tensor([[1.0, 0, 0]]).expand(5, -1))  # the other variable held at category 0
    assert torch.equal(z[:, :4], torch.zeros(5, 4))


def test_prior_base_is_held_for_every_row(model):
    gen = torch.Generator().manual_seed(3)
    base = base_latent(model.latent, prior=True, generator=gen)
    z = traversal_latents(model.latent, "cont.0", n=4, base=base)
    assert torch.equal(z[:, 1:], base[:, 1:].expand(4, -1))
    assert z[:, 4:7].sum(1).eq(1).all() and z[:, 7:].sum(1).eq(1).all()


def test_grid_layout_and_decoder_inputs(model):
    grid = traverse(model, ["cont.0", "cont.3"], n=6)
    assert grid.shape == (2, 6, 1, 32, 32)
    with torch.no_grad():
        again = model.decode(traversal_latents(model.latent, "cont.3", n=6))
    torch.testing.assert_close(grid[1], again)
    assert grid.min() >= 0 and grid.max() <= 1


def test_unit_names_are_checked(model):
    assert parse_unit(model.latent, "disc.1") == UnitRef("disc", 1)
    for bad, phrase in (("cont", "<channel>.<index>"), ("style.0", "no channel"), ("cont.4", "units 0..3"),
                        ("disc.2", "units 0..1")):
        with pytest.raises(ConfigError, match=phrase):
            parse_unit(model.latent, bad)
    with pytest.raises(ConfigError, match="differ in length"):
        traverse(model, ["cont.0", "disc.0"], n=8)
