"""Bring your own data: .npz files, torchvision datasets by _target_ (ImageFolder, FakeData) and the image shifts,
on tiny data made here (nothing is downloaded); npz and ImageFolder pairs end to end, and bad files as one line."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from PIL import Image

from crossprune.cli import app
from crossprune.data import Split, build_pair
from crossprune.data.npz import npz
from crossprune.data.shifts import KINDS, Corruption
from crossprune.data.stream import Stream
from crossprune.data.vision import torchvision_dataset
from crossprune.store.tracking import STAGE_TAG

SPLITS = ("train", "val", "test")
TINY = ["train_a.epochs=2", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false", "score.batches=2"]


def blobs(n_per_class: int, classes: int = 3, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, side, side] whose class lights one band of rows: easy to learn, labels readable off x."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.integers(0, 60, (len(y), side, side)).astype(np.uint8)
    band = side // classes
    for i, c in enumerate(y):
        x[i, c * band:(c + 1) * band] = 200 + c  # the band's value also names the class
    return x, y


def save(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def rows(d) -> int:
    return sum(len(getattr(d, s)) for s in SPLITS)


# npz: the layouts


def test_flat_npz_keeps_rows_and_relabels_sorted_values(tmp_path):
    """[n, d] floats stay flat; labels 2, 5, 9 become 0, 1, 2 named (2, 5, 9); splits 60/15/25, stratified."""
    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float64)
    y = np.repeat([9, 2, 5], 40)
    d = npz("flat", save(tmp_path / "f.npz", x=x, y=y))
    assert d.classes == (2, 5, 9) and d.input_shape == [5] and d.train.x.dtype == torch.float32
    assert [len(getattr(d, s)) for s in SPLITS] == [72, 18, 30]
    for s in SPLITS:
        assert np.bincount(getattr(d, s).y.numpy()).tolist() == [len(getattr(d, s)) // 3] * 3
    got = torch.cat([getattr(d, s).x for s in SPLITS])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, x.astype(np.float32).tolist()))


def test_uint8_images_get_a_channel_and_scale(tmp_path):
    """[n, H, W] uint8 becomes [n, 1, H, W] in [0, 1], x / 255 exactly, each row keeping its label."""
    x, y = blobs(20)
    d = npz("img", save(tmp_path / "i.npz", x=x, y=y))
    assert d.input_shape == [1, 8, 8] and d.classes == (0, 1, 2)
    for s in SPLITS:
        split = getattr(d, s)
        band = torch.round(split.x[:, 0].amax((1, 2)) * 255) - 200  # the band value names the class
        assert torch.equal(band.long(), split.y)
    assert sorted(torch.cat([d.train.x, d.val.x, d.test.x]).flatten(1).mul(255).round().tolist()) == \
        sorted(x.reshape(len(x), -1).astype(float).tolist())


def test_presplit_npz_keeps_test_and_carves_a_stratified_val(tmp_path):
    """x_test is the test split as saved; without x_val, 15% of train becomes val, the same rows for the same seed."""
    (xt, yt), (xs, ys) = blobs(20, seed=1), blobs(10, seed=2)
    path = save(tmp_path / "p.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    d = npz("pre", path)
    assert torch.equal(d.test.x, torch.from_numpy(xs).float()[:, None] / 255) and torch.equal(d.test.y, torch.from_numpy(ys))
    assert (len(d.train), len(d.val)) == (51, 9) and np.bincount(d.val.y.numpy()).tolist() == [3, 3, 3]
    assert torch.equal(npz("pre", path).val.x, d.val.x) and not torch.equal(npz("pre", path, split_seed=1).val.x, d.val.x)
    with_val = npz("pre", save(tmp_path / "v.npz", x_train=xt, y_train=yt, x_val=xs, y_val=ys, x_test=xs, y_test=ys))
    assert len(with_val.train) == 60 and torch.equal(with_val.val.x, with_val.test.x)


def test_classes_array_names_and_subset_relabels_in_listed_order(tmp_path):
    """A classes array names the labels; classes=[dog, cat] keeps those two, dog = 0, by name or by index."""
    x, y = blobs(20)
    path = save(tmp_path / "n.npz", x=x, y=y, classes=np.array(["cat", "dog", "eel"]))
    assert npz("all", path).classes == ("cat", "dog", "eel")
    for wanted in (["dog", "cat"], [1, 0]):
        d = npz("sub", path, classes=wanted)
        assert d.classes == ("dog", "cat") and rows(d) == 40
        band = torch.round(torch.cat([d.train.x, d.test.x])[:, 0].amax((1, 2)) * 255) - 200
        assert torch.equal(band.long(), 1 - torch.cat([d.train.y, d.test.y]))  # dog (1 in the file) is now 0


def test_shift_applies_to_every_split(tmp_path):
    x, y = blobs(20)
    path = save(tmp_path / "s.npz", x=x, y=y)
    plain, bright = npz("a", path), npz("b", path, shift=Corruption("brightness", 1.0))
    for s in SPLITS:
        assert torch.equal(getattr(bright, s).x, (getattr(plain, s).x + 0.3).clamp(0, 1))


# npz: bad files, one line each

X, Y = blobs(20)
BAD = {  # id: (arrays written, or a file's raw text, npz() keywords, what the line says)
    "missing": (None, {}, "does not exist"),
    "not_npz": ("hello", {}, "is not a readable .npz file"),
    "npy": ("npy", {}, "is not a readable .npz file (it holds one array: a .npy file)"),
    "pickled": ({"x": np.array([{}, 1], dtype=object), "y": Y[:2]}, {}, "Object arrays cannot be loaded"),
    "keys": ({"x": X, "labels": Y}, {}, "holds arrays labels, x; expected x and y, or x_train, y_train, x_test, y_test"),
    "half_split": ({"x_train": X, "y_train": Y, "x_test": X}, {}, "expected x and y, or x_train"),
    "lengths": ({"x": X, "y": Y[:-1]}, {}, "x has 60 rows but y has 59"),
    "x_text": ({"x": np.array(["a"] * 60), "y": Y}, {}, "x has dtype <U1; it must hold numbers"),
    "y_float": ({"x": X, "y": Y.astype(float)}, {}, "y has dtype float64; it must hold integer labels"),
    "class_absent": ({"x": X, "y": Y}, {"classes": [0, 7]}, "has no class 7; its classes are 0, 1, 2"),
    "class_empty": ({"x": X, "y": Y, "classes": np.array(["a", "b", "c", "d"])}, {}, "class 'd' has no samples"),
    "too_few": ({"x": X[:22], "y": Y[:22]}, {}, "too few samples per class for a stratified split (class 1 has 2"),
    "label_outside": ({"x": X, "y": Y, "classes": np.array(["a", "b"])}, {}, "labels [2] index no class"),
    "channels_last": ({"x": np.zeros((60, 8, 8, 3), np.uint8), "y": Y}, {}, "channels last; save x.transpose(0, 3, 1, 2)"),
}


def bad_file(tmp_path: Path, what) -> Path:
    path = tmp_path / "bad.npz"
    if isinstance(what, dict):
        np.savez(path, **what)
    elif what == "npy":
        np.save(tmp_path / "bad.npy", X)
        (tmp_path / "bad.npy").rename(path)
    elif what is not None:
        path.write_text(what)
    return path


@pytest.mark.parametrize("what, kwargs, says", list(BAD.values()), ids=list(BAD))
def test_bad_npz_is_one_line_naming_the_file(tmp_path, what, kwargs, says):
    path = bad_file(tmp_path, what)
    with pytest.raises(ValueError) as e:
        npz("bad", str(path), **kwargs)
    assert says in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.fixture
def cli_run(tmp_path, monkeypatch, capsys):
    """crossprune's main() in this process, in tmp_path, on its own store; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["crossprune", *TINY, f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", *args])
        try:
            app.main()
            code = 0
        except SystemExit as stop:
            code = stop.code
        finally:
            GlobalHydra.instance().clear()
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.mark.parametrize("case", ["missing", "keys", "lengths", "too_few", "channels_last"])
def test_bad_npz_through_the_cli_is_one_line_and_runs_nothing(tmp_path, monkeypatch, cli_run, case):
    what, _, says = BAD[case]
    path = bad_file(tmp_path, what)
    monkeypatch.setattr(app, "app", lambda: pytest.fail("the preflight let it through: the app started"))
    code, out, err = cli_run("pair=npz", f"pair.a.path={path}", f"pair.b.path={path}")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("crossprune: pair npz cannot be built: ") and says in lines[0], err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_npz_pair_without_paths_names_the_missing_key(tmp_path, cli_run):
    code, out, err = cli_run("pair=npz")
    assert code == 2 and err.count("\n") == 1 and "pair npz needs pair.a.path: set it on the command line, e.g. pair.a.path=<path>" in err, err
    assert not (tmp_path / "mlflow.db").exists()


# End to end


def finished_stages(runs) -> dict[str, dict]:
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    return {r.data.tags[STAGE_TAG]: r.data.metrics for r in runs if r.data.tags[STAGE_TAG] != "pipeline"}


def test_npz_pair_end_to_end_through_the_cli(tmp_path, cli_run, store_runs):
    """Two npz files sharing class names, head kept: every stage FINISHED, accuracies in [0, 1], A learnt."""
    names = np.array(["low", "mid", "high"])
    a = save(tmp_path / "a.npz", x=blobs(40)[0], y=blobs(40)[1], classes=names)
    (xt, yt), (xs, ys) = blobs(30, seed=3), blobs(10, seed=4)
    b = save(tmp_path / "b.npz", x_train=255 - xt, y_train=yt, x_test=255 - xs, y_test=ys, classes=names)  # B: inverted
    code, out, err = cli_run("pair=npz", f"pair.a.path={a}", f"pair.b.path={b}", "pair.head=keep")
    assert code == 0, err
    m = finished_stages(store_runs(f"sqlite:///{tmp_path}/mlflow.db"))
    assert set(m) == {"train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"}
    for stage, metrics in m.items():
        accs = {k: v for k, v in metrics.items() if k.endswith("acc")}
        assert {"A/acc", "B/acc", "A/probe_acc", "B/probe_acc"} <= accs.keys(), stage
        assert all(0 <= v <= 1 for v in accs.values()), (stage, accs)
    assert m["train_a"]["A/probe_acc"] > 0.9 and abs(m["prune"]["sparsity"] - 0.8) < 0.01


def test_new_data_at_the_same_path_is_never_a_cache_hit(tmp_path, make_cfg, run_pipeline):
    """The stage keys hold the data's digest, not only its path: a file replaced in place retrains."""
    path = tmp_path / "a.npz"
    save(path, x=blobs(40)[0], y=blobs(40)[1])
    cfg = make_cfg("pair=npz", f"pair.a.path={path}", f"pair.b.path={path}", "stages=[train_a]", "train_a.epochs=1")
    first = run_pipeline(cfg)["train_a"]
    assert run_pipeline(cfg)["train_a"].run_id == first.run_id  # same data: cached
    save(path, x=blobs(40, seed=9)[0], y=blobs(40, seed=9)[1])
    again = run_pipeline(cfg)["train_a"]
    assert again.key != first.key and again.run_id != first.run_id


def image_folder(root: Path, per_class: int, seed: int) -> str:
    """PNGs of mixed sizes, one subfolder per class; the class is the colour channel that is lit."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            side = int(rng.integers(12, 20))
            img = rng.integers(0, 40, (side, side, 3)).astype(np.uint8)
            img[..., c] = 220
            Image.fromarray(img).save(root / name / f"{i}.png")
    return str(root)


def test_imagefolder_pair_end_to_end_with_a_cnn(tmp_path, make_cfg, run_pipeline):
    """Folders of PNGs of mixed sizes, resized to 16: a CNN trains on [3, 16, 16]; the shared subfolders keep the head."""
    a, b = image_folder(tmp_path / "a", 30, 0), image_folder(tmp_path / "b", 20, 1)
    cfg = make_cfg("pair=imagefolder", f"pair.a.train.root={a}", f"pair.b.train.root={b}", "pair.size=16", "pair.head=keep",
                   "model=cnn", "train_a.epochs=2", "stages=[train_a,score,prune,finetune_b]")
    results = run_pipeline(cfg)
    pair = build_pair(cfg.pair)
    assert pair.a.classes == pair.b.classes == ("blue", "green", "red") and pair.a.input_shape == [3, 16, 16]
    assert (rows(pair.a), rows(pair.b)) == (90, 60) and 0 <= float(pair.a.train.x.min()) and float(pair.a.train.x.max()) <= 1
    assert set(results) == {"train_a", "score", "prune", "finetune_b"}
    for r in results.values():
        assert all(0 <= v <= 1 for k, v in r.metrics.items() if k.endswith("acc")), r.stage
    assert results["train_a"].metrics["A/probe_acc"] > 0.9 and "B/acc" in results["finetune_b"].metrics


# torchvision datasets


def fake(size: int, offset: int = 0) -> dict:
    return {"_target_": "torchvision.datasets.FakeData", "size": size, "image_size": [3, 32, 32], "num_classes": 4, "random_offset": offset}


def test_fakedata_builds_cifar_shaped_data(make_cfg):
    """The cifar10_corrupt preset on FakeData in CIFAR's shape: [3, 32, 32] in [0, 1], A and B share classes and rows,
    B is A at severity 0 and a corrupted A at severity 1; classes and max_samples select a stratified subset."""
    def pair(severity: float):
        cfg = make_cfg("pair=cifar10_corrupt", f"pair.severity={severity}", "pair.corruption=contrast")
        for side in (cfg.pair.a, cfg.pair.b):
            side.train, side.test = fake(120), fake(40, offset=1000)
        return build_pair(cfg.pair)

    same, shifted = pair(0.0), pair(1.0)
    assert same.a.input_shape == [3, 32, 32] and same.shared_labels and same.name == "cifar10_contrast"
    assert (len(same.a.train) + len(same.a.val), len(same.a.test)) == (120, 40)
    for s in SPLITS:
        assert torch.equal(getattr(same.a, s).x, getattr(same.b, s).x) and torch.equal(getattr(same.a, s).y, getattr(same.b, s).y)
        assert not torch.equal(getattr(shifted.a, s).x, getattr(shifted.b, s).x)
    assert 0 <= float(same.a.train.x.min()) and float(same.a.train.x.max()) <= 1
    sub = torchvision_dataset("sub", OmegaConf.create(fake(120)), classes=[3, 1], max_samples=40)
    assert sub.classes == (3, 1) and rows(sub) == 40 and np.bincount(torch.cat([sub.train.y, sub.val.y, sub.test.y])).tolist() == [20, 20]


@pytest.mark.parametrize("node, says", [
    ({"_target_": "torchvision.datasets.CIFAR10", "root": "nowhere"}, "no folder nowhere"),
    ({"_target_": "torchvision.datasets.CIFAR10", "root": ".", "download": True}, "download=true is refused"),
    ({"_target_": "torchvision.datasets.CIFAR10", "root": "."}, "cannot be read (no data there); expected <root>/cifar-10-batches-py/"),
])
def test_torchvision_sources_that_cannot_be_read_are_one_line(tmp_path, monkeypatch, node, says):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as e:
        torchvision_dataset("c", OmegaConf.create(node))
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing downloaded


def test_mixed_sizes_and_memory_over_max_gb_are_one_line(tmp_path):
    """Images of several sizes need size; decoded images over max_gb stream instead of filling memory."""
    folder = OmegaConf.create({"_target_": "torchvision.datasets.ImageFolder", "root": image_folder(tmp_path / "f", 8, 0)})
    with pytest.raises(ValueError, match=r"images differ in size \(\[3, \d+, \d+\] and \[3, \d+, \d+\]\): give size"):
        torchvision_dataset("mixed", folder)
    assert torchvision_dataset("sized", folder, size=8).input_shape == [3, 8, 8]
    big = torchvision_dataset("big", OmegaConf.create(fake(120)), max_gb=0.001)  # 120 × 3×32×32 float32: 0.00137 GB
    assert all(isinstance(split, Stream) for split in (big.train, big.val, big.test))
    assert isinstance(torchvision_dataset("small", OmegaConf.create(fake(120)), max_gb=0.002).train, Split)


def test_imagefolder_pair_without_roots_is_one_line(tmp_path, cli_run):
    code, _, err = cli_run("pair=imagefolder")
    assert code == 2 and err.count("\n") == 1, err
    assert "pair imagefolder cannot be built: train.root of dataset A is not set (??? in its pair file)" in err


def test_cifar10_corrupt_without_the_data_is_one_line(tmp_path, cli_run):
    code, _, err = cli_run("pair=cifar10_corrupt", "pair.corruption=blur")
    assert code == 2 and err.count("\n") == 1, err
    assert "pair cifar10_blur cannot be built: CIFAR10(root=data/cifar10, train=True): no folder data/cifar10" in err
    assert "expected <root>/cifar-10-batches-py/" in err


# Shifts


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_shift_is_identity_at_0_and_a_deterministic_change_at_1(kind):
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(Corruption(kind, 0.0)(x), x)
    y = Corruption(kind, 1.0, seed=3)(x)
    assert y.shape == x.shape and y.dtype == x.dtype and 0 <= float(y.min()) and float(y.max()) <= 1
    assert (y - x).abs().mean() > 0.01
    assert torch.equal(Corruption(kind, 1.0, seed=3)(x), y)
    half = Corruption(kind, 0.5, seed=3)(x)
    assert 0 < (half - x).abs().mean() < (y - x).abs().mean() + 1e-6  # severity moves towards level 5


def test_unknown_corruption_and_severity_are_one_line():
    with pytest.raises(ValueError, match="unknown corruption 'fog': choose one of gaussian_noise, blur, contrast, brightness, pixelate, rotate, permute"):
        Corruption("fog", 0.5)
    with pytest.raises(ValueError, match=r"severity must be in \[0, 1\], got 2"):
        Corruption("blur", 2)
    with pytest.raises(ValueError, match=r"Blur needs images \[n, C, H, W\]"):
        Corruption("blur", 0.5)(torch.rand(4, 10))
