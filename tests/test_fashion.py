"""Fashion-MNIST: the IDX reader, where the files are found, the pairs through every stage, bad files as one line,
and the set-up, all on tiny IDX files written here; one test reads the real files where they are installed."""

import gzip
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from crossprune.cli import app
from crossprune.data import build_pair, fashion_files, fashion_setup
from crossprune.data.fashion import CLASSES, fashion_mnist
from crossprune.data.fashion_files import FILES
from crossprune.data.idx import read_idx
from crossprune.store.tracking import STAGE_TAG
from fashion_data import idx, images, write

TINY = ["train_a.epochs=2", "finetune_b.epochs=1", "trainer.progress_bar=false", "score.batches=2", "eval.max_samples=200"]


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No Fashion-MNIST where crossprune looks by default: the Debian path and the user's cache are empty folders here."""
    monkeypatch.setattr(fashion_files, "DEBIAN", tmp_path / "debian")
    monkeypatch.setattr(fashion_setup, "DEBIAN", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


# The IDX format


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_idx_files_read_back_exactly_gzipped_or_plain(tmp_path, gz):
    x, y = images("train")
    folder = write(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    got_x = read_idx(folder / f"train-images-idx3-ubyte{suffix}", "images")
    got_y = read_idx(folder / f"train-labels-idx1-ubyte{suffix}", "labels")
    assert got_x.dtype == np.uint8 and got_x.shape == (200, 28, 28) and np.array_equal(got_x, x)
    assert got_y.shape == (200,) and np.array_equal(got_y, y)


def corrupt(path: Path, how: str) -> None:
    data = idx(images("train")[0])
    cases = {"magic": data[:3] + bytes([1]) + data[4:],  # 2049, a labels file, where images are expected
             "truncated": data[:-100], "longer": data + b"\0", "header_cut": data[:10], "empty": b""}
    if how == "bad_gzip":
        path.write_bytes(gzip.compress(data)[:-5000])
    else:
        path.write_bytes(gzip.compress(cases[how]))


@pytest.mark.parametrize("how, says", [
    ("magic", "is not an IDX images file (magic number 2049, expected magic number 2051)"),
    ("truncated", "is truncated: its header says 200 x 28 x 28 = 156800 values, it holds 156700"),
    ("longer", "is longer than its header says"),
    ("header_cut", "is truncated: 10 bytes, fewer than its 16-byte header"),
    ("empty", "is not an IDX images file (0 bytes"),
    ("bad_gzip", "cannot be read (Compressed file ended before the end-of-stream marker was reached)"),
])
def test_a_bad_idx_file_is_one_line_naming_it(tmp_path, how, says):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    corrupt(path, how)
    with pytest.raises(ValueError) as e:
        read_idx(path, "images")
    assert says in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)


# Where the files are found


def test_search_order_debian_then_cache_and_a_root_then_its_torchvision_folder(nowhere):
    debian, cache = fashion_files.DEBIAN, nowhere / "cache" / "crossprune" / "fashion-mnist"
    write(cache)
    assert fashion_files.find(None)["x_train"].parent == cache
    write(debian, gz=False)
    assert fashion_files.find(None)["x_train"] == debian / "train-images-idx3-ubyte"  # Debian's path first
    tv = write(nowhere / "tv" / "FashionMNIST" / "raw", gz=False)
    write(tv)  # torchvision keeps both; the plain file is read
    assert fashion_files.find(str(nowhere / "tv"))["y_test"] == tv / "t10k-labels-idx1-ubyte"
    own = write(nowhere / "own")
    assert fashion_files.find(str(own))["x_test"] == own / "t10k-images-idx3-ubyte.gz"


def test_missing_files_name_the_folders_searched_and_the_fix(nowhere):
    with pytest.raises(ValueError) as e:
        fashion_files.find(None)
    cache = nowhere / "cache" / "crossprune" / "fashion-mnist"
    assert str(e.value) == (f"no Fashion-MNIST files in {nowhere / 'debian'} or {cache}: run python -m "
                            f"crossprune.data.fashion_setup (installs Debian's dataset-fashion-mnist, or unpacks it into "
                            f"{cache} without root), or give pair.root a folder holding the four IDX files "
                            f"(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                            f"t10k-labels-idx1-ubyte, .gz or plain)")
    own = write(nowhere / "own")
    (own / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError) as e:
        fashion_files.find(str(own))
    assert str(e.value) == f"Fashion-MNIST in {own} lacks t10k-labels-idx1-ubyte (.gz or plain): put all four IDX files there"


# The dataset


def test_classes_are_relabelled_the_test_split_is_whole_and_val_is_carved(tmp_path):
    folder = write(tmp_path / "f")
    d = fashion_mnist("b", root=str(folder), classes=[5, 6, 7, 8, 9])
    assert d.classes == CLASSES[5:] and d.input_shape == [1, 28, 28] and d.train.x.dtype == torch.float32
    assert (len(d.train), len(d.val), len(d.test)) == (85, 15, 20)  # 100 train images, 15% val (stratified: 3 per class)
    assert np.bincount(d.val.y.numpy()).tolist() == [3] * 5
    x, y = images("test")
    keep = y >= 5
    assert torch.equal(d.test.y, torch.from_numpy(y[keep].astype(np.int64) - 5))
    assert torch.equal(d.test.x, torch.from_numpy(x[keep]).float()[:, None] / 255)  # uint8 / 255 exactly, in file order
    assert d.files == tuple((str(folder / f"{name}.gz"), hashlib.sha256((folder / f"{name}.gz").read_bytes()).hexdigest())
                            for name in FILES.values())


def test_max_train_keeps_a_seeded_stratified_subset_and_the_whole_test(tmp_path):
    folder = str(write(tmp_path / "f"))
    d = fashion_mnist("a", root=folder, max_train=100, split_seed=3)
    assert (len(d.train), len(d.val), len(d.test)) == (85, 15, 40)
    assert np.bincount(torch.cat([d.train.y, d.val.y]).numpy()).tolist() == [10] * 10
    again = fashion_mnist("a", root=folder, max_train=100, split_seed=3)
    other = fashion_mnist("a", root=folder, max_train=100, split_seed=4)
    assert torch.equal(again.train.x, d.train.x) and not torch.equal(other.train.x, d.train.x)
    with pytest.raises(ValueError, match="max_train=5 is too few to keep every class"):
        fashion_mnist("a", root=folder, max_train=5)
    with pytest.raises(ValueError, match=r"max_train must be null \(every training image\) or an integer >= 1, got -1"):
        fashion_mnist("a", root=folder, max_train=-1)


def test_fashion_shift_at_0_is_a_and_digits_to_fashion_meets_it_at_28x28(tmp_path, make_cfg):
    root = f"pair.root={write(tmp_path / 'f')}"
    same = build_pair(make_cfg("pair=fashion_shift", root, "pair.severity=0", "pair.max_train=null").pair)
    assert same.shared_labels and same.name == "fashion_gaussian_noise"
    assert torch.equal(same.a.train.x, same.b.train.x) and torch.equal(same.a.test.x, same.b.test.x)
    noisy = build_pair(make_cfg("pair=fashion_shift", root, "pair.severity=1", "pair.max_train=null").pair)
    assert torch.equal(noisy.a.train.y, noisy.b.train.y) and 0.02 < float((noisy.b.train.x - noisy.a.train.x).abs().mean()) < 0.1
    turned = build_pair(make_cfg("pair=fashion_shift", root, "pair.shift=rotate", "pair.severity=1", "pair.max_train=null").pair)
    assert turned.name == "fashion_rotate" and torch.allclose(turned.b.test.x, torch.rot90(turned.a.test.x, 1, (2, 3)), atol=1e-5)
    cross = build_pair(make_cfg("pair=digits_to_fashion", root, "pair.max_train=null").pair)
    assert cross.a.input_shape == cross.b.input_shape == [1, 28, 28] and not cross.shared_labels
    assert cross.a.classes == tuple(range(10)) and cross.b.classes == CLASSES and len(cross.a.test) == 450


# Through the command


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


@pytest.mark.parametrize("model", ["cnn", "lenet5"])
def test_fashion_split_end_to_end_names_its_files_with_their_digests(tmp_path, cli_run, store_runs, model):
    """Every stage FINISHED on tiny IDX files; the parent's datasets name the folder, each file's sha256 a tag."""
    folder = write(tmp_path / "f", gz=False)
    small = ["model.channels=[4,8]"] if model == "cnn" else ["model.hidden=[16,8]", "prune=structured"]  # rebuilt smaller
    code, _, err = cli_run("pair=fashion_split", f"pair.root={folder}", f"model={model}", *small)
    assert code == 0, err
    runs = store_runs(f"sqlite:///{tmp_path}/mlflow.db")
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    stages = {r.data.tags[STAGE_TAG]: r.data.metrics for r in runs if r.data.tags[STAGE_TAG] != "pipeline"}
    assert set(stages) == {"train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"}
    for stage, metrics in stages.items():
        assert all(0 <= v <= 1 for k, v in metrics.items() if k.endswith("acc")), stage
    assert stages["train_a"]["A/probe_acc"] > 0.9 and "B/acc" in stages["finetune_b"]
    [parent] = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    inputs = {i.dataset.name: i for i in parent.inputs.dataset_inputs}
    assert set(inputs) == {"A: fashion_0-4", "B: fashion_5-9"}
    for i in inputs.values():
        assert f'"uri": "{folder}"' in i.dataset.source
        tags = {t.key: t.value for t in i.tags}
        assert all(tags[name] == hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES.values()), tags


@pytest.mark.parametrize("case, says", [
    ("nowhere", "no Fashion-MNIST files in {tmp}/gone or {tmp}/gone/FashionMNIST/raw: give pair.root a folder holding"),
    ("truncated", ("{tmp}/f/train-images-idx3-ubyte.gz is truncated: its header says 200 x 28 x 28 = 156800 values, it "
                   "holds 156700: replace it with the original (python -m crossprune.data.fashion_setup fetches it)")),
    ("magic", "{tmp}/f/train-images-idx3-ubyte.gz is not an IDX images file (magic number 2049, expected magic number 2051)"),
])
def test_bad_files_through_the_cli_are_one_line_and_run_nothing(tmp_path, monkeypatch, cli_run, case, says):
    folder = write(tmp_path / "f")
    if case != "nowhere":
        corrupt(folder / "train-images-idx3-ubyte.gz", case)
    monkeypatch.setattr(app, "app", lambda: pytest.fail("the preflight let it through: the app started"))
    root = tmp_path / "gone" if case == "nowhere" else folder
    code, out, err = cli_run("pair=fashion_split", f"pair.root={root}")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("crossprune: pair fashion_split cannot be built: ") and says.format(tmp=tmp_path) in lines[0], err
    assert not (tmp_path / "mlflow.db").exists()


# The set-up


def test_setup_does_nothing_when_the_files_are_there(nowhere, monkeypatch, capsys):
    write(nowhere / "cache" / "crossprune" / "fashion-mnist")
    monkeypatch.setattr(fashion_setup, "apt", lambda *a, **k: pytest.fail("apt ran though the files were there"))
    assert fashion_setup.main() == 0
    assert capsys.readouterr().out == f"Fashion-MNIST: {nowhere / 'cache' / 'crossprune' / 'fashion-mnist'} (already there)\n"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_setup_without_root_unpacks_the_package_into_the_cache(nowhere, monkeypatch, capsys):
    """`apt-get download` stands in for by a .deb built here (the real one is 31 MB); dpkg -x unpacks it for real."""
    tree = write(nowhere / "pkg" / "usr" / "share" / "datasets" / "fashion-mnist").parents[3]
    (tree / "DEBIAN").mkdir(mode=0o755)
    for folder in [tree, *tree.rglob("*")]:  # dpkg-deb refuses pytest's 0700 folders
        folder.chmod(0o755 if folder.is_dir() else 0o644)
    (tree / "DEBIAN" / "control").write_text("Package: dataset-fashion-mnist\nVersion: 0\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: t\n")
    built = nowhere / "dataset-fashion-mnist_0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(built)], check=True, capture_output=True)
    real = fashion_setup.apt

    def apt(*args, cwd=None):
        if args[:2] == ("apt-get", "download"):
            (Path(cwd) / built.name).write_bytes(built.read_bytes())
        else:
            real(*args, cwd=cwd)

    monkeypatch.setattr(fashion_setup, "apt", apt)
    monkeypatch.setattr(fashion_setup.os, "geteuid", lambda: 1000)
    assert fashion_setup.main() == 0
    cache = nowhere / "cache" / "crossprune" / "fashion-mnist"
    assert capsys.readouterr().out == f"Fashion-MNIST: {cache} (unpacked Debian's dataset-fashion-mnist into the cache)\n"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILES.values())
    assert fashion_files.find(None)["x_train"] == cache / "train-images-idx3-ubyte.gz"


def test_setup_without_apt_says_what_to_run(nowhere, monkeypatch, capsys):
    monkeypatch.setattr(fashion_setup.shutil, "which", lambda name: None)
    assert fashion_setup.main() == 1
    err = capsys.readouterr().err
    assert "Fashion-MNIST is not available: apt-get and dpkg are not on this machine (not Debian or Ubuntu)." in err
    assert "As root: apt-get install dataset-fashion-mnist" in err and str(nowhere / "cache" / "crossprune") in err


# The real files


def test_the_real_files_hold_fashion_mnist():
    """Runs where the files are installed (CI installs them); skipped, saying why, where they are not."""
    try:
        files = fashion_files.find(None)
    except ValueError as e:
        pytest.skip(f"Fashion-MNIST is not installed here: {e}")
    d = fashion_mnist("a", classes=[0, 1, 2, 3, 4])
    assert (len(d.train), len(d.val), len(d.test)) == (25500, 4500, 5000)  # 6000 and 1000 per class, 15% of train val
    assert np.bincount(d.test.y.numpy()).tolist() == [1000] * 5 and float(d.train.x.max()) == 1.0
    assert [p for p, _ in d.files] == [str(files[r]) for r in FILES]
