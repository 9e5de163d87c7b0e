"""`latentkit evaluate`: user errors print one paragraph and exit 2; --debug re-raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentkit.assembly.build import build_model
from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
from latentkit.cli import main
from latentkit.assembly.specs import ChannelSpec, Component, ModelSpec
from latentkit.errors import CheckpointError, ConfigError, DataError, LatentkitError, UnknownNameError
from latentkit.assembly.evaluate import evaluate_checkpoint


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
    from latentkit.data.provider import ImageData
    from latentkit.plugins import get_registry

    import torch

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
