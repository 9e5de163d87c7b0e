"""``jointvae_conv_canonical``: the discrete code read from a view with position and size removed (plugins/canonical_networks.py)."""

from __future__ import annotations

import pytest
import torch

from latentkit.assembly.build import build_model
from latentkit.errors import ConfigError
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit_plugins.canonical_networks import canonicalise
from latentkit_plugins.procedural_dsprites import ProceduralDSprites

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = 0.35


def dsprites(rows):
    """Images of the given (shape, scale, orientation, posX, posY) rows, in [0, 1]."""
    return ProceduralDSprites().images(torch.tensor(rows)).float() / 255


def test_one_object_placed_and_sized_differently_has_one_canonical_view():
    # a heart (shape 2) at one orientation: large in a corner, smallest at the other side, mid-sized in the middle
    x = dsprites([[2, 5, 10, 3, 4], [2, 0, 10, 28, 27], [2, 3, 10, 16, 16], [0, 5, 10, 3, 4], [1, 5, 10, 3, 4]])
    c = canonicalise(x, SIZE)
    moved = [(c[0] - c[i]).abs().mean() for i in (1, 2)]
    other_shapes = [(c[0] - c[i]).abs().mean() for i in (3, 4)]
    # the same object: what is left is resampling blur of a few edge pixels; another shape differs in its outline
    assert max(moved) < 0.5 * min(other_shapes)
    ink_area = SIZE**2 * 64 * 64
    assert torch.allclose(c.sum((1, 2, 3)), torch.full((5,), ink_area), rtol=0.03)  # every view has the set area


def test_canonical_view_is_centred_and_ignores_the_intensity_scale():
    x = dsprites([[1, 2, 5, 4, 25]])
    c = canonicalise(x, SIZE)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    mass = c[0, 0].sum()
    assert abs((c[0, 0] * xs).sum() / mass - 31.5) < 0.5 and abs((c[0, 0] * ys).sum() / mass - 31.5) < 0.5
    assert torch.allclose(canonicalise(255 * x, SIZE), 255 * c, atol=1e-3)


def test_a_blank_image_stays_blank_and_nothing_is_not_a_number():
    x = torch.zeros(2, 1, 64, 64)
    x[1, 0, 10:14, 20:30] = 1.0
    c = canonicalise(x, SIZE)
    assert torch.equal(c[0], x[0]) and torch.isfinite(c).all() and c[1].sum() > 0


def model(canonical_features=3, disc=3):
    spec = ModelSpec((1, 64, 64), [ChannelSpec("cont", "gaussian", {"units": 2}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [disc]})],
                     Component("jointvae_conv_canonical", {"canonical_features": canonical_features, "hidden": 16}))
    torch.manual_seed(0)
    return build_model(spec)


def test_the_last_outputs_come_from_the_canonical_view_and_the_rest_from_the_image():
    vae = model()
    x = dsprites([[2, 5, 10, 3, 4], [0, 1, 30, 20, 9]])
    features = vae.encoder(x)
    assert features.shape == (2, 2 * 2 + 3)
    assert torch.equal(features[:, -3:], vae.encoder.canonical(canonicalise(x, SIZE)))
    assert torch.equal(features[:, :-3], vae.encoder.main(x))
    # so the code's logits barely move when the object moves and shrinks, against another shape in the same place
    moved, square = vae.encoder(dsprites([[2, 2, 10, 25, 22], [0, 5, 10, 3, 4]]))[:, -3:]
    assert (moved - features[0, -3:]).norm() < 0.5 * (square - features[0, -3:]).norm()


def test_a_list_routes_those_output_positions_through_the_canonical_view():
    # cont unit 1's mean (1) and log-variance (3), and the 3 logits (4, 5, 6): 2 units → params [m0, m1, lv0, lv1, d×3]
    vae = model(canonical_features=[1, 3, 4, 5, 6])
    x = dsprites([[2, 5, 10, 3, 4], [0, 1, 30, 20, 9]])
    features = vae.encoder(x)
    canonical, main = vae.encoder.canonical(canonicalise(x, SIZE)), vae.encoder.main(x)
    assert torch.equal(features[:, [1, 3, 4, 5, 6]], canonical) and torch.equal(features[:, [0, 2]], main)
    params = vae.encode(x)  # the latent reads unit 1 from the canonical view
    assert torch.equal(params["cont"]["mean"][:, 1], canonical[:, 0])


def test_gradients_reach_both_encoders_and_the_model_trains_a_step():
    vae = model()
    x = dsprites([[2, 5, 10, 3, 4], [0, 1, 30, 20, 9], [1, 3, 0, 10, 10]])
    out = vae(x)
    loss = torch.nn.functional.binary_cross_entropy(out.reconstruction, x)
    loss.backward()
    for part in (vae.encoder.main, vae.encoder.canonical):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())


def test_missing_or_oversized_canonical_features_are_clear_errors():
    with pytest.raises(ConfigError, match="needs canonical_features"):
        build_model(ModelSpec((1, 64, 64), [ChannelSpec("cont", "gaussian", {"units": 2})],
                              Component("jointvae_conv_canonical")))
    with pytest.raises(ConfigError, match="leaves nothing for the main encoder"):
        model(canonical_features=7)
    with pytest.raises(ConfigError, match="beyond the latent"):
        model(canonical_features=[3, 7])
    with pytest.raises(ConfigError, match="distinct output positions"):
        model(canonical_features=[3, 3])
    with pytest.raises(ConfigError, match="fraction of the frame"):
        build_model(ModelSpec((1, 64, 64), [ChannelSpec("cont", "gaussian", {"units": 2})],
                              Component("jointvae_conv_canonical", {"canonical_features": 1, "canonical_size": 2.0})))
