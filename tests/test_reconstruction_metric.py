"""The reconstruction metric: per-image BCE sums of the decoded representative latent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentkit.data.provider import ImageData
from latentkit.errors import ConfigError
from latentkit.metrics.reconstruction import reconstruction


def test_matches_a_direct_computation(two_channel_model):
    images = torch.randint(0, 256, (37, 1, 32, 32), dtype=torch.uint8)
    result = reconstruction(two_channel_model, ImageData(images), batch_size=10)
    x = images.float() / 255
    with torch.no_grad():
        params = two_channel_model.encode(x)
        recon = two_channel_model.decode(two_channel_model.latent.concat(
            two_channel_model.latent.sample(params, reparametrise=False)))
    per_image = F.binary_cross_entropy(recon, x, reduction="none").sum(dim=(1, 2, 3)).double()
    assert result["n_images"] == 37
    assert result["bce_median"] == pytest.approx(float(per_image.quantile(0.5)), rel=1e-5)
    assert result["bce_mean"] == pytest.approx(float(per_image.mean()), rel=1e-5)
    assert result["bce_p10"] < result["bce_median"] < result["bce_p90"]


def test_empty_data_is_a_clear_error(two_channel_model):
    with pytest.raises(ConfigError, match="empty"):
        reconstruction(two_channel_model, ImageData(torch.zeros(0, 1, 32, 32, dtype=torch.uint8)))
