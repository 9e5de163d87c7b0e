"""A batch computed in parts on several threads gives the gradient of one pass over the whole batch."""

from __future__ import annotations

import copy

import pytest
import torch

from latentkit.assembly.build import build_model, build_objective
from latentkit.assembly.specs import ChannelSpec, Component, ModelSpec
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


def _bounds(sizes):
    start = 0
    for n in sizes:
        yield start, start + n
        start += n


def _slice(output: ModelOutput, a: int, b: int) -> ModelOutput:
    return ModelOutput(
        reconstruction=output.reconstruction[a:b],
        params={ch: {k: v[a:b] for k, v in p.items()} for ch, p in output.params.items()},
        samples={ch: v[a:b] for ch, v in output.samples.items()},
        latent=output.latent[a:b],
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
    with torch.no_grad():
        out = task.module(x, generator=copy.deepcopy(gen))
        kls = [task.objective.statistics(c, _slice(out, a, b))["kl/cont"].sum()
               for c, (a, b) in zip(x.tensor_split(len(sizes)), _bounds(sizes))]
    middle = float(kls[0] + kls[1]) / 2
    task.objective = build_objective(Component("jointvae", {"terms": {
        "cont": {"gamma": 30.0, "capacity": {"name": "constant", "options": {"value": middle}}},
        "disc": {"gamma": 30.0, "capacity": LINEAR}}}), task.module)

    task.module.zero_grad()
    logs = task.training_step_in_parts(x, step, gen, parts=len(sizes))
    parts = _grads(task.module)

    # one pass over the whole batch with the same generator: the same noise (each part keeps its rows of it)
    task.module.zero_grad()
    output = task.module(x, generator=reference_gen)
    whole = task.objective(x, output, step)
    whole["loss"].backward(retain_graph=True)
    reference = _grads(task.module)
    assert torch.equal(gen.get_state(), reference_gen.get_state())  # the run's generator moved on as one pass would

    torch.testing.assert_close(logs["loss"], whole["loss"].detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logs["kl_unit/disc.1"], whole["kl_unit/disc.1"].detach(), rtol=1e-5, atol=1e-7)
    for name in reference:
        torch.testing.assert_close(parts[name], reference[name], rtol=1e-4, atol=1e-7, msg=name)

    # and not the mean of the parts' own losses, which applies |KL - C| to each part
    task.module.zero_grad()
    for c, (a, b) in zip(x.tensor_split(len(sizes)), _bounds(sizes)):
        (task.objective(c, _slice(output, a, b), step)["loss"] * (c.shape[0] / x.shape[0])).backward(retain_graph=True)
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
    from latentkit.assembly.checkpoint import load_model

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


def test_rows_keep_their_share_of_the_whole_batch_noise(two_channel_model):
    from latentkit.core import BatchRows
    from latentkit.errors import ConfigError

    latent = two_channel_model.latent
    params = latent.split(torch.randn(10, latent.param_size))
    full = latent.sample(params, reparametrise=True, generator=torch.Generator().manual_seed(3))
    part_params = {ch: {k: v[4:7].clone().requires_grad_() for k, v in p.items()} for ch, p in params.items()}
    part = latent.sample(part_params, reparametrise=True, generator=torch.Generator().manual_seed(3),
                         rows=BatchRows(4, 3, 10))
    for ch in full:
        assert torch.equal(part[ch], full[ch][4:7])
    sum(v.sum() for v in part.values()).backward()
    assert all(v.grad is not None for p in part_params.values() for v in p.values())
    with pytest.raises(ConfigError, match="do not lie"):
        BatchRows(8, 3, 10)
