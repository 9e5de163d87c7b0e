"""`latentkit sweep`: the plan of combinations, failed runs reported while the rest go on, restarts, the Ray backend."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from latentkit import cli
from latentkit.errors import ConfigError
from latentkit.assembly.sweep import SweepRun, SweepSpec, plan, run_ray, set_aside_unstarted, split_values, summarise, train_command

RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "jointvae_shapes.py")
DATA = 'dataset_options={"n": 128, "size": 32}'


def test_values_split_at_top_level_commas_only():
    assert split_values("1e-4,5e-4") == ["1e-4", "5e-4"]
    assert split_values("[10],[20, 5]") == ["[10]", "[20, 5]"]
    assert split_values('{"n": 1, "size": 32}') == ['{"n": 1, "size": 32}']
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    for bad in ("1,,2", "[1,2", ""):
        with pytest.raises(ConfigError):
            split_values(bad)


def test_plan_is_every_combination_with_unique_names():
    runs = plan([0, 1], ["train.lr=1e-4,5e-4", "disc_sizes=[10],[20]"])
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    assert {r.seed for r in runs} == {0, 1}
    assert runs[0].settings == (("train.lr", "1e-4"), ("disc_sizes", "[10]"))
    assert runs[0].name == "seed-0__train.lr-1e-4__disc_sizes-10"
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        plan([0], ["train.lr"])
    with pytest.raises(ConfigError, match="seed"):
        plan([], [])


def test_a_run_killed_before_its_first_checkpoint_starts_again_and_keeps_its_files(tmp_path):
    spec = SweepSpec(recipe="r.py", out=tmp_path, steps=10)
    run = SweepRun("seed-0", 0, ())
    folder = tmp_path / "seed-0"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("{}\n")
    cmd = train_command(spec, run)
    assert "--resume" not in cmd and cmd[cmd.index("--out") + 1] == str(folder)
    assert not folder.exists() and (tmp_path / "seed-0.interrupted" / "metrics.jsonl").read_text() == "{}\n"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert set_aside_unstarted(folder) == tmp_path / "seed-0.interrupted-1"
    # a folder with a checkpoint is resumed, never moved; an empty or missing one is left alone
    (folder / "checkpoints" / "step-00000005").mkdir(parents=True)
    (folder / "checkpoints" / "step-00000005" / "config.json").write_text("{}")
    assert set_aside_unstarted(folder) is None and "--resume" in train_command(spec, run)
    assert set_aside_unstarted(tmp_path / "missing") is None


def _rows(out: Path) -> list[dict]:
    with open(out / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def test_a_failed_run_is_reported_and_the_others_finish_and_a_restart_skips_them(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", RECIPE, "--seeds", "0", "--set", "train.lr=1e-3,-1", "--set", DATA, "--steps", "6",
            "--out", str(out), "--metric", "reconstruction"]
    assert cli.main(args) == 1  # one run failed
    rows = {r["train.lr"]: r for r in _rows(out)}
    assert rows["1e-3"]["status"] == "ok" and float(rows["1e-3"]["reconstruction.bce_median"]) > 0
    assert rows["-1"]["status"] == "failed" and "lr" in rows["-1"]["error"]
    table = (out / "summary.md").read_text()
    assert "**failed**" in table and "0/1" in table and "1/1" in table

    final = out / rows["1e-3"]["run"] / "final" / "model.safetensors"
    before = final.stat().st_mtime_ns
    assert cli.main(args) == 1
    assert final.stat().st_mtime_ns == before  # the complete run was only evaluated again


def test_ray_backend_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        out = tmp_path / "ray"
        out.mkdir()
        runs = plan([0, 1], [DATA])
        results = run_ray(SweepSpec(RECIPE, out, steps=4, metrics=("reconstruction",)), runs, progress=lambda _: None)
        assert [r.status for r in results] == ["ok", "ok"]
        assert [r.run.seed for r in results] == [0, 1]
        summarise(results, out)
        assert all((out / r.run.name / "final").is_dir() for r in results)
    finally:
        ray.shutdown()


def test_evaluation_options_reach_latentkit_evaluate(tmp_path):
    from latentkit.assembly.sweep import evaluate_command

    spec = SweepSpec(RECIPE, tmp_path, metrics=("factorvae", "accuracy"), eval_options=("factorvae.num_eval=100",),
                     max_images=500)
    cmd = evaluate_command(spec, plan([0], [])[0])
    assert cmd[cmd.index("--option") + 1] == "factorvae.num_eval=100"
    assert cmd[cmd.index("--max-images") + 1] == "500"
    assert cmd.count("--metric") == 2


def test_names_leave_out_settings_with_one_value_and_stay_short():
    runs = plan([0, 1], ["train.lr=1e-4,5e-4", 'dataset_options={"source": "procedural", "label_factor": "shape"}'])
    assert [r.name for r in runs] == ["seed-0__train.lr-1e-4", "seed-1__train.lr-1e-4", "seed-0__train.lr-5e-4",
                                      "seed-1__train.lr-5e-4"]
    assert all(len(r.settings) == 2 for r in runs)  # every setting still applies
    long = plan([0], [f"key{i}=" + ",".join(f"value{i}{j}" for j in range(2)) for i in range(12)])
    assert all(len(r.name) <= 120 for r in long) and len({r.name for r in long}) == len(long)
