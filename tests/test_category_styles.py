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
