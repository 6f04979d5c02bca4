"""MNIST-1D: offline draws, the split and shift pairs, and CNN1d under every criterion and structured removal."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crossprune.criteria import Batch, wanda
from crossprune.data import build_pair
from crossprune.data.mnist1d import _raw, mnist1d
from crossprune.models import CNN1d
from crossprune.pruning import prunable
from crossprune.pruning.structured import count, remove_channels
from crossprune.stages.scoring import compute_scores

SPLITS = ("train", "val", "test")
SMALL = 1000  # signals per draw in tests: ~1 s each, where the default 5000 take ~4 s
SMALL_PAIR = [f"pair.num_samples={SMALL}"]
CRITERIA = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "criterion").glob("*.yaml")
                  if "score" in OmegaConf.load(p))  # a pruning method (sparsegpt) has none: tests/test_lm.py


def rows(data) -> set[tuple]:
    return {tuple(r) for s in SPLITS for r in getattr(data, s).x.flatten(1).tolist()}


def test_split_pair_has_its_classes_shapes_and_disjoint_rows(make_cfg):
    """mnist1d_split: one draw; A = classes 0-4, B = 5-9 relabelled 0-4, 500 each split 60/15/25 in every class."""
    pair = build_pair(make_cfg("pair=mnist1d_split", *SMALL_PAIR).pair)
    assert pair.a.classes == (0, 1, 2, 3, 4) and pair.b.classes == (5, 6, 7, 8, 9) and not pair.shared_labels
    assert pair.a.input_shape == pair.b.input_shape == [1, 40]
    for data in (pair.a, pair.b):
        for s, n in zip(SPLITS, (300, 75, 125)):
            split = getattr(data, s)
            assert split.x.dtype == torch.float32 and torch.bincount(split.y).tolist() == [n // 5] * 5
    x, y = _raw(SMALL, 0, 0.0)
    assert rows(pair.a) == {tuple(r) for r in x[y < 5, 0].tolist()}
    assert rows(pair.b) == {tuple(r) for r in x[y >= 5, 0].tolist()}
    assert not rows(pair.a) & rows(pair.b)


def test_shift_at_severity_0_gives_b_equal_to_a(make_cfg):
    pair = build_pair(make_cfg("pair=mnist1d_shift", "pair.severity=0", *SMALL_PAIR).pair)
    assert pair.shared_labels
    for s in SPLITS:
        assert torch.equal(getattr(pair.a, s).x, getattr(pair.b, s).x) and torch.equal(getattr(pair.a, s).y, getattr(pair.b, s).y)



def test_the_redraw_pair_gives_b_its_own_sample_of_a_s_distribution(make_cfg):
    """mnist1d_redraw: A and B are the halves of one draw (standardised together), share no signal, have every class
    in the same numbers, and differ for every seed; draw 0 is the seed's own draw; a bad draw is one line."""
    pair = build_pair(make_cfg("pair=mnist1d_redraw", *SMALL_PAIR).pair)
    assert pair.shared_labels and not rows(pair.a) & rows(pair.b)
    assert torch.equal(pair.a.train.y.bincount(), pair.b.train.y.bincount())
    whole, _ = _raw(2 * SMALL, 0, 0.0)
    assert rows(pair.a) | rows(pair.b) == {tuple(r) for r in torch.from_numpy(whole).flatten(1).tolist()}
    with pytest.raises(ValueError, match="draw must be a non-negative integer below parts=2, got 2"):
        mnist1d(num_samples=SMALL, parts=2, draw=2)
    again = build_pair(make_cfg("pair=mnist1d_redraw", "seed=1", *SMALL_PAIR).pair)
    assert not rows(again.b) & rows(pair.b) and rows(again.a) != rows(pair.a)
    assert torch.equal(mnist1d(num_samples=SMALL, draw=0).train.x, mnist1d(num_samples=SMALL).train.x)
    with pytest.raises(ValueError, match="draw must be a non-negative integer, got -1"):
        mnist1d(num_samples=SMALL, draw=-1)

def test_b_moves_further_from_a_as_severity_grows():
    """Every severity keeps the rows and labels of the draw; the mean |B - A| grows (in units of the data's std)."""
    a = mnist1d(num_samples=SMALL)
    gaps = []
    for severity in (0.0, 0.5, 1.0):
        b = mnist1d(num_samples=SMALL, severity=severity)
        assert torch.equal(a.train.y, b.train.y)
        gaps.append(float((b.train.x - a.train.x).abs().mean()))
    assert gaps[0] == 0 and 0.1 < gaps[1] < gaps[2] - 0.05  # measured 0.18 and 0.28
    with pytest.raises(ValueError, match="severity"):
        mnist1d(num_samples=SMALL, severity=1.5)


def test_same_seed_same_data_other_seeds_other_data():
    """A fresh draw (no cache) repeats the cached one and leaves the global generators alone; seeds change data."""
    np.random.seed(5), random.seed(5)
    x, y = _raw.__wrapped__(SMALL, 0, 0.0)
    assert np.random.rand() == np.random.RandomState(5).rand() and random.random() == random.Random(5).random()
    cached = _raw(SMALL, 0, 0.0)
    assert np.array_equal(x, cached[0]) and np.array_equal(y, cached[1])
    base, resplit = mnist1d(num_samples=SMALL), mnist1d(num_samples=SMALL, split_seed=1)
    assert rows(base) == rows(resplit) and not torch.equal(base.test.x, resplit.test.x)  # same signals, other rows
    assert not rows(base) & rows(mnist1d(num_samples=SMALL, seed=1))  # another draw shares no signal


@pytest.mark.parametrize("pair", ["mnist1d_split", "mnist1d_shift"])
def test_pairs_follow_data_seed(make_cfg, pair):
    """Both datasets' draw and split follow data_seed, which follows seed unless set."""
    for overrides, want in ((["seed=3"], 3), (["seed=3", "data_seed=7"], 7)):
        p = make_cfg(f"pair={pair}", *overrides).pair
        assert p.a.seed == p.a.split_seed == p.b.seed == p.b.split_seed == want
    assert make_cfg("pair=mnist1d_shift").pair.b.severity == 0.5


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_scores_a_cnn1d(make_cfg, criterion):
    """Through the configured scoring, A and B batches both (score.data=mix fits a B head for the split pair)."""
    cfg = make_cfg("model=cnn1d", "model.channels=[8,16]", "pair=mnist1d_split", f"criterion={criterion}", "score.data=mix", *SMALL_PAIR)
    pair = build_pair(cfg.pair)
    torch.manual_seed(0)
    net = instantiate(cfg.model, input_shape=pair.a.input_shape, num_classes=pair.a.num_classes)
    params = prunable(net, cfg.prune)
    assert {n: tuple(p.shape) for n, p in params.items()} == {"layers.0.weight": (8, 1, 5), "layers.2.weight": (16, 8, 5)}
    scores, fitted = compute_scores(net, params, cfg, pair, pair.a.classes)  # the net is an A network
    uses_loss = not cfg.criterion.data_free and criterion != "wanda"  # wanda weighs by activations, not the loss
    assert scores.keys() == params.keys() and fitted == (["B"] if uses_loss else [])
    for name, p in params.items():
        assert scores[name].shape == p.shape and torch.isfinite(scores[name]).all() and not scores[name].requires_grad


def test_wanda_conv1d_norms_are_per_input_channel_and_kernel_tap_over_samples_and_positions():
    torch.manual_seed(0)
    net = CNN1d(input_shape=[2, 6], num_classes=3, channels=[4])
    w = net.layers[0].weight
    xs = [torch.randn(4, 2, 6) for _ in range(2)]
    got = wanda.score(net, {"layers.0.weight": w}, [Batch(x, torch.zeros(4, dtype=torch.long), "A") for x in xs], None, 0.5)
    padded = torch.nn.functional.pad(torch.cat(xs), (2, 2))  # kernel 5, padding 2: tap t reads positions t .. t+5
    norm = torch.stack([padded[:, :, t : t + 6].square().sum((0, 2)) for t in range(5)], -1).sqrt()
    torch.testing.assert_close(got["layers.0.weight"], w.detach().abs() * norm)


def test_structured_removal_halves_cnn1d_and_the_rebuilt_net_loads_it():
    torch.manual_seed(0)
    net = CNN1d(input_shape=[1, 40], num_classes=5, channels=[8, 16, 16])
    scores = {n: p.detach().abs() for n, p in net.named_parameters() if n.endswith("weight") and not n.startswith("head")}
    before = count(net)
    remove_channels(net, scores, 0.5)
    assert net.structure() == {"channels": [4, 8, 8], "kernel_size": 5, "num_classes": 5}
    after = count(net)
    assert after["macs"] < before["macs"] / 3 and after["params"] == sum(p.numel() for p in net.parameters())
    rebuilt = CNN1d(input_shape=net.input_shape, **net.structure()).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(4, 1, 40)
    assert rebuilt(x).shape == (4, 5) and torch.equal(rebuilt(x), net.eval()(x))


def test_a_draw_is_kept_on_disk_and_read_back_bit_for_bit(tmp_path, monkeypatch):
    """The first draw writes the cache; later processes (here: a cleared lru cache, and a generator that would fail)
    read the same arrays; a damaged file is drawn again; another severity is another file."""
    import crossprune.data.mnist1d as module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _raw.cache_clear()
    x, y = _raw(200, 3, 0.5)
    [kept] = (tmp_path / "crossprune" / "mnist1d").glob("*.npz")
    _raw.cache_clear()
    monkeypatch.setattr(module, "make_dataset", lambda args: pytest.fail("drawn again, not read"))
    x2, y2 = _raw(200, 3, 0.5)
    assert x2.dtype == np.float32 and np.array_equal(x, x2) and np.array_equal(y, y2)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kept.write_bytes(b"not an npz")
    _raw.cache_clear()
    x3, _ = _raw(200, 3, 0.5)
    assert np.array_equal(x, x3)
    _raw(200, 3, 1.0)
    assert len(list((tmp_path / "crossprune" / "mnist1d").glob("*.npz"))) == 2
    _raw.cache_clear()


def test_score_split_val_draws_rows_train_a_never_saw(make_cfg):
    """score.split=val: every score row of A and of B is a validation row, none a training row; train by default."""
    from crossprune.stages.scoring import score_batches

    pair = build_pair(make_cfg("pair=mnist1d_redraw", *SMALL_PAIR).pair)
    for split in ("train", "val"):
        cfg = make_cfg("pair=mnist1d_redraw", *SMALL_PAIR, f"score.split={split}", "score.data=mix")
        batches = score_batches(cfg, pair, "mix")
        for data, head in ((pair.a, "A"), (pair.b, "B")):
            drawn = {tuple(r) for b in batches if b.head == head for r in b.x.flatten(1).tolist()}
            assert drawn and drawn <= {tuple(r) for r in getattr(data, split).x.flatten(1).tolist()}
            other = "train" if split == "val" else "val"
            assert not drawn & {tuple(r) for r in getattr(data, other).x.flatten(1).tolist()}
