"""An import of the original JointVAE checkpoints computes what the original code computed (fixture.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentkit.assembly.build import build_objective
from latentkit.assembly.checkpoint import load_model
from latentkit.specs import Component
from latentkit.interop.jointvae_original import import_original

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference_models" / "jointvae-original"

ATOL = 1e-5
RTOL = 1e-5


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.fixture(scope="module", params=["mnist", "chairs", "celeba"])
def imported(request, tmp_path_factory):
    name = request.param
    src = REFERENCE / name
    if not (src / "model.pt").is_file() or not (src / "fixture.npz").is_file():
        pytest.skip(f"reference checkpoint {src} is absent (expected model.pt, specs.json, fixture.npz)")
    out = tmp_path_factory.mktemp(name) / "checkpoint"
    import_original(src, out)
    model, config = load_model(out)
    with np.load(src / "fixture.npz", allow_pickle=False) as f:
        fixture = {k: f[k] for k in f.files}
    x = torch.from_numpy(fixture["images"])
    model.eval()
    with torch.no_grad():
        output = model(x)
    return name, model, config, fixture, x, output


def test_encoder_outputs_and_reconstruction(imported):
    name, model, _, fixture, _, output = imported
    cont, disc = output.params["cont"], output.params["disc"]
    torch.testing.assert_close(cont["mean"], torch.from_numpy(fixture["mean"]), atol=ATOL, rtol=0)
    torch.testing.assert_close(cont["logvar"], torch.from_numpy(fixture["logvar"]), atol=ATOL, rtol=0)
    sizes = model.latent.channels["disc"].unit_sizes()
    alphas = torch.split(disc["alpha"], list(sizes), dim=-1)
    assert len(alphas) == len([k for k in fixture if k.startswith("alpha_")])
    for i, alpha in enumerate(alphas):
        torch.testing.assert_close(alpha, torch.from_numpy(fixture[f"alpha_{i}"]), atol=ATOL, rtol=0)
    torch.testing.assert_close(output.reconstruction, torch.from_numpy(fixture["recon_eval"]), atol=ATOL, rtol=0)


def test_objective_matches_original_loss(imported):
    name, model, config, fixture, x, output = imported
    objective = build_objective(Component(**config["objective"]), model)
    assert len(fixture["loss_steps"]) == len(fixture["loss_values"]) > 0
    with torch.no_grad():
        for step, expected in zip(fixture["loss_steps"], fixture["loss_values"]):
            logs = objective(x, output, int(step))
            assert _rel(logs["loss"].item(), float(expected)) <= RTOL, (name, int(step), logs["loss"].item(), expected)
        assert _rel(logs["recon"].item(), float(fixture["recon_bce_sum_mean"])) <= RTOL
        assert _rel(logs["kl/cont"].item(), float(fixture["kl_cont"])) <= RTOL
        assert _rel(logs["kl/disc"].item(), float(fixture["kl_disc"])) <= RTOL


def test_channel_mean_compat_is_the_documented_difference(imported):
    """The imported config keeps the original's quirk for 3-channel images; without it the recon is C times larger."""
    name, model, config, fixture, x, output = imported
    channels = model.image_shape[0]
    assert config["objective"]["options"]["channel_mean_compat"] is (channels > 1)
    options = dict(config["objective"]["options"])
    with torch.no_grad():
        compat = build_objective(Component("jointvae", {**options, "channel_mean_compat": True}), model)(x, output, 0)
        true_sum = build_objective(Component("jointvae", {**options, "channel_mean_compat": False}), model)(x, output, 0)
    # Exactly: the compat recon is the batch-mean BCE times H*W (a power of two here), the true one times C*H*W.
    assert torch.equal(true_sum["recon"], compat["recon"] * channels)
    if name == "celeba":
        assert channels == 3
        # The fixture carries the original's quirk: the compat recon matches it, the true per-image sum is 3x it.
        assert _rel(compat["recon"].item(), float(fixture["recon_bce_sum_mean"])) <= RTOL
        assert _rel(true_sum["recon"].item(), 3 * float(fixture["recon_bce_sum_mean"])) <= RTOL
