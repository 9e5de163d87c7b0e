"""User errors print one paragraph and exit 2 (``latentkit evaluate``); --debug re-raises; a broken plugin is reported
and left out, failing only the commands that need it; ``check-plugin`` reports a family it cannot build in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from latentkit_plugins.gaussian import Gaussian

from latentkit.assembly.build import build_model
from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
from latentkit.assembly.evaluate import evaluate_checkpoint
from latentkit.specs import ChannelSpec, Component, ModelSpec
from latentkit.cli import main
from latentkit.core import LatentFamily
from latentkit.errors import CheckpointError, ConfigError, DataError, LatentkitError, UnknownNameError
from latentkit.plugins import PluginHost, hookimpl, use_host
from latentkit.testing import CHECKS


def _checkpoint(folder: Path, dataset: Component | None = Component("mnist"), channels=None) -> Path:
    spec = ModelSpec(
        (1, 32, 32),
        channels or [ChannelSpec("cont", "gaussian", {"units": 2}), ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})],
        Component("jointvae_conv", {"hidden": 8}),
    )
    save_model_checkpoint(folder, build_model(spec), checkpoint_config(spec, dataset=dataset))
    return folder


def _evaluate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_user_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("latentkit evaluate: error: ")
    assert err.strip().count("\n") == 0, f"not one paragraph: {err!r}"
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_missing_checkpoint_folder(capsys, tmp_path):
    code, out, err = _evaluate(capsys, str(tmp_path / "no-such-run"), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "no-such-run", "does not exist")


def test_folder_that_is_not_a_checkpoint(capsys, tmp_path):
    code, out, err = _evaluate(capsys, str(tmp_path), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "config.json")


def test_unknown_metric_lists_known_metrics(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "acuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "'acuracy'", "accuracy", "Known metrics")


def test_unknown_metric_is_reported_before_anything_is_loaded(tmp_path):
    with pytest.raises(UnknownNameError, match="Known metrics"):
        evaluate_checkpoint(tmp_path / "missing", ["nope"], data_root=tmp_path)


def test_missing_data(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    empty = tmp_path / "empty-root"
    empty.mkdir()
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(empty))
    _assert_user_error(code, out, err, "'mnist'", "t10k-images-idx3-ubyte", str((empty / "MNIST" / "raw").resolve()))


def test_unknown_split(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path), "--split", "val")
    _assert_user_error(code, out, err, "'val'", "train", "test")


def test_checkpoint_without_dataset(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt", dataset=None)
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "data set")


def test_checkpoint_naming_an_unknown_dataset(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt", dataset=Component("imagenet"))
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "'imagenet'", "mnist")


def test_checkpoint_whose_dataset_does_not_fit_the_model(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt", dataset=Component("celeba"))
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "(1, 32, 32)", "(3, 64, 64)")


def test_bad_batch_size_and_device(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--batch-size", "0")
    _assert_user_error(code, out, err, "batch size")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--device", "tpu7")
    _assert_user_error(code, out, err, "device")


def test_debug_reraises(tmp_path):
    with pytest.raises(CheckpointError):
        main(["--debug", "evaluate", str(tmp_path / "missing"), "--metric", "accuracy"])
    ckpt = _checkpoint(tmp_path / "ckpt")
    with pytest.raises(DataError):
        main(["--debug", "evaluate", str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path)])
    with pytest.raises(UnknownNameError):
        main(["--debug", "evaluate", str(ckpt), "--metric", "nope"])


def test_metric_errors_are_user_errors(tmp_path, monkeypatch):
    """A model without a discrete channel: the accuracy metric's ConfigError reaches the CLI as a user error."""
    import torch

    from latentkit.data.provider import ImageData
    from latentkit.plugins import get_registry

    ckpt = _checkpoint(tmp_path / "ckpt", channels=[ChannelSpec("cont", "gaussian", {"units": 2})])
    mnist_cls = get_registry().datasets.get("mnist")
    fake = ImageData(images=torch.zeros(5, 1, 32, 32, dtype=torch.uint8), labels=torch.zeros(5, dtype=torch.int64))
    monkeypatch.setattr(mnist_cls, "load", lambda self, root, split="train": fake)
    with pytest.raises(ConfigError, match="discrete"):
        evaluate_checkpoint(ckpt, ["accuracy"], data_root=tmp_path)
    assert issubclass(ConfigError, LatentkitError)


def test_a_reader_that_goes_away_is_not_a_traceback():
    """`latentkit check-plugin laplace | head -1`: the pipe closes under a command still printing."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "latentkit", "check-plugin", "laplace", "--max-examples", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 141


# --- broken plugins: reported and left out; only the commands that need them fail -----------------------------------
def _install_broken(tmp_path: Path, monkeypatch) -> None:
    """An installed distribution whose plugin module raises on import (as one built against another CUDA would)."""
    site = tmp_path / "site"
    dist_info = site / "broken_plugin-2.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 2.0\n")
    (dist_info / "entry_points.txt").write_text("[latentkit]\nvonmises = broken_vonmises\n")
    (site / "broken_vonmises.py").write_text("raise OSError('libvonmises.so: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(site))


def test_a_broken_plugin_does_not_stop_an_unrelated_command(capsys, tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "ckpt")
    _install_broken(tmp_path, monkeypatch)
    with use_host(PluginHost()):
        code = main(["sample", str(ckpt), "--out", str(tmp_path / "figures"), "--n", "2", "--recon", "0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (tmp_path / "figures" / "samples-prior.png").is_file()
    warning, = [line for line in captured.err.splitlines() if line.startswith("latentkit: warning: ")]
    assert "'vonmises' from broken-plugin 2.0 is broken and left out" in warning
    assert "OSError: libvonmises.so" in warning and "-p no:vonmises" in warning
    assert "Traceback" not in captured.err


def test_a_command_needing_a_broken_plugin_fails_naming_it_the_exception_and_the_fix(capsys, tmp_path, monkeypatch):
    _install_broken(tmp_path, monkeypatch)
    with use_host(PluginHost()):
        code = main(["check-plugin", "vonmises"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    error, = [line for line in captured.err.splitlines() if line.startswith("latentkit check-plugin: error: ")]
    assert "no latent family named 'vonmises'" in error
    assert "'vonmises' from broken-plugin 2.0" in error and "OSError: libvonmises.so" in error
    assert "uninstall" in error


def test_blocking_the_broken_plugin_silences_it(capsys, tmp_path, monkeypatch):
    _install_broken(tmp_path, monkeypatch)
    with use_host(PluginHost()):
        assert main(["-p", "no:vonmises", "plugins"]) == 0
    captured = capsys.readouterr()
    assert "vonmises" not in captured.err and "broken" not in captured.out and "blocked: vonmises" in captured.out


# --- check-plugin on a family that cannot be built: one FAIL line per problem ---------------------------------------
class _AbstractFamily(LatentFamily):
    """Implements nothing of the protocol."""


class _NeedsOptions(Gaussian):
    """Needs constructor arguments but keeps LatentFamily's default example_configs ([{}])."""

    example_configs = LatentFamily.example_configs

    def __init__(self, units: int, scale: float):
        super().__init__(units=units)


class _RaisingConstructor(Gaussian):
    @classmethod
    def example_configs(cls) -> list[dict]:
        return [{"units": 2}, {"units": -1}]


@pytest.mark.parametrize(
    ("family", "fragments"),
    [
        (_AbstractFamily, ["FAIL construct on _AbstractFamily: ", "cannot be instantiated", "abstract methods", "kl"]),
        (_NeedsOptions, ["FAIL example_configs on _NeedsOptions: ", "missing 2 required positional arguments",
                         "override example_configs()"]),
    ],
)
def test_check_plugin_reports_a_family_that_cannot_be_built_in_one_line(family, fragments, capsys):
    class Plugin:
        @hookimpl
        def latentkit_register_families(self, registry):
            registry.add("unbuildable", family)

    with use_host(PluginHost(plugins={"unbuildable_plugin": Plugin()})):
        assert main(["check-plugin", "unbuildable"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    fails = [line for line in captured.out.splitlines() if line.startswith("FAIL ")]
    assert len(fails) == 1, captured.out
    assert all(fragment in fails[0] for fragment in fragments), fails[0]
    assert captured.out.splitlines()[-1].startswith("FAILED: latent family 'unbuildable': 0 passed, 1 failed")


def test_check_plugin_runs_the_configurations_that_build_and_fails_the_one_that_does_not(capsys):
    class Plugin:
        @hookimpl
        def latentkit_register_families(self, registry):
            registry.add("half_buildable", _RaisingConstructor)

    with use_host(PluginHost(plugins={"half_buildable_plugin": Plugin()})):
        assert main(["check-plugin", "half_buildable", "--max-examples", "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert len(fails) == 1 and fails[0].startswith("FAIL construct on _RaisingConstructor(units=-1): ")
    assert "the constructor raised ConfigError" in fails[0]
    assert sum(line.startswith("PASS") for line in lines) == len(CHECKS)  # units=2 ran every property


def test_check_plugin_without_hypothesis_names_the_testing_extra():
    """check-plugin needs Hypothesis, which only the testing extra brings: the error says which extra to install."""
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None  # as if not installed: import fails, find_spec finds nothing\n"
        "from latentkit.cli import main\n"
        "sys.exit(main(['check-plugin', 'gaussian']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert 'pip install "latentkit[testing]"' in result.stderr and "Hypothesis" in result.stderr


# --- --dataset and --dataset-option ----------------------------------------------------------------------------------
def test_an_unknown_dataset_option_names_the_options_the_data_set_has(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset-option", "sise=32")
    _assert_user_error(code, out, err, "'mnist' has no option 'sise'", "its options are size")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset-option", "size=-3")
    _assert_user_error(code, out, err, "size")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset-option", "size")
    _assert_user_error(code, out, err, "KEY=VALUE", "--dataset-option source=procedural")


def test_an_unknown_dataset_name_lists_the_known_ones(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset", "mnsit")
    _assert_user_error(code, out, err, "'mnsit'", "Did you mean 'mnist'", "fashion_mnist")


def test_a_given_dataset_that_does_not_fit_the_model(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset", "dsprites_procedural")
    _assert_user_error(code, out, err, "(1, 64, 64)", "(1, 32, 32)", "--dataset")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--dataset-option", "size=28")
    _assert_user_error(code, out, err, "(1, 28, 28)", "(1, 32, 32)", "--dataset-option")


def test_a_checkpoint_without_dataset_is_told_about_dataset_and_takes_it(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "ckpt", dataset=None)
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path))
    _assert_user_error(code, out, err, "--dataset NAME")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path),
                               "--dataset-option", "size=32")
    _assert_user_error(code, out, err, "no 'dataset'", "--dataset NAME")
    code, out, err = _evaluate(capsys, str(ckpt), "--metric", "accuracy", "--data-root", str(tmp_path),
                               "--dataset", "mnist")
    _assert_user_error(code, out, err, "'mnist'", "t10k-images-idx3-ubyte")  # got as far as the data set's files
