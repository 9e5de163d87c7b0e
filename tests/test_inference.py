"""latentkit.inference.reconstruct: fast eval-mode reconstructions that are the plain forward pass's values.

Why these tests: reconstruct changes how the computation runs (inference mode, batches of 256, channels_last on the
CPU) for speed; none of that may change what it computes, the batch it is given, or the model it borrows.
"""

from __future__ import annotations

import torch

from latentkit.inference import reconstruct


def _plain(model, images):
    """The reference: one eval-mode forward pass of the representative latent, in the default memory format."""
    x = images.float() / 255
    with torch.no_grad():
        params = model.encode(x)
        return model.decode(model.latent.concat(model.latent.sample(params, reparametrise=False)))


def test_reconstruct_is_the_plain_eval_forward_whatever_the_batching(two_channel_model):
    images = torch.randint(0, 256, (7, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    expected = _plain(two_channel_model, images)
    scale = expected.abs().max().item()
    for batch_size, channels_last in ((256, False), (3, False), (2, True)):
        out = reconstruct(two_channel_model, images, batch_size=batch_size, channels_last=channels_last)
        assert out.shape == (7, 1, 32, 32) and out.dtype == torch.float32 and out.device.type == "cpu"
        # oneDNN may pick other kernels for another batch or layout: compare relative to the values' size
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * scale)
    floats = reconstruct(two_channel_model, images.float() / 255, channels_last=False)
    torch.testing.assert_close(floats, expected, rtol=1e-5, atol=1e-5 * scale)


def test_reconstruct_restores_the_training_mode_and_handles_no_images(two_channel_model):
    model = two_channel_model
    model.train()
    try:
        empty = reconstruct(model, torch.zeros(0, 1, 32, 32, dtype=torch.uint8))
        assert empty.shape == (0, 1, 32, 32) and empty.dtype == torch.float32
        reconstruct(model, torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
        assert model.training
    finally:
        model.eval()
