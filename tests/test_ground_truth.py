"""The ground-truth data protocol: index <-> factors, fixed-factor batches, bad input; every data set that has one."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentkit.assembly.datasets import build_provider, load_dataset
from latentkit.data.ground_truth import ArrayGroundTruth, GroundTruthData
from latentkit.errors import ConfigError, DataError
from latentkit_plugins.procedural_dsprites import ProceduralDSprites
from latentkit_plugins.procedural_shapes import ShapesGroundTruth


class Toy(GroundTruthData):
    """A 2 x 3 x 4 grid whose image is its own index (a 1x1 uint8 picture)."""

    factor_names = ("a", "b", "c")
    factor_sizes = (2, 3, 4)
    discrete_factors = (True, False, False)

    @property
    def image_shape(self):
        return (1, 1, 1)

    def images(self, factors):
        return self.factors_to_index(factors).to(torch.uint8).view(-1, 1, 1, 1)

    def factor_values(self, factors):
        self.check_factors(factors)
        return factors.double() / 10


TOY = Toy()
DSPRITES = ProceduralDSprites()
SHAPES = ShapesGroundTruth(32)
GRIDS = {"toy": TOY, "dsprites": DSPRITES, "shapes": SHAPES}


# --- index <-> factors ---------------------------------------------------------------------------------------------


def test_row_major_order_last_factor_fastest():
    assert len(TOY) == 24 and TOY.num_factors == 3
    expected = torch.tensor(list(itertools.product(range(2), range(3), range(4))))
    assert torch.equal(TOY.index_to_factors(torch.arange(24)), expected)
    assert torch.equal(TOY.factors_to_index(expected), torch.arange(24))
    assert torch.equal(TOY.images(expected).view(-1), torch.arange(24, dtype=torch.uint8))


@pytest.mark.parametrize("name", sorted(GRIDS))
@given(data=st.data())
def test_index_factor_round_trip(name, data):
    gt = GRIDS[name]
    index = torch.tensor(data.draw(st.lists(st.integers(0, len(gt) - 1), min_size=0, max_size=50)), dtype=torch.int64)
    factors = gt.index_to_factors(index)
    assert factors.shape == (len(index), gt.num_factors) and factors.dtype == torch.int64
    assert ((factors >= 0) & (factors < torch.tensor(gt.factor_sizes))).all()
    assert torch.equal(gt.factors_to_index(factors), index)


def test_ends_of_the_grid():
    for gt in GRIDS.values():
        last = torch.tensor([len(gt) - 1])
        assert gt.index_to_factors(last).tolist() == [[s - 1 for s in gt.factor_sizes]]
        assert gt.index_to_factors(torch.tensor([0])).tolist() == [[0] * gt.num_factors]
        assert gt.factors_to_index(torch.tensor([[s - 1 for s in gt.factor_sizes]])).item() == len(gt) - 1


def test_whole_number_floats_are_accepted():
    assert TOY.factors_to_index(torch.tensor([[1.0, 2.0, 3.0]])).item() == 23
    assert TOY.index_to_factors(torch.tensor([23.0])).tolist() == [[1, 2, 3]]


# --- sampling ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_sample_with_fixed_factor(name):
    gt = GRIDS[name]
    for k in range(gt.num_factors):
        factors, images = gt.sample_with_fixed_factor(k, 64, torch.Generator().manual_seed(k))
        assert factors.shape == (64, gt.num_factors)
        assert (factors[:, k] == factors[0, k]).all()  # one shared value ...
        for other in range(gt.num_factors):  # ... and the others vary
            if other != k and gt.factor_sizes[other] > 1:
                assert len(factors[:, other].unique()) > 1
        assert images.shape == (64, *gt.image_shape) and images.dtype == torch.uint8
        assert torch.equal(images, gt.images(factors))


def test_sample_with_fixed_factor_by_name_value_and_seed():
    a, _ = DSPRITES.sample_with_fixed_factor("scale", 16, torch.Generator().manual_seed(5), value=4)
    b, _ = DSPRITES.sample_with_fixed_factor(1, 16, torch.Generator().manual_seed(5), value=4)
    assert torch.equal(a, b) and (a[:, 1] == 4).all()
    c, _ = DSPRITES.sample_with_fixed_factor(1, 16, torch.Generator().manual_seed(6), value=4)
    assert not torch.equal(a, c)
    values = {int(TOY.sample_with_fixed_factor("c", 4, torch.Generator().manual_seed(s))[0][0, 2]) for s in range(40)}
    assert values == {0, 1, 2, 3}  # the shared value itself is drawn uniformly


def test_sample_factors_is_uniform_and_seeded():
    f = TOY.sample_factors(6_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(TOY.factors_to_index(f), minlength=24).double()
    assert counts.min() > 150 and counts.max() < 350
    assert torch.equal(f, TOY.sample_factors(6_000, torch.Generator().manual_seed(0)))
    assert TOY.sample_factors(0).shape == (0, 3)


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factors",
    [
        torch.tensor([0, 1, 2]),  # 1-D
        torch.tensor([[0, 1]]),  # too few factors
        torch.tensor([[0, 1, 2, 0]]),  # too many
        torch.tensor([[2, 0, 0]]),  # out of range
        torch.tensor([[0, -1, 0]]),  # negative
        torch.tensor([[0, 0, 0.5]]),  # not a class index
        torch.tensor([[True, False, True]]),  # not numbers
        [[0, 1, 2]],  # not a tensor
    ],
)
def test_bad_factors_are_config_errors(factors):
    for call in (TOY.factors_to_index, TOY.images, TOY.factor_values):
        with pytest.raises(ConfigError):
            call(factors)


@pytest.mark.parametrize(
    "factors",
    [[[3, 0, 0, 0, 0]], [[0, 6, 0, 0, 0]], [[0, 0, 40, 0, 0]], [[0, 0, 0, 32, 0]], [[0, 0, 0, 0, -1]], [[0, 0, 0, 0]]],
)
@pytest.mark.parametrize("name", ["dsprites", "shapes"])
def test_bad_factors_of_the_data_sets(name, factors):
    gt = GRIDS[name]
    factors = torch.tensor(factors)  # out of range for both grids
    for call in (gt.images, gt.factor_values, gt.factors_to_index):
        with pytest.raises(ConfigError):
            call(factors)


@pytest.mark.parametrize("index", [torch.tensor([24]), torch.tensor([-1]), torch.tensor([[0, 1]]), torch.tensor([1.5])])
def test_bad_indices_are_config_errors(index):
    with pytest.raises(ConfigError):
        TOY.index_to_factors(index)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 3, "n": 4},
        {"factor": -1, "n": 4},
        {"factor": "d", "n": 4},
        {"factor": True, "n": 4},
        {"factor": 1.0, "n": 4},
        {"factor": 0, "n": -1},
        {"factor": 0, "n": 2.5},
        {"factor": 0, "n": 4, "value": 2},
        {"factor": 2, "n": 4, "value": -1},
    ],
)
def test_bad_fixed_factor_requests_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        TOY.sample_with_fixed_factor(**kwargs)


# --- a stored grid -------------------------------------------------------------------------------------------------


def _stored(order: torch.Tensor) -> ArrayGroundTruth:
    factors = TOY.index_to_factors(order)
    images = TOY.images(factors)
    return ArrayGroundTruth(images, factors, TOY.factor_names, TOY.factor_sizes, TOY.discrete_factors)


def test_array_ground_truth_in_any_row_order():
    everything = TOY.index_to_factors(torch.arange(24))
    for order in (torch.arange(24), torch.randperm(24, generator=torch.Generator().manual_seed(0))):
        stored = _stored(order)
        assert stored.image_shape == (1, 1, 1) and len(stored) == 24
        assert torch.equal(stored.images(everything), TOY.images(everything))
        assert torch.equal(stored.factor_values(everything), everything.double())
    with_values = ArrayGroundTruth(
        TOY.images(everything), everything, TOY.factor_names, TOY.factor_sizes, TOY.discrete_factors,
        values=[torch.tensor([5.0, 6.0]), torch.arange(3) / 2, torch.arange(4) * 10],
    )
    assert with_values.factor_values(torch.tensor([[1, 2, 3]])).tolist() == [[6.0, 1.0, 30.0]]


def test_array_ground_truth_must_be_the_whole_grid():
    order = torch.arange(24)
    with pytest.raises(DataError, match="missing"):
        _stored(torch.cat([order[:-1], order[:1]]))  # one point twice, one never
    with pytest.raises(DataError, match="has 24 images"):
        _stored(order[:20])
    factors = TOY.index_to_factors(order)
    factors[0, 0] = 7
    with pytest.raises(DataError, match="class indices"):
        ArrayGroundTruth(TOY.images(TOY.index_to_factors(order)), factors, TOY.factor_names, TOY.factor_sizes,
                         TOY.discrete_factors)


# --- the data sets that have a factor grid -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset",
    [
        {"name": "shapes", "options": {"size": 32}},
        {"name": "shapes", "options": {"size": 48}},
        {"name": "dsprites_procedural", "options": {}},
        {"name": "dsprites", "options": {"source": "procedural"}},
    ],
)
def test_providers_give_a_consistent_ground_truth(dataset, tmp_path):
    provider = build_provider(dataset)
    gt = provider.ground_truth(tmp_path)
    assert isinstance(gt, GroundTruthData)
    assert len(gt.factor_names) == len(gt.factor_sizes) == len(gt.discrete_factors) == gt.num_factors
    assert gt.discrete_factors[0] and not any(gt.discrete_factors[1:])  # one discrete factor, the shape; the rest
    assert gt.image_shape == provider.image_shape
    factors = gt.sample_factors(40, torch.Generator().manual_seed(0))
    images = gt.images(factors)
    assert images.shape == (40, *provider.image_shape) and images.dtype == torch.uint8
    values = gt.factor_values(factors)
    assert values.shape == (40, gt.num_factors) and values.dtype == torch.float64


def test_shapes_splits_are_disjoint_parts_of_the_grid():
    provider = build_provider({"name": "shapes", "options": {"size": 32}})
    gt = provider.ground_truth(None)
    assert gt.factor_sizes == (3, 6, 8, 8, 8) and len(gt) == 9_216
    train, test = provider.load(None, "train"), provider.load(None, "test")
    assert len(train) + len(test) == len(gt) and len(test) == len(gt) // 5
    i_train, i_test = gt.factors_to_index(train.factors), gt.factors_to_index(test.factors)
    assert len(set(i_train.tolist()) | set(i_test.tolist())) == len(gt)
    assert torch.equal(train.images, gt.images(train.factors)) and torch.equal(train.labels, train.factors[:, 0])
    distinct = len(gt.images(gt.index_to_factors(torch.arange(len(gt)))).flatten(1).unique(dim=0))
    assert distinct >= 0.995 * len(gt)  # only a few of the smallest shapes look alike at 32x32 after a 1/16 turn
    small = load_dataset({"name": "shapes", "options": {"n": 256, "size": 32}}, None, "train")
    assert len(small) == 256 and set(gt.factors_to_index(small.factors).tolist()) <= set(i_train.tolist())
    assert len(load_dataset({"name": "shapes", "options": {"n": 256, "size": 32}}, None, "test")) == 51
