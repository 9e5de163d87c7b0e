"""A batch computed in parts on several threads gives the gradient of one pass over the whole batch."""

from __future__ import annotations

import copy

import pytest
import torch

from latentkit.build import build_model, build_objective
from latentkit.config import ChannelSpec, Component, ModelSpec
from latentkit.core import ModelOutput
from latentkit.train.task import VAETask
from latentkit.train.trainer import batch_parts

LINEAR = {"name": "linear", "options": {"c_max": 5.0, "steps": 100}}


@pytest.fixture
def task():
    torch.manual_seed(0)
    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 4}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [3, 5]})])
    model = build_model(spec)
    objective = build_objective(Component("jointvae", {"terms": {
        "cont": {"gamma": 30.0, "capacity": LINEAR}, "disc": {"gamma": 30.0, "capacity": LINEAR}}}), model)
    return VAETask(model, objective)


def _cat_outputs(outputs: list[ModelOutput]) -> ModelOutput:
    return ModelOutput(
        reconstruction=torch.cat([o.reconstruction for o in outputs]),
        params={ch: {k: torch.cat([o.params[ch][k] for o in outputs]) for k in outputs[0].params[ch]}
                for ch in outputs[0].params},
        samples={ch: torch.cat([o.samples[ch] for o in outputs]) for ch in outputs[0].samples},
        latent=torch.cat([o.latent for o in outputs]),
    )


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("sizes", [(8, 8), (7, 6, 6)])
def test_parts_give_the_whole_batch_gradient(task, sizes):
    x = (torch.rand(sum(sizes), 1, 32, 32) > 0.5).float()
    step = 40
    gen = torch.Generator().manual_seed(5)
    reference_gen = copy.deepcopy(gen)
    # a capacity between the first two parts' KLs, so that |KL - C| bends differently in each part
    seeds = torch.randint(0, 2**62, (len(sizes),), generator=copy.deepcopy(gen)).tolist()
    kls = [task.objective.statistics(c, task.module(c, generator=torch.Generator().manual_seed(int(s))))["kl/cont"].sum()
           for c, s in zip(x.tensor_split(len(sizes)), seeds)]
    middle = float(kls[0].detach() + kls[1].detach()) / 2
    task.objective = build_objective(Component("jointvae", {"terms": {
        "cont": {"gamma": 30.0, "capacity": {"name": "constant", "options": {"value": middle}}},
        "disc": {"gamma": 30.0, "capacity": LINEAR}}}), task.module)

    task.module.zero_grad()
    logs = task.training_step_in_parts(x, step, gen, parts=len(sizes))
    parts = _grads(task.module)

    # the same noise, one pass: forward each slice with its part's generator, then one objective on the whole batch
    seeds = torch.randint(0, 2**62, (len(sizes),), generator=reference_gen).tolist()
    chunks = x.tensor_split(len(sizes))
    outputs = [task.module(c, generator=torch.Generator().manual_seed(int(s))) for c, s in zip(chunks, seeds)]
    task.module.zero_grad()
    whole = task.objective(x, _cat_outputs(outputs), step)
    whole["loss"].backward(retain_graph=True)
    reference = _grads(task.module)

    torch.testing.assert_close(logs["loss"], whole["loss"].detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logs["kl_unit/disc.1"], whole["kl_unit/disc.1"].detach(), rtol=1e-5, atol=1e-7)
    for name in reference:
        torch.testing.assert_close(parts[name], reference[name], rtol=1e-4, atol=1e-7, msg=name)

    # and not the mean of the parts' own losses, which applies |KL - C| to each part
    task.module.zero_grad()
    for c, o in zip(chunks, outputs):
        (task.objective(c, _cat_outputs([o]), step)["loss"] * (c.shape[0] / x.shape[0])).backward(retain_graph=True)
    naive = _grads(task.module)
    assert any(not torch.allclose(naive[n], reference[n], rtol=1e-3, atol=1e-6) for n in reference)


def test_parts_follow_the_setting_and_the_device(task):
    assert batch_parts(1, torch.device("cpu"), task) == 1
    assert batch_parts(3, torch.device("cpu"), task) == 3
    assert batch_parts(2, torch.device("cuda"), task) == 1

    class NoStatistics:
        def splits(self):
            return False

    assert batch_parts(2, torch.device("cpu"), NoStatistics()) == 1


def test_a_batch_smaller_than_the_parts_still_trains(task):
    x = (torch.rand(1, 1, 32, 32) > 0.5).float()
    task.module.zero_grad()
    logs = task.training_step_in_parts(x, 3, torch.Generator().manual_seed(0), parts=2)
    assert torch.isfinite(logs["loss"]) and all(p.grad is not None for p in task.module.parameters())


def test_training_in_parts_resumes_bit_identically(tmp_path):
    from pathlib import Path

    from latentkit import cli
    from latentkit.checkpoint import load_model

    recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "jointvae_shapes.py")
    small = ["--set", 'dataset_options={"n": 256, "size": 32}', "--set", "train.batch_size=32", "--set",
             "train.log_every=5", "--set", "train.checkpoint_every=10", "--set", "train.batch_parts=2", "--quiet"]
    assert cli.main(["train", recipe, *small, "--steps", "30", "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["train", recipe, *small, "--steps", "20", "--out", str(tmp_path / "b")]) == 0
    assert cli.main(["train", "--resume", str(tmp_path / "b"), "--steps", "30", "--quiet"]) == 0
    a, _ = load_model(tmp_path / "a" / "final")
    b, _ = load_model(tmp_path / "b" / "final")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
