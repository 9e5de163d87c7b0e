"""The seed-table benchmarks keep every measured seed: a second invocation on new seeds must not drop the first's."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(acc: float, bce: float = 150.0) -> dict:
    return {"hungarian": acc, "majority": acc, "nmi": acc, "kmeans_hungarian": 0.2, "bce_median": bce, "wall_min": 15.0}


def _complete(run: Path) -> None:
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")


def test_earlier_seeds_are_kept_only_while_their_runs_are_complete(tmp_path):
    reproduce = _load("reproduce_mnist")
    _complete(tmp_path / "seed-0")
    (tmp_path / "seed-3" / "checkpoints").mkdir(parents=True)  # partial: its old row is stale
    reproduce.summarise({0: _row(0.6), 3: _row(0.7)}, tmp_path, "r.py")
    _complete(tmp_path / "seed-1")
    rows = {1: _row(0.8)}
    assert reproduce.merge_earlier_rows(rows, tmp_path) == [0]
    assert sorted(rows) == [0, 1] and rows[0]["hungarian"] == 0.6
    reproduce.summarise(rows, tmp_path, "r.py")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["seeds"]) == ["0", "1"]
    assert math.isclose(summary["stats"]["hungarian"]["median"], 0.7)
    # a seed evaluated now wins over its earlier row
    rows = {0: _row(0.9)}
    reproduce.merge_earlier_rows(rows, tmp_path)
    assert rows[0]["hungarian"] == 0.9 and rows[1]["hungarian"] == 0.8


def test_a_summary_it_did_not_write_is_ignored_with_a_note(tmp_path, capsys):
    reproduce = _load("reproduce_mnist")
    (tmp_path / "summary.json").write_text("[1, 2]")
    rows = {}
    assert reproduce.merge_earlier_rows(rows, tmp_path) == [] and rows == {}
    assert "not a summary this script wrote" in capsys.readouterr().out


def test_the_lever_table_spans_arms_and_draws_them(tmp_path):
    reproduce, levers = _load("reproduce_mnist"), _load("discrete_levers")
    for arm, accs, bce in (("paper", [0.6, 0.7, 0.65], 160.0), ("balance", [0.9], 150.0)):
        (tmp_path / arm).mkdir()
        reproduce.summarise({seed: _row(a, bce) for seed, a in enumerate(accs)}, tmp_path / arm, "r.py")
    text = levers.summarise(tmp_path)
    table = json.loads((tmp_path / "levers.json").read_text())
    assert table["paper"]["median"] == 0.65 and (table["paper"]["min"], table["paper"]["max"]) == (0.6, 0.7)
    assert math.isclose(table["balance"]["bce_change_pct"], -6.25)
    assert "| balance | 1 | 0.900 |" in text
    assert (tmp_path / "levers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_comparison_arm_may_be_a_recipe_file_of_ones_own(tmp_path):
    """``--arms jointvae,mine=PATH``: the built-in arms by name, one's own recipe by path, each under its own name."""
    import pytest

    compare = _load("compare_dsprites")
    mine = tmp_path / "my_recipe.py"
    mine.write_text("def config(): ...\n")
    arms = compare.parse_arms(f"jointvae, mine={mine}")
    assert list(arms) == ["jointvae", "mine"]
    assert arms["jointvae"] == compare.ROOT / "recipes" / "jointvae_dsprites.py" and arms["mine"] == mine.resolve()
    for bad, says in [("nosuch", "unknown arm 'nosuch'"), (f"mine={tmp_path / 'absent.py'}", "no recipe file"),
                      (f"a/b={mine}", "plain name"), ("jointvae,jointvae", "given twice"), (" , ", "names no arm")]:
        with pytest.raises(ValueError, match=says):
            compare.parse_arms(bad)


def test_seeds_run_jobs_at_a_time_a_failed_seed_spares_the_others_and_a_stopped_one_starts_no_more(monkeypatch, tmp_path):
    import argparse
    import threading

    reproduce = _load("reproduce_mnist")
    args = argparse.Namespace(jobs=2, threads=None, evaluate_only=False)
    running, most = set(), [0]
    lock = threading.Lock()
    both_running = threading.Barrier(2, timeout=10)

    def fake_seed(seed, out, args):
        with lock:
            running.add(seed)
            most[0] = max(most[0], len(running))
        if seed in (0, 1):
            both_running.wait()  # seeds 0 and 1 must be in flight together for --jobs 2
        with lock:
            running.discard(seed)
        if seed == 1:
            raise reproduce.SeedFailed("seed 1: training stopped with status 1; run this script again to resume")
        return _row(0.9 + seed / 100)

    monkeypatch.setattr(reproduce, "run_one_seed", fake_seed)
    rows, failures = reproduce.run_seeds([0, 1, 2], tmp_path, args)
    assert most[0] == 2 and sorted(rows) == [0, 2] and failures == [
        "seed 1: training stopped with status 1; run this script again to resume"]

    started = []

    def stopped_at_first(seed, out, args):
        started.append(seed)
        raise reproduce.SeedFailed(f"seed {seed}: training stopped with status 130", stopped=True)

    monkeypatch.setattr(reproduce, "run_one_seed", stopped_at_first)
    rows, failures = reproduce.run_seeds([0, 1, 2], tmp_path, argparse.Namespace(jobs=1, threads=None))
    assert started == [0] and rows == {} and failures[1:] == ["seed 1: not started (the job was stopped)",
                                                               "seed 2: not started (the job was stopped)"]
    assert reproduce.thread_env(argparse.Namespace(jobs=2, threads=1))["OMP_NUM_THREADS"] == "1"
    assert reproduce.thread_env(argparse.Namespace(jobs=1, threads=None)) is None
