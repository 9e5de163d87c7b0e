"""The collapse warning: a channel at capacity whose code is the same for every input is reported once, and only then."""

from __future__ import annotations

import types

import pytest
import torch

from latentkit import cli
from latentkit.assembly.build import build_model
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.core import ModelOutput
from latentkit_plugins import collapse_watch
from latentkit_plugins.jointvae_objective import JointVAEObjective
from latentkit_plugins.schedules import LinearCapacity


def _run():
    return types.SimpleNamespace(plugin_state={})


def _scalars(kl, spread, channel="disc"):
    return {f"kl/{channel}": kl, f"spread/{channel}": spread, "recon": 1.0}


def test_flagged_only_with_kl_and_no_spread():
    assert collapse_watch.collapsed_channels(_scalars(1.0, 0.0)) == ["disc"]
    assert collapse_watch.collapsed_channels(_scalars(0.1, 0.0)) == []  # an unused channel is fine
    assert collapse_watch.collapsed_channels(_scalars(1.0, 0.5)) == []  # an informative one too
    assert collapse_watch.collapsed_channels({"kl/disc": 1.0}) == []  # no spread logged: nothing to say


def test_warns_once_after_patience_consecutive_flags(capsys):
    run = _run()
    for step in range(collapse_watch.PATIENCE - 1):
        collapse_watch.latentkit_step_end(run, step, _scalars(1.0, 0.0))
    collapse_watch.latentkit_step_end(run, 99, _scalars(1.0, 0.5))  # the streak is broken
    for step in range(collapse_watch.PATIENCE - 1):
        collapse_watch.latentkit_step_end(run, 100 + step, _scalars(1.0, 0.0))
    assert capsys.readouterr().err == ""
    for step in range(3):
        collapse_watch.latentkit_step_end(run, 200 + step, _scalars(1.0, 0.0))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "'disc'" in err and "step 200" in err and "lower γ" in err


def test_spread_is_the_batch_variance_of_the_code():
    torch.manual_seed(0)
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 3}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [4]})],
                     Component("jointvae_conv", {"hidden": 8}))
    model = build_model(spec)
    terms = {name: (30.0, LinearCapacity(0.0, 5.0, 100)) for name in ("cont", "disc")}
    objective = JointVAEObjective(model.latent, (1, 32, 32), terms)
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    output: ModelOutput = model(x)
    logs = objective.from_statistics(objective.statistics(x, output), step=10)
    means = output.params["cont"]["mean"].detach()
    assert float(logs["spread/cont"]) == pytest.approx(float(means.var(0, unbiased=False).sum()), rel=1e-5)
    one_hot = model.latent.channels["disc"].representative(output.params["disc"]).detach()
    assert float(logs["spread/disc"]) == pytest.approx(float(one_hot.var(0, unbiased=False).sum()), abs=1e-6)
    same = x[:1].expand(16, -1, -1, -1)  # one input repeated: no spread at all
    logs = objective.from_statistics(objective.statistics(same, model(same)), step=10)
    assert float(logs["spread/cont"]) == pytest.approx(0.0, abs=1e-10)
    assert float(logs["spread/disc"]) == 0.0


def test_a_training_that_collapses_is_warned_about(tmp_path, capsys):
    """γ = 1000 with a 50-step capacity ramp: the discrete channel reaches log 3 with one category for every image."""
    code = cli.main(["train", "recipes/jointvae_shapes.py", "--steps", "120", "--out", str(tmp_path / "run"), "--quiet",
                     "--set", "cont_gamma=1000", "--set", "disc_gamma=1000", "--set", "cont_capacity.steps=50",
                     "--set", "disc_capacity.steps=50", "--set", "train.log_every=10", "--set", "train.figures_every=0",
                     "--set", "train.threads=1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "channel 'disc'" in err and "without carrying information" in err
