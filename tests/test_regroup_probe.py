"""benchmarks/regroup_probe.py: scores a run's code, its heads and a regrouped head on the labelled test split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from latentkit import cli

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "regroup_probe.py"


def probe_module():
    spec = importlib.util.spec_from_file_location("regroup_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_scores_the_code_every_head_and_the_regrouped_head(tmp_path, capsys):
    options = json.dumps({"balance_weight": 2.0, "augment_weight": 3.0, "heads": 3, "select_every": 3})
    run = tmp_path / "run"
    assert cli.main(["train", str(ROOT / "recipes" / "jointvae_shapes.py"), "--set", 'dataset_options={"n": 256, "size": 32}',
                     "--set", "objective=jointvae_code", "--set", f"objective_options={options}",
                     "--set", "train.batch_size=16", "--set", "train.figures_every=0", "--steps", "6", "--quiet",
                     "--out", str(run)]) == 0
    capsys.readouterr()
    assert probe_module().main([str(run), "--bank", "128", "--clusters", "9", "--views", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["hungarian"]) == {"code", "head 0", "head 1", "regrouped"}
    assert all(0.0 <= v <= 1.0 for v in result["hungarian"].values())
    assert 0.0 <= result["moves_within_groups"] <= 1.0 and result["clusters"] == 9 and result["bank"] == 128


def test_the_probe_refuses_a_run_without_heads(tmp_path):
    run = tmp_path / "plain"
    assert cli.main(["train", str(ROOT / "recipes" / "jointvae_shapes.py"), "--set", 'dataset_options={"n": 64, "size": 32}',
                     "--set", "train.batch_size=16", "--set", "train.figures_every=0", "--steps", "2", "--quiet",
                     "--out", str(run)]) == 0
    with pytest.raises(SystemExit, match="heads >= 2"):
        probe_module().main([str(run)])
