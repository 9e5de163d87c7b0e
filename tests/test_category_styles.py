"""benchmarks/category_contents.py --styles: the slant and ink it reports are the ones drawn."""

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
