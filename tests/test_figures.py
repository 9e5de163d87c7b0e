"""Figures: grid layout, conditional samples, pair traversals and frames, the KL source, and the figure commands
end to end on a short training run (traverse, sample, plot, report, encode, edit, and the training hook)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentkit import cli
from latentkit.assembly.build import build_model
from latentkit.specs import ChannelSpec, ModelSpec
from latentkit.core import JointLatent
from latentkit.errors import ConfigError
from latentkit.testing.examples import MixtureGaussian
from latentkit.viz import decode_latents, traversal_frames, traversal_latents, traverse_pair
from latentkit.viz.images import grid_array, image_grid, save_gif
from latentkit.viz.samples import conditional_latents, conditional_samples, reconstructions
from latentkit_plugins.gumbel_softmax import GumbelSoftmax

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def model(two_channel_model):
    return two_channel_model


# --- grids --------------------------------------------------------------------------------------------------------


def test_grid_places_each_cell_and_pads_short_rows():
    rows = [torch.rand(3, 1, 4, 5), torch.rand(2, 1, 4, 5)]
    arr = grid_array(rows, padding=2)
    assert arr.shape == (2 + 2 * (4 + 2), 2 + 3 * (5 + 2), 1)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = 2 + r * 6, 2 + c * 7
            expected = img[0].mul(255).round().to(torch.uint8).numpy()
            assert np.array_equal(arr[y : y + 4, x : x + 5, 0], expected)
    assert (arr[8:12, 16:21, 0] == 255).all()  # the missing cell of the short row is blank
    assert (arr[:2] == 255).all() and (arr[:, :2] == 255).all()


def test_grid_scale_and_labels_grow_the_image():
    rows = torch.rand(2, 3, 3, 8, 8)
    plain = image_grid(rows)
    assert plain.size == (2 + 3 * 10, 2 + 2 * 10) and plain.mode == "RGB"
    scaled = image_grid(rows, scale=3)
    assert scaled.size == (3 * plain.size[0], 3 * plain.size[1])
    labelled = image_grid(rows, row_labels=["cont.0", "disc.1"], title="step 5")
    assert labelled.size[0] > plain.size[0] and labelled.size[1] > plain.size[1]
    with pytest.raises(ConfigError, match="row labels"):
        image_grid(rows, row_labels=["one"])
    with pytest.raises(ConfigError, match="one shape"):
        grid_array([torch.rand(2, 1, 4, 4), torch.rand(2, 1, 5, 5)])


def test_gif_holds_every_frame_and_loops(tmp_path):
    frames = [image_grid(torch.full((1, 2, 1, 6, 6), v / 4)) for v in range(5)]
    path = save_gif(frames, tmp_path / "a.gif", duration_ms=50)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info.get("loop") == 0 and gif.size == frames[0].size
        gif.seek(4)
        assert abs(np.asarray(gif.convert("L"))[3, 3] - 255) <= 2


# --- samples and traversals -----------------------------------------------------------------------------------------


def test_conditional_latents_fix_the_category_and_reuse_the_other_draws(model):
    z = conditional_latents(model, "disc.1", n=6, seed=4)
    assert z.shape == (5, 6, 12)
    assert torch.equal(z[:, :, 7:12], torch.eye(5).unsqueeze(1).expand(5, 6, 5))
    for k in range(1, 5):  # product prior: every row reuses the same continuous and other-variable draws
        assert torch.equal(z[k, :, :7], z[0, :, :7])
    assert not torch.equal(z[0, 0, :4], z[0, 1, :4])
    images = conditional_samples(model, "disc.1", n=6, seed=4)
    torch.testing.assert_close(images[2], decode_latents(model, z[2]))
    with pytest.raises(ConfigError, match="discrete unit"):
        conditional_samples(model, "cont.0")


def test_prior_sample_given_a_category_draws_its_mixture_component():
    latent = JointLatent({"disc": GumbelSoftmax(sizes=[3]),
                          "z": MixtureGaussian(units=2, components=3, parent="disc", spread=10.0)})
    gen = torch.Generator().manual_seed(0)
    for k in range(3):
        given = torch.nn.functional.one_hot(torch.full((4000,), k), 3).float()
        draws = latent.prior_sample(4000, gen, given={"disc": given})
        assert torch.equal(draws["disc"], given)
        torch.testing.assert_close(draws["z"].mean(0), latent.channels["z"].mu[k].detach(), atol=0.1, rtol=0)
    with pytest.raises(ConfigError, match="shape"):
        latent.prior_sample(5, given={"disc": torch.zeros(4, 3)})
    with pytest.raises(ConfigError, match="no channel"):
        latent.prior_sample(5, given={"nope": torch.zeros(5, 3)})


def test_pair_traversal_rows_and_columns(model):
    grid = traverse_pair(model, "disc.0", "cont.2", n=7)
    assert grid.shape == (3, 7, 1, 32, 32)
    for k in range(3):
        base = traversal_latents(model.latent, "disc.0", 7)[k]
        torch.testing.assert_close(grid[k], decode_latents(model, traversal_latents(model.latent, "cont.2", 7, base)))
    with pytest.raises(ConfigError, match="two different units"):
        traverse_pair(model, "cont.1", "cont.1")


def test_frames_move_every_unit_at_once(model):
    frames = traversal_frames(model, ["cont.0", "disc.1"], n=10)
    assert frames.shape == (10, 2, 1, 32, 32)
    cont = decode_latents(model, traversal_latents(model.latent, "cont.0", 10))
    disc = decode_latents(model, traversal_latents(model.latent, "disc.1", 10))
    torch.testing.assert_close(frames[:, 0], cont)
    torch.testing.assert_close(frames[:, 1], disc[torch.arange(10) * 5 // 10])


def test_reconstructions_are_the_decoded_representatives(model):
    x = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)
    pair = reconstructions(model, x)
    assert pair.shape == (2, 4, 1, 32, 32)
    torch.testing.assert_close(pair[0], x.float() / 255)
    with torch.no_grad():
        params = model.encode(x.float() / 255)
        expected = model.decode(model.latent.concat(model.latent.sample(params, reparametrise=False)))
    torch.testing.assert_close(pair[1], expected)


# --- commands on a short training run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs") / "run"
    args = ["train", str(RECIPES / "jointvae_shapes.py"), "--steps", "30", "--out", str(out), "--quiet",
            "--set", 'dataset_options={"n": 256, "size": 32}', "--set", "train.batch_size=32",
            "--set", "train.log_every=5", "--set", "train.checkpoint_every=10", "--set", "train.figures_every=10"]
    assert cli.main(args) == 0
    return out


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()
        return im.size


def test_training_hook_writes_traversal_grids_and_tensorboard_images(run_dir):
    grids = sorted(p.name for p in (run_dir / "figures" / "training").glob("*.png"))
    assert grids == [f"traversals-step-{s:08d}.png" for s in (10, 20, 30)]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("traversals")] == [10, 20, 30]


def test_training_figures_do_not_change_training(tmp_path):
    finals = []
    for every in (0, 7):
        out = tmp_path / f"every{every}"
        args = ["train", str(RECIPES / "jointvae_shapes.py"), "--steps", "15", "--out", str(out), "--quiet",
                "--set", 'dataset_options={"n": 128, "size": 32}', "--set", "train.batch_size=16",
                "--set", "train.log_every=5", "--set", f"train.figures_every={every}"]
        assert cli.main(args) == 0
        finals.append((out / "metrics.jsonl").read_text())
        assert (out / "figures").exists() == bool(every)
    assert finals[0] == finals[1]


def test_traverse_command(run_dir, tmp_path, capsys):
    out = tmp_path / "t"
    assert cli.main(["traverse", str(run_dir), "--out", str(out), "--n", "6", "--scale", "1"]) == 0
    written = capsys.readouterr().out.split()
    assert Path(written[0]).name == "traversals.png" and all(Path(p).is_file() for p in written)
    w, h = _png_size(out / "traversals.png")
    assert h == 2 + 7 * 34  # 6 continuous units and one 3-way variable: a row each
    assert w > 2 + 6 * 34  # the grid plus a label margin
    pairs = sorted(p.name for p in out.glob("pair-*.png"))
    assert len(pairs) == 3 and all(p.startswith("pair-disc.0-cont.") for p in pairs)
    assert _png_size(out / pairs[0])[1] == 2 + 3 * 34  # a row per category
    with Image.open(out / "traversals.gif") as gif:
        assert gif.n_frames == 2 * 6 - 2  # forth and back

    assert cli.main(["traverse", str(run_dir), "--out", str(out / "one"), "--units", "cont.2", "--no-gif",
                     "--pair", "cont.2,cont.0", "--scale", "1", "--n", "5"]) == 0
    assert _png_size(out / "one" / "traversals.png")[1] == 2 + 34
    assert sorted(p.name for p in (out / "one").iterdir()) == ["pair-cont.2-cont.0.png", "traversals.png"]

    assert cli.main(["traverse", str(run_dir), "--units", "cont.9", "--out", str(out)]) == 2
    assert "cont.9" in capsys.readouterr().err


def test_traverse_help_says_the_units_are_held_at_their_neutral_value_not_0(capsys):
    """Why: for a bounded family 0 is an edge of the support, so "held at 0" would be wrong for it; the help says what
    the code does (each family's neutral value) and what that is for the original's channels."""
    with pytest.raises(SystemExit):
        cli.main(["traverse", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "neutral value (the prior's representative: 0 for a Gaussian unit, category 0 for a categorical one" in text
    assert "at 0 /" not in text and "units at 0" not in text


def test_sample_command(run_dir, capsys):
    assert cli.main(["sample", str(run_dir), "--n", "4", "--recon", "5", "--scale", "1"]) == 0
    figures = run_dir / "figures"
    assert _png_size(figures / "samples-prior.png") == (2 + 4 * 34, 2 + 4 * 34)
    w, h = _png_size(figures / "samples-given-disc.0.png")
    assert h == 2 + 3 * 34 and w > 2 + 4 * 34
    assert _png_size(figures / "reconstructions.png")[1] == 2 + 2 * 34


def test_plot_command_and_kl_source(run_dir, tmp_path, capsys):
    assert cli.main(["plot", str(run_dir), "--out", str(tmp_path)]) == 0
    # the shapes data set has a factor grid: each ordered factor against its best unit (Fig. 8a) is drawn too
    assert {p.name for p in tmp_path.iterdir()} == {"kl-curves.png", "kl-rise.png", "kl-ranking.png",
                                                    "factor-scatter.png"}
    # a bare checkpoint folder (no training history): the ranking is still drawn, from the data set, with a notice
    bare = tmp_path / "bare"
    shutil.copytree(run_dir / "final", bare)
    assert cli.main(["plot", str(bare)]) == 0
    captured = capsys.readouterr()
    assert "no metrics.jsonl" in captured.err and (bare / "figures" / "kl-ranking.png").is_file()
    assert not (bare / "figures" / "kl-curves.png").exists() and not (bare / "figures" / "kl-rise.png").exists()


def test_plot_without_any_kl_source_is_a_clear_error(tmp_path, capsys):
    from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
    from latentkit.specs import Component

    spec = ModelSpec((1, 32, 32), [ChannelSpec("cont", "gaussian", {"units": 2})], Component("jointvae_conv"))
    config = checkpoint_config(spec, Component("jointvae", {}), Component("mnist", {}))
    save_model_checkpoint(tmp_path / "ck", build_model(spec), config)
    assert cli.main(["plot", str(tmp_path / "ck"), "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "nothing to plot" in err and "metrics.jsonl" in err


def test_report_is_self_contained_and_references_existing_files(run_dir, capsys):
    (run_dir / "evaluation").mkdir(exist_ok=True)
    assert cli.main(["evaluate", str(run_dir), "--metric", "kl-ranking"]) == 0
    assert cli.main(["report", str(run_dir), "--n", "5"]) == 0
    page = (run_dir / "report.html").read_text()
    hrefs = re.findall(r"href='([^']+)'", page)
    assert {Path(h).name for h in hrefs} >= {"kl-curves.png", "kl-ranking.png", "traversals.png", "traversals.gif",
                                              "samples-prior.png", "samples-given-disc.0.png", "reconstructions.png"}
    for href in hrefs:
        assert (run_dir / href).is_file(), href
    assert page.count("src='data:image/") == len(hrefs)  # every figure embedded
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "kl-ranking-test" in page and "<td>shapes</td>" in page


def test_encode_and_edit_commands(run_dir, tmp_path, capsys):
    img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    assert cli.main(["encode", str(run_dir), str(tmp_path / "x.png"), "--out", str(tmp_path / "codes.npz")]) == 0
    assert "40x40 resized to 32x32" in capsys.readouterr().err
    codes = np.load(tmp_path / "codes.npz")
    assert codes["cont/mean"].shape == (1, 6) and codes["disc/argmax"].shape == (1, 1)

    out = tmp_path / "edited.png"
    assert cli.main(["edit", str(run_dir), str(tmp_path / "x.png"), "--latent", "cont.1=2.0",
                     "--latent", "disc.0=2", "--out", str(out)]) == 0
    assert _png_size(out) == (32, 32)
    with Image.open(out.with_name("edited-compare.png")) as strip:
        assert strip.size[0] >= 3 * 32 * 4
    assert cli.main(["edit", str(run_dir), str(tmp_path / "x.png"), "--latent", "disc.0=3", "--out", str(out)]) == 2
    assert "from 0 to 2" in capsys.readouterr().err
    assert cli.main(["edit", str(run_dir), str(tmp_path / "x.png"), "--strict", "--latent", "cont.0=1",
                     "--out", str(out)]) == 2
    assert "40x40" in capsys.readouterr().err


# --- --dataset and --dataset-option ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def npz_dsprites_checkpoint(tmp_path_factory):
    """An untrained 64x64 model whose config names the npz dSprites (as an imported checkpoint's does)."""
    from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
    from latentkit.specs import Component

    torch.manual_seed(0)
    spec = ModelSpec((1, 64, 64), [ChannelSpec("cont", "gaussian", {"units": 2}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": [3]})],
                     Component("jointvae_conv", {"hidden": 8}))
    folder = tmp_path_factory.mktemp("npz") / "ckpt"
    save_model_checkpoint(folder, build_model(spec), checkpoint_config(spec, dataset=Component("dsprites")))
    return folder


def test_figure_commands_take_dataset_options(npz_dsprites_checkpoint, tmp_path, capsys):
    """Why: with no npz, the recorded data set cannot be loaded and the figures that need images are skipped; the
    procedural source given on the command line draws them, with no edit of the checkpoint's config.json."""
    ckpt, empty = npz_dsprites_checkpoint, tmp_path / "no-data"
    empty.mkdir()
    base = ["sample", str(ckpt), "--n", "2", "--recon", "3", "--scale", "1", "--data-root", str(empty)]
    assert cli.main([*base, "--out", str(tmp_path / "without")]) == 0
    assert "could not be loaded" in capsys.readouterr().err
    assert not (tmp_path / "without" / "reconstructions.png").exists()
    assert cli.main([*base, "--out", str(tmp_path / "with"), "--dataset-option", "source=procedural",
                     "--dataset-option", "n=20"]) == 0
    assert "could not be loaded" not in capsys.readouterr().err
    assert _png_size(tmp_path / "with" / "reconstructions.png")[1] == 2 + 2 * 66  # originals and reconstructions
    assert cli.main(["plot", str(ckpt), "--out", str(tmp_path / "plot"), "--data-root", str(empty),
                     "--dataset", "dsprites_procedural", "--dataset-option", "n=20"]) == 0
    assert "could not be loaded" not in capsys.readouterr().err
    assert {p.name for p in (tmp_path / "plot").iterdir()} == {"kl-ranking.png", "factor-scatter.png"}  # KL, grid
    # the report says which data set its figures read, beside the one the model was trained on
    page = tmp_path / "report" / "report.html"
    assert cli.main(["report", str(ckpt), "--out", str(page), "--n", "2", "--data-root", str(empty),
                     "--dataset-option", "source=procedural", "--dataset-option", "n=20"]) == 0
    text = page.read_text()
    assert "data set (figures)" in text and "procedural" in text and "data set (training)" in text
    # a wrong option given is an error before any figure, naming the options the data set has
    assert cli.main(["traverse", str(ckpt), "--out", str(tmp_path / "t"), "--dataset-option", "sorce=procedural"]) == 2
    err = capsys.readouterr().err
    assert "'dsprites' has no option 'sorce'" in err and "source" in err and not (tmp_path / "t").exists()
