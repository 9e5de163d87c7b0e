"""The procedural dSprites: the real grid and index order, the measured geometry, the GIF's frames, the npz's images.

The regression fixture is ``../shared/data/dsprites/dsprites.gif`` (320 unlabelled frames of the real data set): each
frame's factors are found by search and the frame is scored by the intersection-over-union of its on-pixels with the
generated image. Without ``../shared/data`` those tests are skipped; the rest need no data.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from latentkit import cli
from latentkit.assembly.datasets import build_provider, load_dataset
from latentkit.errors import ConfigError, DataError
from latentkit_plugins import procedural_dsprites as pd
from latentkit_plugins.dsprites_npz import FILE_NAME

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GIF = SHARED / "data" / "dsprites" / "dsprites.gif"
needs_gif = pytest.mark.skipif(not GIF.is_file(), reason=f"the dSprites GIF is absent ({GIF}): needs ../shared/data")

#: Where the real npz may be: the shared data folder or $LATENTKIT_DATA.
NPZ_ROOTS = [SHARED / "data"] + ([Path(os.environ["LATENTKIT_DATA"])] if os.environ.get("LATENTKIT_DATA") else [])
NPZ_ROOT = next((r for r in NPZ_ROOTS if (r / "dsprites" / FILE_NAME).is_file()), None)
needs_npz = pytest.mark.skipif(
    NPZ_ROOT is None, reason=f"the real dSprites npz ({FILE_NAME}) is in none of {[str(r) for r in NPZ_ROOTS]}"
)

GT = pd.ProceduralDSprites()
SQUARE, ELLIPSE, HEART = 0, 1, 2


def draw(shape: int, scale: int, orientation: int, pos_x: int, pos_y: int) -> torch.Tensor:
    """One image (64, 64) as bool, from class indices."""
    return GT.images(torch.tensor([[shape, scale, orientation, pos_x, pos_y]]))[0, 0] > 0


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection-over-union of the on-pixels of bool images ``(..., H, W)``."""
    return (a & b).sum((-1, -2)).double() / (a | b).sum((-1, -2)).clamp_min(1).double()


# --- the grid ------------------------------------------------------------------------------------------------------


def test_the_grid_is_the_real_one():
    assert GT.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert GT.factor_sizes == (3, 6, 40, 32, 32) and len(GT) == 737_280 == pd.NUM_IMAGES
    assert GT.discrete_factors == (True, False, False, False, False)
    assert GT.image_shape == (1, 64, 64)
    everything = torch.tensor(list(itertools.product(range(3), range(6), range(40), range(32), range(32))))[::997]
    index = torch.arange(0, 737_280, 997)
    assert torch.equal(GT.index_to_factors(index), everything)  # row-major, posY fastest, as the npz
    bases = torch.tensor([245_760, 40_960, 1_024, 32, 1])  # the npz README's bases without colour's (size 1)
    assert torch.equal(GT.factors_to_index(everything), (everything * bases).sum(1))
    values = GT.factor_values(torch.tensor([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 2, 13, 7, 20]]))
    expected = [[1, 0.5, 0, 0, 0], [3, 1, 2 * math.pi, 1, 1], [2, 0.7, 2 * math.pi * 13 / 39, 7 / 31, 20 / 31]]
    torch.testing.assert_close(values, torch.tensor(expected, dtype=torch.float64))


def test_images_are_binary_uint8():
    factors = GT.sample_factors(300, torch.Generator().manual_seed(0))
    images = GT.images(factors)
    assert images.shape == (300, 1, 64, 64) and images.dtype == torch.uint8
    assert set(images.unique().tolist()) == {0, 255}
    assert (images > 0).sum((1, 2, 3)).min() >= 50  # every shape is visible
    assert GT.images(torch.zeros(0, 5, dtype=torch.int64)).shape == (0, 1, 64, 64)


@pytest.mark.slow
def test_the_whole_grid_at_once_equals_images_drawn_by_index():
    everything = GT.all_images()
    assert everything.shape == (737_280, 1, 64, 64) and everything.dtype == torch.uint8
    index = torch.randint(0, 737_280, (4_000,), generator=torch.Generator().manual_seed(1))
    index = torch.cat([index, torch.arange(0, 737_280, 40_960), torch.tensor([737_279])])
    assert torch.equal(everything[index], GT.images(GT.index_to_factors(index)))


# --- the geometry of ../shared/notes/dsprites-geometry.md ------------------------------------------------------------


@pytest.mark.parametrize("scale", range(6))
@pytest.mark.parametrize("pos", [(0, 0), (31, 31), (5, 17), (20, 3)])
def test_square_side_and_centre(scale, pos):
    """Side 19.2 * scale px, axis-aligned at orientation 0, centred at 16 + 32 * pos; on iff a pixel's centre is in."""
    half = 9.6 * pd.SCALE_VALUES[scale].item()
    cx, cy = (16 + 32 * p / 31 for p in pos)
    centres = torch.arange(64, dtype=torch.float64) + 0.5
    cols = (centres - cx).abs() <= half
    rows = (centres - cy).abs() <= half
    assert torch.equal(draw(SQUARE, scale, 0, *pos), rows[:, None] & cols[None, :])


@pytest.mark.parametrize("orientation", [0, 3, 10, 25])
def test_ellipse_axes_centre_and_counter_clockwise_turn(orientation):
    """Semi-axes 12.76 and 7.22 px (scale 1), the long one horizontal at 0, turning counter-clockwise as displayed."""
    pos = (9, 22)
    cx, cy = (16 + 32 * p / 31 for p in pos)
    j, i = torch.meshgrid(torch.arange(64, dtype=torch.float64), torch.arange(64, dtype=torch.float64), indexing="ij")
    dx, dy = i + 0.5 - cx, j + 0.5 - cy

    def ellipse(theta):  # counter-clockwise on screen (rows grow downwards) for theta > 0
        along = dx * math.cos(theta) - dy * math.sin(theta)
        across = -dx * math.sin(theta) - dy * math.cos(theta)
        return (along / 12.76) ** 2 + (across / 7.22) ** 2 <= 1

    theta = 2 * math.pi * orientation / 39
    image = draw(ELLIPSE, 5, orientation, *pos)
    assert (image ^ ellipse(theta)).sum() <= 2  # equal up to rounding on the boundary
    if orientation in (3, 25):  # clearly away from the axes, the clockwise turn is another image
        assert (image ^ ellipse(-theta)).sum() > 40


def test_orientation_zero_and_two_pi_draw_identical_images():
    factors = GT.sample_factors(2_000, torch.Generator().manual_seed(2))
    factors[:, 2] = 0
    last = factors.clone()
    last[:, 2] = 39
    assert torch.equal(GT.images(factors), GT.images(last))
    turned = factors.clone()
    turned[:, 2] = 1
    hearts = factors[:, 0] == HEART
    assert (GT.images(factors[hearts]) != GT.images(turned[hearts])).flatten(1).any(1).all()


def test_heart_point_down_size_and_notch():
    heart = draw(HEART, 5, 0, 0, 0)
    rows = heart.any(1).nonzero()[:, 0]
    cols = heart.any(0).nonzero()[:, 0]
    assert int(heart.sum()) == 222  # the notes: about 222 on-pixels at scale 1
    assert (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1) == (20, 17)  # about 20 wide by 17 tall
    assert heart[rows.max()].sum() <= 2 < heart[rows.min()].sum()  # the point is at the bottom
    top = heart[rows.min()].nonzero()[:, 0]
    assert (top.diff() > 1).any()  # two lobes with the notch between them
    assert torch.equal(heart[:, :32], heart[:, :32].flip(1))  # symmetric about x = 16, its centre at posX = 0
    # A small heart is the large one scaled about the same centre: its pixels lie inside the large one.
    assert not (draw(HEART, 0, 0, 0, 0) & ~heart).any()


def test_positions_move_along_columns_and_rows():
    """posX moves the shape to the right, posY down (posY = 0 at the top row: assumed until checked on the npz)."""
    base = draw(SQUARE, 2, 0, 0, 0)
    right = draw(SQUARE, 2, 0, 31, 0)
    down = draw(SQUARE, 2, 0, 0, 31)
    assert torch.equal(base.roll(32, 1), right) and torch.equal(base.roll(32, 0), down)
    assert base.nonzero()[:, 0].float().mean() < 20


# --- the GIF's 320 frames ------------------------------------------------------------------------------------------


def load_gif_frames() -> torch.Tensor:
    with Image.open(GIF) as image:
        frames = [np.asarray(frame.convert("L")) > 127 for frame in ImageSequence.Iterator(image)]
    return torch.from_numpy(np.stack(frames))


def fit_frames(frames: torch.Tensor, top: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """For each bool frame ``(M, 64, 64)`` the grid point whose image overlaps it best, and that IoU.

    Search: every (shape, scale, orientation) whose area at the centre is within 12% (+6 px) of the frame's, placed
    where its centroid meets the frame's; then the best ``top`` of those at that position and its eight neighbours.
    """
    cand = torch.tensor(list(itertools.product(range(3), range(6), range(40))))
    templates = GT.images(torch.cat([cand, torch.zeros(len(cand), 2, dtype=torch.int64)], 1))[:, 0] > 0
    centres = torch.arange(64, dtype=torch.float64) + 0.5

    def moments(masks):
        m = masks.double()
        area = m.sum((1, 2))
        return area, (m.sum(1) * centres).sum(1) / area, (m.sum(2) * centres).sum(1) / area

    area, tx, ty = moments(templates)
    off_x, off_y = tx - 16, ty - 16  # centroid minus centre, at position (0, 0)
    f_area, f_x, f_y = moments(frames)
    rows, factors = [], []
    for m in range(len(frames)):
        keep = ((area - f_area[m]).abs() <= 0.12 * f_area[m] + 6).nonzero()[:, 0]
        px = ((f_x[m] - off_x[keep] - 16) * 31 / 32).round().long().clamp(0, 31)
        py = ((f_y[m] - off_y[keep] - 16) * 31 / 32).round().long().clamp(0, 31)
        factors.append(torch.cat([cand[keep], px[:, None], py[:, None]], 1))
        rows.append(torch.full((len(keep),), m))
    factors, rows = torch.cat(factors), torch.cat(rows)
    score = iou(GT.images(factors)[:, 0] > 0, frames[rows])
    near, near_rows = [], []
    for m in range(len(frames)):
        mine = (rows == m).nonzero()[:, 0]
        best = factors[mine[score[mine].topk(min(top, len(mine))).indices]]
        for dx, dy in itertools.product((-1, 0, 1), repeat=2):
            moved = best.clone()
            moved[:, 3] = (moved[:, 3] + dx).clamp(0, 31)
            moved[:, 4] = (moved[:, 4] + dy).clamp(0, 31)
            near.append(moved)
            near_rows.append(torch.full((len(best),), m))
    near, near_rows = torch.cat(near), torch.cat(near_rows)
    score = iou(GT.images(near)[:, 0] > 0, frames[near_rows])
    fitted = torch.zeros(len(frames), 5, dtype=torch.int64)
    best_iou = torch.zeros(len(frames), dtype=torch.float64)
    for m in range(len(frames)):
        mine = (near_rows == m).nonzero()[:, 0]
        k = mine[score[mine].argmax()]
        fitted[m], best_iou[m] = near[k], score[k]
    return fitted, best_iou


@pytest.fixture(scope="module")
def gif_fit():
    frames = load_gif_frames()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # many small renders: one thread is fastest on a busy 2-core machine
    try:
        fitted, scores = fit_frames(frames)
    finally:
        torch.set_num_threads(previous)
    return frames, fitted, scores


@needs_gif
def test_gif_frames_are_binary_64x64():
    frames = load_gif_frames()
    assert frames.shape == (320, 64, 64)
    with Image.open(GIF) as image:
        values = set(np.unique(np.asarray(image.convert("L"))).tolist())
    assert values <= {0, 255}


@needs_gif
def test_gif_frames_match_the_generator(gif_fit):
    frames, fitted, scores = gif_fit
    # The GIF shows 192 hearts, then 64 ellipses, then 64 squares.
    assert torch.equal(fitted[:, 0], torch.tensor([HEART] * 192 + [ELLIPSE] * 64 + [SQUARE] * 64))
    summary = {
        name: (round(scores[fitted[:, 0] == k].mean().item(), 4), round(scores[fitted[:, 0] == k].min().item(), 4))
        for k, name in enumerate(pd.SHAPES)
    }
    print(f"GIF mean/min IoU per shape: {summary}")
    assert summary["square"][0] >= 0.995, summary
    assert summary["ellipse"][0] >= 0.995, summary
    assert summary["heart"][0] >= 0.97, summary
    assert scores.min() >= 0.95, summary


@needs_gif
def test_gif_sweeps_are_consistent_fits(gif_fit):
    """The frames are sweeps (scale, then orientation, then position): the fitted factors must sweep too."""
    _, fitted, _ = gif_fit
    hearts = fitted[:192]
    assert hearts[:6, 1].tolist() == [0, 1, 2, 3, 4, 5]  # growing at the top-left corner
    assert (hearts[:6, 3:] == 0).all()
    turn = hearts[18:58, 2] % 39
    assert turn.tolist() == [0] + list(range(1, 39)) + [0]  # one counter-clockwise turn in 40 steps
    assert hearts[58:90, 4].tolist() == list(range(32)) and (hearts[58:90, 3] == 0).all()  # down the left edge


# --- the real npz, where a user has it -----------------------------------------------------------------------------


@needs_npz
def test_the_real_npz_loads_through_the_same_protocol_and_agrees():
    provider = build_provider({"name": "dsprites", "options": {"source": "npz"}})
    real = provider.ground_truth(NPZ_ROOT)
    assert (real.factor_names, real.factor_sizes, real.discrete_factors) == (
        GT.factor_names,
        GT.factor_sizes,
        GT.discrete_factors,
    )
    gen = torch.Generator().manual_seed(3)
    factors = real.sample_factors(60, gen)
    factors[:, 0] = torch.arange(60) % 3
    chosen = torch.tensor([[2, 5, 0, 0, 0], [0, 5, 5, 3, 28], [2, 5, 9, 30, 2], [1, 3, 30, 12, 25]])
    factors = torch.cat([factors, chosen])
    stored = real.images(factors)[:, 0] > 0
    ours = GT.images(factors)[:, 0] > 0
    score = iou(ours, stored)

    def alternative(flip_y: bool, flip_turn: bool) -> float:
        f = factors.clone()
        if flip_y:
            f[:, 4] = 31 - f[:, 4]
        if flip_turn:
            f[:, 2] = (39 - f[:, 2]) % 39
        return round(iou(GT.images(f)[:, 0] > 0, stored).mean().item(), 4)

    hints = {f"posY flipped={a}, rotation flipped={b}": alternative(a, b) for a in (False, True) for b in (False, True)}
    for k, name in enumerate(pd.SHAPES):
        mean = score[factors[:, 0] == k].mean().item()
        assert mean >= (0.97 if name == "heart" else 0.99), f"{name}: mean IoU {mean:.4f}; conventions tried: {hints}"
    np.testing.assert_array_equal(real.factor_values(factors[:3]).numpy(), GT.factor_values(factors[:3]).numpy())


# --- the data-set plugins -----------------------------------------------------------------------------------------


def test_procedural_provider_loads_a_subset_with_factors_and_labels():
    data = load_dataset({"name": "dsprites_procedural", "options": {"n": 500, "label_factor": "shape"}}, None, "train")
    assert data.images.shape == (500, 1, 64, 64) and data.images.dtype == torch.uint8
    assert data.factor_names == pd.FACTOR_NAMES and data.factors.dtype == torch.int64
    assert torch.equal(data.labels, data.factors[:, 0])
    index = GT.factors_to_index(data.factors)
    assert (index.diff() > 0).all()  # distinct, in index order
    assert torch.equal(data.images, GT.images(data.factors))
    again = load_dataset({"name": "dsprites_procedural", "options": {"n": 500}}, None, "train")
    assert torch.equal(again.factors, data.factors) and again.labels is None
    other = load_dataset({"name": "dsprites_procedural", "options": {"n": 500, "seed": 1}}, None, "train")
    assert not torch.equal(other.factors, data.factors)
    assert isinstance(build_provider("dsprites_procedural").ground_truth(None), pd.ProceduralDSprites)


@pytest.mark.parametrize(
    "dataset",
    [
        {"name": "dsprites_procedural", "options": {"n": 0}},
        {"name": "dsprites_procedural", "options": {"n": 2.5}},
        {"name": "dsprites_procedural", "options": {"seed": "0"}},
        {"name": "dsprites_procedural", "options": {"label_factor": "colour"}},
        {"name": "dsprites", "options": {"source": "real"}},
        {"name": "dsprites", "options": {"n": -3}},
    ],
)
def test_bad_options(dataset):
    with pytest.raises(ConfigError):
        build_provider(dataset)


def test_dsprites_from_the_generator_has_the_npz_layout(tmp_path, capsys):
    data = load_dataset({"name": "dsprites", "options": {"source": "procedural", "n": 64}}, tmp_path, "train")
    assert data.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert (data.factors[:, 0] == 0).all()
    assert torch.equal(data.images, GT.images(data.factors[:, 1:]))
    assert capsys.readouterr().err == ""  # an explicit source says nothing
    auto = load_dataset({"name": "dsprites", "options": {"source": "auto", "n": 64}}, tmp_path, "train")
    err = capsys.readouterr().err
    assert "not found" in err and "procedural" in err and FILE_NAME in err
    assert torch.equal(auto.images, data.images) and torch.equal(auto.factors, data.factors)
    provider = build_provider({"name": "dsprites", "options": {"source": "auto"}})
    assert isinstance(provider.ground_truth(tmp_path), pd.ProceduralDSprites)


def test_dsprites_auto_prefers_the_npz_and_says_so(tmp_path, capsys):
    folder = tmp_path / "dsprites"
    folder.mkdir()
    rng = np.random.default_rng(0)
    classes = np.stack([np.zeros(12, np.int64)] + [rng.integers(0, k, 12) for k in (3, 6, 40, 32, 32)], 1)
    np.savez(folder / FILE_NAME, imgs=rng.integers(0, 2, (12, 64, 64), dtype=np.uint8), latents_classes=classes)
    data = load_dataset({"name": "dsprites", "options": {"source": "auto", "n": 5}}, tmp_path, "train")
    err = capsys.readouterr().err
    assert "using the real data set" in err and str(folder.resolve()) in err
    assert data.images.shape == (5, 1, 64, 64)
    full = load_dataset("dsprites", tmp_path, "train")
    index = pd.subset_indices(5, 0, total=12)
    assert torch.equal(data.images, full.images[index]) and torch.equal(data.factors, full.factors[index])
    with pytest.raises(DataError, match="not the full dSprites grid"):  # 12 rows are not the 737,280-image grid
        build_provider({"name": "dsprites", "options": {"source": "auto"}}).ground_truth(tmp_path)


def test_missing_npz_suggests_the_generator(tmp_path):
    with pytest.raises(DataError, match="procedural"):
        load_dataset("dsprites", tmp_path, "train")


@pytest.mark.slow
def test_dsprites_recipe_trains_on_the_generator_without_the_npz(tmp_path, capsys):
    options = '{"source": "auto", "label_factor": "shape", "n": 256}'
    args = ["train", str(ROOT / "recipes" / "jointvae_dsprites.py"), "--set", f"dataset_options={options}",
            "--set", "train.batch_size=16", "--steps", "2", "--quiet", "--data-root", str(tmp_path / "data"),
            "--out", str(tmp_path / "run")]
    assert cli.main(args) == 0
    assert "using the procedural generator" in capsys.readouterr().err
    assert (tmp_path / "run" / "final").is_dir()
