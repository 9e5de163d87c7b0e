"""benchmarks/category_contents.py: --styles reports the slant and ink drawn; --factors' picture shows the images and the
distributions its markdown reports, for a model whose discrete code is known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "category_contents.py"


@pytest.fixture(scope="module")
def contents():
    spec = importlib.util.spec_from_file_location("category_contents", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaning_bar(drift: float, width: int = 1) -> torch.Tensor:
    """A 28-row stroke whose column moves ``drift`` pixels per row down the image."""
    image = torch.zeros(1, 32, 32)
    for row in range(2, 30):
        col = round(16 + drift * (row - 16))
        image[0, row, col : col + width] = 1.0
    return image


@pytest.mark.parametrize("drift", [-0.5, -0.2, 0.0, 0.3])
def test_slant_is_the_column_drift_per_row_and_ink_the_pixel_sum(contents, drift):
    images = torch.stack([leaning_bar(drift), leaning_bar(drift, width=3)])
    slant, ink = contents.slant_and_ink(images)
    assert slant == pytest.approx([drift, drift], abs=0.03)
    assert ink.tolist() == [28.0, 84.0]


def test_style_splits_lists_only_labels_spread_over_categories(contents):
    labels = np.array([1] * 10 + [7] * 10)
    clusters = np.array([0] * 6 + [1] * 4 + [2] * 10)  # 1s split 60/40, 7s in one category
    slant = np.array([-0.4] * 6 + [0.0] * 4 + [0.1] * 10)
    ink = np.array([50.0] * 6 + [80.0] * 4 + [60.0] * 10)
    text = contents.style_splits(clusters, labels, slant, ink)
    assert "| 1 | 0 (60%): -0.40, 50; 1 (40%): +0.00, 80 |" in text
    assert "| 7 |" not in text


def test_category_rows_hold_only_their_category_and_read_by_majority_label(contents):
    labels = np.array([3] * 8 + [1] * 10 + [3] * 2)
    clusters = np.array([5] * 8 + [2] * 10 + [5] * 2)  # category 5: 3s only; category 2: 1s only
    clusters[0] = 2  # one 3 in the 1s' category
    rows = contents.category_rows(clusters, labels, per_row=4, seed=0)
    assert [(r["category"], r["label"]) for r in rows] == [(2, 1), (5, 3)]  # ordered by label
    assert rows[0]["share"] == pytest.approx(10 / 11) and rows[1]["share"] == 1.0
    for row in rows:
        assert len(row["indices"]) == 4 and len(set(row["indices"])) == 4
        assert (clusters[row["indices"]] == row["category"]).all()


def test_category_grid_draws_a_png(contents, tmp_path):
    images = torch.rand(20, 1, 28, 28)
    clusters = np.arange(20) % 3
    rows = contents.category_rows(clusters, np.arange(20) % 3, per_row=5)
    path = tmp_path / "grid.png"
    contents.draw_category_grid(images, rows, "title", path)
    from PIL import Image

    with Image.open(path) as png:
        assert png.size[0] > 100 and png.size[1] > 50
    assert not list(tmp_path.glob("*.tmp.png"))


# --- --factors: the markdown and its picture ------------------------------------------------------------------------
THIRDS = 3  # the known code: the third of the image's columns that holds the most ink


def known_code(images: torch.Tensor) -> np.ndarray:
    """The category the model below gives each image: the third of the columns (0-21, 22-42, 43-63) with most ink."""
    ink = images.float().flatten(1, 2).sum(1)  # (N, W) ink per column
    thirds = torch.stack([part.sum(1) for part in torch.tensor_split(ink, [22, 43], dim=1)], 1)
    return thirds.argmax(1).numpy()


def save_known_code_checkpoint(folder: Path, dataset: str, sizes=(THIRDS,)) -> Path:
    """A 64x64 mlp model whose discrete variable's logits are the ink of the column thirds (so its category is
    :func:`known_code`), the continuous unit constant; its config names ``dataset``."""
    from latentkit.assembly.build import build_model
    from latentkit.assembly.checkpoint import checkpoint_config, save_model_checkpoint
    from latentkit.specs import ChannelSpec, Component, ModelSpec

    spec = ModelSpec((1, 64, 64), [ChannelSpec("cont", "gaussian", {"units": 1}),
                                   ChannelSpec("disc", "gumbel_softmax", {"sizes": list(sizes)})],
                     Component("mlp", {"hidden": THIRDS, "layers": 1}))
    model = build_model(spec)
    first, head = model.encoder[1][0], model.encoder[2]
    with torch.no_grad():
        columns = torch.arange(64).repeat(64)  # flattened (row, column) order: column index of each input
        first.weight.copy_(torch.stack([((columns >= lo) & (columns < hi)).float() * 0.05
                                        for lo, hi in ((0, 22), (22, 43), (43, 64))]))
        first.bias.zero_()
        head.weight.zero_()
        head.bias.zero_()
        for k in range(sum(sizes)):  # features: cont mean, cont logvar, then the logits
            head.weight[2 + k, k % THIRDS] = 1.0
    save_model_checkpoint(folder, model, checkpoint_config(spec, dataset=Component(dataset)))
    return folder


@pytest.fixture(scope="module")
def known_run(tmp_path_factory):
    return save_known_code_checkpoint(tmp_path_factory.mktemp("factors") / "ckpt", "dsprites_procedural")


def expected_points(points: int):
    """The grid points the metric draws (seed 0), their images' known categories and factor values."""
    from latentkit_plugins.procedural_dsprites import ProceduralDSprites

    grid = ProceduralDSprites()
    factors = grid.sample_factors(points, torch.Generator().manual_seed(0))
    return grid, factors, known_code(grid.images(factors)), grid.factor_values(factors).numpy()


def markdown_tables(text: str) -> dict[str, list[list[float]]]:
    """Per factor of the markdown: its rows as [category, share (%), distribution...]."""
    tables, name = {}, None
    for line in text.splitlines():
        if line.startswith("**"):
            name = line[2 : line.index("**", 2)]
            tables[name] = []
        elif name and line.startswith("| ") and not line.startswith("| category") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[name].append([float(cells[0]), float(cells[1].rstrip("%"))] + [float(c) for c in cells[2:]])
    return tables


def test_factors_writes_a_picture_of_one_row_per_category_and_the_markdown_its_numbers(contents, known_run, capsys):
    assert contents.main([str(known_run), "--factors", "--points", "300"]) == 0
    out = known_run / "evaluation"
    text = (out / "category-factors.md").read_text()
    assert text == capsys.readouterr().out.removesuffix("\n")
    assert text.rstrip().endswith(f"Images and factor distributions per category: {out / 'category-factors.png'}")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    grid, _, category, values = expected_points(300)
    cats = np.unique(category)
    assert len(cats) == 3  # the known code uses every category on 300 images
    tables = contents.factor_tables(category, values, grid.factor_names)
    assert tables["shares"].sum() == pytest.approx(1.0)
    assert [t["name"] for t in tables["factors"]] == ["shape", "scale", "orientation", "posX", "posY"]
    written = markdown_tables(text)
    for factor in tables["factors"]:
        assert factor["table"].sum(1) == pytest.approx(np.ones(len(cats)))
        assert f"**{factor['name']}**: NMI {factor['nmi']:.3f}" in text
        rows = np.array(written[factor["name"]])  # category, share in %, distribution to 2 decimals
        assert rows[:, 0].tolist() == cats.tolist()
        np.testing.assert_allclose(rows[:, 1], 100 * tables["shares"], atol=0.051)
        np.testing.assert_allclose(rows[:, 2:], factor["table"], atol=0.0051)
    # the code follows posX: categories ordered left to right, posX's NMI the largest by far
    nmi = {f["name"]: f["nmi"] for f in tables["factors"]}
    assert nmi["posX"] > 0.5 and max(v for k, v in nmi.items() if k != "posX") < 0.1
    posx = tables["factors"][3]["table"]
    assert posx[0, 0] > 0.7 and posx[2, 3] > 0.7 and posx[0, 3] == posx[2, 0] == 0

    from PIL import Image

    with Image.open(out / "category-factors.png") as png:
        size = png.size
    width, height = contents.factor_figure_inches(3, 5)
    assert size == (round(width * contents.FACTOR_DPI), round(height * contents.FACTOR_DPI))
    assert contents.factor_figure_inches(6, 5)[1] - height == pytest.approx(3 * contents.FACTOR_ROW_INCHES)


def test_factor_picture_shows_images_of_their_category_and_bars_of_the_tables(contents, known_run):
    from latentkit.assembly.checkpoint import load_model

    model, _ = load_model(known_run)
    grid, factors, category, values = expected_points(300)
    got_category, got_values, got_factors = contents.factor_points("run", grid, model, 300)
    assert (got_category == category).all() and (got_factors == factors).all() and (got_values == values).all()
    samples = contents.category_samples(category, factors, grid, per_row=10)
    assert len(samples) == 3
    for c, images in enumerate(samples):
        assert images.shape == (10, 1, 64, 64) and images.dtype == torch.float32
        assert (known_code(images) == c).all()  # each row's images are ones the code puts in its category
    tables = contents.factor_tables(category, values, grid.factor_names)
    fig = contents.factor_figure(tables, samples, "a title")
    axes = np.array(fig.axes).reshape(3, 6)
    assert fig._suptitle.get_text() == "a title"
    for r in range(3):
        assert axes[r, 0].get_ylabel() == f"{r}: {tables['shares'][r]:.1%}"
        for k, factor in enumerate(tables["factors"]):
            heights = [bar.get_height() for bar in axes[r, 1 + k].patches]
            assert heights == pytest.approx(factor["table"][r].tolist())
            if r == 0:
                assert f"NMI {factor['nmi']:.3f}" in axes[0, 1 + k].get_title()


def test_factors_without_a_factor_grid_or_with_two_variables_is_a_clear_error(contents, tmp_path):
    run = save_known_code_checkpoint(tmp_path / "mnist", "mnist")
    with pytest.raises(SystemExit, match="has no factor grid; drop --factors"):
        contents.main([str(run), "--factors", "--points", "300"])
    assert not (run / "evaluation" / "category-factors.png").exists()
    run = save_known_code_checkpoint(tmp_path / "two", "dsprites_procedural", sizes=(3, 3))
    with pytest.raises(SystemExit, match="has 2 discrete variables"):
        contents.main([str(run), "--factors", "--points", "300"])
    assert not (run / "evaluation" / "category-factors.png").exists()
