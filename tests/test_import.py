"""`latentkit import-jointvae` and loading checkpoint folders: the good path and every broken input."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import torch

from latentkit.assembly.checkpoint import CONFIG_FILE, MODEL_FILE, load_model
from latentkit.cli import main
from latentkit.errors import CheckpointError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MNIST_SRC = SHARED / "reference_models" / "jointvae-original" / "mnist"
CHAIRS_SRC = SHARED / "reference_models" / "jointvae-original" / "chairs"


def _need(src: Path) -> Path:
    if not (src / "model.pt").is_file() or not (src / "specs.json").is_file():
        pytest.skip(f"reference checkpoint {src} is absent (expected model.pt and specs.json)")
    return src


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("latentkit import-jointvae: error: ")
    assert err.strip().count("\n") == 0, f"not one paragraph: {err!r}"
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture
def mnist_copy(tmp_path) -> Path:
    """A writable copy of the original mnist folder."""
    src = _need(MNIST_SRC)
    dst = tmp_path / "original"
    dst.mkdir()
    for name in ("model.pt", "specs.json"):
        shutil.copy(src / name, dst / name)
    return dst


def test_import_cli_writes_a_loadable_checkpoint(capsys, tmp_path):
    src = _need(MNIST_SRC)
    out = tmp_path / "imported"
    code, stdout, err = _run(capsys, "import-jointvae", str(src), str(out))
    assert code == 0, err
    assert "mnist" in stdout
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, MODEL_FILE]
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["dataset"] == {"name": "mnist", "options": {}}
    assert [c["family"] for c in config["model"]["channels"]] == ["gaussian", "gumbel_softmax"]
    model, _ = load_model(out)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == 687_359  # the original's parameter count
    # Importing again replaces the folder in place.
    code, _, err = _run(capsys, "import-jointvae", str(src), str(out))
    assert code == 0, err


def test_missing_folder(capsys, tmp_path):
    code, _, err = _run(capsys, "import-jointvae", str(tmp_path / "nope"), str(tmp_path / "out"))
    _assert_user_error(code, err, "nope", "not a folder")
    assert not (tmp_path / "out").exists()


def test_missing_model_pt(capsys, mnist_copy, tmp_path):
    (mnist_copy / "model.pt").unlink()
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "model.pt")
    assert not (tmp_path / "out").exists()


def test_missing_specs_json(capsys, mnist_copy, tmp_path):
    (mnist_copy / "specs.json").unlink()
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "specs.json")


@pytest.mark.parametrize("seed", range(40))
def test_corrupt_model_pt(capsys, mnist_copy, tmp_path, seed):
    # Garbage makes torch's restricted unpickler fail in many ways (UnpicklingError, IndexError, KeyError, ...);
    # half the blobs start with a pickle protocol header so they reach the unpickler's opcode loop.
    rng = random.Random(seed)
    blob = bytes(rng.getrandbits(8) for _ in range(4096))
    if seed % 2:
        blob = b"\x80\x02" + blob
    (mnist_copy / "model.pt").write_bytes(blob)
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "model.pt", "corrupt")
    assert not (tmp_path / "out").exists()


def test_truncated_model_pt(capsys, mnist_copy, tmp_path):
    data = (mnist_copy / "model.pt").read_bytes()
    (mnist_copy / "model.pt").write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "model.pt")


class _Payload:
    """Unpickling this would call open(marker, "w"): the test checks the file is never created."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_code_is_refused_not_executed(capsys, mnist_copy, tmp_path):
    marker = tmp_path / "executed"
    torch.save({"fc_mean.weight": torch.zeros(1), "payload": _Payload(marker)}, mnist_copy / "model.pt")
    assert not marker.exists()
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "model.pt", "refuses to execute")
    assert not marker.exists(), "loading model.pt executed code from the file"


def test_pickled_non_tensor_object_is_a_checkpoint_error(capsys, mnist_copy, tmp_path):
    torch.save({"fc_mean.weight": "not a tensor", "step": 3}, mnist_copy / "model.pt")
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "state_dict")
    torch.save([torch.zeros(2)], mnist_copy / "model.pt")
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "state_dict")


@pytest.mark.parametrize(
    "latent_spec",
    [{"cont": 12, "disc": [10]}, {"cont": 10, "disc": [2, 2, 2]}, {"cont": 10, "disc": [8]}, {"cont": 10}],
    ids=["wrong-cont", "wrong-disc-count", "wrong-disc-size", "no-disc"],
)
def test_specs_that_do_not_match_the_weights(capsys, mnist_copy, tmp_path, latent_spec):
    specs = json.loads((mnist_copy / "specs.json").read_text())
    specs["latent_spec"] = latent_spec
    (mnist_copy / "specs.json").write_text(json.dumps(specs))
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "model.pt")
    assert not (tmp_path / "out").exists()


def test_specs_for_another_dataset(capsys, mnist_copy, tmp_path):
    specs = json.loads((mnist_copy / "specs.json").read_text())
    specs["dataset"] = "celeba"
    (mnist_copy / "specs.json").write_text(json.dumps(specs))
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "celeba")


def test_corrupt_specs_json(capsys, mnist_copy, tmp_path):
    (mnist_copy / "specs.json").write_text("{not json")
    code, _, err = _run(capsys, "import-jointvae", str(mnist_copy), str(tmp_path / "out"))
    _assert_user_error(code, err, "specs.json")


def test_debug_reraises(mnist_copy, tmp_path):
    (mnist_copy / "model.pt").unlink()
    with pytest.raises(CheckpointError):
        main(["--debug", "import-jointvae", str(mnist_copy), str(tmp_path / "out")])


# --- loading latentkit checkpoint folders -------------------------------------------------------------------------


@pytest.fixture
def imported_mnist(tmp_path) -> Path:
    from latentkit.interop.jointvae_original import import_original

    out = tmp_path / "mnist-ckpt"
    import_original(_need(MNIST_SRC), out)
    return out


def test_load_corrupt_config(imported_mnist):
    (imported_mnist / CONFIG_FILE).write_text('{"format": "latentkit-checkpoint", ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(imported_mnist)


def test_load_config_of_another_format(imported_mnist):
    (imported_mnist / CONFIG_FILE).write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="format"):
        load_model(imported_mnist)


def test_load_missing_weights(imported_mnist):
    (imported_mnist / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match=MODEL_FILE):
        load_model(imported_mnist)


def test_load_corrupt_weights(imported_mnist):
    (imported_mnist / MODEL_FILE).write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(imported_mnist)


def test_load_weights_of_another_model(imported_mnist, tmp_path):
    from latentkit.interop.jointvae_original import import_original

    chairs = tmp_path / "chairs-ckpt"
    import_original(_need(CHAIRS_SRC), chairs)
    shutil.copy(chairs / MODEL_FILE, imported_mnist / MODEL_FILE)
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(imported_mnist)


def test_load_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nothing-here")


def test_load_original_folder_points_to_import(tmp_path):
    src = _need(MNIST_SRC)
    with pytest.raises(CheckpointError, match="import-jointvae"):
        load_model(src)
