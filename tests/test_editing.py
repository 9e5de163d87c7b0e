"""Encoding image files and editing images through the latent: what is read, what is encoded, what an edit changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from latentkit.errors import ConfigError, DataError
from latentkit.viz import UnitRef
from latentkit.editing import (
    Edit,
    edit_images,
    encode_images,
    load_images,
    parse_assignments,
    save_codes,
    set_units,
)

# Latent layout of the test model: cont.0..3 → columns 0..3, disc.0 (K=3) → 4..6, disc.1 (K=5) → 7..11.
COLUMNS = {UnitRef("cont", i): [i] for i in range(4)} | {
    UnitRef("disc", 0): [4, 5, 6],
    UnitRef("disc", 1): [7, 8, 9, 10, 11],
}


@pytest.fixture(scope="module")
def model(two_channel_model):
    return two_channel_model


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 1, 32, 32), generator=g, dtype=torch.uint8)


def _png(path, array, mode=None):
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return path


def _noise(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- load_images -----------------------------------------------------------------------------------------------------
def test_matching_png_is_read_exactly_without_notices(tmp_path):
    arr = _noise(32, 32)
    loaded = load_images([_png(tmp_path / "a.png", arr)], (1, 32, 32))
    assert loaded.images.dtype == torch.uint8 and loaded.images.shape == (1, 1, 32, 32)
    assert np.array_equal(loaded.images[0, 0].numpy(), arr)
    assert loaded.notices == [] and loaded.names == [str(tmp_path / "a.png")]


def test_small_png_is_resized_like_training_data_with_a_notice(tmp_path):
    arr = _noise(28, 28)
    path = _png(tmp_path / "digit.png", arr)
    loaded = load_images([str(path)], (1, 32, 32))
    assert loaded.images.shape == (1, 1, 32, 32)
    assert loaded.notices == [f"{path}: 28x28 resized to 32x32"]
    expected = np.asarray(T.Resize(32)(Image.fromarray(arr)))
    assert np.array_equal(loaded.images[0, 0].numpy(), expected)


def test_non_square_image_is_resized_on_its_short_side_then_centre_cropped(tmp_path):
    arr = _noise(40, 64)  # H=40, W=64
    path = _png(tmp_path / "wide.png", arr)
    loaded = load_images([path], (1, 32, 32))
    expected = np.asarray(T.Compose([T.Resize(32), T.CenterCrop(32)])(Image.fromarray(arr)))
    assert np.array_equal(loaded.images[0, 0].numpy(), expected)
    assert loaded.notices == [f"{path}: 64x40 resized to 51x32 and centre-cropped to 32x32"]


def test_rgb_is_converted_to_grayscale_and_gray_to_rgb_with_notices(tmp_path):
    rgb = _noise(32, 32, 3)
    path = _png(tmp_path / "photo.png", rgb)
    loaded = load_images([path], (1, 32, 32))
    assert loaded.notices == [f"{path}: RGB converted to grayscale"]
    assert np.array_equal(loaded.images[0, 0].numpy(), np.asarray(Image.fromarray(rgb).convert("L")))

    gray = _png(tmp_path / "gray.png", _noise(64, 64))
    loaded = load_images([gray], (3, 32, 32))
    assert loaded.images.shape == (1, 3, 32, 32)
    assert loaded.notices == [f"{gray}: grayscale converted to RGB", f"{gray}: 64x64 resized to 32x32"]
    assert torch.equal(loaded.images[0, 0], loaded.images[0, 2])


def test_rgba_and_palette_images_are_converted(tmp_path):
    rgba = _png(tmp_path / "rgba.png", _noise(32, 32, 4), "RGBA")
    pal = tmp_path / "pal.png"
    Image.fromarray(_noise(32, 32, 3)).convert("P").save(pal)
    loaded = load_images([rgba, pal], (3, 32, 32))
    assert loaded.images.shape == (2, 3, 32, 32)
    assert [n.split(": ")[1] for n in loaded.notices] == ["RGBA converted to RGB", "palette converted to RGB"]


def test_without_convert_any_mismatch_is_refused_naming_both_shapes(tmp_path):
    small = _png(tmp_path / "digit.png", _noise(28, 28))
    with pytest.raises(ConfigError, match=r"digit\.png.*28x28.*32x32"):
        load_images([small], (1, 32, 32), convert=False)
    rgb = _png(tmp_path / "photo.png", _noise(32, 32, 3))
    with pytest.raises(ConfigError, match=r"photo\.png.*RGB.*grayscale"):
        load_images([rgb], (1, 32, 32), convert=False)
    ok = _png(tmp_path / "ok.png", _noise(32, 32))
    assert load_images([ok], (1, 32, 32), convert=False).notices == []


def test_a_folder_expands_to_its_images_in_sorted_order(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, seed in [("b.png", 2), ("a.PNG", 1), ("c.jpg", 3)]:
        Image.fromarray(_noise(32, 32, seed=seed)).save(folder / name, format="JPEG" if name.endswith("jpg") else "PNG")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    _png(folder / "sub" / "d.png", _noise(32, 32))
    loaded = load_images([folder], (1, 32, 32))
    assert loaded.names == [str(folder / "a.PNG"), str(folder / "b.png"), str(folder / "c.jpg")]
    assert np.array_equal(loaded.images[0, 0].numpy(), _noise(32, 32, seed=1))


def test_bad_inputs_are_clear_errors(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("this is text, not a PNG")
    with pytest.raises(DataError, match=r"fake\.png.*not an image"):
        load_images([fake], (1, 32, 32))
    with pytest.raises(DataError, match=r"missing\.png.*does not exist"):
        load_images([tmp_path / "missing.png"], (1, 32, 32))
    with pytest.raises(ConfigError, match="no image files"):
        load_images([], (1, 32, 32))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty.*no image files"):
        load_images([empty], (1, 32, 32))
    ok = _png(tmp_path / "ok.png", _noise(32, 32))
    with pytest.raises(ConfigError, match="4 channels"):
        load_images([ok], (4, 32, 32))


# --- encode_images and save_codes ------------------------------------------------------------------------------------
def test_encoded_keys_shapes_and_consistency(model, images):
    codes = encode_images(model, images, batch_size=4)  # two batches: 4 + 2
    n = images.shape[0]
    expected = {
        "cont/mean": (n, 4), "cont/logvar": (n, 4), "cont/kl": (n, 4), "cont/representative": (n, 4),
        "disc/alpha": (n, 8), "disc/probs": (n, 8), "disc/kl": (n, 2), "disc/representative": (n, 8),
        "disc/argmax": (n, 2), "latent": (n, 12),
    }
    assert {k: v.shape for k, v in codes.items()} == expected
    assert codes["disc/argmax"].dtype == np.int64
    assert np.array_equal(codes["disc/probs"], codes["disc/alpha"])
    probs = codes["disc/probs"]
    assert np.array_equal(codes["disc/argmax"], np.stack([probs[:, :3].argmax(1), probs[:, 3:].argmax(1)], 1))
    assert np.array_equal(codes["cont/representative"], codes["cont/mean"])
    one_hot = np.concatenate([np.eye(3)[codes["disc/argmax"][:, 0]], np.eye(5)[codes["disc/argmax"][:, 1]]], 1)
    assert np.array_equal(codes["disc/representative"], one_hot)
    representatives = np.concatenate([codes["cont/representative"], codes["disc/representative"]], 1)
    assert np.array_equal(codes["latent"], representatives)
    assert (codes["cont/kl"] >= 0).all() and (codes["disc/kl"] <= np.log([3, 5]) + 1e-6).all()

    with torch.no_grad():  # batching does not change the answer, and it matches the model's own eval forward pass
        out = model(images.float() / 255)
    np.testing.assert_allclose(codes["latent"], out.latent.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes["cont/mean"], out.params["cont"]["mean"].numpy(), rtol=1e-5, atol=1e-6)


def test_encode_refuses_images_of_the_wrong_shape_and_keeps_training_mode(model, images):
    with pytest.raises(ConfigError, match=r"\(N, 1, 32, 32\)"):
        encode_images(model, images[:, :, :28, :28])
    model.train()
    try:
        encode_images(model, images[:1])
        assert model.training
    finally:
        model.eval()


def test_save_codes_round_trips_and_rejects_a_non_npz_path(model, images, tmp_path):
    codes = encode_images(model, images[:3])
    names = ["a.png", "b.png", "c.png"]
    out = save_codes(codes, names, tmp_path / "deep" / "codes.npz")
    assert out == tmp_path / "deep" / "codes.npz"
    with np.load(out) as loaded:  # no pickles needed
        assert set(loaded.files) == set(codes) | {"files"}
        assert list(loaded["files"]) == names
        for key, value in codes.items():
            assert np.array_equal(loaded[key], value) and loaded[key].dtype == value.dtype
    with pytest.raises(ConfigError, match=r"\.npz"):
        save_codes(codes, names, tmp_path / "codes.csv")
    with pytest.raises(ConfigError, match="3 rows but 2"):
        save_codes(codes, names[:2], tmp_path / "x.npz")
    assert not (tmp_path / "codes.csv").exists() and not (tmp_path / "x.npz").exists()


# --- parse_assignments and set_units ---------------------------------------------------------------------------------
def test_parse_assignments_reads_both_kinds(model):
    got = parse_assignments(model.latent, ["cont.3=1.5", "disc.0=2", "disc.1= 4.0 ", "cont.0=-1e-1"])
    assert got == {UnitRef("cont", 3): 1.5, UnitRef("disc", 0): 2, UnitRef("disc", 1): 4, UnitRef("cont", 0): -0.1}
    assert type(got[UnitRef("disc", 1)]) is int
    assert parse_assignments(model.latent, []) == {}


@pytest.mark.parametrize(
    "items, pattern",
    [
        (["disc.0=3"], r"disc\.0 is categorical with 3 categories.*0 to 2"),
        (["disc.1=-1"], r"0 to 4"),
        (["disc.0=1.5"], r"whole number from 0 to 2"),
        (["disc.0=one"], r"whole number"),
        (["cont.1=nan"], r"finite number"),
        (["cont.1=big"], r"finite number"),
        (["cont.9=1"], r"units 0\.\.3.*cont\.3=1\.5.*units of this model: cont\.0\.\.cont\.3"),
        (["style.0=1"], r"no channel 'style'.*disc\.1 \(category 0\.\.4\)"),
        (["cont.1=1", "cont.1=2"], r"cont\.1 is assigned twice"),
        (["cont.1"], r"<channel>\.<index>=<value>.*'cont\.1'.*disc\.0 \(category 0\.\.2\)"),
        (["=3"], r"<channel>\.<index>=<value>"),
        (["cont.1="], r"<channel>\.<index>=<value>"),
    ],
)
def test_parse_assignments_errors_say_what_is_accepted(model, items, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_assignments(model.latent, items)


def test_set_units_changes_only_the_assigned_columns(model):
    z = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    out = set_units(model.latent, z, {UnitRef("cont", 2): 2.5, UnitRef("disc", 1): 3})
    assert torch.equal(z, z.clone()) and not torch.equal(out, z)  # z is not modified
    assert (out[:, 2] == 2.5).all()
    assert torch.equal(out[:, 7:12], torch.eye(5)[3].expand(3, -1))
    keep = [c for c in range(12) if c not in [2, 7, 8, 9, 10, 11]]
    assert torch.equal(out[:, keep], z[:, keep])
    with pytest.raises(ConfigError, match="0 to 4"):
        set_units(model.latent, z, {UnitRef("disc", 1): 5})
    with pytest.raises(ConfigError, match=r"\(batch, 12\)"):
        set_units(model.latent, z[:, :11], {})


# --- edit_images -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "assignments",
    [
        {UnitRef("cont", 3): 1.5},
        {UnitRef("disc", 0): 2},
        {UnitRef("cont", 0): -2.0, UnitRef("disc", 1): 4, UnitRef("disc", 0): 1},
    ],
)
def test_an_edit_changes_exactly_the_decoder_inputs_asked_for(model, images, assignments):
    edit = edit_images(model, images, assignments)
    assert isinstance(edit, Edit)
    z, ez = edit.latent, edit.edited_latent
    codes = encode_images(model, images)
    np.testing.assert_allclose(z.numpy(), codes["latent"], rtol=1e-5, atol=1e-6)
    changed = sorted(c for ref in assignments for c in COLUMNS[ref])
    for col in range(12):
        if col not in changed:
            assert torch.equal(ez[:, col], z[:, col]), f"column {col} changed"
    for ref, value in assignments.items():
        cols = COLUMNS[ref]
        want = torch.eye(len(cols))[value] if ref.channel == "disc" else torch.tensor([float(value)])
        assert torch.equal(ez[:, cols], want.expand(len(images), -1))
    # the test images are random, so the encoder's representative differs from the edit in at least one image
    assert any(not torch.equal(ez[:, COLUMNS[ref]], z[:, COLUMNS[ref]]) for ref in assignments)
    with torch.no_grad():
        torch.testing.assert_close(edit.edited, model.decode(ez))
        torch.testing.assert_close(edit.reconstruction, model.decode(z))
    assert not torch.allclose(edit.edited, edit.reconstruction)
    assert edit.original.dtype == torch.float32 and torch.equal(edit.original, images.float() / 255)


def test_no_edit_gives_the_reconstruction_and_strings_are_accepted(model, images):
    edit = edit_images(model, images[:2], {})
    assert torch.equal(edit.edited, edit.reconstruction) and torch.equal(edit.edited_latent, edit.latent)
    by_text = edit_images(model, images[:2], ["cont.1=0.75", "disc.1=2"])
    assert (by_text.edited_latent[:, 1] == 0.75).all()
    assert torch.equal(by_text.edited_latent[:, 7:12], torch.eye(5)[[2, 2]])
    with pytest.raises(ConfigError, match="0 to 2"):
        edit_images(model, images[:2], ["disc.0=7"])


def test_edit_of_a_loaded_file_round_trip(model, tmp_path):
    path = _png(tmp_path / "digit.png", _noise(28, 28))
    loaded = load_images([path], model.image_shape)
    edit = edit_images(model, loaded.images, parse_assignments(model.latent, ["disc.0=1"]))
    assert edit.edited.shape == (1, 1, 32, 32)
    assert float(edit.edited.min()) >= 0.0 and float(edit.edited.max()) <= 1.0
