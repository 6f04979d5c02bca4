"""Digits datasets and pairs: stratified disjoint splits, relabelled classes, and the shifts at severity 0 and 1."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from crossprune.data import build_pair
from crossprune.data.digits import digits

SPLITS = ("train", "val", "test")
RAW = load_digits()


def rows(*splits) -> set[tuple]:
    return {tuple(r) for s in splits for r in torch.cat([s.x.flatten(1), s.y[:, None].float()], 1).tolist()}


@pytest.fixture(scope="module")
def full():
    return digits()


def test_splits_partition_the_data(full):
    """train/val/test are disjoint and together hold every one of the 1797 images once."""
    parts = [getattr(full, s) for s in SPLITS]
    assert [len(p) for p in parts] == [1077, 270, 450]
    assert sum(len(rows(p)) for p in parts) == len(rows(*parts)) == len(RAW.target)
    raw = torch.as_tensor(RAW.images / 16.0, dtype=torch.float32).flatten(1)
    assert {tuple(r) for r in raw.tolist()} == {r[:-1] for r in rows(*parts)}


def test_splits_are_stratified(full):
    """Each class is in every split at the split's share of the data, within two images."""
    counts = np.bincount(RAW.target)
    for name, share in zip(SPLITS, (0.60, 0.15, 0.25)):
        got = np.bincount(getattr(full, name).y.numpy(), minlength=10)
        assert np.abs(got - share * counts).max() <= 2, name


def test_splits_are_the_same_in_every_build(full):
    """Two builds give identical tensors; another split seed gives other rows."""
    again, other = digits(), digits(split_seed=1)
    for s in SPLITS:
        assert torch.equal(getattr(full, s).x, getattr(again, s).x) and torch.equal(getattr(full, s).y, getattr(again, s).y)
    assert not torch.equal(full.test.x, other.test.x)


def test_digits_split_relabels_b_as_0_to_4(make_cfg):
    """digits_split: A is digits 0-4, B is digits 5-9 labelled 0-4 in that order."""
    pair = build_pair(make_cfg().pair)
    assert pair.a.classes == (0, 1, 2, 3, 4) and pair.b.classes == (5, 6, 7, 8, 9)
    assert not pair.shared_labels and pair.a.input_shape == pair.b.input_shape == [1, 8, 8]
    raw = RAW.images / 16.0
    for data, first in ((pair.a, 0), (pair.b, 5)):
        for s in SPLITS:
            assert set(getattr(data, s).y.tolist()) == {0, 1, 2, 3, 4}
        x = torch.cat([getattr(data, s).x for s in SPLITS])
        y = torch.cat([getattr(data, s).y for s in SPLITS])
        for label in range(5):
            assert int((y == label).sum()) == int((RAW.target == first + label).sum())
            mean = torch.as_tensor(raw[RAW.target == first + label].mean(0), dtype=torch.float32)
            torch.testing.assert_close(x[y == label, 0].mean(0), mean)


def shifted(make_cfg, pair: str, severity: float):
    return build_pair(make_cfg(f"pair={pair}", f"pair.severity={severity}").pair)


@pytest.mark.parametrize("pair", ["digits_permute", "digits_rotate"])
def test_severity_0_leaves_b_equal_to_a(make_cfg, pair):
    """At severity 0 both shifts give B = A exactly, labels and the shared label space included."""
    p = shifted(make_cfg, pair, 0.0)
    assert p.shared_labels
    for s in SPLITS:
        assert torch.equal(getattr(p.a, s).x, getattr(p.b, s).x) and torch.equal(getattr(p.a, s).y, getattr(p.b, s).y)


def test_permute_severity_1_moves_most_pixels_and_keeps_labels(make_cfg):
    """Full permutation: most pixel values change, each image keeps its values and its label."""
    p = shifted(make_cfg, "digits_permute", 1.0)
    a, b = p.a.train, p.b.train
    assert torch.equal(a.y, b.y)
    assert (a.x != b.x).float().mean() > 0.5
    torch.testing.assert_close(a.x.flatten(1).sort(1).values, b.x.flatten(1).sort(1).values, rtol=0, atol=0)
    half = shifted(make_cfg, "digits_permute", 0.5).b.train
    assert (a.x != half.x).float().mean() < (a.x != b.x).float().mean()


def test_rotate_severity_1_is_a_quarter_turn(make_cfg):
    """Rotate at severity 1 is torch.rot90 of every image, with labels kept."""
    p = shifted(make_cfg, "digits_rotate", 1.0)
    assert torch.equal(p.a.test.y, p.b.test.y)
    torch.testing.assert_close(p.b.test.x, torch.rot90(p.a.test.x, 1, dims=(2, 3)), rtol=0, atol=1e-6)
