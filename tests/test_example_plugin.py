"""The example third-party plugin package and the ``latentkit check-plugin`` command.

Why: "third-party plugins" is only true if a package latentkit has never heard of, installed the ordinary way, is found
through the ``latentkit`` entry-point group alone and passes the same conformance suite as the built-ins. The example
package in ``examples/latentkit-cauchy`` is installed into a temporary folder (never into this environment), and
latentkit is run in subprocesses that see it only through ``PYTHONPATH``. The command's own behaviour — exit 1 naming a
failing property, exit 2 for a name that is not a latent family — is tested in-process on families registered in code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from latentkit.cli import main as cli_main
from latentkit.plugins import hookimpl
from latentkit.plugins.registry import KINDS
from latentkit.testing import CHECKS
from latentkit_plugins.gaussian import Gaussian

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "latentkit-cauchy"
CHECK_NAMES = list(CHECKS)  #: every conformance property, in the order check-plugin runs them


# --- the example package, installed into a temporary folder --------------------------------------------------------
@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """``pip install --target`` of a copy of the example (a copy, so the build leaves nothing in the source tree)."""
    try:
        installed = metadata.distribution("latentkit-cauchy")
    except metadata.PackageNotFoundError:
        pass
    else:  # its entry point would shadow the temporary copy's (same name), so these tests would check the wrong one
        pytest.skip(f"latentkit-cauchy {installed.version} is installed in this environment; these tests install the "
                    f"example into a temporary folder and need it absent: pip uninstall latentkit-cauchy")
    source = tmp_path_factory.mktemp("source") / "latentkit-cauchy"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*cache"))
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               "--target", str(site), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install of the example failed:\n{result.stdout}\n{result.stderr}"
    return site


def _latentkit(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m latentkit ARGS`` with the example visible only through PYTHONPATH, run outside the repository."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "latentkit", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_installed_example_is_found_through_its_entry_point(example_site, tmp_path):
    result = _latentkit(example_site, tmp_path, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert set(listing) - {"broken"} == set(KINDS) == {"families", "objectives", "networks", "schedules", "datasets",
                                                        "metrics"}
    assert listing.get("broken", []) == []  # no plugin left out
    cauchy = [entry for entry in listing["families"] if entry["name"] == "cauchy"]
    assert cauchy == [{"name": "cauchy", "distribution": "latentkit-cauchy", "version": "0.1.0", "plugin": "cauchy"}]
    assert {"gaussian", "gumbel_softmax"} <= {entry["name"] for entry in listing["families"]}  # built-ins still there


def test_installed_example_passes_check_plugin(example_site, tmp_path):
    result = _latentkit(example_site, tmp_path, "check-plugin", "cauchy", "--max-examples", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for units in (1, 4):
        for check in CHECK_NAMES:
            assert f"PASS {check} on Cauchy(units={units})" in lines
    assert lines[-1].startswith(f"OK: latent family 'cauchy': {2 * len(CHECKS)} passed, 0 failed, 0 skipped")


# --- check-plugin on families registered in code ---------------------------------------------------------------------
class OffPriorGaussian(Gaussian):
    """Broken on purpose: features of zeros give mean 0.5, not the prior (the suite's contract), so exactly one property
    fails — kl_zero_at_prior — and it fails fast (Hypothesis's shrinking of a failure is cheap there).

    It also prints while being built, as a plugin with a stray debug print would."""

    family_name = "off_prior_gaussian"

    def __init__(self, units: int):
        print("building OffPriorGaussian")
        super().__init__(units)

    def params_from_features(self, features):
        params = super().params_from_features(features)
        return {**params, "mean": params["mean"] + 0.5}

    @classmethod
    def example_configs(cls):
        return [{"units": 2}]


class NoConfigsGaussian(Gaussian):
    family_name = "no_configs_gaussian"

    @classmethod
    def example_configs(cls):
        raise RuntimeError("forgot to write example_configs")


@pytest.fixture
def broken_families(plugins):
    """Registered in code on the test's own plugin host (the ``plugins`` fixture), dropped afterwards."""

    @hookimpl
    def latentkit_register_families(registry):
        registry.add("off_prior_gaussian", OffPriorGaussian)
        registry.add("no_configs_gaussian", NoConfigsGaussian)

    module = type(sys)("broken_families")
    module.latentkit_register_families = latentkit_register_families
    plugins.register(module, "broken_families")
    yield


def test_failing_property_exits_1_and_is_named(broken_families, capsys):
    assert cli_main(["check-plugin", "off_prior_gaussian", "--max-examples", "3"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert (
        "FAIL kl_zero_at_prior on OffPriorGaussian(units=2): the suite's contract is that features of zeros give the "
        "prior, where the KL is 0; with zero torch.float32 features kl is [0.125, 0.125] (allowed |kl| <= 1e-6)"
    ) in lines
    for check in CHECK_NAMES:
        if check != "kl_zero_at_prior":
            assert f"PASS {check} on OffPriorGaussian(units=2)" in lines
    summary = f"FAILED: latent family 'off_prior_gaussian': {len(CHECKS) - 1} passed, 1 failed, 0 skipped"
    assert lines[-1].startswith(summary)


def test_json_report_lists_every_property_and_stays_valid_json(broken_families, capsys):
    assert cli_main(["check-plugin", "off_prior_gaussian", "--max-examples", "3", "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # the family's print went to stderr, not into the JSON
    assert "building OffPriorGaussian" in captured.err
    assert report["family"] == "off_prior_gaussian" and report["ok"] is False
    assert report["distribution"] == "(not installed)" and report["plugin"] == "broken_families"
    assert [r["property"] for r in report["results"]] == CHECK_NAMES
    assert all(r["config"] == {"units": 2} for r in report["results"])
    failed = {r["property"] for r in report["results"] if r["status"] == "failed"}
    assert failed == {"kl_zero_at_prior"}
    assert all("features of zeros" in r["reason"] for r in report["results"] if r["status"] == "failed")
    assert report["summary"]["failed"] == 1 and report["summary"]["passed"] == report["summary"]["total"] - 1


def test_conforming_family_exits_0_with_json(capsys):
    assert cli_main(["check-plugin", "laplace", "--max-examples", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["distribution"] == "latentkit"
    configs = [{"units": 1}, {"units": 4}]
    assert [(r["config"], r["property"]) for r in report["results"]] == [(c, p) for c in configs for p in CHECK_NAMES]
    assert {r["status"] for r in report["results"]} == {"passed"}


def test_broken_example_configs_is_a_failure_not_a_traceback(broken_families, capsys):
    assert cli_main(["check-plugin", "no_configs_gaussian"]) == 1
    out = capsys.readouterr().out
    assert "FAIL example_configs on NoConfigsGaussian: NoConfigsGaussian.example_configs() raised RuntimeError: " \
           "forgot to write example_configs" in out


def test_unknown_name_exits_2_with_the_close_match_hint(capsys):
    assert cli_main(["check-plugin", "gausian"]) == 2
    err = capsys.readouterr().err
    assert "no latent family named 'gausian'" in err and "Did you mean 'gaussian'?" in err
    assert "Traceback" not in err


def test_a_network_name_exits_2_saying_it_is_a_network(capsys):
    assert cli_main(["check-plugin", "jointvae_conv"]) == 2
    err = capsys.readouterr().err
    assert "'jointvae_conv' is a network" in err and "check-plugin checks latent families" in err
    assert "gaussian" in err  # and lists the latent families there are


def test_max_examples_must_be_positive(capsys):
    assert cli_main(["check-plugin", "gaussian", "--max-examples", "0"]) == 2
    assert "--max-examples must be at least 1" in capsys.readouterr().err
