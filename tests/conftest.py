"""Shared fixtures: a sandbox for plugin registration, one torch thread, and Hypothesis defaults.

Why a sandbox: the plugin manager keeps plugins registered in code and blocked plugins in module-level state, and the
registry is cached on that state. A test that registers a plugin and fails half-way must not leak it into every later
test, so registrations go through :func:`plugins`, which restores the state on teardown whatever happened.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from latentkit.plugins import manager

# No per-example deadline: timings on a shared 2-core CI machine vary too much for one to mean anything.
settings.register_profile(
    "latentkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "latentkit"))


class PluginSandbox:
    """Register and block plugins for one test; everything is undone on teardown."""

    def __init__(self) -> None:
        self._extra = dict(manager._extra_plugins)
        self._blocked = set(manager._blocked)

    def register(self, plugin: object, name: str) -> str:
        from latentkit.plugins import register_plugin

        return register_plugin(plugin, name=name)

    def block(self, name: str) -> None:
        from latentkit.plugins import block_plugin

        block_plugin(name)

    def restore(self) -> None:
        manager._extra_plugins.clear()
        manager._extra_plugins.update(self._extra)
        manager._blocked.clear()
        manager._blocked.update(self._blocked)


@pytest.fixture
def plugins():
    """A :class:`PluginSandbox`; the plugin manager's state is restored after the test."""
    sandbox = PluginSandbox()
    try:
        yield sandbox
    finally:
        sandbox.restore()


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
