"""Shared fixtures: a plugin host of a test's own, one torch thread, and Hypothesis defaults.

Why a host of its own: plugins registered in code and blocked plugins belong to a plugin host, and the process's
default host lives as long as the test session. A test that registers a plugin and fails half-way must not leak it into
every later test, so a test that registers or blocks plugins takes the :func:`plugins` fixture: it runs under a host of
its own (``use_host(default_host().derive())``), dropped afterwards whatever happened.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from latentkit.plugins import PluginHost, default_host, use_host

# No per-example deadline: timings on a shared 2-core CI machine vary too much for one to mean anything.
settings.register_profile(
    "latentkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "latentkit"))


@pytest.fixture
def plugins() -> Iterator[PluginHost]:
    """A plugin host of the test's own, derived from the process's and its default for the test's duration: register
    and block plugins on it (``plugins.register(plugin, "name")``, ``plugins.block("name")``); it is dropped
    afterwards, so the process's own host never changes."""
    with use_host(default_host().derive()) as host:
        yield host


@pytest.fixture(scope="module")
def single_thread():
    """One torch intra-op thread for a module of tests on small tensors (much faster on a loaded 2-core machine).

    Module-scoped so that Hypothesis tests may use it (a function-scoped fixture is not reset between examples).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def two_channel_model():
    """A small untrained JointVAE, eval mode: 32x32 grey images, 4 Gaussian units (cont.0..3) and two categorical
    variables of 3 and 5 categories (disc.0, disc.1): latent columns cont 0..3, disc.0 4..6, disc.1 7..11."""
    from latentkit.assembly.build import build_model
    from latentkit.specs import ChannelSpec, Component, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 4}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [3, 5]})],
                     Component("jointvae_conv"))
    return build_model(spec).eval()


def _write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def idx_files():
    """``make(root, folder, n_train=12, n_test=5) -> root``: random 28x28 images and labels in torchvision's raw idx
    layout (``root/folder/raw``), so MNIST-format data sets (MNIST, Fashion-MNIST) can be read without the real data."""

    def make(root: Path, folder: str, n_train: int = 12, n_test: int = 5) -> Path:
        rng = np.random.default_rng(0)
        raw = root / folder / "raw"
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            _write_idx(raw, prefix, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
        return root

    return make
