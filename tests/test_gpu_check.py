"""benchmarks/gpu_check.py, the CUDA check, runs its CPU-side checks here as CI does: they pass, each is written as it
ends, and a check that fails, raises or hangs is recorded as failed while the others still run."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records(out: Path) -> dict[str, dict]:
    return {r["check"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_cpu_checks_pass_and_are_written(tmp_path):
    gpu_check = _load()
    out = tmp_path / "out"
    rc = gpu_check.main(["--device", "cpu", "--out", str(out), "--work", str(tmp_path / "work"),
                         "--skip", "throughput,compile", "--steps", "10"])
    records = _records(out)
    assert list(records) == [name for name, *_ in gpu_check.CHECKS]
    assert rc == 0, {k: r.get("error") or r.get("tail") for k, r in records.items() if r["status"] == "fail"}

    assert records["environment"]["status"] == "pass" and records["environment"]["plugins"] > 0
    fixtures = records["fixtures"]
    if fixtures["status"] == "skip":  # the original's checkpoints are not in every checkout
        assert "reference" in fixtures["reason"]
    else:
        assert fixtures["status"] == "pass"
        compared = [fixtures[n] for n in gpu_check.FIXTURE_NAMES if isinstance(fixtures.get(n), dict)]
        assert compared and all(c["max_abs_error"] <= 1e-5 for c in compared)
    for precision in ("float32", "bfloat16"):
        record = records[f"train_resume_{precision}"]
        assert record["status"] == "pass" and record["identical"] and record["metrics_identical"], record
        assert record["precision"] == precision and record["max_abs_difference"] == 0.0
    torchrun = records["torchrun"]
    assert torchrun["status"] == "pass" and torchrun["backend"] == "gloo" and torchrun["world_size"] == 1
    assert torchrun["identical"] and torchrun["all_reduce_ok"]
    assert records["compile"]["status"] == records["throughput"]["status"] == "skip"

    summary = (out / "summary.md").read_text()
    for name, *_ in gpu_check.CHECKS:
        assert f"| {name} |" in summary
    assert "| train_resume_bfloat16 | PASS |" in summary and "| compile | SKIP |" in summary
    assert f"'how': '{records['environment']['bfloat16']['how']}'" in summary  # the machine's table heads the summary


def test_a_failing_check_is_recorded_and_the_others_still_run(tmp_path):
    gpu_check = _load()
    out = tmp_path / "out"

    def raises(ctx):
        raise RuntimeError("injected failure")

    def says_failed(ctx):
        return {"passed": False, "result": "wrong answer"}

    def hangs(ctx):  # a worker that never ends is killed at the check's limit, its output kept
        cmd = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
        return gpu_check._run(cmd, ctx.limit, ctx.work / "hang.log")

    def fine(ctx):
        return {"result": "ran after the failures"}

    checks = [("raises", raises, 30), ("says_failed", says_failed, 30), ("hangs", hangs, 1.5), ("fine", fine, 30)]
    start = time.monotonic()
    rc = gpu_check.main(["--device", "cpu", "--out", str(out), "--work", str(tmp_path / "work")], checks=checks)
    assert time.monotonic() - start < 20
    assert rc == 1
    records = _records(out)
    assert [r["status"] for r in records.values()] == ["fail", "fail", "fail", "pass"]
    assert records["raises"]["error"] == "RuntimeError: injected failure"
    assert "Traceback" in records["raises"]["tail"] and "injected failure" in records["raises"]["tail"]
    assert records["says_failed"]["result"] == "wrong answer"
    assert records["hangs"]["error"] == "timed out" and records["hangs"]["rc"] is None
    assert "started" in records["hangs"]["tail"] and records["hangs"]["seconds"] < 10
    assert records["fine"]["result"] == "ran after the failures"
    summary = (out / "summary.md").read_text()
    assert "| raises | FAIL |" in summary and "## raises: failure" in summary and "| fine | PASS |" in summary


def test_the_benchmark_table_is_cut_from_its_output():
    gpu_check = _load()
    output = ("matmul ...\n  mnist32 as used, repeat 1/1: ...\n\n{'cpu': 'x'}; device cuda\n"
              "| configuration | a |\n| m | 1 |\n")
    assert gpu_check.table_of(output).splitlines() == ["", "{'cpu': 'x'}; device cuda", "| configuration | a |",
                                                       "| m | 1 |"]
    cut = gpu_check.table_of("matmul ...\n  mnist32 as used, repeat 1/1: ...")
    assert "did not finish" in cut and cut.endswith("repeat 1/1: ...")


def test_the_shim_registers_every_plugin_of_pyproject(tmp_path):
    """Where the checkout cannot be installed (a GPU machine without internet) the script runs it through a shim."""
    import importlib.metadata

    import tomllib

    gpu_check = _load()
    shim = gpu_check.make_shim(tmp_path / "site")
    (dist,) = importlib.metadata.distributions(path=[str(shim)])
    declared = tomllib.loads((BENCHMARKS.parent / "pyproject.toml").read_text())["project"]["entry-points"]["latentkit"]
    assert dist.metadata["Name"] == "latentkit"
    assert {ep.name: ep.value for ep in dist.entry_points if ep.group == "latentkit"} == declared
    for module in declared.values():  # each resolves through the shim's link to plugins/, as a module or a package
        path = shim / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module
